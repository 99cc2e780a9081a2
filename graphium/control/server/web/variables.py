"""The ``${VAR}`` references of a loaded stack, as the deploy form asks for them.

References are found with the planner's own substitution (:func:`graphium.stack.variables.substitute`
over every string of every container), so the form asks for exactly what planning will need. A
variable is secret-looking when its name is, or when it feeds an environment key that is (the
form then uses a password field and never echoes the value back).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphium.stack.loader import StackDocument
from graphium.stack.secrets import is_secret_key
from graphium.stack.variables import substitute


@dataclass(frozen=True)
class Variable:
    name: str
    secret: bool
    required: bool  # no ``${NAME:-default}`` anywhere


class _Recorder(Mapping[str, str]):
    """An empty environment that remembers every name substitution asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> str:
        self.asked.append(key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _strings(value: Any, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    """Every string in a container dump, with the environment key it is the value of (if any)."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, k if isinstance(v, str) else None)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def stack_variables(doc: StackDocument) -> list[Variable]:
    """The variables the stack's containers use, sorted by name."""
    found: dict[str, Variable] = {}
    for container in doc.stack.containers:
        secret_keys = container.secret_keys()
        for key, text in _strings(container.dump()):
            if "${" not in text:
                continue
            recorder = _Recorder()
            _, problems = substitute(text, recorder)
            for name in recorder.asked:
                required = any(p.startswith(f"variable {name} is not set") for p in problems)
                secret = is_secret_key(name) or (key is not None and key in secret_keys)
                was = found.get(name)
                if was is not None:
                    required, secret = required or was.required, secret or was.secret
                found[name] = Variable(name, secret, required)
    return [found[n] for n in sorted(found)]


__all__ = ["Variable", "stack_variables"]
