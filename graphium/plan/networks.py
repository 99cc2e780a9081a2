"""Phase 5 of planning: the stack's network on each host, created before the first container
that needs it, removed after the last deletion on a host the stack left, and merged where a host
holds several networks of that name (two runs raced the engine's non-atomic duplicate check)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from graphium.plan.current import Current
from graphium.plan.dag import CREATING, Node, TaskGraph
from graphium.plan.model import ObservedHost
from graphium.plan.payloads import NetworkPayload, RemoveNetworkPayload
from graphium.records.task import TaskType
from graphium.stack.models import NetworkSpec

__all__ = ["NETWORK_TIMEOUT", "network_nodes", "plan_networks"]

NETWORK_TIMEOUT = 30.0


def _node(
    graph: TaskGraph,
    type_: TaskType,
    host: str,
    name: str,
    payload: NetworkPayload | RemoveNetworkPayload,
    what: str,
) -> Node:
    return graph.add(
        type_, host, name, name=name, payload=payload.dump(), description=what, timeout=NETWORK_TIMEOUT
    )


def network_nodes(
    graph: TaskGraph, stack: str, network: NetworkSpec, create_on: dict[str, str], remove_from: Iterable[str]
) -> None:
    """Ensure the network before any creation on a host (``create_on``: host -> what it does there),
    and remove it after every deletion there."""
    name = network.name
    assert name is not None
    by_host = graph.by_host()
    for host in sorted(create_on):
        payload = NetworkPayload(stack=stack, network=network)
        net = _node(
            graph, TaskType.ensure_network, host, name, payload, f"{create_on[host]} {name} on {host}"
        )
        for node in by_host.get(host, ()):
            if node.type in CREATING:
                node.deps.add(net.id)
    for host in sorted(remove_from):
        gone = _node(
            graph,
            TaskType.remove_network,
            host,
            name,
            RemoveNetworkPayload(stack=stack, name=name),
            f"remove network {name} from {host}",
        )
        gone.deps.update(n.id for n in by_host.get(host, ()) if n.type is TaskType.delete)


def plan_networks(
    graph: TaskGraph,
    stack: str,
    network: NetworkSpec,
    used: set[str],
    index: Current,
    observed: Mapping[str, ObservedHost],
) -> None:
    """Create the network where a creation needs it (merge its duplicates on the hosts ``used``);
    remove it from hosts the stack has left."""
    name = str(network.name)
    create = {n.host: "create network" for n in graph.creating() if name not in observed[n.host].networks}
    create |= {h: "merge duplicate networks" for h in used if observed[h].networks.count(name) > 1}
    stack_hosts = {c.host for c in index.mine} | {h for h, o in observed.items() if name in o.networks}
    remove_from = {h for h in stack_hosts - used if h in observed and name in observed[h].networks}
    network_nodes(graph, stack, network, create, remove_from)
