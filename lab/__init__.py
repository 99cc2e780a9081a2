"""graphium's test lab: a local Docker engine and a multi-host lab of network namespaces.

Not part of the installed package; run `python -m lab --help` from the repository root.
"""

from __future__ import annotations

from . import _lease
from . import engine as _engine
from ._proc import RUN_DIR, STATE_DIR, LabError, locked
from .engine import LOCAL, REGISTRY, Engine
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


__all__ = [
    "IMAGES",
    "LOCAL",
    "REGISTRY",
    "RUN_DIR",
    "STATE_DIR",
    "Engine",
    "LabError",
    "acquire_engine",
    "claim_engine",
    "engine_running",
    "ensure_engine",
    "release_engine",
    "stop_engine",
]
