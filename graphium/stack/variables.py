"""``${VAR}`` substitution in container specs, done at plan time from the runner's environment.

Substitution happens at plan time, not load time, so that a stack file can be validated
anywhere (CI without secrets) and the values land only in the plan of the machine that has them.
A missing variable is an error, never an empty string: an empty password or image tag deploys
something other than what the user meant. All missing variables are reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from graphium.errors import Problem, StackError
from graphium.stack.jsonld import json_path_of
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


def resolve_variables(
    spec: StackSpec,
    environ: Mapping[str, str],
    filename: str,
    *,
    path_of: PathOf | None = None,
) -> StackSpec:
    """The stack with ``${VAR}`` filled in every string of every container.

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
    return spec.model_copy(update={"containers": containers}) if changed else spec


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
