"""The attributes of a container being created or replaced, as the human plan lists them.

Every field the container gets is listed, not only its image: ports, environment (secrets
masked by the caller), mounts, restart policy, the health check with its timings, resources,
user, and whatever else the stack sets. Plain text; :mod:`graphium.cli.output` prints it.
"""

from __future__ import annotations

import json
from typing import Any

from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import redact_environment

__all__ = ["container_details"]

# fields with a row of their own below, or shown by the action itself (its name and host)
_SHOWN = frozenset(
    {
        "name",
        "image",
        "command",
        "args",
        "ports",
        "environment",
        "sensitive",
        "mounts",
        "restartPolicy",
        "healthCheck",
        "resources",
        "dependsOn",
        "locatedInHost",
        "replicas",
    }
)


def container_details(spec: ContainerSpec) -> list[tuple[str, str]]:
    """``(attribute, text)`` rows for a container being created or replaced."""
    rows = [("image", spec.image)]
    if spec.command:
        rows.append(("command", " ".join(spec.command + (spec.args or []))))
    if spec.ports:
        rows.append(("ports", _ports_text(spec)))
    if spec.environment:
        rows.append(("env", _env_text(spec)))
    if spec.mounts:
        rows.append(("mounts", ", ".join(_mount_text(m.model_dump(by_alias=True)) for m in spec.mounts)))
    policy = spec.restart_policy
    retries = f" (max {policy.maximum_retry_count})" if policy.name == "on-failure" else ""
    rows.append(("restart", f"{policy.name}{retries}"))
    if spec.health_check:
        check = spec.health_check
        timings = (
            f"interval {check.interval:g}s, timeout {check.timeout:g}s, retries {check.retries}, "
            f"start period {check.start_period:g}s"
        )
        rows.append(("health", f"{' '.join(check.docker_test())} ({timings})"))
    resources = _resources_text(spec)
    if resources:
        rows.append(("resources", resources))
    if spec.depends_on:
        rows.append(("dependsOn", ", ".join(spec.depends_on)))
    for key, value in spec.dump().items():  # every other field the stack sets
        if key not in _SHOWN:
            rows.append((key, _value_text(value)))
    return rows


def _env_text(spec: ContainerSpec) -> str:
    shown = redact_environment(spec.environment, spec.sensitive)
    return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))


def _ports_text(spec: ContainerSpec) -> str:
    parts = []
    for p in spec.ports:
        host = f"{p.host_ip}:" if p.host_ip else ""
        published = f"{host}{p.host_port}->" if p.host_port else ""
        parts.append(f"{published}{p.container_port}/{p.protocol.value}")
    return ", ".join(parts)


def _mount_text(mount: dict[str, Any]) -> str:
    kind = getattr(mount.get("type"), "value", mount.get("type"))
    text = f"{mount.get('source') or kind}:{mount.get('target')}"
    return text + (" (read-only)" if mount.get("readOnly") or mount.get("read_only") else "")


def _size(value: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value} B"


def _resources_text(spec: ContainerSpec) -> str:
    parts = []
    for name, amounts in (("limits", spec.resources.limits), ("reservations", spec.resources.reservations)):
        given = []
        if amounts.cpus is not None:
            given.append(f"cpus {amounts.cpus:g}")
        if amounts.memory is not None:
            given.append(f"memory {_size(amounts.memory)}")
        if given:
            parts.append(f"{name} {', '.join(given)}")
    return "; ".join(parts)


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_value_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)
