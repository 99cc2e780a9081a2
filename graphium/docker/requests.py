"""The Docker Engine API requests graphium sends, built as plain data by pure functions.

In the manner of docker-py's ``types/``: :func:`container_create` turns a
:class:`~graphium.plan.model.DesiredContainer` into the exact body of ``POST /containers/create``
(container config with its host config and networking config), and :func:`network_create` turns a
network payload into the body of ``POST /networks/create``. The engine adapter only sends them, so
what a container is created with is tested from data, without a daemon.

The bodies are what docker-py's ``create_container`` / ``create_network`` built from the same
arguments before (its defaults for an attached create included, its ``None`` values left out), so
engines see the very same requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from graphium.plan.model import LABEL_MANAGED, LABEL_STACK, DesiredContainer
from graphium.plan.payloads import NetworkPayload
from graphium.stack.models import ContainerSpec, HealthCheck, Mount, MountType

__all__ = ["ContainerCreate", "NetworkCreate", "container_create", "network_create"]

_NS = 1_000_000_000

# docker-py's ContainerConfig defaults for a create that is not detached; kept so the body stays
# the one engines always received from graphium
_CREATE_DEFAULTS: dict[str, Any] = {
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "AttachStdin": False,
    "AttachStdout": True,
    "AttachStderr": True,
    "NetworkDisabled": False,
}


@dataclass(frozen=True)
class ContainerCreate:
    """``POST /containers/create?name=<name>`` with ``config`` as the JSON body."""

    name: str
    config: dict[str, Any]

    def dump(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config}


@dataclass(frozen=True)
class NetworkCreate:
    """``POST /networks/create`` with ``body`` as the JSON body (``body["Name"]`` is the name)."""

    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["Name"])

    def dump(self) -> dict[str, Any]:
        return {"body": self.body}


def container_create(desired: DesiredContainer) -> ContainerCreate:
    """The create request of ``desired``: attached to its stack network, labelled as graphium's."""
    spec = desired.spec
    network = desired.network_name
    command = [*spec.command, *(spec.args or [])] if spec.command is not None else None
    config: dict[str, Any] = {
        "ExposedPorts": {f"{p.container_port}/{p.protocol.value}": {} for p in spec.ports} or None,
        "User": spec.user,
        **_CREATE_DEFAULTS,
        "Env": [f"{k}={v}" for k, v in sorted(spec.environment.items())] or None,
        "Cmd": command,
        "Image": spec.image,
        "WorkingDir": spec.working_dir,
        "HostConfig": _host_config(spec, network, desired.stack),
        "NetworkingConfig": {
            "EndpointsConfig": {network: {"Aliases": sorted({desired.name, desired.declared_name})}}
        },
        "Labels": desired.labels(),
        "Healthcheck": _healthcheck(spec.health_check) if spec.health_check is not None else None,
        "StopTimeout": math.ceil(spec.stop_timeout),
    }
    return ContainerCreate(
        name=desired.docker_name, config={k: v for k, v in config.items() if v is not None}
    )


def _host_config(spec: ContainerSpec, network: str, stack: str) -> dict[str, Any]:
    limits, reservations = spec.resources.limits, spec.resources.reservations
    host: dict[str, Any] = {}
    if limits.memory:
        host["Memory"] = limits.memory
    if reservations.memory:
        host["MemoryReservation"] = reservations.memory
    host["NetworkMode"] = network
    restart: dict[str, Any] = {"Name": spec.restart_policy.name}
    if spec.restart_policy.name == "on-failure":
        restart["MaximumRetryCount"] = spec.restart_policy.maximum_retry_count
    host["RestartPolicy"] = restart
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in spec.ports:
        if p.host_port is not None:
            bindings.setdefault(f"{p.container_port}/{p.protocol.value}", []).append(
                {"HostIp": p.host_ip or "", "HostPort": str(p.host_port)}
            )
    if bindings:
        host["PortBindings"] = bindings
    if limits.cpus:
        host["NanoCpus"] = round(limits.cpus * _NS)
    if spec.mounts:
        host["Mounts"] = [_mount(m, stack) for m in spec.mounts]
    return host


def _mount(mount: Mount, stack: str) -> dict[str, Any]:
    """A ``Mounts`` entry; a tmpfs has no source (sent as null, as docker-py's ``Mount`` does); a
    named volume is the stack's own ``<stack>-<source>`` unless external."""
    out: dict[str, Any] = {
        "Target": mount.target,
        "Source": None if mount.type is MountType.tmpfs else mount.volume_name(stack) or mount.source,
        "Type": mount.type.value,
        "ReadOnly": mount.read_only,
    }
    if mount.driver and mount.type is MountType.volume:
        out["VolumeOptions"] = {"DriverConfig": {"Name": mount.driver}}
    return out


def _healthcheck(check: HealthCheck) -> dict[str, Any]:
    return {
        "Test": check.docker_test(),
        "Interval": round(check.interval * _NS),
        "Timeout": round(check.timeout * _NS),
        "Retries": check.retries,
        "StartPeriod": round(check.start_period * _NS),
    }


def network_create(payload: NetworkPayload) -> NetworkCreate:
    """The create request of the stack's bridge network: its IPAM settings, graphium's labels."""
    spec = payload.network
    body: dict[str, Any] = {"Name": payload.name, "Driver": spec.driver}
    if spec.subnet or spec.gateway or spec.ip_range:
        pool = {
            "Subnet": spec.subnet,
            "IPRange": spec.ip_range,
            "Gateway": spec.gateway,
            "AuxiliaryAddresses": None,
        }
        body["IPAM"] = {"Driver": "default", "Config": [pool]}
    body["CheckDuplicate"] = True
    body["Labels"] = {**spec.labels, LABEL_MANAGED: "true", LABEL_STACK: payload.stack}
    return NetworkCreate(body=body)
