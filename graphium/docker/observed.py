"""Reading the engine's answers: a container inspect turned into graphium's observed state.

Pure functions over the JSON of ``GET /containers/{id}/json``, so what the planner compares for
drift is tested from data: :func:`observed_container` (labels, spec hashes, live config),
:func:`live_config` (the normalised fields), and the quotes an error gives of a container's health.
"""

from __future__ import annotations

import json
from typing import Any

from graphium.plan.model import (
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_SPEC_FIELDS,
    LABEL_SPEC_HASH,
    LABEL_STACK,
    LiveConfig,
    ObservedContainer,
    OtherContainer,
)
from graphium.stack.models import RestartPolicy

__all__ = [
    "clip",
    "crash_report",
    "last_health",
    "live_config",
    "observed_container",
    "other_container",
    "split_containers",
]

OUTPUT_LIMIT = 800  # characters of health output / logs quoted in an error


def clip(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The end of ``text`` (where the reason usually is), at most ``limit`` characters."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def observed_container(info: dict[str, Any], host_id: str) -> ObservedContainer:
    """A graphium-managed container as an inspect shows it; a garbled field-hash label reads as
    no field hashes (the planner then names no fields, rather than failing the observation)."""
    config = info.get("Config") or {}
    labels: dict[str, str] = config.get("Labels") or {}
    try:
        field_hashes = json.loads(labels.get(LABEL_SPEC_FIELDS, "{}"))
        if not isinstance(field_hashes, dict):
            field_hashes = {}
    except ValueError:
        field_hashes = {}
    return ObservedContainer(
        id=info["Id"],
        docker_name=str(info.get("Name", "")).lstrip("/"),
        host=host_id,
        stack=labels.get(LABEL_STACK, ""),
        name=labels.get(LABEL_CONTAINER, ""),
        spec_hash=labels.get(LABEL_SPEC_HASH),
        field_hashes={str(k): str(v) for k, v in field_hashes.items()},
        live=live_config(info),
    )


def split_containers(
    summaries: list[dict[str, Any]], stack: str | None
) -> tuple[list[str], list[OtherContainer]]:
    """From ``GET /containers/json?all=1``: the ids of graphium's containers (of ``stack``, or all)
    to inspect, and every other container as what it could conflict with."""
    mine: list[str] = []
    others: list[OtherContainer] = []
    for summary in summaries:
        labels = summary.get("Labels") or {}
        managed = labels.get(LABEL_MANAGED) == "true"
        if managed and (stack is None or labels.get(LABEL_STACK) == stack):
            mine.append(str(summary["Id"]))
        else:
            others.append(other_container(summary))
    others.sort(key=lambda o: o.docker_name)
    return mine, others


def other_container(summary: dict[str, Any]) -> OtherContainer:
    """A container's list entry: its name, owner and published ports (``80/tcp->0.0.0.0:8080``)."""
    labels = summary.get("Labels") or {}
    names = summary.get("Names") or [""]
    ports = sorted(
        {
            f"{p.get('PrivatePort')}/{p.get('Type') or 'tcp'}->{p.get('IP') or ''}:{p['PublicPort']}"
            for p in summary.get("Ports") or []
            if p.get("PublicPort")
        }
    )
    return OtherContainer(
        id=str(summary["Id"]),
        docker_name=str(names[0]).lstrip("/"),
        stack=labels.get(LABEL_STACK) if labels.get(LABEL_MANAGED) == "true" else None,
        state=str(summary.get("State") or ""),
        port_bindings=ports,
    )


def live_config(info: dict[str, Any]) -> LiveConfig:
    """Normalise a container inspect into the fields the planner compares for drift."""
    config = info.get("Config") or {}
    host_config = info.get("HostConfig") or {}
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    bindings = sorted(
        f"{port}->{binding.get('HostIp') or ''}:{binding.get('HostPort') or ''}"
        for port, port_bindings in (host_config.get("PortBindings") or {}).items()
        for binding in port_bindings or []
    )
    policy = host_config.get("RestartPolicy") or {}
    try:
        restart = RestartPolicy(
            name=policy.get("Name") or "no", maximum_retry_count=int(policy.get("MaximumRetryCount") or 0)
        )
    except ValueError:
        restart = RestartPolicy()
    networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
    return LiveConfig(
        state=str(state.get("Status", "unknown")),
        health=str(health) if health else None,
        image=str(config.get("Image", "")),
        env=list(config.get("Env") or []),
        port_bindings=bindings,
        restart_policy=restart,
        nano_cpus=int(host_config.get("NanoCpus") or 0),
        memory=int(host_config.get("Memory") or 0),
        memory_reservation=int(host_config.get("MemoryReservation") or 0),
        networks=sorted(networks),
    )


def last_health(health: dict[str, Any] | None) -> str:
    """The latest health check's exit code and output, for an error message."""
    log = (health or {}).get("Log") or []
    if not log:
        return "no check has run yet"
    last = log[-1]
    output = clip(str(last.get("Output") or ""), 400)
    return f"exit code {last.get('ExitCode')}" + (f", output: {output}" if output else "")


def crash_report(state: dict[str, Any], logs: str) -> str:
    """Why a container that should run does not, from its inspect ``State`` and its log tail."""
    status = state.get("Status", "")
    what = (
        f"exited with code {state.get('ExitCode')}"
        if status in ("exited", "dead")
        else f"crashed and is restarting (last exit code {state.get('ExitCode')})"
    )
    health = state.get("Health") or None
    detail = f"; error: {state['Error']}" if state.get("Error") else ""
    detail += f"; last health check: {last_health(health)}" if health else ""
    detail += f"; logs: {logs}" if logs else ""
    return what + detail
