"""The task graph a plan builds: nodes with content-derived ids, edge rules, ordered tasks.

Ordering, cycles and reachability are :mod:`graphium.graph`'s; this module knows what a plan's
nodes are (a task to be, with the host ports it needs or holds) and the rules that wire
deletions: dependents go first, and a deletion that frees a host port a creation needs runs
early.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphium import graph as graph_
from graphium.errors import PlanError
from graphium.placement.base import HostPort
from graphium.plan.hashing import digest
from graphium.records.task import Task, TaskType

__all__ = ["CREATING", "Node", "TaskGraph", "free_ports_first", "order_deletes"]

CREATING = frozenset({TaskType.deploy, TaskType.replace, TaskType.start})
_TYPE_ORDER = {
    TaskType.ensure_network: 0,
    TaskType.ensure_volume: 0,
    TaskType.delete: 1,
    TaskType.deploy: 2,
    TaskType.replace: 2,
    TaskType.start: 2,
    TaskType.remove_network: 3,
    TaskType.remove_volume: 3,
}


@dataclass(eq=False)
class Node:
    """A task to be: what it runs, where, and what the edge rules need to know about it."""

    id: str
    type: TaskType
    host: str
    name: str
    payload: dict[str, Any]
    description: str
    timeout: float
    declared: str = ""  # the declared container name (dependsOn refers to it)
    needs: tuple[HostPort, ...] = ()  # host ports a creating task binds
    holds: tuple[HostPort, ...] = ()  # host ports the container it deletes/replaces holds now
    early: bool = False  # a delete that frees a port a creation needs: runs before creations
    deps: set[str] = field(default_factory=set)


class TaskGraph:
    """Builds task nodes with content-derived ids, wires the edges, orders and ranks them."""

    def __init__(self, stack: str, fingerprint: str) -> None:
        self.stack = stack
        self.fingerprint = fingerprint
        self.nodes: dict[str, Node] = {}

    def add(
        self,
        type_: TaskType,
        host: str,
        key: str,
        *,
        name: str,
        payload: dict[str, Any],
        description: str,
        timeout: float,
        declared: str = "",
        needs: tuple[HostPort, ...] = (),
        holds: tuple[HostPort, ...] = (),
    ) -> Node:
        """A new node; its id derives from the plan's fingerprint and ``(type, host, key)``."""
        node_id = "t-" + digest(f"{self.fingerprint}|{type_.value}|{host}|{key}")[:16]
        if node_id in self.nodes:  # (type, host, key) is unique by construction
            raise PlanError(f"internal: two {type_.value} tasks for {key} on {host}")
        node = Node(node_id, type_, host, name, payload, description, timeout, declared, needs, holds)
        self.nodes[node_id] = node
        return node

    def creating(self) -> list[Node]:
        """The nodes that create or start a container, in insertion order."""
        return [n for n in self.nodes.values() if n.type in CREATING]

    def by_host(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for node in self.nodes.values():
            out.setdefault(node.host, []).append(node)
        return out

    def deps(self) -> dict[str, set[str]]:
        return {n: node.deps for n, node in self.nodes.items()}

    def reaches(self, start: str, goal: str) -> bool:
        return graph_.reaches(self.deps(), start, goal)

    def tasks(self) -> list[Task]:
        """Tasks in a deterministic topological order, prioritised by the length of the chain they
        unblock (so the critical path starts first); raises PlanError on a cycle."""

        def rank(n: str) -> tuple[int, str, str, str]:
            node = self.nodes[n]
            return (_TYPE_ORDER[node.type], node.host, node.name, n)

        deps = self.deps()
        try:
            order = graph_.topological_order(deps, key=rank)
        except graph_.CycleError as exc:
            stuck = sorted(self.nodes[n].description for n in exc.stuck)
            raise PlanError("the task graph has a cycle among: " + "; ".join(stuck)) from None
        height = graph_.chain_heights(deps, order)
        return [
            Task(
                id=n,
                task_type=node.type,
                host_id=node.host,
                stack_id=self.stack,
                priority=height[n],
                payload=node.payload,
                depends_on=sorted(node.deps),
                timeout_seconds=node.timeout,
                description=node.description,
            )
            for n in order
            for node in [self.nodes[n]]
        ]


def order_deletes(deletes: Sequence[Node], depends_on: Mapping[str, Iterable[str]]) -> None:
    """Dependents are deleted before their dependencies (``depends_on``: declared name -> names)."""
    by_declared: dict[str, list[Node]] = {}
    for node in deletes:
        by_declared.setdefault(node.declared, []).append(node)
    for dependent, dependencies in depends_on.items():
        for later_name in dependencies:
            for later in by_declared.get(later_name, ()):
                for first in by_declared.get(dependent, ()):
                    # an early delete never waits on a late one: that could close a cycle via a creation
                    if first is not later and not (later.early and not first.early):
                        later.deps.add(first.id)


def free_ports_first(graph: TaskGraph, deletes: Sequence[Node]) -> None:
    """A creation that needs a host port an old container holds waits for that container to go.

    The delete becomes *early* (it no longer waits for creations); a replace holding the port is
    waited for too, unless that would close a cycle (the replace itself then frees it in place).
    """
    holders: dict[tuple[str, int, str], list[Node]] = {}
    for node in graph.nodes.values():
        if node.type is TaskType.delete or node.type is TaskType.replace:
            for port in node.holds:
                holders.setdefault((node.host, port.port, port.protocol), []).append(node)
    if not holders:
        return
    for node in graph.creating():
        for port in node.needs:
            for holder in holders.get((node.host, port.port, port.protocol), ()):
                if holder is node or not any(port.clashes(held) for held in holder.holds):
                    continue
                if holder.type is TaskType.delete:
                    holder.early = True
                    node.deps.add(holder.id)
                elif not graph.reaches(holder.id, node.id):
                    node.deps.add(holder.id)
    for gone in deletes:
        if gone.early:
            gone.description += ", early: frees a host port"
