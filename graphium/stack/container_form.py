"""One container written as plain JSON (the original task API's ``containerSpec``), read by the
stack files' own rules.

The task API of the original design posts a single container outside any stack document. It is
normalised by the same converters as a stack's container node (:class:`PartsNormaliser`), so it
accepts the same spellings, rejects the same mistakes and yields the same model; only the
spellings of that API which stack files never had (``env``) are mapped first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from graphium.errors import Problem, StackError
from graphium.stack.document import StackDocument
from graphium.stack.inventory import json_type
from graphium.stack.models import ContainerSpec, StackSpec
from graphium.stack.nodes import Node, node_from_json
from graphium.stack.normaliser import Loc
from graphium.stack.parts import PartsNormaliser

__all__ = ["CONTAINER_LOC", "load_container_form"]

CONTAINER_LOC: Loc = ("containers", 0)  # where the container sits in the document's one-container stack
_SPELLINGS = {"env": "environment"}  # the task API's own spellings -> the stack files' names
_MAPS = ("environment", "labels")  # map-valued fields, which a stack file's context types as JSON


class _ContainerForm(PartsNormaliser):
    def load(self, raw: Any, path: str, stack: StackSpec) -> StackDocument:
        self.mark((), path)
        if not isinstance(raw, Mapping):
            raise StackError([Problem(self.file, path, f"expected a container object, got {json_type(raw)}")])
        node = self._respelled(node_from_json(raw, path))
        self.mark(CONTAINER_LOC, path)
        data = self._container(node, CONTAINER_LOC)
        # stand-ins for a missing name or image (reported already) let every other field be checked too
        missing = {key: "missing" for key in ("name", "image") if key not in data}
        spec: ContainerSpec | None = None
        try:
            spec = ContainerSpec.model_validate({**missing, **data})
        except pydantic.ValidationError as error:
            self.pydantic_problems(error, CONTAINER_LOC)
        if self.problems or spec is None:
            raise StackError(self.problems)
        return StackDocument(
            stack=stack.model_copy(update={"containers": [spec]}),
            warnings=self.warnings,
            path=self.file,
            paths=self.paths,
        )

    def _respelled(self, node: Node) -> Node:
        for spelling, name in _SPELLINGS.items():
            field_ = node.fields.get(spelling)
            if field_ is None:
                continue
            if name in node.fields:
                self.problem(field_.path, f"{spelling!r} and {name!r} both set {name!r}; give only one")
                continue
            node.fields = {name if k == spelling else k: f for k, f in node.fields.items()}
        for name in _MAPS:
            map_field = node.fields.get(name)
            if map_field is not None and isinstance(map_field.raw, dict | list):
                map_field.literal = True  # taken verbatim, as a stack file's @json value is
        return node


def load_container_form(raw: Any, stack: StackSpec, *, file: str, path: str) -> StackDocument:
    """``raw`` (a container as plain JSON, found at ``path`` of ``file``) as the one container of
    ``stack``; raises StackError with every problem at its path in ``file``.

    The document's :meth:`~StackDocument.path_of` maps the container's model locations
    (:data:`CONTAINER_LOC` and below) back to where they were written.
    """
    return _ContainerForm(file).load(raw, path, stack)
