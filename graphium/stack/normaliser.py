"""Normalising nodes into model-shaped dicts, remembering where each value was written.

The path map (model location -> JSON path as written) lets pydantic's errors, which speak in
model locations, be reported where the user wrote the value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from graphium.errors import Problem
from graphium.stack.jsonld import json_path, json_path_of
from graphium.stack.nodes import Field, Node

Loc = tuple[str | int, ...]


def accepted(*names: str, **aliases: str) -> dict[str, str]:
    """A field table for :meth:`Normaliser.fields`: each name accepted as itself, each alias
    (another spelling, such as ``portNumber``) as the name it stands for."""
    return {**{name: name for name in names}, **aliases}


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``" did you mean 'image'?"`` for a misspelled key (case-insensitive, then by similarity),
    or an empty string when no known name is close."""
    by_lower = {name.lower(): name for name in sorted(known)}
    match = by_lower.get(key.lower())
    if match is None:
        close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
        match = by_lower[close[0]] if close else None
    return f" did you mean {match!r}?" if match is not None else ""


def path_in(paths: Mapping[Loc, str], loc: Loc) -> str:
    """The JSON path, as written, of a model location: its nearest marked ancestor's path, extended
    by the remaining model names (``$`` when nothing on the way is marked)."""
    for end in range(len(loc), -1, -1):
        path = paths.get(loc[:end])
        if path is not None:
            return json_path_of(path, loc[end:])
    return "$"


class Normaliser:
    """Builds model-shaped dicts from Nodes, collecting every problem and each value's original path.

    The path map (model location -> JSON path as written) lets pydantic's errors, which speak in
    model locations, be reported where the user wrote the value.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.paths: dict[Loc, str] = {}

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(Problem(self.file, path, message))

    def mark(self, loc: Loc, path: str) -> None:
        self.paths[loc] = path

    def path_of(self, loc: Loc) -> str:
        """The original path of a model location (see :func:`path_in`)."""
        return path_in(self.paths, loc)

    def fields(
        self,
        node: Node,
        accepted: Mapping[str, str],
        what: str,
        ignored: frozenset[str] = frozenset({"description"}),
    ) -> dict[str, Field]:
        """Map a node's fields to model keys; unknown keys and double spellings are problems."""
        out: dict[str, Field] = {}
        for name, field_ in node.fields.items():
            target = accepted.get(name)
            if target is None:
                if name not in ignored:
                    known = set(accepted) | ignored
                    hint = did_you_mean(field_.key, known) or did_you_mean(name, known)
                    self.problem(
                        field_.path,
                        f"unknown property {field_.key!r} in {what};{hint} expected one of: "
                        + ", ".join(sorted(known)),
                    )
                continue
            if target in out:
                self.problem(
                    field_.path,
                    f"{field_.key!r} and {out[target].key!r} both set {target!r} of {what}; give only one",
                )
                continue
            out[target] = field_
        return out

    def plain(self, value: Any, loc: Loc, path: str) -> Any:
        """A value as plain JSON with canonical keys, marking the path of everything inside."""
        self.mark(loc, path)
        if isinstance(value, Node):
            return {name: self.plain(f.value, (*loc, name), f.path) for name, f in value.fields.items()}
        if isinstance(value, list):
            return [self.plain(item, (*loc, i), json_path(path, i)) for i, item in enumerate(value)]
        return value

    def plain_field(self, field_: Field, loc: Loc) -> Any:
        """Like :meth:`plain` for a whole field, keeping per-item paths of the values as written."""
        self.mark(loc, field_.path)
        if field_.literal:
            return self.plain_json(field_.raw, loc, field_.path)
        if field_.is_list:
            return [self.plain(v, (*loc, i), field_.item_path(i)) for i, v in enumerate(field_.values)]
        return self.plain(field_.value, loc, field_.path)

    def plain_json(self, raw: Any, loc: Loc, path: str) -> Any:
        self.mark(loc, path)
        if isinstance(raw, dict):
            return {k: self.plain_json(v, (*loc, k), json_path(path, k)) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.plain_json(v, (*loc, i), json_path(path, i)) for i, v in enumerate(raw)]
        return raw

    def pydantic_problems(self, error: Any, base: Loc = ()) -> None:
        """Translate a pydantic ValidationError into Problems at the original paths."""
        reported = {p.path for p in self.problems}
        for item in error.errors(include_url=False):
            loc: Loc = (*base, *(part for part in item["loc"] if part != "[key]"))  # a map key's own error
            message = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "missing":
                message = f"{loc[-1]!r} is required"
                loc = loc[:-1]
            elif item["type"] == "extra_forbidden":
                message = f"unknown property {loc[-1]!r}"
            elif (
                "input" in item
                and not isinstance(item["input"], (dict, list))
                and repr(item["input"]) not in message
            ):
                message = f"{message} (got {item['input']!r})"
            if item["type"] in ("enum", "literal_error") and isinstance(item.get("input"), str):
                choices = re.findall(r"'([^']*)'", str(item.get("ctx", {}).get("expected", "")))
                hint = did_you_mean(item["input"], choices)
                message += f";{hint}" if hint else ""
            path = self.path_of(loc)
            if path in reported:
                continue  # the loader already said what is wrong there, in its own words
            self.problem(path, message)
