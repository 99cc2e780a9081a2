"""Loading a stack document: JSON-LD in any spelling -> validated :class:`StackSpec`.

The loader accepts both formats of the original project's examples (``ports`` or
``containerPort``, ``environment`` as a map or list or ``environmentVariable``, ``volumeMounts``,
``volumeMount`` or ``volumes``, flat or nested ``resources``, ...) and maps them onto the one
canonical model. The original Go loader silently dropped keys it did not know; here every key
either has an effect or is an error naming it, and all errors of a file are reported at once,
each at the JSON path the user wrote.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from graphium.errors import Problem, StackError
from graphium.stack.checks import check_hosts, cross_checks, host_problems
from graphium.stack.document import StackDocument
from graphium.stack.inventory import host_from_node, json_type
from graphium.stack.models import ContainerSpec, Host, StackSpec
from graphium.stack.nodes import Field, Node, read_graph
from graphium.stack.normaliser import Loc
from graphium.stack.parts import STACK_FIELDS, Convert, PartsNormaliser
from graphium.stack.source import parse_source

__all__ = [
    "DICT_SOURCE",
    "StackDocument",
    "check_hosts",
    "host_problems",
    "load_stack",
    "load_stack_data",
    "load_stack_text",
    "read_stack_document",
    "stack_schema",
]


DICT_SOURCE = "<dict>"  # how errors name a stack given as a Python dict


def load_stack(
    source: str | os.PathLike[str] | Mapping[str, Any], *, check_schema: bool = False
) -> StackDocument:
    """Load and validate a stack file (JSON-LD, written as JSON or as YAML), or a stack document
    given as a dict (named ``<dict>`` in errors); raises StackError with every problem found.

    ``check_schema`` also runs the editors' JSON Schema over the normalised stack. pydantic
    already enforces everything the schema says, so this only proves the two agree (the tests
    and ``graphium-run validate`` use it); it is off by default because it costs more than
    the whole load on a 1,000-container stack.
    """
    if isinstance(source, Mapping):
        return load_stack_data(dict(source), DICT_SOURCE, check_schema=check_schema)
    file = os.fspath(source)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as error:
        raise StackError([Problem(file, "$", f"cannot read stack file: {error.strerror}")]) from None
    return load_stack_text(text, file, check_schema=check_schema)


def read_stack_document(source: str | os.PathLike[str]) -> Any:
    """The raw JSON data of a stack file, JSON or YAML (``apply --server`` posts it as JSON)."""
    file = os.fspath(source)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as error:
        raise StackError([Problem(file, "$", f"cannot read stack file: {error.strerror}")]) from None
    parsed, syntax = parse_source(text, file)
    if parsed is None:
        raise StackError(syntax)
    return parsed.data


def load_stack_text(text: str, filename: str = "<stack>", *, check_schema: bool = False) -> StackDocument:
    """Like :func:`load_stack` for a document already in memory (``filename`` names it in errors,
    and its suffix picks the format: ``.yaml``/``.yml`` is YAML, anything else JSON).

    Problems carry the line and column of the value they are about."""
    source, syntax = parse_source(text, filename)
    if source is None:
        raise StackError(syntax)
    try:
        doc = load_stack_data(source.data, filename, check_schema=check_schema)
    except StackError as error:
        raise StackError(source.located(error.problems)) from None
    doc.warnings = source.located(doc.warnings)
    doc.source = source
    return doc


def load_stack_data(document: Any, filename: str = "<stack>", *, check_schema: bool = False) -> StackDocument:
    """Like :func:`load_stack` for a parsed JSON document."""
    return _StackLoader(filename, check_schema).load(document)


@cache
def stack_schema() -> dict[str, Any]:
    """The JSON Schema of stack files (package data, also in docs/ for editors)."""
    text = resources.files("graphium.stack.schema").joinpath("stack.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator(definition: str) -> Any:
    # imported by name: jsonschema ships no type stubs, and only this opt-in check needs it
    jsonschema = importlib.import_module("jsonschema")
    schema = stack_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls({"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]})


class _StackLoader(PartsNormaliser):
    def __init__(self, file: str, check_schema: bool) -> None:
        super().__init__(file)
        self.check_schema = check_schema

    def load(self, document: Any) -> StackDocument:
        graph = read_graph(document, self.file)
        self.problems.extend(graph.problems)
        stacks: list[Node] = []
        host_nodes: list[Node] = []
        for node in graph.nodes:
            types = node.type_names
            if "Host" in types:
                host_nodes.append(node)
            elif any(t.endswith("Stack") for t in types) or (
                "SoftwareApplication" in types and "hasPart" in node.fields
            ):
                stacks.append(node)
            elif not graph.problems:
                self.problem(
                    node.path,
                    "expected a stack node (@type Stack, or SoftwareApplication with hasPart) "
                    f"or a Host node, got @type {types or 'none'}",
                )
        if not stacks:
            if not self.problems:
                self.problem("$", 'no stack node: give one node with "@type": "Stack" and \'hasPart\'')
            raise StackError(self.problems)
        for extra in stacks[1:]:
            self.problem(extra.path, f"a file holds one stack; the first is at {stacks[0].path}")
        hosts = [h for i, n in enumerate(host_nodes) if (h := host_from_node(self, n, ("@hosts", i)))]
        seen_hosts: dict[str, Host] = {}
        for host, node in zip(hosts, host_nodes, strict=False):
            if host.id in seen_hosts and seen_hosts[host.id] != host:
                self.problem(node.path, f"host {host.id!r} is defined twice, differently")
            seen_hosts[host.id] = host
        stack = self._stack(stacks[0])
        if self.problems:
            raise StackError(self.problems)
        assert stack is not None
        return StackDocument(
            stack=stack,
            hosts=list(seen_hosts.values()),
            warnings=self.warnings,
            path=self.file,
            paths=self.paths,
        )

    # --- stack ---------------------------------------------------------------------------------

    def _stack(self, node: Node) -> StackSpec | None:
        self.mark((), node.path)
        special: dict[str, Convert] = {
            "containers": lambda f, _: self._containers(f),
            "deployment": lambda f, loc: self._object(f, loc, self._deployment),
            "network": lambda f, loc: self._object(f, loc, self._network),
            "locatedInHost": self._host_ref,
        }
        data = self._convert(node, STACK_FIELDS, "the stack", (), special)
        if "hasPart" not in node.fields:
            # planned as "remove every container" of a deployed stack: emptiness must be said
            self.problem(
                node.path,
                "the stack needs 'hasPart', its containers; an empty stack needs an explicit "
                '"hasPart": [] (applying it removes every container of the deployed stack)',
            )
        raw_containers: list[dict[str, Any] | None] = data.pop("containers", [])
        data = {k: v for k, v in data.items() if v is not None}  # None: a problem is already reported
        if "name" not in data:
            self.problem(node.path, "the stack needs 'name'")
        if self.check_schema:
            self._schema_check("Stack", data, ())
        containers: list[ContainerSpec | None] = []
        for index, raw in enumerate(raw_containers):
            containers.append(self._validate_container(raw, index) if raw is not None else None)
        cross_checks(self, raw_containers, containers, data.get("locatedInHost"))
        try:
            stack_data = {**data, "containers": []}
            spec = StackSpec.model_validate(stack_data)
        except pydantic.ValidationError as error:
            self.pydantic_problems(error)
            return None
        if self.problems:
            return None
        valid = [c for c in containers if c is not None]
        return spec.model_copy(update={"containers": valid})

    def _containers(self, field_: Field) -> list[dict[str, Any] | None]:
        self.mark(("containers",), field_.path)
        out: list[dict[str, Any] | None] = []
        for index, (path, value) in enumerate(field_.items()):
            loc: Loc = ("containers", index)
            self.mark(loc, path)
            if not isinstance(value, Node):
                self.problem(path, f"expected a container object, got {json_type(value)}")
                out.append(None)
                continue
            out.append(self._container(value, loc))
        if not out:
            self.warn(
                field_.path, "the stack has no containers: applying it removes every container it deployed"
            )
        return out

    def _validate_container(self, data: dict[str, Any], index: int) -> ContainerSpec | None:
        loc: Loc = ("containers", index)
        # a missing name or image is reported already; stand-ins let every other field be checked too
        missing = {key: "missing" for key in ("name", "image") if key not in data}
        if self.check_schema and not missing and not self._schema_check("Container", data, loc):
            return None
        try:
            spec = ContainerSpec.model_validate({**missing, **data})
        except pydantic.ValidationError as error:
            self.pydantic_problems(error, loc)
            return None
        return None if missing else spec

    def _schema_check(self, definition: str, data: dict[str, Any], loc: Loc) -> bool:
        """jsonschema on the normalised form: proves the editors' schema accepts what we accept."""
        errors = list(_validator(definition).iter_errors(data))
        for error in errors:
            self.problem(self.path_of((*loc, *error.absolute_path)), f"schema: {error.message}")
        return not errors
