"""Stack versions: what each successful apply of a stack applied, so that it can be applied again.

A version keeps the stack's definition as written (``${VAR}`` references unresolved, so no
secret a variable carried is ever stored in it), the values of the variables that cannot carry a
secret (an image tag), the placement of every instance, and the inventory the apply used. A
rollback restores those values, reads the other variables from the environment it runs in, and
pins the instances to the hosts they had. Stores keep the last :data:`KEEP_VERSIONS` per stack.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graphium.errors import PlanError
from graphium.records.stack import StackRecord, StackStatus

KEEP_VERSIONS = 20  # per stack; older ones are dropped as new ones are saved


class VersionKind(str, Enum):
    apply = "apply"
    rollback = "rollback"


def definition_digest(definition: dict[str, Any], variables: dict[str, str] | None = None) -> str:
    """A short, stable hash of an (unresolved) definition and its recorded variables: equal
    digests, equal stacks (``image: app:${TAG}`` with TAG=1 and TAG=2 differ)."""
    data = {"definition": definition, "variables": variables or {}}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StackVersion(BaseModel):
    """One successful apply of a stack; ``number`` counts from 1 per stack (the store assigns it)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    number: int = 0
    stack: str
    applied_at: str = ""  # ISO 8601 UTC; the store stamps it when empty
    applied_by: str = ""  # user@machine that applied it
    run_id: str | None = None  # the run that applied it (the stack record names its current run)
    kind: VersionKind = VersionKind.apply
    rollback_of: int | None = None  # for a rollback: the number of the version it applied again
    definition: dict[str, Any]  # the StackSpec dump with ``${VAR}`` references as written
    # values of the variables that cannot hold a secret (see graphium.run.versions), restored
    variables: dict[str, str] = {}
    placements: dict[str, str] = {}  # instance -> host id
    inventory: dict[str, Any] = {}  # the Inventory dump the apply used
    images: dict[str, str] = {}  # declared container -> image reference, as resolved
    summary: dict[str, int] = {}  # action kind -> count, of the apply that made it
    digest: str = ""  # of ``definition`` and ``variables`` (:func:`definition_digest`)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def public_dump(self) -> dict[str, Any]:
        """For listings: everything but the definition and the inventory."""
        return self.model_dump(mode="json", by_alias=True, exclude={"definition", "inventory"})

    def result(self) -> str:
        """What the apply did, in words: ``applied: 1 create, 2 replace`` or ``rollback to 3: ...``."""
        changes = ", ".join(f"{n} {kind}" for kind, n in sorted(self.summary.items()) if n and kind != "keep")
        what = "applied" if self.kind is VersionKind.apply else f"rollback to {self.rollback_of}"
        return f"{what}: {changes or 'no container changes'}"


def current_version(versions: Sequence[StackVersion], stack: StackRecord | None) -> StackVersion | None:
    """The version the stack runs now: the newest one, unless a later run (a failed apply, an
    interrupted one, a destroy) has changed the stack since."""
    if not versions or stack is None or stack.status is not StackStatus.running:
        return None
    newest = versions[-1]
    return newest if newest.run_id == stack.run_id else None


def rollback_target(
    versions: Sequence[StackVersion], stack: StackRecord | None, to: int | None = None
) -> StackVersion:
    """The version a rollback applies: number ``to``; else, when the stack runs its newest
    version, the newest older one with another definition; else (the last apply failed, or the
    stack was destroyed since) the newest version, the last that worked. PlanError otherwise."""
    name = versions[-1].stack if versions else (stack.id if stack else "?")
    if not versions:
        raise PlanError(
            f"stack {name} has no recorded versions: only a successful apply records one; see "
            "`graphium-run history`"
        )
    if to is not None:
        for version in versions:
            if version.number == to:
                return version
        kept = ", ".join(str(v.number) for v in versions)
        raise PlanError(f"stack {name} has no version {to}; the recorded versions are {kept}")
    current = current_version(versions, stack)
    if current is None:
        return versions[-1]
    for version in reversed(versions[:-1]):
        if version.digest != current.digest:
            return version
    raise PlanError(
        f"stack {name}: no earlier version differs from the one running now (version "
        f"{current.number}); see `graphium-run history {name}`"
    )


__all__ = [
    "KEEP_VERSIONS",
    "StackVersion",
    "VersionKind",
    "current_version",
    "definition_digest",
    "rollback_target",
]
