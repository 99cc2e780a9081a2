"""Recording stack versions after successful applies, and choosing one to roll back to.

The deployer records a version when a run of an apply (or a rollback) ends with the stack
running, never for a failed or interrupted one. A version holds the definition as written, with
its ``${VAR}`` references, and the values of only those variables that cannot hold a secret:
ones used outside ``environment``, ``command`` and ``args`` and not named like a secret (an image
tag, a host port). A rollback restores those values, so ``image: app:${TAG}`` comes back as it
was, and reads every other variable again from the environment of the process that rolls back:
secrets are never stored in a version, and rotated ones stay rotated.
"""

from __future__ import annotations

import getpass
import os
import platform
from collections.abc import Mapping

import pydantic

from graphium.errors import Problem, StackError
from graphium.plan.model import Plan
from graphium.records.version import StackVersion, VersionKind, definition_digest, rollback_target
from graphium.stack.masking import SECRET_KEY_RE
from graphium.stack.models import StackSpec
from graphium.stack.variables import Resolved, resolve, sensitive_variables, variable_names
from graphium.store.base import TaskStore

# fields whose variables may carry secrets: their values are never recorded
_SECRET_BEARING = ("environment", "command", "args")


def applied_by() -> str:
    """``user@machine`` of this process, for the history."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = str(os.getuid())
    return f"{user}@{platform.node() or 'localhost'}"


def _names(value: object, into: set[str]) -> None:
    if isinstance(value, str):
        into.update(variable_names(value))
    elif isinstance(value, dict):
        for item in value.values():
            _names(item, into)
    elif isinstance(value, list):
        for item in value:
            _names(item, into)


def recordable_variables(stack: StackSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The values a version keeps of the variables of ``stack`` (unresolved): those set in
    ``environ``, neither sensitive nor named like a secret, and used nowhere a secret may be."""
    used: set[str] = set()
    bearing = set(sensitive_variables(stack, environ)[0])
    for container in stack.containers:
        data = container.dump()
        for key in _SECRET_BEARING:
            _names(data.pop(key, None), bearing)
        _names(data, used)
    return {
        name: environ[name]
        for name in sorted(used - bearing)
        if name in environ and not SECRET_KEY_RE.search(name)
    }


def version_of(plan: Plan, run_id: str | None) -> StackVersion | None:
    """The version an applied plan makes (None for a plan that carries no definition: a plan
    saved by an older graphium, or a destroy)."""
    if plan.destroy or not plan.definition:
        return None
    containers = plan.stack_spec.get("containers", [])
    return StackVersion(
        stack=plan.stack,
        applied_by=applied_by(),
        run_id=run_id,
        kind=VersionKind.rollback if plan.rollback_of is not None else VersionKind.apply,
        rollback_of=plan.rollback_of,
        definition=plan.definition,
        variables=dict(plan.variables),
        placements=dict(plan.placements),
        inventory=plan.inventory,
        images={str(c.get("name")): str(c.get("image")) for c in containers if isinstance(c, dict)},
        summary={kind: n for kind, n in plan.counts().items() if n},
        digest=definition_digest(plan.definition, plan.variables),
    )


def record(store: TaskStore, plan: Plan, run_id: str | None, *, if_new: bool = False) -> StackVersion | None:
    """Record the version an applied plan made. ``if_new``: only when the stack has no version
    yet or its newest has another definition (an apply that changed no container)."""
    version = version_of(plan, run_id)
    if version is None:
        return None
    if if_new:
        kept = store.list_versions(plan.stack)
        if kept and kept[-1].digest == version.digest:
            return None
    return store.save_version(version)


def choose(store: TaskStore, stack: str, to: int | None = None) -> StackVersion:
    """The version ``rollback`` applies (see :func:`graphium.records.version.rollback_target`)."""
    return rollback_target(store.list_versions(stack), store.get_stack(stack), to)


def definition(version: StackVersion, environ: Mapping[str, str]) -> Resolved:
    """The version's stack, with ``${VAR}`` filled from its recorded variables, then ``environ``
    (and its secrets); StackError naming the version when a variable it uses is not set any more."""
    where = f"{version.stack} version {version.number}"
    try:
        spec = StackSpec.model_validate(version.definition)
    except pydantic.ValidationError as exc:  # recorded by a graphium that accepted other fields
        first = exc.errors(include_url=False)[0]
        raise StackError(
            [
                Problem(
                    where, "$", f"the recorded definition no longer loads: {first['msg']} at {first['loc']}"
                )
            ]
        ) from None
    return resolve(spec, {**environ, **version.variables}, where)


__all__ = ["applied_by", "choose", "definition", "record", "recordable_variables", "version_of"]
