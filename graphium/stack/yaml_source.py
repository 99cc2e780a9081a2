"""YAML input files (the one module that imports PyYAML): the same JSON-LD document written as
YAML, read into the JSON data the loader reads, with the line and column of every value.

Only what JSON can say is accepted, read by YAML 1.2's core rules: ``no``, ``on`` and ``yes``
stay strings (PyYAML's YAML 1.1 reads them as booleans, so ``restartPolicy: no`` would be
``false``), ``010`` is ten and ``1:30`` a string (1.1 reads octal and base 60), dates stay
strings. Safe loading only: tags other than the standard JSON types are problems, never objects.
Duplicate keys, which PyYAML silently resolves to the last, are problems. Aliases are expanded
(as PyYAML does), with a bound on the expanded size so that a few lines cannot expand into
billions of nodes.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from graphium.errors import Problem
from graphium.stack.jsonld import json_path

_MAX_NODES = 200_000  # after alias expansion; a 1,000-container stack has some 30,000
_MAX_DEPTH = 100
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(
    {
        _STR,
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
    }
)
_KEPT_IMPLICIT = ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")  # the rest are redefined below
Position = tuple[int, int]


class _Core12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core schema scalars (see the module docstring)."""

    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, regex) for tag, regex in resolvers if tag in _KEPT_IMPLICIT]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        return int(text, 16) if text.startswith("0x") else int(text, 10)


_Core12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Core12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Core12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Core12Loader.add_constructor("tag:yaml.org,2002:int", _Core12Loader.construct_core_int)


class _TooLarge(Exception):
    pass


def _expanded_size(node: yaml.Node, sizes: dict[int, int], depth: int = 0) -> int:
    """How many values ``node`` stands for once its aliases are expanded (memoised by node, so
    this costs one visit per written node); past the bound, or nested past it, raises _TooLarge."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    if depth > _MAX_DEPTH:
        raise _TooLarge
    sizes[id(node)] = _MAX_NODES + 1  # an alias to itself (a recursive structure) never ends
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(item, sizes, depth + 1) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, sizes, depth + 1) + _expanded_size(v, sizes, depth + 1) for k, v in node.value
        )
    if size > _MAX_NODES:
        raise _TooLarge
    sizes[id(node)] = size
    return size


def parse_yaml(text: str, file: str) -> tuple[Any, dict[str, Position], list[Problem]]:
    """The document as JSON data, each JSON path's (line, column) (1-based), and the problems
    (a syntax error stops the parse; unsupported values are all reported, with positions)."""
    loader = _Core12Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, [Problem(file, "$", "the file holds no YAML document", line=1, column=1)]
        _expanded_size(node, {})
        converter = _Converter(loader, file)
        data = converter.value(node, "$", 0)
        return data, converter.positions, converter.problems
    except yaml.MarkedYAMLError as error:
        return None, {}, [_syntax_problem(file, error)]
    except yaml.YAMLError as error:
        return None, {}, [Problem(file, "$", f"invalid YAML: {error}")]
    except _TooLarge:
        return (
            None,
            {},
            [Problem(file, "$", f"the document expands (through aliases) past {_MAX_NODES:,} values")],
        )
    finally:
        loader.dispose()


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    message = " ".join(p for p in (error.context, error.problem) if p)
    if "'@'" in message:
        message += ' (quote keys that start with @, as in "@context":)'
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    return Problem(file, "$", f"invalid YAML: {message}", line=line, column=column)


class _Converter:
    """Composed YAML nodes -> JSON data, recording each path's position and every problem."""

    def __init__(self, loader: _Core12Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.positions: dict[str, Position] = {}
        self.problems: list[Problem] = []

    def _problem(self, node: yaml.Node, path: str, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, path, message, line=mark.line + 1, column=mark.column + 1))

    def value(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.value(item, json_path(path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.ScalarNode) and node.tag in _SCALAR_TAGS:
            return self.loader.construct_object(node)
        self._problem(node, path, f"YAML tag {node.tag!r} is not supported: only JSON values are")
        return None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        written: set[str] = set()
        for key_node, _ in node.value:  # a key written twice is a mistake; a merged one is not
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR:
                if key_node.value in written:
                    member = json_path(path, str(key_node.value))
                    self._problem(key_node, member, f"key {key_node.value!r} is given twice in this mapping")
                written.add(key_node.value)
        self.loader.flatten_mapping(node)  # merge keys (<<: *base): merged first, so written keys win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR):
                self._problem(key_node, path, "keys must be strings (quote them)")
                continue
            member = json_path(path, str(key_node.value))
            self.positions[member] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[str(key_node.value)] = self.value(value_node, member, depth + 1)
        return out
