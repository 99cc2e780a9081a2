"""Rolling updates: a changed container's replace tasks in batches, each batch after the last.

The planner decides, per instance, that a container is replaced; this module groups the replace
tasks of one declared container into batches of its ``update.parallelism`` (in replica order) and
makes every task of a batch depend on every task of the batch before, so a batch starts only once
the previous one is running and healthy (and held healthy for ``update.monitor``: the task itself
waits). Each task's payload carries its :class:`~graphium.plan.payloads.RolloutStep`.

``start-first`` cannot start a new container where the old one holds the same fixed host port on
the same host: those instances are replaced stop-first, and the rollout says so in its notes
(rather than refusing the plan: a rollout is still safe stop-first, one batch at a time).

With ``failureAction: rollback`` and more than one task, every replace keeps its old container
set aside (stopped, renamed ``<name>-replaced-<id>``) instead of removing it, so that a failing
batch can give the batches already replaced their old containers back
(:mod:`graphium.run.rollouts`); one delete task per kept container, after every batch, removes
them once the rollout succeeded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from graphium.plan.dag import Node, TaskGraph
from graphium.plan.model import Rollout
from graphium.plan.payloads import DeletePayload, RolloutStep
from graphium.records.task import TaskType
from graphium.stack.models import ContainerSpec, StackSpec, UpdatePolicy

__all__ = ["RolloutTasks", "aside_name", "plan_rollouts"]

CLEANUP_TIMEOUT = 60.0
_INDEX = re.compile(r"-(\d+)$")


def aside_name(docker_name: str, old_id: str) -> str:
    """The name a replace gives the old container while it is set aside (:mod:`graphium.docker.replace`)."""
    return f"{docker_name}-replaced-{old_id[:12]}"


@dataclass
class RolloutTasks:
    """The rollouts of a plan, and the clean-up tasks each replace task gained (by its node id)."""

    rollouts: list[Rollout] = field(default_factory=list)
    cleanup: dict[str, list[Node]] = field(default_factory=dict)

    def attach(self, actions: Sequence[tuple[Any, list[Node]]]) -> None:
        """Add each clean-up task to the action whose replace task it follows."""
        for _action, nodes in actions:
            nodes += [extra for node in list(nodes) for extra in self.cleanup.get(node.id, ())]


def _replica_order(node: Node) -> tuple[int, str, str]:
    match = _INDEX.search(node.name) if node.name != node.declared else None
    return (int(match[1]) if match else 0, node.name, node.host)


def _fixed_ports(node: Node) -> list[str]:
    """Host ports the new container needs that the old one holds on the same host."""
    return [str(p) for p in node.needs if any(p.clashes(held) for held in node.holds)]


def _start_first_notes(nodes: Sequence[Node]) -> tuple[set[str], list[str]]:
    """Which nodes must go stop-first (their ids), and the note that says why."""
    blocked = {n.id: _fixed_ports(n) for n in nodes}
    blocked = {k: v for k, v in blocked.items() if v}
    if not blocked:
        return set(), []
    where = "; ".join(f"{n.name} on {n.host}: {', '.join(blocked[n.id])}" for n in nodes if n.id in blocked)
    note = (
        "start-first is not possible where the old container holds the same fixed host port "
        f"({where}): {'these replicas are' if len(blocked) < len(nodes) else 'every replica is'} "
        "replaced stop-first"
    )
    return set(blocked), [note]


def _cleanup(graph: TaskGraph, node: Node, after: Sequence[Node], declared: str) -> Node:
    old_id = str(node.payload["oldContainerId"])
    container = node.payload["container"]
    aside = aside_name(f"{container['stack']}-{container['name']}", old_id)
    gone = graph.add(
        TaskType.delete,
        node.host,
        f"{old_id}:replaced",
        name=node.name,
        declared=node.declared,
        payload=DeletePayload(docker_name=aside, container_id=old_id, stop_timeout=0).dump(),
        description=f"remove the previous container of {node.name} from {node.host} "
        f"(rolling update of {declared} done)",
        timeout=CLEANUP_TIMEOUT,
    )
    gone.deps.update(n.id for n in after)
    return gone


def _rollout(graph: TaskGraph, spec: ContainerSpec, nodes: Sequence[Node], out: RolloutTasks) -> None:
    policy = spec.update_policy()
    size = policy.parallelism
    batches = [list(nodes[i : i + size]) for i in range(0, len(nodes), size)]
    stop_first, notes = _start_first_notes(nodes) if policy.order == "start-first" else (set(), [])
    keep_old = policy.failure_action == "rollback" and len(nodes) > 1
    for index, batch in enumerate(batches):
        delay = policy.delay if index else 0.0
        for node in batch:
            step = RolloutStep(
                container=spec.name,
                batch=index + 1,
                batches=len(batches),
                order="stop-first" if node.id in stop_first else policy.order,
                failure_action=policy.failure_action,
                delay=delay,
                monitor=policy.monitor,
                keep_old=keep_old,
            )
            node.payload["rollout"] = step.dump()
            node.timeout += delay + policy.monitor
            if index:
                node.deps.update(p.id for p in batches[index - 1] if not graph.reaches(p.id, node.id))
    if keep_old:
        for node in nodes:
            out.cleanup[node.id] = [_cleanup(graph, node, nodes, spec.name)]
    out.rollouts.append(
        Rollout(
            container=spec.name,
            parallelism=size,
            delay=policy.delay,
            order=policy.order,
            failure_action=policy.failure_action,
            monitor=policy.monitor,
            batches=[[n.name for n in batch] for batch in batches],
            notes=notes,
        )
    )


def plan_rollouts(graph: TaskGraph, stack: StackSpec) -> RolloutTasks:
    """Batch the replace tasks of each declared container (see the module docstring).

    A container with a single replace and the default policy is left a plain replace.
    """
    by_declared: dict[str, list[Node]] = {}
    for node in graph.nodes.values():
        if node.type is TaskType.replace:
            by_declared.setdefault(node.declared, []).append(node)
    specs = {c.name: c for c in stack.containers}
    out = RolloutTasks()
    for declared in sorted(by_declared):
        spec = specs.get(declared)
        nodes = sorted(by_declared[declared], key=_replica_order)
        if spec is None or (len(nodes) == 1 and spec.update_policy() == UpdatePolicy()):
            continue
        _rollout(graph, spec, nodes, out)
    return out
