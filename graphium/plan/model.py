"""Plans are data: desired containers, observed containers, actions and the tasks they expand to.

A :class:`Plan` is what the planner returns, what ``plan -o`` saves and what ``apply plan.json``
runs. It carries a fingerprint of the state it was computed from so that a stale plan is refused.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graphium.records.task import Task
from graphium.stack.models import ContainerSpec, NetworkSpec, PullPolicy, RestartPolicy

PLAN_SCHEMA_VERSION = 1

LABEL_MANAGED = "graphium.managed"
LABEL_STACK = "graphium.stack"
LABEL_CONTAINER = "graphium.container"
LABEL_HOST = "graphium.host"
LABEL_SPEC_HASH = "graphium.spec-hash"
# per-field hashes, so a replace can name the fields that changed without storing any value
LABEL_SPEC_FIELDS = "graphium.spec-fields"


class _Data(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class DesiredContainer(_Data):
    """One container instance as it must exist on one host: replicas expanded, ``${VAR}`` filled."""

    stack: str
    name: str  # instance name within the stack ("web", or "web-2" for a replica)
    declared_name: str  # the name in the stack file, which dependsOn refers to
    host: str
    spec: ContainerSpec
    network: NetworkSpec  # name always set
    pull_policy: PullPolicy
    spec_hash: str
    field_hashes: dict[str, str]

    @property
    def docker_name(self) -> str:
        return f"{self.stack}-{self.name}"

    def labels(self) -> dict[str, str]:
        """The user's labels plus graphium's own, which always win."""
        import json

        return {
            **self.spec.labels,
            LABEL_MANAGED: "true",
            LABEL_STACK: self.stack,
            LABEL_CONTAINER: self.name,
            LABEL_HOST: self.host,
            LABEL_SPEC_HASH: self.spec_hash,
            LABEL_SPEC_FIELDS: json.dumps(self.field_hashes, sort_keys=True, separators=(",", ":")),
        }


class LiveConfig(_Data):
    """What inspect tells of a running container, normalised for drift detection."""

    state: str  # running, exited, created, paused, restarting, dead
    health: str | None = None  # healthy, unhealthy, starting, or None without a health check
    image: str = ""
    env: list[str] = []  # "KEY=value" as the engine reports them (image env included)
    port_bindings: list[str] = []  # sorted "80/tcp->0.0.0.0:8081" (host IP "" when unbound)
    restart_policy: RestartPolicy = RestartPolicy()
    nano_cpus: int = 0
    memory: int = 0
    memory_reservation: int = 0
    networks: list[str] = []


class ObservedContainer(_Data):
    """A graphium-managed container found on a host."""

    id: str
    docker_name: str
    host: str
    stack: str
    name: str  # graphium.container label
    spec_hash: str | None = None
    field_hashes: dict[str, str] = {}
    live: LiveConfig


class ObservedHost(_Data):
    """One host's graphium-managed containers and networks, or why they could not be read."""

    host: str
    containers: list[ObservedContainer] = []
    networks: list[str] = []  # names of graphium-managed networks present
    error: str | None = None


class ActionKind(str, Enum):
    create = "create"
    replace = "replace"  # type: ignore[assignment]  # shadows str.replace; the value is the contract
    keep = "keep"
    remove = "remove"
    drift = "drift"


class Action(_Data):
    """One container's fate in a plan, with the reasons a person needs to trust it."""

    kind: ActionKind
    stack: str
    name: str
    host: str
    docker_name: str
    reasons: list[str] = []  # for replace: the fields that changed; for drift: what changed out of band
    task_ids: list[str] = []


class Plan(_Data):
    schema_version: int = PLAN_SCHEMA_VERSION
    stack: str
    destroy: bool = False
    actions: list[Action] = []
    tasks: list[Task] = []
    placements: dict[str, str] = {}  # container instance name -> host id
    hosts: list[str] = []  # every host the plan observed
    fingerprint: str  # hash of the observed and stored state the plan was computed from
    stack_spec: dict[str, Any] = {}  # the resolved StackSpec dump, kept as the deployment record
    inventory: dict[
        str, Any
    ] = {}  # the Inventory dump the plan was made with: a saved plan is self-contained

    @property
    def has_changes(self) -> bool:
        return bool(self.tasks)

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in ActionKind}
        for action in self.actions:
            out[action.kind.value] += 1
        return out
