"""The planner: desired + observed state -> a :class:`~graphium.plan.model.Plan` (actions, task DAG).

Pure and deterministic: no I/O, no asyncio, no clock except the tasks' creation stamp. The same
stack, inventory, observation and stored record always give the same actions, task ids, edges and
fingerprint, so a saved plan can be checked for staleness by recomputing the fingerprint.

:func:`plan_apply` runs in named phases: index what is stored and observed
(:func:`graphium.plan.current.current_state`), place and expand the desired instances
(:func:`expand`), decide each instance's action (:func:`_decide`, :func:`_remove_leftovers`; the
verdicts are :mod:`graphium.plan.drift`'s), wire the edges (:func:`_wire`: dependencies, host-port
hand-over, delete order), add the networks (:func:`_networks`), then order the tasks
(:meth:`graphium.plan.dag.TaskGraph.tasks`) and give each action its task ids.

Idempotency rests on the ``graphium.spec-hash`` label (:mod:`graphium.plan.hashing`): a
container whose label matches the desired hash is kept unless inspect shows an out-of-band
change.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from graphium.errors import PlanError, StalePlanError
from graphium.placement import expand_instances, place_instances
from graphium.placement.base import HostPort, host_ports
from graphium.plan.changes import CreatedFields
from graphium.plan.conflicts import refuse_conflicts
from graphium.plan.current import Current, StoredIndex, current_state, refuse_blind
from graphium.plan.dag import Node, TaskGraph, free_ports_first, order_deletes
from graphium.plan.drift import (
    Recorded,
    Verdict,
    after_interrupted_replace,
    bound_ports,
    held_secrets,
    judge,
    mask_verdict,
    replace_verdict,
    set_aside_by_replace,
)
from graphium.plan.hashing import (
    HASHED_FIELDS,
    SPEC_HASH_VERSION,
    fingerprint,
    spec_hashes,
)
from graphium.plan.model import (
    Action,
    ActionReason,
    DesiredContainer,
    FieldChange,
    ObservedContainer,
    ObservedHost,
    Plan,
    _Data,
)
from graphium.plan.networks import NETWORK_TIMEOUT, network_nodes, plan_networks
from graphium.plan.payloads import (
    DeletePayload,
    DeployPayload,
    ReplacePayload,
    StartPayload,
)
from graphium.plan.rollout import plan_rollouts
from graphium.plan.volumes import plan_destroy_volumes, plan_volumes
from graphium.records.stack import StackRecord
from graphium.records.task import TaskType
from graphium.stack.models import HealthCheck, Inventory, NetworkSpec, StackSpec, network_name

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

PULL_ALLOWANCE = 120.0  # seconds for pulling an image and creating the container
STOP_MARGIN = 30.0
_REPLICA_RE = re.compile(r"^(?P<declared>.+)-\d+$")


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


# phase 3: each instance's action ------------------------------------------------------------------


def _health_budget(check: HealthCheck | None) -> float:
    """Longest a healthy start may take: start period, then every retry at interval + timeout."""
    if check is None:
        return 0.0
    return check.start_period + max(check.retries, 1) * (check.interval + check.timeout)


@dataclass
class _Decisions:
    """The actions decided so far, the task nodes each one runs, and what the edge rules need."""

    stack: str
    graph: TaskGraph
    actions: list[tuple[Action, list[Node]]] = field(default_factory=list)
    creating: dict[str, list[Node]] = field(default_factory=dict)  # declared name -> creating tasks
    moved: list[tuple[Node, Node]] = field(default_factory=list)  # (delete on old host, deploy on new)
    deletes: list[Node] = field(default_factory=list)
    secret_values: frozenset[str] = frozenset()  # values of sensitive variables, masked by value
    created: CreatedFields = field(default_factory=CreatedFields)

    def act(self, c: ObservedContainer | DesiredContainer, verdict: Verdict, nodes: Iterable[Node]) -> None:
        verdict = mask_verdict(verdict, self.secret_values)
        action = Action(
            kind=verdict.reason.kind,
            reason=verdict.reason,
            stack=self.stack,
            name=c.name,
            host=c.host,
            docker_name=c.docker_name,
            reasons=verdict.reasons,
            changes=verdict.changes,
        )
        self.actions.append((action, list(nodes)))

    def create(
        self,
        d: DesiredContainer,
        type_: TaskType,
        payload: _Data,
        description: str,
        timeout: float,
        holds: tuple[HostPort, ...] = (),
    ) -> Node:
        """A deploy, replace or start task for ``d``; it needs the host ports ``d`` publishes."""
        return self.graph.add(
            type_,
            d.host,
            d.name,
            name=d.name,
            declared=d.declared_name,
            payload=payload.dump(),
            description=description,
            timeout=timeout,
            needs=host_ports(d.spec),
            holds=holds,
        )

    def delete(self, c: ObservedContainer, declared: str, stop_timeout: float, why: str) -> Node:
        """A delete task for ``c``; it holds the host ports ``c`` has bound."""
        gone = self.graph.add(
            TaskType.delete,
            c.host,
            c.id,
            name=c.name,
            declared=declared,
            payload=DeletePayload(
                docker_name=c.docker_name, container_id=c.id, stop_timeout=stop_timeout
            ).dump(),
            description=f"remove {c.name} from {c.host} ({why})",
            timeout=stop_timeout + STOP_MARGIN,
            holds=tuple(bound_ports(c)),
        )
        self.deletes.append(gone)
        return gone


def _decide(
    dec: _Decisions, d: DesiredContainer, found: list[ObservedContainer], before: StoredIndex
) -> None:
    """The action for one desired instance, given every container of that instance found."""
    here = [c for c in found if c.host == d.host]
    # stable: the container with the right spec and the right name first
    here.sort(key=lambda c: (c.spec_hash != d.spec_hash, c.docker_name != d.docker_name))
    recorded = before.recorded.get(d.declared_name)
    if here:
        node = _in_place(dec, d, here[0], recorded, any(set_aside_by_replace(c, d) for c in here))
        extra = here[1:] + [c for c in found if c.host != d.host]
    else:
        node = _create_or_move(dec, d, found[0] if found else None, recorded)
        extra = found[1:]
    if node is not None:
        dec.creating.setdefault(d.declared_name, []).append(node)
    for dup in extra:
        if set_aside_by_replace(dup, d):
            verdict = Verdict(ActionReason.replace_leftover, [f"left by an interrupted replace of {d.name}"])
        else:
            verdict = Verdict(ActionReason.duplicate, [f"duplicate of {d.name} on {d.host}"])
        gone = dec.delete(dup, d.declared_name, d.spec.stop_timeout, verdict.reasons[0])
        dec.act(dup, verdict, [gone])


def _in_place(
    dec: _Decisions, d: DesiredContainer, primary: ObservedContainer, recorded: Recorded | None, aside: bool
) -> Node | None:
    """Keep, start or replace the container found on the instance's host; the creating node, if any."""
    verdict = after_interrupted_replace(judge(d, primary, recorded), d, primary, aside=aside)
    health = _health_budget(d.spec.health_check)
    state = primary.live.state
    node: Node | None = None
    if verdict.reason is ActionReason.not_running and state in ("exited", "created"):
        payload = StartPayload(
            container_id=primary.id, docker_name=d.docker_name, health_check=d.spec.health_check is not None
        )
        what = f"start {d.name} on {d.host} (not running: {state})"
        node = dec.create(d, TaskType.start, payload, what, NETWORK_TIMEOUT + health)
    elif verdict.reason is not ActionReason.unchanged:
        node = dec.create(
            d,
            TaskType.replace,
            ReplacePayload(
                container=d, old_container_id=primary.id, secret_values=held_secrets(d, dec.secret_values)
            ),
            f"replace {d.name} on {d.host} ({', '.join(verdict.reasons)})",
            PULL_ALLOWANCE + health + d.spec.stop_timeout + STOP_MARGIN,
            holds=tuple(bound_ports(primary)),
        )
    dec.act(d, verdict, [node] if node else [])
    return node


def _create_or_move(
    dec: _Decisions, d: DesiredContainer, old: ObservedContainer | None, recorded: Recorded | None
) -> Node:
    """Deploy the instance on its host; when it ran on another host, remove it there afterwards."""
    verdict = Verdict(ActionReason.new_instance, changes=dec.created.of(d))
    if old is not None:
        verdict = Verdict(
            ActionReason.host_changed,
            [f"host: moved {old.host} -> {d.host}"],
            [FieldChange(field="host", old=old.host, new=d.host)],
        )
        if old.spec_hash != d.spec_hash:
            changed = replace_verdict(d, old, recorded)
            if changed.reasons != ["spec"]:
                verdict.reasons += changed.reasons
                verdict.changes += changed.changes
    node = dec.create(
        d,
        TaskType.deploy,
        DeployPayload(container=d, secret_values=held_secrets(d, dec.secret_values)),
        f"create {d.name} on {d.host}" + (f" (moved from {old.host})" if old else ""),
        PULL_ALLOWANCE + _health_budget(d.spec.health_check),
    )
    nodes = [node]
    if old is not None:
        gone = dec.delete(old, d.declared_name, d.spec.stop_timeout, f"moved to {d.host}")
        dec.moved.append((gone, node))
        nodes.append(gone)
    dec.act(d, verdict, nodes)
    return node


def _removal_verdict(stack: StackSpec, before: StoredIndex, name: str) -> Verdict:
    """Why a container of no desired instance goes: its declaration left, or its replica did."""
    declared = {c.name: c for c in stack.containers}
    owner = before.declared.get(name)
    if owner is None:
        match = _REPLICA_RE.match(name)
        owner = name if name in declared else match["declared"] if match else None
    spec = declared.get(owner or "")
    if spec is None:
        return Verdict(ActionReason.removed_from_stack, ["not in the stack"])
    return Verdict(
        ActionReason.replicas_changed, [f"not among the {spec.replicas} replica(s) of {spec.name}"]
    )


def _remove_leftovers(dec: _Decisions, stack: StackSpec, index: Current) -> None:
    """Remove every container no desired instance claimed (``index.by_name`` holds what is left)."""
    before = index.before
    for name, leftovers in sorted(index.by_name.items()):
        verdict = _removal_verdict(stack, before, name)
        for c in leftovers:
            gone = dec.delete(c, before.owner(name), before.stop_timeout(name), verdict.reasons[0])
            dec.act(c, verdict, [gone])


# phase 4: edges -----------------------------------------------------------------------------------


def _wire(dec: _Decisions, stack: StackSpec, before: StoredIndex) -> None:
    """dependsOn between creations, host-port hand-over, removals after creations, delete order."""
    for spec in stack.containers:  # a creating task waits for those of every instance it depends on
        for node in dec.creating.get(spec.name, ()):
            for dependency in spec.depends_on:
                node.deps.update(n.id for n in dec.creating.get(dependency, ()))
    free_ports_first(dec.graph, dec.deletes)
    creating_by_host: dict[str, list[str]] = {}
    for node in dec.graph.creating():
        creating_by_host.setdefault(node.host, []).append(node.id)
    for gone in dec.deletes:
        if not gone.early:  # removals after creations: nothing disappears before its successor is up
            gone.deps.update(creating_by_host.get(gone.host, ()))
    for gone, successor in dec.moved:
        if not gone.early:
            gone.deps.add(successor.id)
    order_deletes(dec.deletes, before.depends_on)


def check_fresh(plan: Plan, observed: Mapping[str, ObservedHost], stored: StackRecord | None) -> None:
    """Raise :class:`StalePlanError` if the live or stored state changed since ``plan`` was made."""
    if fingerprint(plan.stack, observed, stored) != plan.fingerprint:
        raise StalePlanError(
            f"the saved plan for {plan.stack} is stale: the live or stored state changed since it was "
            "made; plan again"
        )


# plans --------------------------------------------------------------------------------------------


def _actions(dec: _Decisions) -> list[Action]:
    """Phase 6 (after :meth:`TaskGraph.tasks`): each action with the ids of its tasks."""
    for action, nodes in dec.actions:
        action.task_ids = [n.id for n in nodes]
    return [action for action, _ in dec.actions]


def plan_apply(
    stack: StackSpec,
    inventory: Inventory,
    observed: Mapping[str, ObservedHost],
    stored: StackRecord | None = None,
    *,
    secret_values: Collection[str] = (),
    pinned: Mapping[str, str] | None = None,
) -> Plan:
    """The actions and tasks that turn what ``observed`` shows into what ``stack`` declares.

    ``stack`` is fully resolved (``${VAR}`` filled); ``observed`` maps host id to what one
    observation of that host found; ``stored`` is the stack's deployment record, if any;
    ``secret_values`` are the values of sensitive variables, masked in every change shown and
    listed in the payloads of the tasks whose containers hold them.
    ``pinned`` (instance -> host) is where instances should be, over where they are now.
    An unchanged, healthy stack gives only ``keep`` actions and zero tasks.
    """
    refuse_blind(observed)
    index = current_state(stack.name, observed, stored)
    wanted = {i: h for i, h in (pinned or {}).items() if h in inventory.by_id()}
    desired = expand(stack, inventory, {**index.current_placements(), **wanted})
    unseen = sorted({d.host for d in desired} - set(observed))
    if unseen:
        raise PlanError(f"cannot plan blind: host(s) {', '.join(unseen)} were not observed")
    refuse_conflicts(stack.name, desired, observed)
    dec = _Decisions(
        stack.name, TaskGraph(stack.name, index.fingerprint), secret_values=frozenset(secret_values)
    )
    for d in desired:
        _decide(dec, d, index.by_name.pop(d.name, []), index.before)
    _remove_leftovers(dec, stack, index)
    _wire(dec, stack, index.before)
    rolling = plan_rollouts(dec.graph, stack)
    rolling.attach(dec.actions)
    plan_networks(dec.graph, dec.stack, _network(stack), {d.host for d in desired}, index, observed)
    notes, tasks = plan_volumes(dec.graph, stack.name, desired, observed), dec.graph.tasks()  # in order
    return Plan(
        stack=stack.name,
        actions=_actions(dec),
        tasks=tasks,
        placements={d.name: d.host for d in desired},
        hosts=sorted(observed),
        fingerprint=index.fingerprint,
        stack_spec=stack.dump(),
        inventory=inventory.dump(),
        rollouts=rolling.rollouts,
        notes=notes,
    )


def plan_destroy(
    stack_name: str,
    observed: Mapping[str, ObservedHost],
    stored: StackRecord | None = None,
    inventory: Inventory | None = None,
    *,
    volumes: bool = False,
) -> Plan:
    """Delete every container of the stack on every host, dependents first (as the stored spec says),
    then its network on each host, and its own volumes with ``volumes`` (else notes name them)."""
    refuse_blind(observed)
    spec = stored.spec if stored else {}
    index = current_state(stack_name, observed, stored)
    before = index.before
    dec = _Decisions(stack_name, TaskGraph(stack_name, index.fingerprint))
    for c in index.mine:
        gone = dec.delete(c, before.owner(c.name), before.stop_timeout(c.name), "destroy")
        dec.act(c, Verdict(ActionReason.stack_destroyed, ["destroy"]), [gone])
    order_deletes(dec.deletes, before.depends_on)
    network = spec.get("network")
    given = network.get("name") if isinstance(network, dict) else None
    name = network_name(stack_name, given if isinstance(given, str) else None)
    remove_from = {h for h, o in observed.items() if name in o.networks}
    network_nodes(dec.graph, stack_name, NetworkSpec(name=name), {}, remove_from)
    notes, tasks = plan_destroy_volumes(dec.graph, stack_name, observed, remove=volumes), dec.graph.tasks()
    return Plan(
        stack=stack_name,
        destroy=True,
        actions=_actions(dec),
        tasks=tasks,
        placements={},
        hosts=sorted(observed),
        fingerprint=index.fingerprint,
        stack_spec=spec,
        inventory=inventory.dump() if inventory else {},
        notes=notes,
    )
