"""Finding secrets in JSON-like data, and ``repr``/``str`` that never show them.

The lowest layer of secret handling (it imports nothing of graphium), so that every public model,
down to the stack's own, can mask its ``repr``: a plan, a task or a container printed in a REPL,
a log line or a test failure must not leak what ``plan`` would mask. :mod:`graphium.stack.secrets`
builds the redaction of views, events and errors on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MARKER",
    "SECRET_KEY_RE",
    "SECRET_VALUES_KEY",
    "MaskedRepr",
    "collect_secrets",
    "is_secret_key",
    "mask_repr",
]

MARKER = "(sensitive)"
SECRET_KEY_RE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH", re.IGNORECASE)
SECRET_VALUES_KEY = "secretValues"  # a payload's list of values to mask wherever they appear
# Shorter values are only masked where they stand alone: masking every "1" in a text helps nobody.
MIN_SUBSTRING_LEN = 4
ENV_ITEM_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.DOTALL)


def is_secret_key(key: str, sensitive: Iterable[str] = ()) -> bool:
    """Whether an environment key's value must never be shown."""
    return key in set(sensitive) or bool(SECRET_KEY_RE.search(key))


def collect_secrets(data: Any) -> set[str]:
    """Every secret value a JSON-like payload holds: secret environment values (keys named like a
    secret or listed in a sibling ``sensitive``), ``KEY=value`` strings of secret keys, and the
    ``secretValues`` it lists."""
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
            found.update(env_list_secrets(env, marked))
        for value in data.values():
            found.update(_collect(value))
    elif isinstance(data, list):
        found.update(env_list_secrets(data, set()))
        for item in data:
            found.update(_collect(item))
    return found


def env_list_secrets(items: list[Any], marked: set[str]) -> set[str]:
    """The values of ``KEY=value`` strings whose key is secret."""
    found = set()
    for item in items:
        if isinstance(item, str):
            match = ENV_ITEM_RE.match(item)
            if match and is_secret_key(match[1], marked) and match[2]:
                found.add(match[2])
    return found


def mask_repr(text: str, values: Iterable[str]) -> str:
    """A ``repr`` with every secret value masked: long ones wherever they occur (as written, or
    escaped as ``repr`` and JSON escape them), short ones where they are a whole quoted string."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        if len(value) >= MIN_SUBSTRING_LEN:
            for form in {value, repr(value)[1:-1], json.dumps(value)[1:-1]}:
                text = text.replace(form, MARKER)
        else:
            text = text.replace(repr(value), repr(MARKER))
    return text


class MaskedRepr:
    """Mixin for pydantic models: ``repr`` and ``str`` with the model's secrets masked.

    The secrets are what :func:`collect_secrets` finds in the model's JSON dump; a model that
    knows more (a plan knows the values of its sensitive variables) overrides
    :meth:`repr_secrets`.
    """

    def repr_secrets(self) -> set[str]:
        """The values to mask in this object's ``repr``."""
        dump = self.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
        return collect_secrets(dump)

    def __repr__(self) -> str:
        return mask_repr(super().__repr__(), self.repr_secrets())

    def __str__(self) -> str:
        return mask_repr(super().__str__(), self.repr_secrets())
