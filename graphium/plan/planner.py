"""The planner: desired + observed state -> a :class:`~graphium.plan.model.Plan` (actions, task DAG).

Pure and deterministic: no I/O, no asyncio, no clock except the tasks' creation stamp. The same
stack, inventory, observation and stored record always give the same actions, task ids, edges and
fingerprint, so a saved plan can be checked for staleness by recomputing the fingerprint.

Idempotency rests on the ``graphium.spec-hash`` label: a container whose label matches the desired
hash is kept (unless inspect shows an out-of-band change), and the per-field hashes in
``graphium.spec-fields`` name the fields that force a replace without storing any value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphium import graph as graph_
from graphium.errors import PlanError, StalePlanError
from graphium.placement import expand_instances, instance_names, place_instances
from graphium.placement.base import WILDCARD_IPS, HostPort, host_ports
from graphium.plan.model import Action, ActionKind, DesiredContainer, ObservedContainer, ObservedHost, Plan
from graphium.plan.payloads import (
    DeletePayload,
    DeployPayload,
    NetworkPayload,
    RemoveNetworkPayload,
    ReplacePayload,
    StartPayload,
)
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskType
from graphium.stack.models import ContainerSpec, HealthCheck, Inventory, NetworkSpec, StackSpec

__all__ = [
    "HASHED_FIELDS",
    "SPEC_HASH_VERSION",
    "check_fresh",
    "expand",
    "fingerprint",
    "plan_apply",
    "plan_destroy",
    "spec_hashes",
]

SPEC_HASH_VERSION = "v1"
# every field that changes the container the engine runs; dependsOn, description, replicas,
# placement and pull policy are deliberately absent: changing them must not recreate anything
HASHED_FIELDS = (
    "image",
    "command",
    "args",
    "environment",
    "ports",
    "mounts",
    "restartPolicy",
    "labels",
    "resources",
    "healthCheck",
    "user",
    "workingDir",
    "stopTimeout",
    "network",
)
_UNORDERED = ("ports", "mounts")  # the engine ignores their order; so does the hash

PULL_ALLOWANCE = 120.0  # seconds for pulling an image and creating the container
STOP_MARGIN = 30.0
NETWORK_TIMEOUT = 30.0


# hashing ------------------------------------------------------------------------------------------


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_NULL_DIGEST = hashlib.sha256(_canonical(None)).hexdigest()


def spec_hashes(spec: ContainerSpec, network_name: str) -> tuple[str, dict[str, str]]:
    """``("v1:<20 hex>", {field: <12 hex>})`` over the canonical JSON of the fields that matter.

    Defaults are omitted before hashing, so spelling out a default value, or a later release
    adding a field with a default, changes no hash.
    """
    dumped = spec.dump()
    digests: dict[str, str] = {}
    for name in HASHED_FIELDS:
        value = network_name if name == "network" else dumped.get(name)
        if value is None:
            digests[name] = _NULL_DIGEST  # most fields are unset: skip the encoder
            continue
        if name in _UNORDERED:
            value = sorted(value, key=_canonical)
        digests[name] = hashlib.sha256(_canonical(value)).hexdigest()
    whole = hashlib.sha256("".join(f"{k}={v};" for k, v in digests.items()).encode()).hexdigest()
    return f"{SPEC_HASH_VERSION}:{whole[:20]}", {k: v[:12] for k, v in digests.items()}


# desired state ------------------------------------------------------------------------------------


def _network(stack: StackSpec) -> NetworkSpec:
    return (stack.network or NetworkSpec()).model_copy(update={"name": stack.network_name()})


def expand(
    stack: StackSpec, inventory: Inventory, current: Mapping[str, str] | None = None
) -> list[DesiredContainer]:
    """Every container instance the stack wants, placed, hashed and ready to deploy.

    ``current`` (instance -> host) keeps running instances where they are; see
    :mod:`graphium.placement`.
    """
    instances = expand_instances(stack)
    placements = place_instances(stack, instances, inventory, current)
    network = _network(stack)
    assert network.name is not None
    hashes = {spec.name: spec_hashes(spec, network.name) for spec in stack.containers if spec.replicas}
    out: list[DesiredContainer] = []
    for instance in instances:
        spec_hash, field_hashes = hashes[instance.declared_name]
        out.append(
            DesiredContainer(
                stack=stack.name,
                name=instance.name,
                declared_name=instance.declared_name,
                host=placements[instance.name],
                spec=instance.spec,
                network=network,
                pull_policy=instance.spec.pull_policy or stack.pull_policy,
                spec_hash=spec_hash,
                field_hashes=field_hashes,
            )
        )
    return out


# observed state -----------------------------------------------------------------------------------


def _refuse_blind(observed: Mapping[str, ObservedHost]) -> None:
    broken = [f"{h}: {o.error}" for h, o in sorted(observed.items()) if o.error]
    if broken:
        raise PlanError("cannot plan without seeing every host; unreadable: " + "; ".join(broken))


def _stack_containers(stack_name: str, observed: Mapping[str, ObservedHost]) -> list[ObservedContainer]:
    found = [c for o in observed.values() for c in o.containers if c.stack == stack_name]
    return sorted(found, key=lambda c: (c.name, c.host, c.id))


def _network_name_of(stack_name: str, spec: Mapping[str, Any]) -> str:
    """The network name a stored or planned spec used (the default when the spec is unreadable)."""
    network = spec.get("network")
    if isinstance(network, dict) and isinstance(network.get("name"), str) and network["name"]:
        return str(network["name"])
    return f"{stack_name}-net"


def fingerprint(stack_name: str, observed: Mapping[str, ObservedHost], stored: StackRecord | None) -> str:
    """Hash of everything a plan was computed from that can change behind its back.

    The stack's containers (host, id, name, spec hash, state), the graphium networks each host
    has, which hosts were observed and their errors, and the stored revision. ``apply plan.json``
    recomputes it (see :func:`check_fresh`) and refuses a stale plan.
    """
    state = {
        "stack": stack_name,
        "hosts": sorted(observed),
        "errors": sorted([h, o.error] for h, o in observed.items() if o.error),
        "containers": [
            [c.host, c.id, c.name, c.spec_hash, c.live.state] for c in _stack_containers(stack_name, observed)
        ],
        "networks": sorted([h, sorted(o.networks)] for h, o in observed.items()),
        "revision": stored.revision if stored else None,
    }
    return "sha256:" + hashlib.sha256(_canonical(state)).hexdigest()[:32]


def check_fresh(plan: Plan, observed: Mapping[str, ObservedHost], stored: StackRecord | None) -> None:
    """Raise :class:`StalePlanError` if the live or stored state changed since ``plan`` was made."""
    if fingerprint(plan.stack, observed, stored) != plan.fingerprint:
        raise StalePlanError(
            f"the saved plan for {plan.stack} is stale: the live or stored state changed since it was "
            "made; plan again"
        )


def _current_placements(
    containers: Sequence[ObservedContainer], stored: StackRecord | None
) -> dict[str, str]:
    """Where each instance is now: observed containers first, else the stored placement."""
    stored_hosts = {
        name: str(rec["hostId"])
        for name, rec in (stored.placements if stored else {}).items()
        if rec.get("hostId")
    }
    seen: dict[str, list[str]] = {}
    for c in containers:
        seen.setdefault(c.name, []).append(c.host)
    current = dict(stored_hosts)
    for name, hosts in seen.items():
        current[name] = stored_hosts[name] if stored_hosts.get(name) in hosts else hosts[0]
    return current


def _bound_ports(container: ObservedContainer) -> list[HostPort]:
    """Host ports an observed container holds, from bindings like ``"80/tcp->0.0.0.0:8081"``."""
    out: list[HostPort] = []
    for binding in container.live.port_bindings:
        parsed = _parse_binding(binding)
        if parsed is not None:
            out.append(parsed[1])
    return out


def _parse_binding(binding: str) -> tuple[str, HostPort] | None:
    """``("80/tcp", HostPort)`` from an engine binding; None for an unpublished port."""
    inner, _, outer = binding.partition("->")
    ip, _, port = outer.rpartition(":")
    ip = ip.strip("[]")
    if not port.isdigit():
        return None
    protocol = inner.partition("/")[2] or "tcp"
    return inner if "/" in inner else f"{inner}/tcp", HostPort(
        int(port), protocol, "" if ip in WILDCARD_IPS else ip
    )


def _binding_text(container_port: str, port: HostPort) -> str:
    return f"{container_port}->{port.ip}:{port.port}"


# drift --------------------------------------------------------------------------------------------


def _fmt_memory(value: int) -> str:
    if not value:
        return "none"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value} B"


def _drift(desired: DesiredContainer, container: ObservedContainer) -> list[str]:
    """What inspect shows was changed out of band on a container whose spec hash still matches.

    Only what graphium set explicitly is compared, and values of environment entries are never
    named (they may be secrets).
    """
    live = container.live
    spec = desired.spec
    reasons: list[str] = []
    want_policy = spec.restart_policy
    if live.restart_policy.name != want_policy.name or (
        want_policy.name == "on-failure"
        and live.restart_policy.maximum_retry_count != want_policy.maximum_retry_count
    ):
        reasons.append(
            f"restartPolicy changed out of band (is {live.restart_policy.name}, should be {want_policy.name})"
        )
    limits = spec.resources.limits
    want_cpus = round((limits.cpus or 0.0) * 1e9)
    if live.nano_cpus != want_cpus:
        reasons.append(
            f"cpu limit changed out of band (is {live.nano_cpus / 1e9:g}, should be {want_cpus / 1e9:g})"
        )
    want_memory = limits.memory or 0
    if live.memory != want_memory:
        reasons.append(
            f"memory limit changed out of band (is {_fmt_memory(live.memory)}, "
            f"should be {_fmt_memory(want_memory)})"
        )
    want_bindings = {
        _binding_text(f"{p.container_port}/{p.protocol.value}", HostPort(p.host_port, p.protocol.value, ip))
        for p in spec.ports
        if p.host_port is not None
        for ip in ["" if (p.host_ip or "") in WILDCARD_IPS else (p.host_ip or "")]
    }
    live_bindings = {_binding_text(*b) for b in map(_parse_binding, live.port_bindings) if b is not None}
    if want_bindings != live_bindings:
        detail = [f"missing {b}" for b in sorted(want_bindings - live_bindings)]
        detail += [f"extra {b}" for b in sorted(live_bindings - want_bindings)]
        reasons.append(f"port bindings changed out of band ({'; '.join(detail)})")
    live_env = set(live.env)
    missing_env = sorted(k for k, v in spec.environment.items() if f"{k}={v}" not in live_env)
    if missing_env:
        reasons.append(f"environment changed out of band ({', '.join(missing_env)})")
    if desired.network.name not in live.networks:
        reasons.append(f"detached from network {desired.network.name} out of band")
    return reasons


def _replace_reasons(desired: DesiredContainer, container: ObservedContainer) -> list[str]:
    """The fields whose hashes differ, or why they cannot be compared."""
    if not container.spec_hash:
        return ["spec-hash label missing"]
    version = container.spec_hash.partition(":")[0]
    if version != SPEC_HASH_VERSION:
        return [f"spec hash version changed ({version} -> {SPEC_HASH_VERSION})"]
    changed = [f for f in HASHED_FIELDS if container.field_hashes.get(f) != desired.field_hashes[f]]
    return changed or ["spec"]


# the task graph -----------------------------------------------------------------------------------

_CREATING = frozenset({TaskType.deploy, TaskType.replace, TaskType.start})
_TYPE_ORDER = {
    TaskType.ensure_network: 0,
    TaskType.delete: 1,
    TaskType.deploy: 2,
    TaskType.replace: 2,
    TaskType.start: 2,
    TaskType.remove_network: 3,
}


@dataclass(eq=False)
class _Node:
    id: str
    type: TaskType
    host: str
    name: str
    payload: dict[str, Any]
    description: str
    timeout: float
    declared: str = ""
    needs: tuple[HostPort, ...] = ()  # host ports a creating task binds
    holds: tuple[HostPort, ...] = ()  # host ports the container it deletes/replaces holds now
    early: bool = False  # a delete that frees a port a creation needs: runs before creations
    deps: set[str] = field(default_factory=set)


def _health_budget(check: HealthCheck | None) -> float:
    """Longest a healthy start may take: start period, then every retry at interval + timeout."""
    if check is None:
        return 0.0
    return check.start_period + max(check.retries, 1) * (check.interval + check.timeout)


class _Graph:
    """Builds task nodes with content-derived ids, wires the edges, orders and ranks them."""

    def __init__(self, stack: str, fingerprint_: str) -> None:
        self.stack = stack
        self.fingerprint = fingerprint_
        self.nodes: dict[str, _Node] = {}

    def add(self, type_: TaskType, host: str, key: str, **kwargs: Any) -> _Node:
        digest = hashlib.sha256(f"{self.fingerprint}|{type_.value}|{host}|{key}".encode()).hexdigest()
        node = _Node(id=f"t-{digest[:16]}", type=type_, host=host, **kwargs)
        if node.id in self.nodes:  # (type, host, key) is unique by construction
            raise PlanError(f"internal: two {type_.value} tasks for {key} on {host}")
        self.nodes[node.id] = node
        return node

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
        out = []
        for n in order:
            node = self.nodes[n]
            out.append(
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
            )
        return out


def _order_deletes(graph: _Graph, deletes: Sequence[_Node], depends_on: Mapping[str, Iterable[str]]) -> None:
    """Dependents are deleted before their dependencies (``depends_on``: declared name -> names)."""
    by_declared: dict[str, list[_Node]] = {}
    for node in deletes:
        by_declared.setdefault(node.declared, []).append(node)
    for dependent, dependencies in depends_on.items():
        for later_name in dependencies:
            for later in by_declared.get(later_name, ()):
                for first in by_declared.get(dependent, ()):
                    # an early delete never waits on a late one: that could close a cycle via a creation
                    if first is not later and not (later.early and not first.early):
                        later.deps.add(first.id)


def _delete_node(graph: _Graph, c: ObservedContainer, declared: str, stop_timeout: float, why: str) -> _Node:
    return graph.add(
        TaskType.delete,
        c.host,
        c.id,
        name=c.name,
        declared=declared,
        payload=DeletePayload(docker_name=c.docker_name, container_id=c.id, stop_timeout=stop_timeout).dump(),
        description=f"remove {c.name} from {c.host} ({why})",
        timeout=stop_timeout + STOP_MARGIN,
        holds=tuple(_bound_ports(c)),
    )


def _network_nodes(
    graph: _Graph,
    stack: str,
    network: NetworkSpec,
    create_on: Iterable[str],
    remove_from: Iterable[str],
) -> None:
    assert network.name is not None
    by_host: dict[str, list[_Node]] = {}
    for node in graph.nodes.values():
        by_host.setdefault(node.host, []).append(node)
    for host in sorted(create_on):
        net = graph.add(
            TaskType.ensure_network,
            host,
            network.name,
            name=network.name,
            payload=NetworkPayload(stack=stack, network=network).dump(),
            description=f"create network {network.name} on {host}",
            timeout=NETWORK_TIMEOUT,
        )
        for node in by_host.get(host, ()):
            if node.type in _CREATING:
                node.deps.add(net.id)
    for host in sorted(remove_from):
        gone = graph.add(
            TaskType.remove_network,
            host,
            network.name,
            name=network.name,
            payload=RemoveNetworkPayload(stack=stack, name=network.name).dump(),
            description=f"remove network {network.name} from {host}",
            timeout=NETWORK_TIMEOUT,
        )
        gone.deps.update(n.id for n in by_host.get(host, ()) if n.type is TaskType.delete)


# plans --------------------------------------------------------------------------------------------


def plan_apply(
    stack: StackSpec,
    inventory: Inventory,
    observed: Mapping[str, ObservedHost],
    stored: StackRecord | None = None,
) -> Plan:
    """The actions and tasks that turn what ``observed`` shows into what ``stack`` declares.

    ``stack`` is fully resolved (``${VAR}`` filled); ``observed`` maps host id to what one
    observation of that host found; ``stored`` is the stack's deployment record, if any.
    An unchanged, healthy stack gives only ``keep`` actions and zero tasks.
    """
    _refuse_blind(observed)
    mine = _stack_containers(stack.name, observed)
    desired = expand(stack, inventory, _current_placements(mine, stored))
    network = _network(stack)
    assert network.name is not None
    unseen = sorted({d.host for d in desired} - set(observed))
    if unseen:
        raise PlanError(f"cannot plan blind: host(s) {', '.join(unseen)} were not observed")
    fp = fingerprint(stack.name, observed, stored)
    graph = _Graph(stack.name, fp)

    by_name: dict[str, list[ObservedContainer]] = {}
    for c in mine:
        by_name.setdefault(c.name, []).append(c)

    actions: list[Action] = []
    action_nodes: list[list[_Node]] = []
    creating: dict[str, list[_Node]] = {}  # declared name -> its creating tasks
    moved_deletes: list[tuple[_Node, _Node]] = []  # (delete on the old host, deploy on the new)
    deletes: list[_Node] = []

    def act(
        kind: ActionKind, d_host: str, name: str, docker_name: str, reasons: list[str], nodes: list[_Node]
    ) -> None:
        actions.append(
            Action(
                kind=kind, stack=stack.name, name=name, host=d_host, docker_name=docker_name, reasons=reasons
            )
        )
        action_nodes.append(nodes)

    for d in desired:
        found = by_name.pop(d.name, [])
        here = [c for c in found if c.host == d.host]
        # stable: the container with the right spec and the right name first
        here.sort(key=lambda c: (c.spec_hash != d.spec_hash, c.docker_name != d.docker_name))
        health = _health_budget(d.spec.health_check)
        deploy_timeout = PULL_ALLOWANCE + health
        needs = host_ports(d.spec)
        node: _Node | None = None
        if here:
            primary, extra = here[0], here[1:] + [c for c in found if c.host != d.host]
            state = primary.live.state
            stopped = state not in ("running", "restarting")
            if primary.spec_hash != d.spec_hash:
                kind, reasons = ActionKind.replace, _replace_reasons(d, primary)
            else:
                reasons = _drift(d, primary)
                kind = ActionKind.drift if reasons or stopped else ActionKind.keep
                if stopped:
                    reasons.insert(0, f"not running ({state}) out of band")
                if primary.docker_name != d.docker_name:  # e.g. set aside by a replace that died
                    kind = ActionKind.drift
                    reasons.append(f"named {primary.docker_name} instead of {d.docker_name}")
            if kind is ActionKind.drift and len(reasons) == 1 and state in ("exited", "created"):
                node = graph.add(
                    TaskType.start,
                    d.host,
                    d.name,
                    name=d.name,
                    declared=d.declared_name,
                    payload=StartPayload(
                        container_id=primary.id,
                        docker_name=d.docker_name,
                        health_check=d.spec.health_check is not None,
                    ).dump(),
                    description=f"start {d.name} on {d.host} (not running: {state})",
                    timeout=NETWORK_TIMEOUT + health,
                    needs=needs,
                )
            elif kind is not ActionKind.keep:
                node = graph.add(
                    TaskType.replace,
                    d.host,
                    d.name,
                    name=d.name,
                    declared=d.declared_name,
                    payload=ReplacePayload(container=d, old_container_id=primary.id).dump(),
                    description=f"replace {d.name} on {d.host} ({', '.join(reasons)})",
                    timeout=deploy_timeout + d.spec.stop_timeout + STOP_MARGIN,
                    needs=needs,
                    holds=tuple(_bound_ports(primary)),
                )
            act(kind, d.host, d.name, d.docker_name, reasons, [node] if node else [])
        else:
            old = found[0] if found else None
            extra = found[1:]
            reasons = []
            if old is not None:
                reasons = [f"host: moved {old.host} -> {d.host}"]
                if old.spec_hash != d.spec_hash:
                    reasons += [r for r in _replace_reasons(d, old) if r != "spec"]
            node = graph.add(
                TaskType.deploy,
                d.host,
                d.name,
                name=d.name,
                declared=d.declared_name,
                payload=DeployPayload(container=d).dump(),
                description=f"create {d.name} on {d.host}" + (f" (moved from {old.host})" if old else ""),
                timeout=deploy_timeout,
                needs=needs,
            )
            nodes = [node]
            if old is not None:
                gone = _delete_node(graph, old, d.declared_name, d.spec.stop_timeout, f"moved to {d.host}")
                moved_deletes.append((gone, node))
                deletes.append(gone)
                nodes.append(gone)
            act(
                ActionKind.replace if old else ActionKind.create,
                d.host,
                d.name,
                d.docker_name,
                reasons,
                nodes,
            )
        if node is not None:
            creating.setdefault(d.declared_name, []).append(node)
        for dup in extra:
            gone = _delete_node(graph, dup, d.declared_name, d.spec.stop_timeout, f"duplicate of {d.name}")
            deletes.append(gone)
            act(
                ActionKind.remove,
                dup.host,
                dup.name,
                dup.docker_name,
                [f"duplicate of {d.name} on {d.host}"],
                [gone],
            )

    before = _stored_index(stored)
    for name, leftovers in sorted(by_name.items()):
        for c in leftovers:
            gone = _delete_node(graph, c, before.owner(name), before.stop_timeout(name), "not in the stack")
            deletes.append(gone)
            act(ActionKind.remove, c.host, c.name, c.docker_name, ["not in the stack"], [gone])

    # dependsOn: a creating task waits for the creating tasks of every instance it depends on
    for spec in stack.containers:
        for node in creating.get(spec.name, ()):
            for dependency in spec.depends_on:
                node.deps.update(n.id for n in creating.get(dependency, ()))

    _free_ports_first(graph, deletes)
    creating_by_host: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        if node.type in _CREATING:
            creating_by_host.setdefault(node.host, []).append(node.id)
    for gone in deletes:
        if not gone.early:  # removals after creations: nothing disappears before its successor is up
            gone.deps.update(creating_by_host.get(gone.host, ()))
    for gone, successor in moved_deletes:
        if not gone.early:
            gone.deps.add(successor.id)
    _order_deletes(graph, deletes, before.depends_on)

    used = {d.host for d in desired}
    needs_network = {n.host for n in graph.nodes.values() if n.type in _CREATING}
    create_on = {h for h in needs_network if network.name not in observed[h].networks}
    stack_hosts = {c.host for c in mine} | {h for h, o in observed.items() if network.name in o.networks}
    remove_from = {h for h in stack_hosts - used if h in observed and network.name in observed[h].networks}
    _network_nodes(graph, stack.name, network, create_on, remove_from)

    tasks = graph.tasks()
    for action, nodes in zip(actions, action_nodes, strict=True):
        action.task_ids = [n.id for n in nodes]
    return Plan(
        stack=stack.name,
        actions=actions,
        tasks=tasks,
        placements={d.name: d.host for d in desired},
        hosts=sorted(observed),
        fingerprint=fp,
        stack_spec=stack.dump(),
        inventory=inventory.dump(),
    )


def _free_ports_first(graph: _Graph, deletes: Sequence[_Node]) -> None:
    """A creation that needs a host port an old container holds waits for that container to go.

    The delete becomes *early* (it no longer waits for creations); a replace holding the port is
    waited for too, unless that would close a cycle (the replace itself then frees it in place).
    """
    holders: dict[tuple[str, int, str], list[_Node]] = {}
    for node in graph.nodes.values():
        if node.type is TaskType.delete or node.type is TaskType.replace:
            for port in node.holds:
                holders.setdefault((node.host, port.port, port.protocol), []).append(node)
    if not holders:
        return
    for node in list(graph.nodes.values()):
        if node.type not in _CREATING:
            continue
        for port in node.needs:
            for holder in holders.get((node.host, port.port, port.protocol), ()):
                if holder is node:
                    continue
                if not any(port.clashes(held) for held in holder.holds):
                    continue
                if holder.type is TaskType.delete:
                    holder.early = True
                    node.deps.add(holder.id)
                elif not graph.reaches(holder.id, node.id):
                    node.deps.add(holder.id)
    for gone in deletes:
        if gone.early:
            gone.description += ", early: frees a host port"


@dataclass
class _StoredIndex:
    """What the stored spec says about containers no longer (or never) in the current stack."""

    declared: dict[str, str] = field(default_factory=dict)  # instance -> declared name
    stop_timeouts: dict[str, float] = field(default_factory=dict)  # declared name -> seconds
    depends_on: dict[str, list[str]] = field(default_factory=dict)  # declared name -> dependencies

    def owner(self, instance: str) -> str:
        return self.declared.get(instance, instance)

    def stop_timeout(self, instance: str) -> float:
        return self.stop_timeouts.get(self.owner(instance), 10.0)


def _stored_index(stored: StackRecord | None) -> _StoredIndex:
    index = _StoredIndex()
    if stored is None or not stored.spec:
        return index
    try:
        spec = StackSpec.model_validate(stored.spec)
    except ValueError:
        return index  # a record from an older release: delete without ordering rather than refuse
    for c in spec.containers:
        index.stop_timeouts[c.name] = c.stop_timeout
        index.depends_on[c.name] = list(c.depends_on)
        for name in instance_names(c):
            index.declared[name] = c.name
    return index


def plan_destroy(
    stack_name: str,
    observed: Mapping[str, ObservedHost],
    stored: StackRecord | None = None,
    inventory: Inventory | None = None,
) -> Plan:
    """Delete every container of the stack on every observed host, dependents first, then the
    stack's network on each host. Dependency order comes from the stored spec when there is one."""
    _refuse_blind(observed)
    spec = stored.spec if stored else {}
    network_name = _network_name_of(stack_name, spec)
    fp = fingerprint(stack_name, observed, stored)
    graph = _Graph(stack_name, fp)
    before = _stored_index(stored)
    actions: list[Action] = []
    deletes: list[_Node] = []
    for c in _stack_containers(stack_name, observed):
        gone = _delete_node(graph, c, before.owner(c.name), before.stop_timeout(c.name), "destroy")
        deletes.append(gone)
        actions.append(
            Action(
                kind=ActionKind.remove,
                stack=stack_name,
                name=c.name,
                host=c.host,
                docker_name=c.docker_name,
                reasons=["destroy"],
                task_ids=[gone.id],
            )
        )
    _order_deletes(graph, deletes, before.depends_on)
    network = NetworkSpec(name=network_name)
    remove_from = {h for h, o in observed.items() if network_name in o.networks}
    _network_nodes(graph, stack_name, network, (), remove_from)
    return Plan(
        stack=stack_name,
        destroy=True,
        actions=actions,
        tasks=graph.tasks(),
        placements={},
        hosts=sorted(observed),
        fingerprint=fp,
        stack_spec=spec,
        inventory=inventory.dump() if inventory else {},
    )
