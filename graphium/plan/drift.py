"""Live versus desired: the verdict on a container found where its instance belongs.

A container whose spec-hash label differs from the desired hash is replaced; the per-field hashes
name the fields, and the stored record (the spec last applied) supplies their old values when its
hashes match the container's. A container whose hash matches may still have been changed out of
band (stopped, restart policy, limits, ports, environment, network): inspect tells, and the
difference is drift. Each finding is a human sentence and a :class:`FieldChange`; secret values
never appear in either (environment values of secret keys, and any copy of a secret value, read
as ``(sensitive)``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from graphium.placement.base import WILDCARD_IPS, HostPort
from graphium.plan.changes import leaf_changes
from graphium.plan.hashing import HASHED_FIELDS, SPEC_HASH_VERSION, hashed_value, spec_hashes
from graphium.plan.model import ActionReason, DesiredContainer, FieldChange, ObservedContainer
from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import MARKER, is_secret_key, redact, secret_values

__all__ = [
    "Recorded",
    "Verdict",
    "bound_ports",
    "held_secrets",
    "judge",
    "mask_verdict",
    "parse_binding",
    "replace_verdict",
]

RUNNING_STATES = ("running", "restarting")


@dataclass(frozen=True)
class Recorded:
    """A container's spec as the stored record has it (the one last applied), and its network."""

    spec: ContainerSpec
    network_name: str

    @cached_property
    def field_hashes(self) -> dict[str, str]:
        """The per-field hashes it was deployed with (computed only when a replace asks)."""
        return spec_hashes(self.spec, self.network_name)[1]


@dataclass
class Verdict:
    """Why an action is what it is: its code, the human sentences and the field changes."""

    reason: ActionReason
    reasons: list[str] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)


# host ports ---------------------------------------------------------------------------------------


def parse_binding(binding: str) -> tuple[str, HostPort] | None:
    """``("80/tcp", HostPort)`` from an engine binding; None for an unpublished port."""
    inner, _, outer = binding.partition("->")
    ip, _, port = outer.rpartition(":")
    ip = ip.strip("[]")
    if not port.isdigit():
        return None
    protocol = inner.partition("/")[2] or "tcp"
    return inner if "/" in inner else f"{inner}/tcp", HostPort(
        int(port), protocol, "" if ip in WILDCARD_IPS else ip
    )


def bound_ports(container: ObservedContainer) -> list[HostPort]:
    """Host ports an observed container holds, from bindings like ``"80/tcp->0.0.0.0:8081"``."""
    return [parsed[1] for parsed in map(parse_binding, container.live.port_bindings) if parsed is not None]


def _binding_text(container_port: str, port: HostPort) -> str:
    return f"{container_port}->{port.ip}:{port.port}"


# masking ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Secrets:
    """The secret keys and values of the specs a change is shown from."""

    keys: frozenset[str]
    values: frozenset[str]

    @classmethod
    def of(cls, *specs: ContainerSpec | None) -> _Secrets:
        present = [s for s in specs if s is not None]
        return cls(
            frozenset(k for s in present for k in s.secret_keys()),
            frozenset(v for s in present for v in secret_values(s)),
        )

    def mask(self, value: Any) -> Any:
        return redact(value, self.values) if self.values else value

    def mask_env(self, key: str, value: str | None) -> Any:
        if value is None:
            return None
        return MARKER if key in self.keys or is_secret_key(key) else self.mask(value)

    def change(self, name: str, old: Any, new: Any, *, old_known: bool = True) -> FieldChange:
        shown_old, shown_new = self.mask(old), self.mask(new)
        sensitive = shown_old != old or shown_new != new
        return FieldChange(field=name, old=shown_old, new=shown_new, old_known=old_known, sensitive=sensitive)

    def env_change(self, key: str, old: str | None, new: str | None) -> FieldChange:
        shown_old, shown_new = self.mask_env(key, old), self.mask_env(key, new)
        sensitive = shown_old != old or shown_new != new
        return FieldChange(field=f"environment.{key}", old=shown_old, new=shown_new, sensitive=sensitive)


def mask_verdict(verdict: Verdict, values: frozenset[str]) -> Verdict:
    """The verdict with every copy of the given secret values masked (values of sensitive
    variables, which may sit in any field: ``DATABASE_URL: postgres://app:${DB_PASSWORD}@db``).

    A change they touch that has both sides reads ``(sensitive)`` on both: the old side may
    hold an earlier value of the variable, which no current value would mask.
    """
    changes = [_mask_change(c, values) for c in verdict.changes]
    reasons = [redact(r, values) for r in verdict.reasons] if values else verdict.reasons
    return Verdict(verdict.reason, reasons, changes)


def _mask_change(change: FieldChange, values: frozenset[str]) -> FieldChange:
    old, new = change.old, change.new
    if values:
        old, new = redact(old, values), redact(new, values)
    if (old, new) == (change.old, change.new):
        return change
    if change.old_known and old is not None and new is not None:
        old, new = MARKER, MARKER
    return change.model_copy(update={"old": old, "new": new, "sensitive": True})


def held_secrets(desired: DesiredContainer, values: frozenset[str]) -> list[str]:
    """The secret values that occur in the container's spec (what its payload lists to mask)."""
    if not values:
        return []
    texts = list(_texts(desired.spec.dump()))
    return sorted(v for v in values if any(v in t for t in texts))


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _shown(spec: ContainerSpec) -> dict[str, Any]:
    """A spec as changes show it: defaults spelled out (``restartPolicy: no``), unset fields absent."""
    return spec.model_dump(mode="json", by_alias=True, exclude_none=True)


# replace ------------------------------------------------------------------------------------------


def replace_verdict(
    desired: DesiredContainer, container: ObservedContainer, recorded: Recorded | None
) -> Verdict:
    """The fields whose hashes differ, or why they cannot be compared."""
    if not container.spec_hash:
        change = FieldChange(field="specHash", old=None, new=desired.spec_hash)
        return Verdict(ActionReason.spec_hash_missing, ["spec-hash label missing"], [change])
    version = container.spec_hash.partition(":")[0]
    if version != SPEC_HASH_VERSION:
        change = FieldChange(field="specHash", old=container.spec_hash, new=desired.spec_hash)
        text = f"spec hash version changed ({version} -> {SPEC_HASH_VERSION})"
        return Verdict(ActionReason.old_hash_version, [text], [change])
    changed = [f for f in HASHED_FIELDS if container.field_hashes.get(f) != desired.field_hashes[f]]
    if not changed:  # the labels disagree with each other: the whole hash is all there is
        change = FieldChange(field="specHash", old=container.spec_hash, new=desired.spec_hash)
        return Verdict(ActionReason.config_changed, ["spec"], [change])
    changes = [c for name in changed for c in _field_changes(name, desired, container, recorded)]
    return Verdict(ActionReason.config_changed, changed, changes)


def _field_changes(
    name: str, desired: DesiredContainer, container: ObservedContainer, recorded: Recorded | None
) -> list[FieldChange]:
    """One hashed field's change; the old value only when the record provably holds it."""
    assert desired.network.name is not None
    secrets = _Secrets.of(desired.spec, recorded.spec if recorded else None)
    new = hashed_value(_shown(desired.spec), name, desired.network.name)
    if recorded is None or recorded.field_hashes.get(name) != container.field_hashes.get(name):
        if name != "environment":
            return [secrets.change(name, None, new, old_known=False)]
        shown = _env_shown(secrets, new)
        return [FieldChange(field=name, new=shown, old_known=False, sensitive=shown != new)]
    old = hashed_value(_shown(recorded.spec), name, recorded.network_name)
    if name != "environment":
        return leaf_changes(secrets.change(name, old, new))
    old_env, new_env = old or {}, new or {}
    return [
        secrets.env_change(key, old_env.get(key), new_env.get(key))
        for key in sorted(set(old_env) | set(new_env))
        if old_env.get(key) != new_env.get(key)
    ]


def _env_shown(secrets: _Secrets, environment: dict[str, str] | None) -> dict[str, Any] | None:
    if environment is None:
        return None
    return {k: secrets.mask_env(k, v) for k, v in environment.items()}


# drift --------------------------------------------------------------------------------------------


def _fmt_memory(value: int) -> str:
    if not value:
        return "none"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value} B"


def judge(desired: DesiredContainer, container: ObservedContainer, recorded: Recorded | None) -> Verdict:
    """The verdict on the container found on the instance's host: replace, drift, or unchanged."""
    if container.spec_hash != desired.spec_hash:
        return replace_verdict(desired, container, recorded)
    texts, changes = _drift(desired, container)
    state = container.live.state
    if state not in RUNNING_STATES:
        texts.insert(0, f"not running ({state}) out of band")
        changes.insert(0, FieldChange(field="state", old=state, new="running"))
    if container.docker_name != desired.docker_name:  # e.g. set aside by a replace that died
        texts.append(f"named {container.docker_name} instead of {desired.docker_name}")
        changes.append(FieldChange(field="dockerName", old=container.docker_name, new=desired.docker_name))
        return Verdict(ActionReason.renamed, texts, changes)
    if any(c.field != "state" for c in changes):
        return Verdict(ActionReason.changed_out_of_band, texts, changes)
    return Verdict(ActionReason.not_running if changes else ActionReason.unchanged, texts, changes)


def _drift(desired: DesiredContainer, container: ObservedContainer) -> tuple[list[str], list[FieldChange]]:
    """What inspect shows was changed out of band on a container whose spec hash still matches.

    Only what graphium set explicitly is compared. The sentences name environment keys, never
    values; the changes show values, secret ones masked.
    """
    live, spec = container.live, desired.spec
    texts: list[str] = []
    changes: list[FieldChange] = []
    want_policy = spec.restart_policy
    if live.restart_policy.name != want_policy.name or (
        want_policy.name == "on-failure"
        and live.restart_policy.maximum_retry_count != want_policy.maximum_retry_count
    ):
        texts.append(
            f"restartPolicy changed out of band (is {live.restart_policy.name}, should be {want_policy.name})"
        )
        changes.append(
            FieldChange(
                field="restartPolicy",
                old=live.restart_policy.model_dump(mode="json", by_alias=True),
                new=want_policy.model_dump(mode="json", by_alias=True),
            )
        )
    limits = spec.resources.limits
    want_cpus = round((limits.cpus or 0.0) * 1e9)
    if live.nano_cpus != want_cpus:
        texts.append(
            f"cpu limit changed out of band (is {live.nano_cpus / 1e9:g}, should be {want_cpus / 1e9:g})"
        )
        changes.append(
            FieldChange(
                field="resources.limits.cpus", old=live.nano_cpus / 1e9 or None, new=limits.cpus or None
            )
        )
    want_memory = limits.memory or 0
    if live.memory != want_memory:
        texts.append(
            f"memory limit changed out of band (is {_fmt_memory(live.memory)}, "
            f"should be {_fmt_memory(want_memory)})"
        )
        changes.append(
            FieldChange(field="resources.limits.memory", old=live.memory or None, new=limits.memory)
        )
    _drift_bindings(desired, container, texts, changes)
    live_items = set(live.env)
    missing_env = sorted(k for k, v in spec.environment.items() if f"{k}={v}" not in live_items)
    if missing_env:
        live_env = dict(item.partition("=")[::2] for item in live.env)
        texts.append(f"environment changed out of band ({', '.join(missing_env)})")
        secrets = _Secrets.of(spec)
        changes += [secrets.env_change(k, live_env.get(k), spec.environment[k]) for k in missing_env]
    if desired.network.name not in live.networks:
        texts.append(f"detached from network {desired.network.name} out of band")
        attached = sorted({*live.networks, desired.network.name or ""})
        changes.append(FieldChange(field="networks", old=sorted(live.networks), new=attached))
    return texts, changes


def _drift_bindings(
    desired: DesiredContainer, container: ObservedContainer, texts: list[str], changes: list[FieldChange]
) -> None:
    want = set(_want_bindings(desired.spec))
    live = {_binding_text(*b) for b in map(parse_binding, container.live.port_bindings) if b is not None}
    if want == live:
        return
    detail = [f"missing {b}" for b in sorted(want - live)]
    detail += [f"extra {b}" for b in sorted(live - want)]
    texts.append(f"port bindings changed out of band ({'; '.join(detail)})")
    changes.append(FieldChange(field="portBindings", old=sorted(live), new=sorted(want)))


def _want_bindings(spec: ContainerSpec) -> Iterable[str]:
    for p in spec.ports:
        if p.host_port is not None:
            ip = "" if (p.host_ip or "") in WILDCARD_IPS else (p.host_ip or "")
            yield _binding_text(
                f"{p.container_port}/{p.protocol.value}", HostPort(p.host_port, p.protocol.value, ip)
            )


# graphium's own leftovers -------------------------------------------------------------------------
_LEFT_BY_REPLACE = frozenset(
    {ActionReason.not_running, ActionReason.changed_out_of_band, ActionReason.renamed}
)


def set_aside_by_replace(container: ObservedContainer, desired: DesiredContainer) -> bool:
    """Whether ``container`` is the ``<name>-replaced-<id>`` a replace of ``desired`` set aside."""
    return container.host == desired.host and container.docker_name.startswith(
        f"{desired.docker_name}-replaced-"
    )


def after_interrupted_replace(
    verdict: Verdict, desired: DesiredContainer, primary: ObservedContainer, *, aside: bool
) -> Verdict:
    """The verdict on the primary container, ``aside`` when a replace of its instance stopped
    halfway (a ``-replaced-`` container is there): one not running, or set aside itself, is then
    graphium's own leftover (made again), not drift out of band."""
    if not aside or verdict.reason not in _LEFT_BY_REPLACE:
        return verdict
    text = f"left {primary.live.state} by an interrupted replace of {desired.name}"
    if primary.docker_name != desired.docker_name:
        text += f" (as {primary.docker_name})"
    return Verdict(ActionReason.interrupted_replace, [text], verdict.changes)
