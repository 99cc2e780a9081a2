"""What every placement strategy shares: instances, the host board, filters and failure messages.

A strategy only decides *which* of the hosts that fit gets an instance. Everything else is common
and lives here, so that every strategy honours pins, host-label constraints, host ports and
capacity the same way, keeps running instances where they are (stability), and explains a failure
in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from graphium.errors import PlacementError, PlanError
from graphium.stack.models import Constraint, ContainerSpec, Host, StackSpec

WILDCARD_IPS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class HostPort:
    """A published host port; the unit of port conflicts (a wildcard IP clashes with every IP)."""

    port: int
    protocol: str
    ip: str = ""  # "" = every address

    def clashes(self, other: HostPort) -> bool:
        return (
            self.port == other.port
            and self.protocol == other.protocol
            and (self.ip in WILDCARD_IPS or other.ip in WILDCARD_IPS or self.ip == other.ip)
        )

    def __str__(self) -> str:
        where = f"{self.ip}:" if self.ip not in WILDCARD_IPS else ""
        return f"{where}{self.port}/{self.protocol}"


@dataclass(frozen=True, slots=True)
class Instance:
    """One container instance to place: a declared container, or one replica of it."""

    name: str  # instance name: "web", or "web-2" for a replica
    declared_name: str
    spec: ContainerSpec
    pin: str | None = None  # host id the instance must go to
    ports: tuple[HostPort, ...] = ()
    cpus: float = 0.0
    memory: int = 0


def host_ports(spec: ContainerSpec) -> tuple[HostPort, ...]:
    """The host ports a container publishes (container ports without a host port publish nothing)."""
    return tuple(
        HostPort(p.host_port, p.protocol.value, p.host_ip or "")
        for p in spec.ports
        if p.host_port is not None
    )


def instance_names(spec: ContainerSpec) -> list[str]:
    """``replicas: 1`` keeps the declared name; N > 1 gives ``name-1 .. name-N``; 0 gives none."""
    if spec.replicas == 1:
        return [spec.name]
    return [f"{spec.name}-{i}" for i in range(1, spec.replicas + 1)]


def expand_instances(stack: StackSpec, *, default_pin: bool = True) -> list[Instance]:
    """Every instance of the stack in declaration order; the stack's ``locatedInHost`` as fallback pin."""
    out: list[Instance] = []
    owner: dict[str, str] = {}
    for spec in stack.containers:
        demand = spec.resources.placement_demand()
        pin = spec.located_in_host or (stack.located_in_host if default_pin else None)
        ports = host_ports(spec)
        for name in instance_names(spec):
            if name in owner:
                raise PlanError(
                    f"{spec.name}: instance name {name!r} clashes with the one from container {owner[name]!r}"
                )
            owner[name] = spec.name
            out.append(
                Instance(
                    name=name,
                    declared_name=spec.name,
                    spec=spec,
                    pin=pin,
                    ports=ports,
                    cpus=demand.cpus or 0.0,
                    memory=demand.memory or 0,
                )
            )
    return out


class PlacementStrategy(Protocol):
    """Maps every instance to a host id, or raises :class:`PlacementError` naming what cannot fit."""

    def place(
        self, instances: Sequence[Instance], hosts: Sequence[Host], current: Mapping[str, str]
    ) -> dict[str, str]: ...


def _fmt_cpus(value: float) -> str:
    return f"{value:.1f}" if value == round(value, 1) else f"{value:g}"


def _fmt_bytes(value: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{int(value)} B"


@dataclass(slots=True)
class HostState:
    """A host as placement fills it in: what is left of its capacity, and the ports taken there."""

    host: Host
    cpus_free: float  # math.inf when the host declares no CPU capacity
    memory_free: float  # math.inf when the host declares no memory capacity
    count: int = 0
    per_container: dict[str, int] = field(default_factory=dict)
    ports: dict[tuple[int, str], list[tuple[HostPort, str]]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.host.id

    def port_taken(self, instance: Instance) -> tuple[HostPort, str] | None:
        """The first of the instance's host ports already taken here, with the instance holding it."""
        for port in instance.ports:
            for held, holder in self.ports.get((port.port, port.protocol), ()):
                if held.clashes(port):
                    return port, holder
        return None

    def fullness(self, instance: Instance) -> float:
        """Share of the binding capacity dimension in use once ``instance`` is added (0 if undeclared)."""
        caps = self.host.capacity
        out = 0.0
        if caps.cpus:
            out = max(out, 1 - (self.cpus_free - instance.cpus) / caps.cpus)
        if caps.memory:
            out = max(out, 1 - (self.memory_free - instance.memory) / caps.memory)
        return round(out, 9)  # float noise must not outweigh the tie-break by host id


def constraint_failure(host: Host, constraints: Sequence[Constraint]) -> str | None:
    """The first constraint ``host`` fails, phrased with what the host actually has."""
    for c in constraints:
        have = host.labels.get(c.label)
        if (have == c.value) != (c.op == "=="):
            shown = f"{c.label}={have}" if have is not None else f"no {c.label} label"
            return f"{c.label}{c.op}{c.value} ({host.id} has {shown})"
    return None


class Board:
    """The hosts being filled, with the shared eligibility rules and failure messages."""

    def __init__(self, hosts: Sequence[Host], constraints: Sequence[Constraint]) -> None:
        self.states: dict[str, HostState] = {}
        for host in sorted(hosts, key=lambda h: h.id):
            cap = host.capacity
            self.states[host.id] = HostState(
                host,
                cpus_free=cap.cpus if cap.cpus is not None else math.inf,
                memory_free=float(cap.memory) if cap.memory is not None else math.inf,
            )
        self.constraints = list(constraints)
        self.rejected: dict[str, str] = {}  # host id -> failed constraint
        for host_id, state in self.states.items():
            failed = constraint_failure(state.host, self.constraints)
            if failed:
                self.rejected[host_id] = failed
        # hosts that satisfy the stack's constraints, sorted by id: the only candidates ever
        self.eligible = [s for h, s in self.states.items() if h not in self.rejected]
        self.placements: dict[str, str] = {}
        self.errors: list[str] = []

    def misfit(self, instance: Instance, state: HostState) -> str | None:
        """Why ``instance`` cannot go to ``state`` now (constraints, ports, capacity), or None."""
        rejected = self.rejected.get(state.id)
        if rejected:
            return f"fails constraint {rejected}"
        if instance.ports:
            taken = state.port_taken(instance)
            if taken:
                return f"hostPort {taken[0]} is already taken there by {taken[1]}"
        if instance.cpus > state.cpus_free + 1e-9:
            free = _fmt_cpus(state.cpus_free)
            return f"needs {_fmt_cpus(instance.cpus)} CPUs but only {free} are free there"
        if instance.memory > state.memory_free:
            return (
                f"needs {_fmt_bytes(instance.memory)} memory but only "
                f"{_fmt_bytes(state.memory_free)} is free there"
            )
        return None

    def fits(self, instance: Instance, state: HostState) -> bool:
        """Fast path of :meth:`misfit` for the hot loop (constraints are pre-filtered)."""
        if instance.ports and state.port_taken(instance):
            return False
        return instance.cpus <= state.cpus_free + 1e-9 and instance.memory <= state.memory_free

    def assign(self, instance: Instance, state: HostState) -> None:
        state.count += 1
        state.per_container[instance.declared_name] = state.per_container.get(instance.declared_name, 0) + 1
        state.cpus_free -= instance.cpus
        state.memory_free -= instance.memory
        for port in instance.ports:
            state.ports.setdefault((port.port, port.protocol), []).append((port, instance.name))
        self.placements[instance.name] = state.id

    def place_pinned(self, instance: Instance) -> None:
        assert instance.pin is not None
        state = self.states.get(instance.pin)
        if state is None:
            known = ", ".join(self.states) or "none"
            self.errors.append(
                f"{instance.name}: locatedInHost {instance.pin!r} is not a known host (hosts: {known})"
            )
            return
        why = self.misfit(instance, state)
        if why:
            self.errors.append(f"{instance.name}: pinned to {state.id}: {why}")
            return
        self.assign(instance, state)

    def keep_current(self, instance: Instance, current: Mapping[str, str]) -> bool:
        """Keep an instance on its current host while that host still exists and still fits it."""
        state = self.states.get(current.get(instance.name, ""))
        if state is None or self.misfit(instance, state):
            return False
        self.assign(instance, state)
        return True

    def no_fit(self, instance: Instance) -> str:
        """Explain why no host can take ``instance``, naming the constraint that failed."""
        if not self.states:
            return f"{instance.name}: no hosts in the inventory"
        if not self.eligible:
            reasons = "; ".join(self.rejected[h] for h in sorted(self.rejected))
            return f"{instance.name}: no host satisfies the stack's constraints: {reasons}"
        port_hosts: dict[str, list[str]] = {}
        cpu_hosts: list[HostState] = []
        memory_hosts: list[HostState] = []
        for state in self.eligible:
            taken = state.port_taken(instance) if instance.ports else None
            if taken:
                port_hosts.setdefault(str(taken[0]), []).append(state.id)
            elif instance.cpus > state.cpus_free + 1e-9:
                cpu_hosts.append(state)
            else:
                memory_hosts.append(state)
        parts: list[str] = []
        total = len(self.eligible)
        for port, ids in sorted(port_hosts.items()):
            if len(ids) == total:
                parts.append(f"no host left with hostPort {port} free ({total} hosts, all taken)")
            else:
                parts.append(f"hostPort {port} is taken on {', '.join(ids)}")
        if cpu_hosts:
            best = max(cpu_hosts, key=lambda s: (s.cpus_free, s.id))
            parts.append(
                f"needs {_fmt_cpus(instance.cpus)} CPUs, largest free capacity is "
                f"{_fmt_cpus(max(best.cpus_free, 0.0))} on {best.id}"
            )
        if memory_hosts:
            best = max(memory_hosts, key=lambda s: (s.memory_free, s.id))
            parts.append(
                f"needs {_fmt_bytes(instance.memory)} memory, largest free capacity is "
                f"{_fmt_bytes(max(best.memory_free, 0.0))} on {best.id}"
            )
        if self.rejected:
            parts.append(f"{len(self.rejected)} more host(s) fail the stack's constraints")
        return f"{instance.name}: " + "; ".join(parts)

    def raise_errors(self, limit: int = 20) -> None:
        """One error listing every instance that cannot be placed (the first ``limit`` of them)."""
        if self.errors:
            shown = self.errors[:limit]
            if len(self.errors) > limit:
                shown.append(f"... and {len(self.errors) - limit} more instances that cannot be placed")
            raise PlacementError("\n".join(shown))


# a chooser returns the host for an instance, None when none fits, or its own failure message
Chooser = Callable[[Instance, Board], HostState | str | None]


def place_on_board(
    instances: Sequence[Instance],
    hosts: Sequence[Host],
    current: Mapping[str, str],
    constraints: Sequence[Constraint],
    choose: Chooser,
    *,
    order: Callable[[list[Instance]], list[Instance]] | None = None,
    stable: bool = True,
) -> dict[str, str]:
    """The common placement pass: pins, then instances kept where they are, then ``choose`` the rest.

    Pins go first so that they claim their ports and capacity; instances kept in place go next so
    that a new instance never pushes a running one off its host.
    """
    board = Board(hosts, constraints)
    rest: list[Instance] = []
    for instance in instances:
        if instance.pin is not None:
            board.place_pinned(instance)
    for instance in instances:
        if instance.pin is None and not (stable and board.keep_current(instance, current)):
            rest.append(instance)
    for instance in order(rest) if order else rest:
        state = choose(instance, board)
        if state is None:
            board.errors.append(board.no_fit(instance))
        elif isinstance(state, str):
            board.errors.append(f"{instance.name}: {state}")
        else:
            board.assign(instance, state)
    board.raise_errors()
    return {i.name: board.placements[i.name] for i in instances}
