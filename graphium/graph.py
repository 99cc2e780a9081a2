"""Dependency graphs: cycles, deterministic topological order, reachability, chain heights.

One module for every graph graphium walks: containers' ``dependsOn`` in a stack (the loader), a
plan's task DAG (the planner) and tasks handed to a store. A graph maps each node to the nodes it
depends on; edges to nodes outside the graph are ignored. Iterative throughout, so a
1,000-long chain cannot hit the recursion limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Graph = Mapping[str, Iterable[str]]


class CycleError(ValueError):
    """The graph has a cycle; ``stuck`` are the nodes that could not be ordered."""

    def __init__(self, stuck: list[str]) -> None:
        self.stuck = stuck
        super().__init__("dependency cycle among: " + ", ".join(stuck))


def cycles(graph: Graph) -> list[list[str]]:
    """Each dependency cycle found, as a closed walk starting at its smallest node (a -> b -> a)."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in sorted(graph):
        if root in state:
            continue
        path: list[str] = [root]
        iterators = [iter(graph.get(root, ()))]
        state[root] = 1
        while iterators:
            dep = next(iterators[-1], None)
            if dep is None:
                state[path.pop()] = 2
                iterators.pop()
                continue
            if dep not in graph:
                continue
            if state.get(dep) == 1:
                cycle = path[path.index(dep) :]
                start = cycle.index(min(cycle))
                rotated = cycle[start:] + cycle[:start]
                if tuple(rotated) not in seen:
                    seen.add(tuple(rotated))
                    found.append([*rotated, rotated[0]])
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                iterators.append(iter(graph.get(dep, ())))
    return found


def dependents(graph: Graph) -> dict[str, list[str]]:
    """The reverse graph: for each node, the nodes that depend on it."""
    out: dict[str, list[str]] = {n: [] for n in graph}
    for node, deps in graph.items():
        for dep in deps:
            if dep in out:
                out[dep].append(node)
    return out


def topological_order(graph: Graph, key: Callable[[str], Any] = str) -> list[str]:
    """Dependencies first; among nodes ready at the same time, the smallest ``key`` first, so the
    order is deterministic. Raises :class:`CycleError` naming the nodes a cycle blocks."""
    rdeps = dependents(graph)
    waiting = {n: sum(1 for d in deps if d in graph) for n, deps in graph.items()}
    ready = [(key(n), n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)[1]
        order.append(node)
        for m in rdeps[node]:
            waiting[m] -= 1
            if waiting[m] == 0:
                heapq.heappush(ready, (key(m), m))
    if len(order) != len(waiting):
        done = set(order)
        raise CycleError(sorted(n for n in graph if n not in done))
    return order


def chain_heights(graph: Graph, order: list[str]) -> dict[str, int]:
    """For each node, the length of the longest chain of dependents it unblocks (itself included);
    ``order`` is a topological order of ``graph``."""
    rdeps = dependents(graph)
    height: dict[str, int] = {}
    for node in reversed(order):
        height[node] = 1 + max((height[m] for m in rdeps[node]), default=0)
    return height


def reaches(graph: Graph, start: str, goal: str) -> bool:
    """Whether ``goal`` is among the (transitive) dependencies of ``start``."""
    todo, seen = [start], {start}
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep == goal:
                return True
            if dep not in seen and dep in graph:
                seen.add(dep)
                todo.append(dep)
    return False


__all__ = ["CycleError", "chain_heights", "cycles", "dependents", "reaches", "topological_order"]
