"""``${VAR}`` substitution in container specs, done at plan time from the runner's environment.

Substitution happens at plan time, not load time, so that a stack file can be validated
anywhere (CI without secrets) and the values land only in the plan of the machine that has them.
A missing variable is an error, never an empty string: an empty password or image tag deploys
something other than what the user meant. All missing variables are reported at once.

Resolving also records the values of sensitive variables (named like a secret, listed in a
container's ``sensitive``, or feeding a secret environment key): a secret interpolated into an
innocent key (``DATABASE_URL: postgres://app:${DB_PASSWORD}@db``) is then masked by value
wherever it appears, as CI systems mask their secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from graphium.errors import Problem, StackError
from graphium.stack.jsonld import json_path_of
from graphium.stack.masking import SECRET_KEY_RE
from graphium.stack.models import ContainerSpec, StackSpec

# $${ is an escaped literal "${"; ${NAME} or ${NAME:-default}; anything else after ${ is invalid.
_TOKEN_RE = re.compile(r"\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([^}]*)\}?)")

PathOf = Callable[..., str]


def _model_path(*loc: str | int) -> str:
    return json_path_of("$", loc)


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with variables filled, and the list of problems (missing or malformed references)."""
    problems: list[str] = []

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name is None:
            problems.append(f"invalid variable reference {token!r}; expected ${{NAME}} or ${{NAME:-default}}")
            return token
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            problems.append(f"variable {name} is not set (write ${{{name}:-default}} to give a default)")
            return token
        return value

    result = _TOKEN_RE.sub(fill, text)
    return result, problems


@dataclass(frozen=True)
class Resolved:
    """A stack with its variables filled, and what of them must never be shown.

    ``secrets`` maps each sensitive variable taken from the environment to its value (a saved
    plan replaces these by placeholders and fills them again at apply); ``defaults`` holds the
    values sensitive variables took from a ``${NAME:-default}`` written in the file.
    """

    spec: StackSpec
    secrets: dict[str, str] = field(default_factory=dict)
    defaults: frozenset[str] = frozenset()

    def secret_values(self) -> set[str]:
        """Every resolved value of a sensitive variable (non-empty), to mask wherever it appears."""
        return {v for v in (*self.secrets.values(), *self.defaults) if v}


def variable_names(text: str) -> list[str]:
    """The names of the variables ``text`` refers to, in order (``$${`` escapes aside)."""
    return [m.group(1) for m in _TOKEN_RE.finditer(text) if m.group(1)]


def document_variables(document: Any) -> list[str]:
    """The names of the variables every string of a raw document refers to, each once, in order."""
    if isinstance(document, str):
        return variable_names(document)
    values = (
        document.values() if isinstance(document, dict) else document if isinstance(document, list) else []
    )
    return list(dict.fromkeys(name for value in values for name in document_variables(value)))


def resolve_variables(
    spec: StackSpec,
    environ: Mapping[str, str],
    filename: str,
    *,
    path_of: PathOf | None = None,
) -> StackSpec:
    """The stack with ``${VAR}`` filled in every string of every container (see :func:`resolve`)."""
    return resolve(spec, environ, filename, path_of=path_of).spec


def resolve(
    spec: StackSpec,
    environ: Mapping[str, str],
    filename: str,
    *,
    path_of: PathOf | None = None,
) -> Resolved:
    """The stack with ``${VAR}`` filled in every string of every container, and its secrets.

    ``path_of`` maps a model location (``"containers", 0, "environment", "X"``) to the path in
    the file; pass ``StackDocument.path_of`` to report where the user wrote the reference.
    Raises StackError listing every missing variable.
    """
    where = path_of or _model_path
    problems: list[Problem] = []
    containers: list[ContainerSpec] = []
    changed = False
    for index, container in enumerate(spec.containers):
        data = container.dump()
        filled = _fill(data, environ, ("containers", index), where, filename, problems)
        if filled == data:
            containers.append(container)
            continue
        changed = True
        try:
            containers.append(ContainerSpec.model_validate(filled))
        except pydantic.ValidationError as error:
            for item in error.errors(include_url=False):
                loc = ("containers", index, *item["loc"])
                message = str(item["msg"]).removeprefix("Value error, ")
                problems.append(Problem(filename, where(*loc), f"after filling variables: {message}"))
    if problems:
        raise StackError(problems)
    secrets, defaults = sensitive_variables(spec, environ)
    filled_spec = spec.model_copy(update={"containers": containers}) if changed else spec
    return Resolved(filled_spec, secrets, frozenset(defaults))


def sensitive_variables(spec: StackSpec, environ: Mapping[str, str]) -> tuple[dict[str, str], set[str]]:
    """The sensitive variables the stack refers to: ``{name: value}`` of those set in ``environ``,
    and the values of those that fall back on their default."""
    secrets: dict[str, str] = {}
    defaults: set[str] = set()
    for container in spec.containers:
        declared = set(container.sensitive)
        secret_keys = container.secret_keys()
        for loc, text in _strings(container.dump(), ()):
            secret_key = len(loc) == 2 and loc[0] == "environment" and loc[1] in secret_keys
            for name, default in _references(text):
                if not (secret_key or name in declared or SECRET_KEY_RE.search(name)):
                    continue
                value = environ.get(name)
                if value is not None and not (value == "" and default is not None):
                    secrets[name] = value
                elif default:
                    defaults.add(default)
    return secrets, defaults


def _references(text: str) -> list[tuple[str, str | None]]:
    """The ``(name, default)`` of every well-formed ``${...}`` reference in ``text``."""
    if "${" not in text:
        return []
    return [(m.group(1), m.group(2)) for m in _TOKEN_RE.finditer(text) if m.group(1)]


def _strings(value: Any, loc: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _strings(v, (*loc, k))]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, (*loc, i))]
    return []


def fill_variables(document: Any, environ: Mapping[str, str], file: str) -> Any:
    """``${VAR}`` filled in every string of a raw stack document (``--server``: the variables live
    where the command runs; the server resolves nothing from its own environment). Raises
    StackError listing every missing variable at its path in the document."""
    problems: list[Problem] = []
    filled = _fill(document, environ, (), _model_path, file, problems)
    if problems:
        raise StackError(problems)
    return filled


def _fill(
    value: Any,
    environ: Mapping[str, str],
    loc: tuple[str | int, ...],
    where: PathOf,
    filename: str,
    problems: list[Problem],
) -> Any:
    """The one walker: strings filled, dicts and lists walked, problems reported at ``where(*loc)``."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        filled, found = substitute(value, environ)
        problems.extend(Problem(filename, where(*loc), message) for message in found)
        return filled
    if isinstance(value, dict):
        return {k: _fill(v, environ, (*loc, k), where, filename, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, environ, (*loc, i), where, filename, problems) for i, v in enumerate(value)]
    return value
