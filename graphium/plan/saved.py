"""Saved plans (``plan -o``): written without the values of sensitive variables, filled at apply.

A saved plan is a file that travels (CI artefacts, review): it holds ``(sensitive:NAME)`` where
the value of a sensitive variable stood, and :func:`unseal` fills each from the environment of
the ``apply`` that runs it. The containers' spec hashes are then computed again: a variable whose
value changed since the plan was made makes the plan stale, since the containers would no longer
be what the plan showed. Values that came from a default written in the stack file are left as
they are (the stack file holds them already).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from graphium.errors import GraphiumError, StalePlanError
from graphium.plan.hashing import spec_hashes
from graphium.plan.model import PLAN_SCHEMA_VERSION, Plan
from graphium.plan.payloads import created_container

__all__ = ["is_saved_plan", "placeholder", "seal", "unseal"]

_PLACEHOLDER_RE = re.compile(r"\(sensitive:([A-Za-z_][A-Za-z0-9_]*)\)")
# shorter values are sealed only where they are a whole string, as they are masked
_MIN_SUBSTRING_LEN = 4


def placeholder(name: str) -> str:
    """What a saved plan holds in place of the value of the sensitive variable ``name``."""
    return f"(sensitive:{name})"


def is_saved_plan(data: Any) -> bool:
    """Whether a parsed JSON document is a saved plan (rather than a stack document)."""
    return isinstance(data, dict) and "fingerprint" in data and "tasks" in data and "@graph" not in data


def seal(plan: Plan) -> dict[str, Any]:
    """The plan as a saved plan file holds it: every value of its sensitive variables replaced
    by its placeholder."""
    by_value: dict[str, str] = {}
    for name, value in sorted(plan.secret_variables.items()):
        if value:
            by_value.setdefault(value, name)
    data = plan.dump()
    if not by_value:
        return data
    long = sorted((v for v in by_value if len(v) >= _MIN_SUBSTRING_LEN), key=len, reverse=True)
    pattern = re.compile("|".join(map(re.escape, long))) if long else None

    def seal_text(text: str) -> str:
        if text in by_value:
            return placeholder(by_value[text])
        return pattern.sub(lambda m: placeholder(by_value[m.group(0)]), text) if pattern else text

    sealed: dict[str, Any] = _map_strings(data, seal_text)
    return sealed


def unseal(data: Any, file: str, environ: Mapping[str, str]) -> Plan:
    """The plan a saved plan file holds, its placeholders filled from ``environ``.

    Raises GraphiumError for a file of another schema version, one that is not a valid plan, or
    one that needs a variable that is not set; StalePlanError when a variable's value differs
    from the one the plan was made with.
    """
    version = data.get("schemaVersion") if isinstance(data, dict) else None
    if version != PLAN_SCHEMA_VERSION:
        raise GraphiumError(
            f"{file}: a saved plan of schema version {version}, but this graphium reads version "
            f"{PLAN_SCHEMA_VERSION}; plan again"
        )
    names: set[str] = set()

    def find(text: str) -> str:
        names.update(_PLACEHOLDER_RE.findall(text))
        return text

    _map_strings(data, find)
    missing = sorted(n for n in names if n not in environ)
    if missing:
        raise GraphiumError(
            f"{file}: the saved plan needs the sensitive variable(s) {', '.join(missing)}, which are "
            "not set; set them as they were when the plan was made"
        )
    values = {n: environ[n] for n in names}
    filled = _map_strings(data, lambda text: _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], text))
    try:
        plan = Plan.model_validate(filled)
    except pydantic.ValidationError as exc:
        raise GraphiumError(f"{file}: not a valid saved plan: {_problems(exc)}") from None
    plan.secret_variables = values
    _check_hashes(plan, file)
    return plan


def _check_hashes(plan: Plan, file: str) -> None:
    """Refuse a plan whose containers no longer hash as planned (a variable changed)."""
    for task in plan.tasks:
        container = created_container(task)
        if container is None:
            continue
        if spec_hashes(container.spec, container.network_name)[0] != container.spec_hash:
            raise StalePlanError(
                f"{file}: container {container.name} differs from the one planned: a variable it uses "
                "has another value than when the plan was made; plan again"
            )


def _problems(exc: pydantic.ValidationError) -> str:
    # without the input values pydantic would quote: they may be secrets
    errors = exc.errors(include_url=False, include_input=False)
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in errors[:5])


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return value
