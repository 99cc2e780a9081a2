"""Plans are data: desired containers, observed containers, actions and the tasks they expand to.

A :class:`Plan` is what the planner returns, what ``plan -o`` saves and what ``apply plan.json``
runs. It carries a fingerprint of the state it was computed from so that a stale plan is refused.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from graphium.records.task import Task
from graphium.stack.masking import MaskedRepr, collect_secrets
from graphium.stack.models import ContainerSpec, NetworkSpec, PullPolicy, RestartPolicy

# 2: actions carry a reason code and structured field changes; 3: saved plans hold placeholders,
# ``(sensitive:NAME)``, for the values of sensitive variables, filled again at apply
PLAN_SCHEMA_VERSION = 3

LABEL_MANAGED = "graphium.managed"
LABEL_STACK = "graphium.stack"
LABEL_CONTAINER = "graphium.container"
LABEL_HOST = "graphium.host"
LABEL_SPEC_HASH = "graphium.spec-hash"
LABEL_VOLUME = "graphium.volume"  # a stack-owned volume's name in its stack file
# per-field hashes, so a replace can name the fields that changed without storing any value
LABEL_SPEC_FIELDS = "graphium.spec-fields"


class _Data(MaskedRepr, BaseModel):
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
    network: NetworkSpec  # the stack's network, always named (the planner names it)
    pull_policy: PullPolicy
    spec_hash: str
    field_hashes: dict[str, str]

    @field_validator("network")
    @classmethod
    def _named(cls, network: NetworkSpec) -> NetworkSpec:
        if not network.name:
            raise ValueError("name must be set: a container joins its stack's named network")
        return network

    @property
    def docker_name(self) -> str:
        return f"{self.stack}-{self.name}"

    @property
    def network_name(self) -> str:
        return _name_of(self.network)

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


def _name_of(network: NetworkSpec) -> str:
    """The name of a network that validation made sure is named (``model_construct`` skips that)."""
    if not network.name:
        raise ValueError("the network has no name: a container joins its stack's named network")
    return network.name


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


class OtherContainer(_Data):
    """A container on the host that is not the observed stack's: what it could conflict with.

    ``stack`` is its ``graphium.stack`` label (None when graphium does not manage it);
    ``port_bindings`` are the host ports it publishes now, in :class:`LiveConfig`'s form.
    """

    id: str
    docker_name: str
    stack: str | None = None
    state: str = ""
    port_bindings: list[str] = []


class ObservedVolume(_Data):
    """A volume on the host; ``stack`` is its ``graphium.stack`` label, None when not graphium's."""

    name: str
    stack: str | None = None
    driver: str = "local"


class ObservedHost(_Data):
    """One host's graphium-managed containers and networks, or why they could not be read.

    ``others`` (every other container, managed or not) and ``volumes`` (every volume) are what a
    plan checks for conflicts and for the volumes it owns or expects.
    """

    host: str
    containers: list[ObservedContainer] = []
    networks: list[str] = []  # names of graphium-managed networks present
    others: list[OtherContainer] = []
    volumes: list[ObservedVolume] = []
    error: str | None = None

    def volume_names(self) -> set[str]:
        return {v.name for v in self.volumes}

    def of_stack(self, stack: str) -> ObservedHost:
        """This observation as one of ``stack`` sees it: other stacks' containers among the others."""
        theirs = [
            OtherContainer(
                id=c.id,
                docker_name=c.docker_name,
                stack=c.stack,
                state=c.live.state,
                port_bindings=c.live.port_bindings if c.live.state == "running" else [],
            )
            for c in self.containers
            if c.stack != stack
        ]
        return self.model_copy(
            update={
                "containers": [c for c in self.containers if c.stack == stack],
                "others": sorted([*self.others, *theirs], key=lambda o: o.docker_name),
            }
        )


class ActionKind(str, Enum):
    create = "create"
    replace = "replace"  # type: ignore[assignment]  # shadows str.replace; the value is the contract
    keep = "keep"
    remove = "remove"
    drift = "drift"


class ActionReason(str, Enum):
    """Why an action is what it is: one code per action, for machines (``plan --json``, scripts).

    Like Terraform's ``ActionReason``: ``Action.reasons`` holds the human sentence(s) and
    ``Action.changes`` the fields; the code says which branch of the planner decided.
    """

    # create
    new_instance = "new-instance"  # no container of this instance exists on any host
    # keep
    unchanged = "unchanged"  # spec hash matches and inspect shows nothing changed out of band
    # replace (the spec hash on the container differs from the desired one)
    config_changed = "config-changed"  # changes: the hashed fields that differ (old known from the record)
    spec_hash_missing = "spec-hash-missing"  # the container has no spec-hash label: nothing to compare
    old_hash_version = "old-hash-version"  # labelled by another hash version: fields cannot be compared
    host_changed = "host-changed"  # placed on another host: created there, removed here; changes: host
    # drift (spec hash matches, the live container does not)
    not_running = "not-running"  # only its state differs (exited, created, paused...); changes: state
    changed_out_of_band = "changed-out-of-band"  # inspect differs from the spec; changes: live -> desired
    renamed = "renamed"  # found under another Docker name
    # graphium's own leftover of an interrupted replace: set aside, or created and never started
    interrupted_replace = "interrupted-replace"
    # remove
    removed_from_stack = "removed-from-stack"  # its container is no longer declared in the stack
    # declared still, but no longer one of its instances: fewer replicas, or 1 <-> N renamed web/web-1
    replicas_changed = "replicas-changed"
    duplicate = "duplicate"  # a second container of one instance, on another host
    replace_leftover = "replace-leftover"  # ``<name>-replaced-<id>`` left beside the instance by a replace
    stack_destroyed = "stack-destroyed"  # ``plan --destroy``: every container of the stack goes

    @property
    def kind(self) -> ActionKind:
        """The one action kind this reason leads to."""
        return _REASON_KIND[self]


_REASON_KIND = {
    ActionReason.new_instance: ActionKind.create,
    ActionReason.unchanged: ActionKind.keep,
    ActionReason.config_changed: ActionKind.replace,
    ActionReason.spec_hash_missing: ActionKind.replace,
    ActionReason.old_hash_version: ActionKind.replace,
    ActionReason.host_changed: ActionKind.replace,
    ActionReason.not_running: ActionKind.drift,
    ActionReason.changed_out_of_band: ActionKind.drift,
    ActionReason.renamed: ActionKind.drift,
    ActionReason.interrupted_replace: ActionKind.drift,
    ActionReason.removed_from_stack: ActionKind.remove,
    ActionReason.replicas_changed: ActionKind.remove,
    ActionReason.duplicate: ActionKind.remove,
    ActionReason.replace_leftover: ActionKind.remove,
    ActionReason.stack_destroyed: ActionKind.remove,
}


class FieldChange(_Data):
    """One field an action changes: ``old`` is what the host has now, ``new`` what it will have.

    ``field`` is a path in the stack format (``image``, ``restartPolicy``, ``environment.MODE``,
    ``resources.limits.memory``), or what inspect reports (``state``, ``portBindings``,
    ``networks``, ``dockerName``), or ``host`` (a move) or ``specHash`` (hashes that cannot be
    compared field by field). Secret values read as ``"(sensitive)"``
    (:data:`graphium.stack.secrets.MARKER`) and set ``sensitive``. ``old_known`` is false when
    the host recorded only a hash of the field and the stored record does not hold the value
    that hash was taken of: ``old`` is then None.
    """

    field: str
    old: Any = None
    new: Any = None
    old_known: bool = True
    sensitive: bool = False


class Action(_Data):
    """One container's fate in a plan, with the reasons a person needs to trust it.

    ``reason`` and ``changes`` are the machine-readable account; ``reasons`` is human text (for
    replace, the fields that changed; for drift, sentences about what changed out of band) and
    is not meant to be parsed.
    """

    kind: ActionKind
    reason: ActionReason
    stack: str
    name: str
    host: str
    docker_name: str
    reasons: list[str] = []
    changes: list[FieldChange] = []
    task_ids: list[str] = []


class Rollout(_Data):
    """A rolling update of one declared container, as it will run: its update policy, its batches
    of instance names (each healthy before the next starts), and notes (such as a start-first
    that a fixed host port turns into stop-first)."""

    container: str
    parallelism: int
    delay: float
    order: str
    failure_action: str
    monitor: float
    batches: list[list[str]]
    notes: list[str] = []


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
    rollouts: list[Rollout] = []  # rolling updates of containers whose replicas are replaced
    notes: list[str] = []  # what a person should know that no task does (volumes a destroy keeps)
    # sensitive variable -> value from the environment; never serialised (a saved plan holds
    # placeholders for them, see graphium.plan.saved)
    secret_variables: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    def repr_secrets(self) -> set[str]:
        return self.secret_values()

    def secret_values(self) -> set[str]:
        """Every secret value the plan holds, to mask wherever it would be shown: the values of
        sensitive variables, and the secret environment values of its containers."""
        found = {v for v in self.secret_variables.values() if v}
        found |= collect_secrets([t.payload for t in self.tasks])
        return found | collect_secrets(self.stack_spec)

    # the stack as written (``${VAR}`` unresolved), recorded as a stack version once applied well
    definition: dict[str, Any] = {}
    rollback_of: int | None = None  # a rollback's plan: the number of the version it applies again
    variables: dict[str, str] = {}  # values of the definition's non-secret variables, for its version

    @property
    def has_changes(self) -> bool:
        return bool(self.tasks)

    def counts(self) -> dict[str, int]:
        out = {k.value: 0 for k in ActionKind}
        for action in self.actions:
            out[action.kind.value] += 1
        return out
