"""graphium's test lab: a local Docker engine and a multi-host lab of network namespaces.

Not part of the installed package; run `python -m lab --help` from the repository root.
"""

from __future__ import annotations

from . import _lease
from . import engine as _engine
from . import extra as _extra
from . import hosts as _hosts
from ._proc import RUN_DIR, STATE_DIR, LabError, locked
from .engine import LOCAL, REGISTRY, Engine
from .hosts import BRIDGE_ADDRESS, LabHost, LabInfo
from .images import IMAGES


def ensure_engine() -> str:
    """Start (or reuse) the root-namespace engine with the test images; return its DOCKER_HOST url."""
    with locked():
        _engine.start(LOCAL)
    return LOCAL.url


def engine_running() -> bool:
    """True if the root-namespace engine answers."""
    return LOCAL.healthy()


def stop_engine() -> bool:
    """Stop the root-namespace engine (and its containerd); True if it was running."""
    with locked():
        _lease.clear("local")
        return _engine.stop(LOCAL)


def claim_engine() -> None:
    """Mark the engine as started by hand, so test sessions leave it running."""
    _lease.claim("local")


def acquire_engine() -> str:
    """ensure_engine() for a test session: take a lease, remember whether this session started it."""
    with locked():
        started = _engine.start(LOCAL)
        _lease.acquire("local", started)
    return LOCAL.url


def release_engine() -> bool:
    """Drop the session's lease; stop the engine if a session started it and nobody else uses it."""
    with locked():
        if not _lease.release("local"):
            return False
        _lease.clear("local")
        return _engine.stop(LOCAL)


def ensure_lab(hosts: int = 3, registry: bool = False) -> LabInfo:
    """Bring up (or reuse) the multi-host lab with at least `hosts` hosts; return how to reach it."""
    with locked():
        return _hosts.up(hosts, registry)[0]


def lab_running() -> bool:
    """True if the lab has hosts and all of them are healthy."""
    hosts = _hosts.status()["hosts"]
    return bool(hosts) and all(h["healthy"] for h in hosts)


def lab_info() -> LabInfo:
    """Info on the lab as it currently exists (without starting anything)."""
    return _hosts.info()


def teardown(purge: bool = False) -> None:
    """Tear the whole multi-host lab down (engines, sshd, registry, namespaces, veths, bridge).

    With purge, also delete its keys, known_hosts, engine data roots and registry storage.
    """
    with locked():
        _lease.clear("lab")
        _hosts.down(purge)


def status() -> dict[str, object]:
    """Health of the lab's bridge, registry and hosts."""
    return _hosts.status()


def stop_host_engine(host_id: str) -> bool:
    """Stop one lab host's engine (its containers are kept, as on a daemon restart)."""
    with locked():
        return _hosts.stop_engine(host_id)


def start_host_engine(host_id: str) -> bool:
    """Start one lab host's engine again; True if it had to be started."""
    with locked():
        return _hosts.start_engine(host_id)


def claim_lab() -> None:
    """Mark the lab as brought up by hand, so test sessions leave it running."""
    _lease.claim("lab")


def acquire_lab(hosts: int = 3, registry: bool = False) -> LabInfo:
    """ensure_lab() for a test session: take a lease, remember whether this session started it."""
    with locked():
        info, started = _hosts.up(hosts, registry)
        _lease.acquire("lab", started)
    return info


def release_lab() -> bool:
    """Drop the session's lease; tear the lab down if a session started it and nobody else uses it."""
    with locked():
        if not _lease.release("lab"):
            return False
        _lease.clear("lab")
        _hosts.down()
        return True


def ensure_extra_hosts(count: int) -> tuple[LabInfo, list[str]]:
    """`count` hosts beyond the lab proper, for a benchmark: test sessions never see them (see
    lab/extra.py). Takes a lease on them (two benchmarks at once share them). Returns their info
    (with an inventory file of their own) and the ids this call started."""
    with locked():
        return _extra.up(count)


def stop_extra_hosts() -> list[str]:
    """Drop this process's lease on the extra hosts; the last user tears down the extra hosts if
    one of their users started any (never a host of the lab proper). Returns the ids torn down."""
    with locked():
        return _extra.down()


def _up_exact(hosts: int, registry: bool) -> LabInfo:
    with locked():
        return _hosts.up(hosts, registry, exact=True)[0]


__all__ = [
    "BRIDGE_ADDRESS",
    "IMAGES",
    "LOCAL",
    "REGISTRY",
    "RUN_DIR",
    "STATE_DIR",
    "Engine",
    "LabError",
    "LabHost",
    "LabInfo",
    "acquire_engine",
    "acquire_lab",
    "claim_engine",
    "claim_lab",
    "engine_running",
    "ensure_engine",
    "ensure_extra_hosts",
    "ensure_lab",
    "lab_info",
    "lab_running",
    "release_engine",
    "release_lab",
    "start_host_engine",
    "status",
    "stop_engine",
    "stop_extra_hosts",
    "stop_host_engine",
    "teardown",
]
