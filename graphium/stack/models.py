"""The desired-state model: stacks, containers and hosts, as validated pydantic objects.

These are the canonical shapes every later stage works on. The loader turns the JSON-LD document
(in any of its equivalent spellings) into plain dicts with these camelCase keys and validates
them here; nothing downstream ever looks at JSON-LD again.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from graphium.stack import rules
from graphium.stack.masking import SECRET_KEY_RE, MaskedRepr

_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|us|ns|s|m|h)\s*)+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def _amount(value: Any, what: str, expected: str, number: Any, text: Any) -> Any:
    """A non-negative amount from a number (``number(value)``) or a string (``text(value)``, None
    when it does not parse); ``what`` and ``expected`` word the errors."""
    if isinstance(value, bool):
        raise ValueError(f"expected {what}: {expected}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{what} cannot be negative")
        return number(value)
    if isinstance(value, str):
        parsed = text(value)
        if parsed is not None:
            return parsed
    raise ValueError(f"expected {what}: {expected}, got {value!r}")


def _duration_text(value: str) -> float | None:
    text = value.strip()
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = None
    if seconds is not None and not seconds < 0:  # a negative number is no duration (nor unit-less)
        return seconds
    if _DURATION_RE.match(text):
        return sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
    return None


def _size_text(value: str) -> int | None:
    match = _SIZE_RE.match(value)
    if match is None:
        return None
    unit = (match.group(2) or "").lower().rstrip("b").rstrip("i")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def parse_duration(value: Any) -> float:
    """Seconds from a number or a Go/Docker-style string such as ``"30s"``, ``"1m30s"``, ``"500ms"``."""
    seconds: float = _amount(
        value, "a duration", "seconds as a number or a string like '30s'", float, _duration_text
    )
    return seconds


def parse_size(value: Any) -> int:
    """Bytes from a number or a string such as ``"512M"``, ``"1g"``, ``"256MiB"`` (binary units)."""
    size: int = _amount(value, "a size", "bytes as a number or a string like '512M'", int, _size_text)
    return size


def parse_cpus(value: Any) -> float:
    """CPUs as a float from a number or a numeric string (``"0.5"``)."""
    if isinstance(value, bool):
        raise ValueError("expected a number of CPUs such as 0.5")
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of CPUs such as 0.5, got {value!r}") from None
    if cpus < 0:
        raise ValueError("a number of CPUs cannot be negative")
    return cpus


Duration = Annotated[float, BeforeValidator(parse_duration)]
EnvName = Annotated[str, AfterValidator(rules.check_env_name)]
Size = Annotated[int, BeforeValidator(parse_size)]
Cpus = Annotated[float, BeforeValidator(parse_cpus)]


class Model(MaskedRepr, BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown keys rejected, immutable; ``repr``
    masks secrets."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    def dump(self) -> dict[str, Any]:
        """The canonical JSON form (camelCase keys, defaults omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


class Protocol_(str, Enum):
    tcp = "tcp"
    udp = "udp"
    sctp = "sctp"


class PortMapping(Model):
    container_port: int = Field(ge=1, le=65535)
    host_port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol_ = Protocol_.tcp
    host_ip: str | None = Field(default=None, alias="hostIP")

    @field_validator("protocol", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("host_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        return rules.check_host_ip(value)


class MountType(str, Enum):
    bind = "bind"
    volume = "volume"
    tmpfs = "tmpfs"


class Mount(Model):
    """A bind mount (``source`` is a host path), a named volume, or a tmpfs."""

    type: MountType = MountType.volume
    source: str | None = None
    target: str
    read_only: bool = False
    driver: str | None = None
    external: bool = False  # a named volume made outside graphium: used as named, never removed

    @model_validator(mode="after")
    def _source_fits_type(self) -> Mount:
        if self.type is MountType.bind and not (
            self.source and (self.source.startswith("/") or rules.has_template(self.source))
        ):
            raise ValueError("a bind mount needs 'source', an absolute path on the host")
        if self.type is MountType.tmpfs and self.source:
            raise ValueError("a tmpfs mount takes no 'source'")
        if self.driver and self.type is not MountType.volume:
            raise ValueError("'driver' applies only to volume mounts")
        if self.external and not (self.type is MountType.volume and self.source):
            raise ValueError("'external' applies only to named volume mounts (type volume with 'source')")
        rules.check_mount_target(self.target)
        if self.type is MountType.bind and self.source:
            rules.check_bind_source(self.source, self.read_only)
        if self.type is MountType.volume and self.source:
            rules.check_volume_name(self.source)
        return self

    def volume_name(self, stack: str) -> str | None:
        """The Docker name of the named volume mounted: ``<stack>-<source>``, the stack's own, or
        ``source`` as written when external; None for a bind, a tmpfs or an anonymous volume."""
        if self.type is not MountType.volume or not self.source:
            return None
        return self.source if self.external else f"{stack}-{self.source}"


RestartName = Literal["no", "always", "unless-stopped", "on-failure"]


class RestartPolicy(Model):
    name: RestartName = "no"
    maximum_retry_count: int = Field(default=0, ge=0)


class ResourceAmounts(Model):
    cpus: Cpus | None = None
    memory: Size | None = None


class Resources(Model):
    """Limits are enforced by the engine; reservations steer placement (and set a soft memory limit)."""

    limits: ResourceAmounts = ResourceAmounts()
    reservations: ResourceAmounts = ResourceAmounts()

    def placement_demand(self) -> ResourceAmounts:
        """What placement counts against a host's capacity: reservations, else limits."""
        return ResourceAmounts(
            cpus=self.reservations.cpus if self.reservations.cpus is not None else self.limits.cpus,
            memory=self.reservations.memory if self.reservations.memory is not None else self.limits.memory,
        )


class HttpProbe(Model):
    port: int = Field(ge=1, le=65535)
    path: str = "/"


class TcpProbe(Model):
    port: int = Field(ge=1, le=65535)


class HealthCheck(Model):
    """Docker-style ``test`` command, or an ``http``/``tcp`` probe run inside the container."""

    test: list[str] | None = None
    http: HttpProbe | None = None
    tcp: TcpProbe | None = None
    interval: Duration = 30.0
    timeout: Duration = 30.0
    retries: int = Field(default=3, ge=0)
    start_period: Duration = 0.0

    @field_validator("interval", "timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be more than 0 seconds (the engine would take 0 as its own default)")
        return value

    @field_validator("test", mode="before")
    @classmethod
    def _shell_string(cls, value: Any) -> Any:
        return ["CMD-SHELL", value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        given = [k for k in ("test", "http", "tcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'test', 'http' or 'tcp'")
        if self.test is not None and (not self.test or self.test[0] not in ("CMD", "CMD-SHELL", "NONE")):
            raise ValueError('\'test\' must start with "CMD", "CMD-SHELL" or "NONE"')
        return self

    def docker_test(self) -> list[str]:
        """The check as the engine runs it; probes use the busybox/alpine ``wget`` and ``nc``."""
        if self.test is not None:
            return list(self.test)
        if self.http is not None:
            url = f"http://127.0.0.1:{self.http.port}{self.http.path}"
            return ["CMD-SHELL", f"wget -q -O /dev/null '{url}' || exit 1"]
        assert self.tcp is not None
        # busybox builds without -z (Debian's) take `-e true`: connect, then close at once
        port = self.tcp.port
        return ["CMD-SHELL", f"nc -z 127.0.0.1 {port} 2>/dev/null || nc 127.0.0.1 {port} -e true || exit 1"]


class PullPolicy(str, Enum):
    always = "always"
    if_not_present = "if-not-present"
    never = "never"


UpdateOrder = Literal["stop-first", "start-first"]
FailureAction = Literal["rollback", "pause", "continue"]


class UpdatePolicy(Model):
    """How a changed container's replicas are replaced: ``parallelism`` at a time, each batch
    healthy (and still so ``monitor`` seconds later) before the next starts ``delay`` seconds on.

    ``start-first`` starts the new container before stopping the old one (no gap), where no fixed
    host port stands in the way; ``failureAction`` says what a failing batch does to the rollout:
    ``rollback`` restores the batches already replaced, ``pause`` stops there, ``continue`` goes on.
    """

    parallelism: int = Field(default=1, ge=1)
    delay: Duration = 0.0
    order: UpdateOrder = "stop-first"
    failure_action: FailureAction = "rollback"
    monitor: Duration = 0.0


DEFAULT_UPDATE = UpdatePolicy()


class ContainerSpec(Model):
    """One container as the user declared it (before replicas are expanded and ``${VAR}`` filled)."""

    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    image: Annotated[str, AfterValidator(rules.check_image)]
    description: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    environment: dict[EnvName, str] = {}
    sensitive: list[str] = []
    ports: list[PortMapping] = []
    mounts: list[Mount] = []
    restart_policy: RestartPolicy = RestartPolicy()
    labels: dict[str, str] = {}
    resources: Resources = Resources()
    health_check: HealthCheck | None = None
    depends_on: list[str] = []
    located_in_host: str | None = None
    user: Annotated[str | None, AfterValidator(rules.check_user)] = None
    working_dir: Annotated[str | None, AfterValidator(rules.check_working_dir)] = None
    replicas: Annotated[int, AfterValidator(rules.check_replicas)] = Field(default=1, ge=0)
    pull_policy: PullPolicy | None = None
    stop_timeout: Duration = 10.0
    update: UpdatePolicy | None = None  # None: the defaults (no per-container copy of them to validate)

    @field_validator("mounts")
    @classmethod
    def _distinct_targets(cls, mounts: list[Mount]) -> list[Mount]:
        rules.check_distinct_targets([m.target for m in mounts])
        return mounts

    @model_validator(mode="after")
    def _args_need_command(self) -> ContainerSpec:
        if self.args is not None and self.command is None:
            raise ValueError(
                "'args' extends 'command'; give 'command' too (the image's own CMD is unknown here)"
            )
        return self

    def update_policy(self) -> UpdatePolicy:
        """The container's update policy, its defaults where it gives none."""
        return self.update or DEFAULT_UPDATE

    def secret_keys(self) -> set[str]:
        """Environment keys whose values must never be shown: marked sensitive, or named like a secret."""
        return {k for k in self.environment if k in self.sensitive or SECRET_KEY_RE.search(k)}


class PlacementStrategyName(str, Enum):
    manual = "manual"
    spread = "spread"
    binpack = "binpack"


class Constraint(Model):
    """A host-label constraint: ``label`` must (``==``) or must not (``!=``) equal ``value``."""

    label: str
    op: Literal["==", "!="] = "=="
    value: str


class Deployment(Model):
    placement_strategy: PlacementStrategyName = PlacementStrategyName.manual
    constraints: list[Constraint] = []
    mode: Literal["single-host", "multi-host"] = "multi-host"
    network_mode: Literal["host-port"] = "host-port"
    comment: str | None = None


class NetworkSpec(Model):
    """The bridge network graphium creates on every host the stack uses."""

    name: str | None = None
    driver: Literal["bridge"] = "bridge"
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    labels: dict[str, str] = {}

    @model_validator(mode="after")
    def _addressing(self) -> NetworkSpec:
        rules.check_network(self.subnet, self.gateway, self.ip_range)
        return self


def network_name(stack: str, name: str | None = None) -> str:
    """The name of a stack's network: the one its spec gives, else the default ``<stack>-net``.

    The one place the default is spelled; the planner, the Docker engine and stored records use it.
    """
    return name or f"{stack}-net"


class StackSpec(Model):
    name: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    description: str | None = None
    located_in_host: str | None = None
    deployment: Deployment = Deployment()
    network: NetworkSpec | None = None
    pull_policy: PullPolicy = PullPolicy.if_not_present
    containers: list[ContainerSpec] = []

    def network_name(self) -> str:
        return network_name(self.name, self.network.name if self.network else None)

    @model_validator(mode="after")
    def _volumes_agree(self) -> StackSpec:
        """Every mount of one named volume says the same about it (external, driver)."""
        seen: dict[str, tuple[bool, str | None]] = {}
        for container in self.containers:
            for mount in container.mounts:
                if mount.volume_name(self.name) is None or mount.source is None:
                    continue
                said = (mount.external, mount.driver)
                if seen.setdefault(mount.source, said) != said:
                    raise ValueError(
                        f"volume {mount.source!r} is mounted with different 'external' or 'driver' "
                        f"settings (container {container.name}); give every mount of it the same"
                    )
        return self


class Connection(str, Enum):
    local = "local"
    ssh = "ssh"
    agent = "agent"


class Capacity(Model):
    cpus: Cpus | None = None
    memory: Size | None = None


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class Host(Model):
    id: str = Field(alias="@id", min_length=1)
    address: str | None = None
    connection: Connection = Connection.local
    docker_host: str | None = None
    ssh_user: str | None = None
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_key: str | None = None
    known_hosts: str | None = None
    labels: dict[str, str] = {}
    capacity: Capacity = Capacity()

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return rules.check_address(value)

    @model_validator(mode="after")
    def _ssh_needs_address(self) -> Host:
        if self.connection is Connection.ssh and not self.address:
            raise ValueError("an ssh host needs 'address'")
        return self

    @field_validator("docker_host")
    @classmethod
    def _engine_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return rules.check_docker_host(value, info.data.get("connection") is Connection.ssh)


class Inventory(Model):
    hosts: list[Host] = []

    def by_id(self) -> dict[str, Host]:
        return {h.id: h for h in self.hosts}
