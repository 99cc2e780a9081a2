"""Input files as data plus positions: JSON, or YAML (``.yaml``/``.yml``), read into the same data.

Every later stage reads plain JSON data and reports problems at JSON paths; a :class:`Source`
remembers where each path was written, so problems can also name the line and column. A
problem's path that was never written as such (a default, a model name appended to the path)
takes the position of its nearest written ancestor.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from graphium.errors import Problem
from graphium.stack.json_source import json_offsets, parse_json

if TYPE_CHECKING:  # PyYAML is imported only for a YAML file
    from graphium.stack.yaml_source import Position

YAML_SUFFIXES = (".yaml", ".yml")


def is_yaml(file: str) -> bool:
    """Whether ``file`` is read as YAML: by its suffix; everything else is JSON."""
    return file.lower().endswith(YAML_SUFFIXES)


@dataclass
class Source:
    """A parsed input file: its JSON data and a lazy map of JSON path -> (line, column)."""

    file: str
    data: Any
    _find: Callable[[], dict[str, Position]] = field(repr=False)

    @cached_property
    def positions(self) -> dict[str, Position]:
        return self._find()

    def position(self, path: str) -> Position | None:
        """Where ``path`` (or its nearest written ancestor) was written, if known."""
        positions = self.positions
        while True:
            found = positions.get(path)
            if found is not None or path == "$":
                return found
            path = _parent(path)

    def located(self, problems: Iterable[Problem]) -> list[Problem]:
        """``problems`` with line and column filled where this file's problems lack them."""
        out = []
        for problem in problems:
            where = (
                self.position(problem.path) if problem.line is None and problem.file == self.file else None
            )
            out.append(dataclasses.replace(problem, line=where[0], column=where[1]) if where else problem)
        return out


def parse_source(text: str, file: str) -> tuple[Source | None, list[Problem]]:
    """``text`` parsed by the format of ``file``: the Source, or None and the syntax problems."""
    if is_yaml(file):
        from graphium.stack.yaml_source import parse_yaml

        data, positions, problems = parse_yaml(text, file)
        if problems:
            return None, problems
        return Source(file, data, lambda: positions), []
    document, syntax = parse_json(text, file)
    if syntax is not None:
        return None, [syntax]
    return Source(file, document, lambda: _lines_and_columns(text, json_offsets(text))), []


def _lines_and_columns(text: str, offsets: dict[str, int]) -> dict[str, Position]:
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    out: dict[str, Position] = {}
    line = 0
    for path, offset in sorted(offsets.items(), key=lambda item: item[1]):
        while line + 1 < len(starts) and starts[line + 1] <= offset:
            line += 1
        out[path] = (line + 1, offset - starts[line] + 1)
    return out


def _parent(path: str) -> str:
    """``$.a["b c"][0]`` -> ``$.a["b c"]`` -> ``$.a`` -> ``$`` (paths as :func:`json_path` writes them)."""
    if path.endswith("]"):
        if path.endswith('"]'):
            # a quoted key: its opening is the last '["' not inside the key; keys are JSON strings
            index = path.rfind('["')
            while index > 0 and not _closes_at(path, index):
                index = path.rfind('["', 0, index)
            return path[:index] if index > 0 else "$"
        return path[: path.rfind("[")]
    cut = max(path.rfind("."), path.rfind("]") + 1 if "]" in path else -1)
    return path[:cut] if cut > 0 else "$"


def _closes_at(path: str, index: int) -> bool:
    """Whether the quoted key starting at ``index`` runs to the end of ``path``."""
    try:
        key, end = json.JSONDecoder().raw_decode(path, index + 1)
    except ValueError:
        return False
    return end == len(path) - 1 and isinstance(key, str)
