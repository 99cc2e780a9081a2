"""Leases let concurrent test sessions share one engine or lab.

A session that uses a component holds a lease (a file named by its pid). A component started by a
session is marked autostarted; the session releasing the last live lease stops it. A component
started by hand (`python -m lab ... up`) is claimed, carries no mark and is never stopped by tests.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._proc import RUN_DIR, alive


def _dir(name: str) -> Path:
    return RUN_DIR / "leases" / name


def acquire(name: str, started: bool) -> None:
    d = _dir(name)
    d.mkdir(parents=True, exist_ok=True)
    (d / str(os.getpid())).touch()
    if started:
        (d / "autostarted").touch()


def release(name: str) -> bool:
    """Drop this process's lease; True if the caller should now stop the component."""
    d = _dir(name)
    (d / str(os.getpid())).unlink(missing_ok=True)
    live = [p for p in d.glob("[0-9]*") if alive(int(p.name))] if d.is_dir() else []
    return not live and (d / "autostarted").exists()


def claim(name: str) -> None:
    """Mark the component as started by hand: no test session will stop it."""
    (_dir(name) / "autostarted").unlink(missing_ok=True)


def clear(name: str) -> None:
    """Forget the autostart mark (the component was stopped)."""
    claim(name)
