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

import re
from collections.abc import Iterable, Mapping
from typing import Any

from graphium.stack.models import SECRET_KEY_RE, ContainerSpec

MARKER = "(sensitive)"
# Shorter values are only masked where they stand alone: masking every "1" in a text helps nobody.
_MIN_SUBSTRING_LEN = 4
_ENV_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)
SECRET_VALUES_KEY = "secretValues"  # a payload's list of values to mask wherever they appear


def is_secret_key(key: str, sensitive: Iterable[str] = ()) -> bool:
    """Whether an environment key's value must never be shown."""
    return key in set(sensitive) or bool(SECRET_KEY_RE.search(key))


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
        if len(value) >= _MIN_SUBSTRING_LEN:
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
    found = set(values) | _collect(data)
    return _mask(data, {v for v in found if v})


def redact_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A task payload with its secrets masked."""
    result: dict[str, Any] = redact(dict(payload))
    return result


def redact_event(event: Mapping[str, Any], values: Iterable[str] = ()) -> dict[str, Any]:
    """An event with its secrets (and the given known secret values) masked."""
    result: dict[str, Any] = redact(dict(event), values)
    return result


def collect_secrets(data: Any) -> set[str]:
    """Every secret value a JSON-like payload holds: secret environment values, ``KEY=value``
    strings of secret keys, and the ``secretValues`` it lists."""
    return {v for v in _collect(data) if v}


def _collect(data: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(data, Mapping):
        listed = data.get(SECRET_VALUES_KEY)
        if isinstance(listed, list):
            found.update(v for v in listed if isinstance(v, str))
        env = data.get("environment")
        sensitive = data.get("sensitive")
        marked = {s for s in sensitive if isinstance(s, str)} if isinstance(sensitive, list) else set()
        if isinstance(env, Mapping):
            found.update(
                v
                for k, v in env.items()
                if isinstance(k, str) and isinstance(v, str) and is_secret_key(k, marked)
            )
        elif isinstance(env, list):
            found.update(_env_list_secrets(env, marked))
        for value in data.values():
            found.update(_collect(value))
    elif isinstance(data, list):
        found.update(_env_list_secrets(data, set()))
        for item in data:
            found.update(_collect(item))
    return found


def _env_list_secrets(items: list[Any], marked: set[str]) -> set[str]:
    found = set()
    for item in items:
        if isinstance(item, str):
            match = _ENV_ITEM_RE.match(item)
            if match and is_secret_key(match[1], marked) and match[2]:
                found.add(match[2])
    return found


def _mask(data: Any, values: set[str]) -> Any:
    if isinstance(data, str):
        match = _ENV_ITEM_RE.match(data)
        if match and SECRET_KEY_RE.search(match[1]) and match[2]:
            return f"{match[1]}={MARKER}"
        return redact_text(data, values) if values else data
    if isinstance(data, Mapping):
        return {k: _mask(v, values) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_mask(v, values) for v in data]
    return data
