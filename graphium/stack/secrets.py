"""Redaction of secret values for everything humans or logs see.

Plan output, events, logs and the store's human views all pass through these pure functions.
A value is secret when its environment key is marked ``sensitive`` or is named like a secret
(``ContainerSpec.secret_keys``). Redaction works on the key where it can, and then also
replaces the secret *values* wherever else they occur (a password repeated in a command line,
a ``KEY=value`` string in a Docker env list), because a secret leaks through any copy of it.
Task payloads also list the resolved values of sensitive variables under ``secretValues``
(:func:`graphium.stack.variables.resolve`), so whoever runs or shows a task masks them too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphium.stack.masking import (
    ENV_ITEM_RE,
    MARKER,
    MIN_SUBSTRING_LEN,
    SECRET_KEY_RE,
    SECRET_VALUES_KEY,
    collect_secrets,
    is_secret_key,
)
from graphium.stack.models import ContainerSpec

__all__ = [
    "MARKER",
    "SECRET_VALUES_KEY",
    "collect_secrets",
    "is_secret_key",
    "redact",
    "redact_container",
    "redact_environment",
    "redact_event",
    "redact_payload",
    "redact_text",
    "secret_values",
]


def redact_environment(environment: Mapping[str, str], sensitive: Iterable[str] = ()) -> dict[str, str]:
    """The environment with secret values replaced by the marker."""
    marked = set(sensitive)
    return {k: MARKER if is_secret_key(k, marked) else v for k, v in environment.items()}


def secret_values(spec: ContainerSpec) -> set[str]:
    """The secret values of a container (non-empty), to mask wherever they appear."""
    return {spec.environment[k] for k in spec.secret_keys() if spec.environment[k]}


def redact_container(spec: ContainerSpec, extra: Iterable[str] = ()) -> ContainerSpec:
    """A copy of the container whose secret values (its own and ``extra``, wherever they occur)
    read as the marker."""
    values = secret_values(spec) | {v for v in extra if v}
    if not values:
        return spec
    data = redact(spec.dump(), values)
    return ContainerSpec.model_validate(data)


def redact_text(text: str, values: Iterable[str]) -> str:
    """``text`` with each secret value replaced (whole text only, for values too short to search)."""
    for value in sorted(set(values), key=len, reverse=True):
        if not value:
            continue
        if len(value) >= MIN_SUBSTRING_LEN:
            text = text.replace(value, MARKER)
        elif text == value:
            return MARKER
    return text


def redact(data: Any, values: Iterable[str] = ()) -> Any:
    """Any JSON-like payload (task payload, event, container dump) with secrets masked.

    Secrets are found in ``environment`` maps (keys named like secrets or listed in a sibling
    ``sensitive`` list), in ``KEY=value`` strings and in the extra ``values`` given; every
    string in ``data`` is then cleaned of all of them.
    """
    found = set(values) | collect_secrets(data)
    return _mask(data, {v for v in found if v})


def redact_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A task payload with its secrets masked."""
    result: dict[str, Any] = redact(dict(payload))
    return result


def redact_event(event: Mapping[str, Any], values: Iterable[str] = ()) -> dict[str, Any]:
    """An event with its secrets (and the given known secret values) masked."""
    result: dict[str, Any] = redact(dict(event), values)
    return result


def _mask(data: Any, values: set[str]) -> Any:
    if isinstance(data, str):
        match = ENV_ITEM_RE.match(data)
        if match and SECRET_KEY_RE.search(match[1]) and match[2]:
            return f"{match[1]}={MARKER}"
        return redact_text(data, values) if values else data
    if isinstance(data, Mapping):
        return {k: _mask(v, values) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_mask(v, values) for v in data]
    return data
