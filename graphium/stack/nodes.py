"""A JSON-LD document as nodes keyed by canonical property names, each value with its JSON path.

The expanded graph (:mod:`graphium.stack.jsonld`) is walked *alongside the original document*, so
every value keeps the path the user wrote and errors point there; ambiguous spellings (two keys
meaning one property) and unknown properties are problems, never silently dropped.

Map-valued fields (``environment``, ``labels``, ``capacity``) are typed ``@json`` in graphium's
context so their keys survive expansion verbatim; when a document spells such a field in a way
the context does not type (a full IRI, say), the walker still takes the original JSON value, so
every spelling yields the same map.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphium.errors import Problem
from graphium.stack.jsonld import (
    Context,
    InvalidJsonLd,
    expand_in_context,
    graphium_context,
    json_path,
    local_name,
    type_names,
)

# JSON-LD keywords that may appear on a node without changing what graphium reads from it.
_HARMLESS_KEYWORDS = frozenset({"@context", "@id", "@type", "@index"})

_MISSING = object()


@dataclass
class Field:
    """One property of a node as written: original key, its path, the raw JSON and expanded values."""

    key: str
    path: str
    raw: Any
    values: list[Any]  # scalars and Node objects
    literal: bool = False  # a JSON literal (@type @json): ``raw`` is the value, verbatim

    @property
    def is_list(self) -> bool:
        return isinstance(self.raw, list) and not self.literal

    @property
    def value(self) -> Any:
        """The value in the shape the user wrote it: a list if they wrote a list."""
        if self.literal:
            return self.raw
        if self.is_list:
            return list(self.values)
        return self.values[0] if self.values else None

    def item_path(self, index: int) -> str:
        return json_path(self.path, index) if self.is_list else self.path

    def items(self) -> Iterator[tuple[str, Any]]:
        """(path, value) for each value, in order."""
        for index, value in enumerate(self.values):
            yield self.item_path(index), value


@dataclass
class Node:
    """A node object after expansion, keyed by canonical (local) property names."""

    path: str
    id: str | None = None
    types: list[str] = field(default_factory=list)
    fields: dict[str, Field] = field(default_factory=dict)

    @property
    def type_names(self) -> list[str]:
        return type_names(self.types)

    def get(self, name: str) -> Field | None:
        return self.fields.get(name)


class _Walker:
    """Pairs expanded nodes with the original JSON to keep paths and detect ambiguous spellings."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(self.file, path, message))

    def node(self, ctx: Context, original: Any, expanded: dict[str, Any], path: str) -> Node:
        if not isinstance(original, dict):
            original = {}
        if "@context" in original:
            ctx = ctx.child(original["@context"])
        node = Node(path=path, id=expanded.get("@id"), types=list(expanded.get("@type", [])))
        for key, raw in original.items():
            key_path = json_path(path, key)
            if key.startswith("@"):
                if key not in _HARMLESS_KEYWORDS:
                    self.problem(key_path, f"JSON-LD keyword {key!r} is not supported in this document")
                continue
            iri = ctx.iri(key)
            if iri is None or iri.startswith("@"):
                if iri in _HARMLESS_KEYWORDS:
                    continue
                self.problem(key_path, f"{key!r} is not a property under this document's @context")
                continue
            if raw is None:
                continue
            name = local_name(iri)
            if name is None:
                meaning = "" if iri == key else f" ({iri})"
                self.problem(
                    key_path,
                    f"unknown property {key!r}{meaning}; graphium reads schema.org and graphium terms only",
                )
                continue
            if name in node.fields:
                self.problem(
                    key_path,
                    f"{key!r} means the same property as {node.fields[name].key!r}; give it only once",
                )
                continue
            expanded_values = expanded.get(iri, [])
            if _is_json_literal(expanded_values):
                node.fields[name] = Field(key=key, path=key_path, raw=raw, values=[raw], literal=True)
                continue
            values = self._values(ctx, raw, expanded_values, key_path)
            node.fields[name] = Field(key=key, path=key_path, raw=raw, values=values)
        return node

    def expanded_node(self, expanded: dict[str, Any], path: str) -> Node:
        """Fallback when the original cannot be paired: read the expanded node alone.

        Paths then use canonical names; this happens only for exotic JSON-LD (scoped contexts,
        @set objects) that the pairing does not model.
        """
        node = Node(path=path, id=expanded.get("@id"), types=list(expanded.get("@type", [])))
        for iri, items in sorted(expanded.items()):
            if iri.startswith("@"):
                continue
            name = local_name(iri)
            key_path = json_path(path, name or iri)
            if name is None:
                self.problem(key_path, f"unknown property {iri!r}")
                continue
            if _is_json_literal(items):
                raw = items[0]["@value"]
                node.fields[name] = Field(key=name, path=key_path, raw=raw, values=[raw], literal=True)
                continue
            values = self._values(graphium_context(), _MISSING, items, key_path)
            raw = values if len(values) != 1 else values[0]
            node.fields[name] = Field(key=name, path=key_path, raw=raw, values=values)
        return node

    def _values(self, ctx: Context, raw: Any, expanded: list[Any], path: str) -> list[Any]:
        if len(expanded) == 1 and isinstance(expanded[0], dict) and "@list" in expanded[0]:
            expanded = expanded[0]["@list"]
        originals = [item for item in _flatten(raw) if item is not None] if raw is not _MISSING else []
        if len(originals) != len(expanded):
            originals = [_MISSING] * len(expanded)
        is_list = isinstance(raw, list) or (raw is _MISSING and len(expanded) != 1)
        out = []
        for index, (original, item) in enumerate(zip(originals, expanded, strict=True)):
            item_path = json_path(path, index) if is_list else path
            out.append(self._value(ctx, original, item, item_path))
        return out

    def _value(self, ctx: Context, original: Any, item: Any, path: str) -> Any:
        if not isinstance(item, dict):
            return item
        if "@value" in item:
            return item["@value"]
        if "@list" in item:
            return [self._value(ctx, _MISSING, x, json_path(path, i)) for i, x in enumerate(item["@list"])]
        if set(item) == {"@id"} and not (isinstance(original, dict) and len(original) > 1):
            return item["@id"]
        if original is _MISSING:
            return self.expanded_node(item, path)
        return self.node(ctx, original, item, path)


def _is_json_literal(items: list[Any]) -> bool:
    return len(items) == 1 and isinstance(items[0], dict) and items[0].get("@type") == "@json"


def _flatten(raw: Any) -> Iterator[Any]:
    if isinstance(raw, list):
        for item in raw:
            yield from _flatten(item)
    else:
        yield raw


@dataclass
class Graph:
    """The top-level nodes of a document (its ``@graph``, or the document itself)."""

    nodes: list[Node]
    problems: list[Problem]


def read_graph(document: Any, file: str) -> Graph:
    """Expand ``document`` and return its top-level nodes keyed by canonical names, with paths.

    Context problems (a remote context, an invalid definition) come back as Problems at
    ``$["@context"]`` rather than exceptions, so the caller can report them with the rest.
    """
    walker = _Walker(file)
    if isinstance(document, list):
        top: list[tuple[str, Any]] = [(json_path("$", i), item) for i, item in enumerate(document)]
        context_holder: dict[str, Any] = {}
    elif isinstance(document, dict):
        context_holder = document
        graph = document.get("@graph", _MISSING)
        if graph is _MISSING:
            top = [("$", document)]
        elif isinstance(graph, list):
            top = [(json_path(json_path("$", "@graph"), i), item) for i, item in enumerate(graph)]
        else:
            top = [(json_path("$", "@graph"), graph)]
        extra = sorted(set(document) - {"@context", "@graph"}) if graph is not _MISSING else []
        for key in extra:
            walker.problem(json_path("$", key), "next to @graph only @context is allowed")
    else:
        return Graph([], [Problem(file, "$", "expected a JSON object with @context and @graph")])

    try:
        ctx, expanded_nodes = expand_in_context(document, context_holder)
    except InvalidJsonLd as error:
        return Graph([], [Problem(file, json_path("$", "@context"), str(error))])

    expanded_iter = _align(top, expanded_nodes)
    if expanded_iter is None:
        return Graph([], [Problem(file, "$", "could not match the expanded graph to the document's nodes")])
    nodes = []
    for (path, original), expanded in zip(top, expanded_iter, strict=True):
        if not isinstance(original, dict):
            walker.problem(path, "expected a node object")
            continue
        if expanded is None:
            expanded = {"@id": original["@id"]} if isinstance(original.get("@id"), str) else {}
        nodes.append(walker.node(ctx, original, expanded, path))
    return Graph(nodes, walker.problems)


def _align(top: list[tuple[str, Any]], expanded: list[dict[str, Any]]) -> list[Any] | None:
    """Pair top-level originals with expanded nodes; expansion drops nodes that carry only @id."""
    kept = [isinstance(o, dict) and bool(set(o) - {"@context", "@id"}) for _, o in top]
    if sum(kept) != len(expanded):
        return None
    remaining = iter(expanded)
    return [next(remaining) if keep else None for keep in kept]


def node_from_json(raw: Mapping[str, Any], path: str) -> Node:
    """A Node over plain JSON (inside a JSON literal, or a plain inventory), keys taken as written."""
    node = Node(path=path, id=raw.get("@id") if isinstance(raw.get("@id"), str) else None)
    for key, value in raw.items():
        if key.startswith("@") or value is None:
            continue
        key_path = json_path(path, key)
        if isinstance(value, list):
            values = [
                node_from_json(v, json_path(key_path, i)) if isinstance(v, dict) else v
                for i, v in enumerate(value)
            ]
        else:
            values = [node_from_json(value, key_path) if isinstance(value, dict) else value]
        node.fields[key] = Field(key=key, path=key_path, raw=value, values=values)
    return node
