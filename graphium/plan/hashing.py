"""Canonical form, spec hashes and the plan fingerprint: what makes plans repeatable and checkable.

A container's ``graphium.spec-hash`` label is the hash of the canonical JSON of the fields that
change what the engine runs; ``graphium.spec-fields`` keeps one short hash per field, so a replace
can name the fields that changed without the host storing any value. The fingerprint hashes the
observed and stored state a plan was computed from, so a saved plan can be refused when stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from graphium.plan.model import ObservedContainer, ObservedHost
from graphium.records.stack import StackRecord
from graphium.stack.models import ContainerSpec

__all__ = [
    "HASHED_FIELDS",
    "SPEC_HASH_VERSION",
    "canonical",
    "digest",
    "fingerprint",
    "hashed_value",
    "spec_hashes",
    "stack_containers",
]

SPEC_HASH_VERSION = "v1"
# every field that changes the container the engine runs; dependsOn, description, replicas,
# placement and pull policy are deliberately absent: changing them must not recreate anything
HASHED_FIELDS = (
    "image",
    "command",
    "args",
    "environment",
    "ports",
    "mounts",
    "restartPolicy",
    "labels",
    "resources",
    "healthCheck",
    "user",
    "workingDir",
    "stopTimeout",
    "network",
)
_UNORDERED = ("ports", "mounts")  # the engine ignores their order; so does the hash


def canonical(value: Any) -> bytes:
    """The one byte form every hash is taken over: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(text: str) -> str:
    """Hex SHA-256 of ``text``."""
    return hashlib.sha256(text.encode()).hexdigest()


_NULL_DIGEST = hashlib.sha256(canonical(None)).hexdigest()


def hashed_value(spec_dump: Mapping[str, Any], name: str, network_name: str) -> Any:
    """The value of hashed field ``name`` as it is hashed (``network`` is the network's name)."""
    return network_name if name == "network" else spec_dump.get(name)


def _owned(mount: dict[str, Any]) -> dict[str, Any]:
    """A mount as hashed: a named volume the stack owns (``<stack>-<source>``) is marked, so that
    containers deployed when named volumes were shared by every stack are replaced onto theirs."""
    if mount.get("type", "volume") == "volume" and mount.get("source") and not mount.get("external"):
        return {**mount, "owned": True}
    return mount


def spec_hashes(spec: ContainerSpec, network_name: str) -> tuple[str, dict[str, str]]:
    """``("v1:<20 hex>", {field: <12 hex>})`` over the canonical JSON of the fields that matter.

    Defaults are omitted before hashing, so spelling out a default value, or a later release
    adding a field with a default, changes no hash.
    """
    dumped = spec.dump()
    digests: dict[str, str] = {}
    for name in HASHED_FIELDS:
        value = hashed_value(dumped, name, network_name)
        if value is None:
            digests[name] = _NULL_DIGEST  # most fields are unset: skip the encoder
            continue
        if name == "mounts":
            value = [_owned(m) for m in value]
        if name in _UNORDERED:
            value = sorted(value, key=canonical)
        digests[name] = hashlib.sha256(canonical(value)).hexdigest()
    whole = digest("".join(f"{k}={v};" for k, v in digests.items()))
    return f"{SPEC_HASH_VERSION}:{whole[:20]}", {k: v[:12] for k, v in digests.items()}


def stack_containers(stack_name: str, observed: Mapping[str, ObservedHost]) -> list[ObservedContainer]:
    """The stack's containers on every observed host, in a canonical order (name, host, id)."""
    found = [c for o in observed.values() for c in o.containers if c.stack == stack_name]
    return sorted(found, key=lambda c: (c.name, c.host, c.id))


def fingerprint(stack_name: str, observed: Mapping[str, ObservedHost], stored: StackRecord | None) -> str:
    """Hash of everything a plan was computed from that can change behind its back.

    The stack's containers (host, id, name, spec hash, state), the graphium networks each host
    has, which hosts were observed and their errors, and the stored revision. ``apply plan.json``
    recomputes it (see :func:`graphium.plan.planner.check_fresh`) and refuses a stale plan.
    """
    state = {
        "stack": stack_name,
        "hosts": sorted(observed),
        "errors": sorted([h, o.error] for h, o in observed.items() if o.error),
        "containers": [
            [c.host, c.id, c.name, c.spec_hash, c.live.state] for c in stack_containers(stack_name, observed)
        ],
        "networks": sorted([h, sorted(o.networks)] for h, o in observed.items()),
        "revision": stored.revision if stored else None,
    }
    volumes = sorted([h, v.name] for h, o in observed.items() for v in o.volumes if v.stack == stack_name)
    if volumes:  # only then, so fingerprints of stacks without volumes stay what they were
        state["volumes"] = volumes
    return "sha256:" + hashlib.sha256(canonical(state)).hexdigest()[:32]
