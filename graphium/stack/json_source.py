"""JSON input files: parsing, and where each value was written (for line and column in errors).

The standard parser keeps no positions, and a second position-keeping parse of every file would
slow the common case (a valid file) for nothing; so positions are found only when there are
problems to report, by one scan of the text that was already parsed successfully.
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from graphium.errors import Problem
from graphium.stack.jsonld import json_path

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")


def parse_json(text: str, file: str) -> tuple[Any, Problem | None]:
    """Parse JSON, turning a syntax error into a Problem with line and column."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, Problem(file, "$", f"invalid JSON: {error.msg}", line=error.lineno, column=error.colno)


def json_offsets(text: str) -> dict[str, int]:
    """JSON path -> offset in ``text`` where it was written: an object member at its key, an
    array item at its first character. ``text`` must be valid JSON; on anything unexpected (a
    document nested deeper than Python recurses) the positions found so far are returned."""
    offsets: dict[str, int] = {}
    with contextlib.suppress(IndexError, ValueError, RecursionError):
        _Scanner(text, offsets).value(0, "$")
    return offsets


class _Scanner:
    def __init__(self, text: str, offsets: dict[str, int]) -> None:
        self.text = text
        self.offsets = offsets
        self.decoder = json.JSONDecoder()

    def _string(self, index: int) -> tuple[str, int]:
        """The JSON string starting at ``index`` (its quote) and the offset just past it."""
        value, end = self.decoder.raw_decode(self.text, index)
        return str(value), end

    def _ws(self, index: int) -> int:
        match = _WS.match(self.text, index)
        return match.end() if match else index

    def value(self, index: int, path: str) -> int:
        """Scan the value at ``index`` (after whitespace); returns the offset just past it."""
        index = self._ws(index)
        self.offsets.setdefault(path, index)
        char = self.text[index]
        if char == "{":
            return self._object(index + 1, path)
        if char == "[":
            return self._array(index + 1, path)
        if char == '"':
            return self._string(index)[1]
        match = _SCALAR.match(self.text, index)
        if match is None:
            raise ValueError(index)
        return match.end()

    def _object(self, index: int, path: str) -> int:
        index = self._ws(index)
        if self.text[index] == "}":
            return index + 1
        while True:
            index = self._ws(index)
            key, after = self._string(index)
            member = json_path(path, key)
            self.offsets[member] = index  # a repeated key: the last one wins, as in json.loads
            index = self._ws(after) + 1  # past the colon
            index = self._ws(self.value(index, member))
            if self.text[index] == "}":
                return index + 1
            index += 1  # past the comma

    def _array(self, index: int, path: str) -> int:
        index = self._ws(index)
        if self.text[index] == "]":
            return index + 1
        item = 0
        while True:
            index = self._ws(self.value(index, json_path(path, item)))
            if self.text[index] == "]":
                return index + 1
            index += 1
            item += 1
