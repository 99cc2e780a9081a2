"""What loading a stack file yields: the validated spec, with the paths it was written at."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from graphium.errors import Problem
from graphium.stack.models import Host, StackSpec
from graphium.stack.normaliser import Loc, path_in
from graphium.stack.source import Source


@dataclass
class StackDocument:
    """A loaded stack: the validated spec, Host nodes of its graph, warnings, and where it came from."""

    stack: StackSpec
    hosts: list[Host] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    path: str = "<stack>"
    paths: Mapping[Loc, str] = field(default_factory=dict, repr=False)
    source: Source | None = field(default=None, repr=False, compare=False)

    def path_of(self, *loc: str | int) -> str:
        """The JSON path, as written in the file, of a model location such as ``("containers", 2)``."""
        return path_in(self.paths, loc)

    def located(self, problems: Iterable[Problem]) -> list[Problem]:
        """``problems`` found later (unknown hosts, unset variables) with the line and column of
        their path in this document's file, when it was read from text."""
        return self.source.located(problems) if self.source is not None else list(problems)
