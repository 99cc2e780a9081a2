"""Field changes with values, down to the leaf: what a create sets, what a replace changes.

A create lists every field of the container it makes (defaults spelled out: a health check's
timings, the restart policy, the stop timeout), so ``plan --json`` and the human plan show what
will run, not only its image. A change of an object-valued field (``healthCheck``, ``resources``,
``update``) is split into its leaves with dotted names (``healthCheck.interval``), each old -> new.
Environment values of secret keys read ``(sensitive)``.
"""

from __future__ import annotations

from typing import Any

from graphium.plan.model import DesiredContainer, FieldChange
from graphium.stack.masking import MARKER
from graphium.stack.secrets import redact, secret_values

__all__ = ["CreatedFields", "create_changes", "leaf_changes"]

_NOT_SHOWN = ("name", "sensitive")  # the action names the container; `sensitive` is how it is masked


def create_changes(desired: DesiredContainer) -> list[FieldChange]:
    """Every field the created container gets, as changes from nothing (``old`` None)."""
    spec = desired.spec
    shown = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    secret, values = spec.secret_keys(), secret_values(spec)
    changes: list[FieldChange] = []
    for name, value in shown.items():
        if name in _NOT_SHOWN:
            continue
        if name == "environment":
            for key in sorted(value):
                masked = key in secret
                new = MARKER if masked else value[key]
                changes.append(FieldChange(field=f"environment.{key}", new=new, sensitive=masked))
            continue
        for field, new in _leaves(name, value):
            if new in ([], {}):
                continue
            masked = redact(new, values) if values else new
            changes.append(FieldChange(field=field, new=masked, sensitive=masked != new))
    changes.append(FieldChange(field="network", new=desired.network_name))
    return changes


class CreatedFields(dict[str, list[FieldChange]]):
    """The create changes of each declared container, computed once (its replicas share them)."""

    def of(self, desired: DesiredContainer) -> list[FieldChange]:
        if desired.declared_name not in self:
            self[desired.declared_name] = create_changes(desired)
        return list(self[desired.declared_name])


def leaf_changes(change: FieldChange) -> list[FieldChange]:
    """A change of an object-valued field as one change per leaf that differs (dotted names);
    any other change as it is."""
    if not change.old_known or not (isinstance(change.old, dict) or isinstance(change.new, dict)):
        return [change]
    old = dict(_leaves(change.field, change.old)) if isinstance(change.old, dict) else {}
    new = dict(_leaves(change.field, change.new)) if isinstance(change.new, dict) else {}
    fields = sorted(set(old) | set(new))
    out = [
        FieldChange(field=f, old=old.get(f), new=new.get(f), sensitive=change.sensitive)
        for f in fields
        if old.get(f) != new.get(f)
    ]
    return out or [change]


def _leaves(path: str, value: Any) -> list[tuple[str, Any]]:
    """``(dotted path, value)`` of every leaf of a JSON value; lists are leaves."""
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{path}.{k}", v)]
    return [(path, value)]
