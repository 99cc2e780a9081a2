"""Paths, locks, pid files and process handling shared by the lab.

Every process the lab stops is identified by a pid file the lab wrote (or the daemon wrote at the
lab's request) and checked against its command line first, so a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

STATE_DIR = Path(os.environ.get("GRAPHIUM_LAB_DIR", "/var/lib/graphium-lab"))
RUN_DIR = Path(os.environ.get("GRAPHIUM_LAB_RUN", "/run/graphium-lab"))

REQUIRED_BINARIES = ("dockerd", "containerd", "busybox", "sshd", "docker-registry", "ip", "curl", "nsenter")


class LabError(RuntimeError):
    """A lab component could not be brought up or torn down."""


def ensure_packages() -> None:
    """Install the lab's apt packages with lab/install.sh when a required binary is missing."""
    if all(shutil.which(b) or Path("/usr/sbin", b).exists() for b in REQUIRED_BINARIES):
        return
    run(["sh", str(Path(__file__).with_name("install.sh"))], capture=False)


def run(cmd: Sequence[str], *, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell); raise LabError with its stderr when it fails and check is set."""
    proc = subprocess.run(list(cmd), text=True, capture_output=capture, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({proc.returncode}): {(proc.stderr or '').strip()}")
    return proc


@contextlib.contextmanager
def locked(name: str = "lab") -> Iterator[None]:
    """Serialise lab operations across processes (concurrent test sessions share one lab)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    """True if pid runs (a zombie child of ours is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def owned_pid(pidfile: Path, marker: str) -> int | None:
    """The live pid recorded in pidfile, if its command line contains marker (guards pid reuse)."""
    pid = read_pid(pidfile)
    if pid is None or not alive(pid) or marker not in cmdline(pid):
        return None
    return pid


def wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def terminate(pids: Sequence[int], timeout: float = 10.0) -> None:
    """SIGTERM the given pids, wait, then SIGKILL whatever is left."""
    pids = [p for p in pids if alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if wait_gone(pids, timeout):
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(pids, 5.0)


def unmount_under(prefix: Path) -> None:
    """Lazily unmount prefix and every mount below it (a dead engine's data-root bind, overlays, nsfs)."""
    root = str(prefix).rstrip("/") + "/"
    points = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == root[:-1] or point.startswith(root):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        run(["umount", "-l", point], check=False)


def remove_tree(path: Path) -> None:
    if path.exists():
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)


def spawn(cmd: Sequence[str], log: Path) -> int:
    """Start a long-lived daemon in its own session with output to log; return its pid."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}  # lab traffic stays local
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, env=env
        )
    return proc.pid


def tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for(
    check: Callable[[], bool], what: str, timeout: float, pid: int | None = None, log: Path | None = None
) -> None:
    """Poll check() until true; fail early if pid dies, quoting the tail of log."""
    deadline = time.monotonic() + timeout
    while not check():
        if (pid is not None and not alive(pid)) or time.monotonic() > deadline:
            tail = ""
            if log is not None and log.exists():
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            state = "exited" if pid is not None and not alive(pid) else "timed out"
            raise LabError(f"{what} {state}\n{tail}")
        time.sleep(0.02)
