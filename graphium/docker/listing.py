"""Reading live state and log options, purely: an inspect as ``ps`` shows it, ``--since`` values,
and the secrets a container's log lines must not show.

Tested from data; :mod:`.live` sends the requests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from graphium.errors import GraphiumError
from graphium.plan.model import LABEL_CONTAINER, LABEL_STACK
from graphium.records.live import LiveContainer
from graphium.stack.secrets import is_secret_key, redact_text

__all__ = ["env_secrets", "live_container", "mask_log_line", "parse_since", "published_ports"]

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(value: str | None) -> datetime | None:
    """An engine timestamp (RFC 3339 with nanoseconds) as an aware datetime; None for Docker's
    zero time or garbage."""
    if not value or value.startswith("0001-"):
        return None
    text = value.strip().replace("Z", "+00:00")
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$", text)
    if match:  # Python reads at most microseconds
        fraction = (match[2] or "")[:7]
        text = f"{match[1]}{fraction}{match[3]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def published_ports(info: dict[str, Any]) -> list[str]:
    """``hostIp:hostPort->containerPort/proto`` for each published port, as ``docker ps`` shows."""
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if not ports:  # a stopped container publishes nothing: show what it asks for
        ports = (info.get("HostConfig") or {}).get("PortBindings") or {}
    out = []
    for container_port, bindings in ports.items():
        for binding in bindings or []:
            host_ip = binding.get("HostIp") or "0.0.0.0"
            host_ip = f"[{host_ip}]" if ":" in host_ip else host_ip
            out.append(f"{host_ip}:{binding.get('HostPort') or ''}->{container_port}")
    return sorted(set(out))


def live_container(info: dict[str, Any], host_id: str, now: datetime) -> LiveContainer:
    """``GET /containers/{id}/json`` as one ``ps`` row, at ``now``."""
    config = info.get("Config") or {}
    labels: dict[str, str] = config.get("Labels") or {}
    state = info.get("State") or {}
    status = str(state.get("Status") or "unknown")
    started = parse_time(state.get("StartedAt"))
    running = status == "running" and started is not None
    health = (state.get("Health") or {}).get("Status")
    docker_name = str(info.get("Name", "")).lstrip("/")
    return LiveContainer(
        stack=labels.get(LABEL_STACK, ""),
        name=labels.get(LABEL_CONTAINER, "") or docker_name,
        docker_name=docker_name,
        host=host_id,
        id=str(info.get("Id", ""))[:12],
        state=status,
        health=str(health) if health else None,
        image=str(config.get("Image", "")),
        ports=published_ports(info),
        started_at=state.get("StartedAt") if started is not None else None,
        uptime_seconds=round((now - started).total_seconds(), 1) if running and started else None,
        restarts=int(info.get("RestartCount") or 0),
        exit_code=None if status in ("running", "created") else _int_or_none(state.get("ExitCode")),
    )


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_since(value: str, now: datetime) -> float:
    """``--since`` as the engine's Unix timestamp: a duration before ``now`` (``10m``, ``90s``,
    ``2h``, ``1d``), an RFC 3339 time (``2026-12-03T14:00:00Z``) or a Unix timestamp."""
    text = value.strip()
    match = _DURATION_RE.match(text)
    if match:
        return now.timestamp() - float(match[1]) * _UNITS[match[2]]
    try:
        return float(text)
    except ValueError:
        pass
    moment = parse_time(text if "T" in text else f"{text}T00:00:00Z")
    if moment is None:
        raise GraphiumError(
            f"--since {value!r}: expected a duration (10m, 90s, 2h, 1d), an RFC 3339 time "
            "(2026-12-03T14:00:00Z) or a Unix timestamp"
        )
    return moment.timestamp()


def env_secrets(env: Iterable[str]) -> set[str]:
    """The values of secret-looking variables in an engine's ``KEY=value`` env list."""
    found = set()
    for item in env:
        key, sep, value = item.partition("=")
        if sep and value and is_secret_key(key):
            found.add(value)
    return found


def mask_log_line(line: str, secrets: Iterable[str]) -> str:
    """The one masking step every log line passes before it leaves its host's reader."""
    return redact_text(line, secrets)
