"""Who holds a lease: the machine (hostname and boot id), the process (pid and its start time).

A lease normally ends when it expires. One held by a process that is provably dead (same machine,
same boot, and that pid gone or now another process) can be taken over at once: a killed apply
must not block the next one for a lease's length. Anything less certain (another machine, a
record without an owner) waits for the expiry.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Owner", "current_owner", "provably_dead"]

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), which
    tells a pid reused by another process; None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the command name may hold spaces
    return fields[19] if len(fields) > 19 else ""


@dataclass(frozen=True)
class Owner:
    """One holder of a lease; ``token`` tells apart two holders within one process."""

    hostname: str
    boot_id: str
    pid: int
    started: str
    token: str

    def __str__(self) -> str:
        return f"{self.hostname}/{self.boot_id}/{self.pid}/{self.started}/{self.token}"

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        parts = (text or "").split("/")
        if len(parts) != 5 or not parts[2].isdigit():
            return None
        return cls(parts[0], parts[1], int(parts[2]), parts[3], parts[4])

    def describe(self) -> str:
        """For people: ``pid 1234 on hostname``."""
        return f"pid {self.pid} on {self.hostname}"


def current_owner() -> Owner:
    """A fresh owner for this process (a new token each call)."""
    pid = os.getpid()
    return Owner(socket.gethostname(), _boot_id(), pid, _start_time(pid) or "", uuid.uuid4().hex[:8])


def provably_dead(text: str | None) -> bool:
    """Whether the owner written as ``text`` is a process of this machine, this boot, that no
    longer runs."""
    owner = Owner.parse(text)
    if owner is None or not owner.boot_id:
        return False
    if owner.hostname != socket.gethostname() or owner.boot_id != _boot_id():
        return False
    started = _start_time(owner.pid)
    return started is None or (bool(owner.started) and started != owner.started)
