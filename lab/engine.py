"""Docker engines the lab runs: one in the root namespace, one per lab host namespace.

Each engine has its own data-root (persistent, under the state dir, so images survive restarts),
exec-root, pid file, config file and socket (short paths under the run dir). A healthy running
engine is reused; a dead one's stale exec-root, mounts, pid file and leftover task processes are
cleaned before a restart (otherwise dockerd fails with "timeout waiting for containerd to start").
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from . import images
from ._proc import (
    RUN_DIR,
    STATE_DIR,
    LabError,
    alive,
    cmdline,
    ensure_packages,
    owned_pid,
    read_pid,
    remove_tree,
    run,
    spawn,
    terminate,
    unmount_under,
    wait_for,
    wait_gone,
)

REGISTRY = "10.231.0.1:5000"
#: Root-namespace engine's own bridge (so it never touches a docker0 someone else uses).
LOCAL_BRIDGE, LOCAL_BIP = "gphdocker0", "10.231.1.1/24"


@dataclass(frozen=True)
class Engine:
    """Where one lab engine keeps its files; netns is None for the root-namespace engine."""

    name: str
    netns: str | None = None

    @property
    def run_dir(self) -> Path:
        return RUN_DIR / self.name

    @property
    def data_root(self) -> Path:
        return STATE_DIR / "engines" / self.name

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def sock(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def pid(self) -> int | None:
        return owned_pid(self.pidfile, str(self.exec_root))

    def containerd_pid(self) -> int | None:
        return owned_pid(self.exec_root / "containerd" / "containerd.pid", str(self.exec_root))

    def healthy(self) -> bool:
        return self.pid() is not None and ping(self.sock)


LOCAL = Engine("local")


def ping(sock: Path, timeout: float = 2.0) -> bool:
    """True if the engine on the unix socket answers /_ping."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]
    except OSError:
        return False


def _kill_stale_tasks(engine: Engine) -> None:
    """Kill container inits and shims a crashed engine left behind (their pid files are ours)."""
    tasks = engine.exec_root / "containerd" / "daemon" / "io.containerd.runtime.v2.task"
    if not tasks.is_dir():
        return
    pids = []
    for bundle in tasks.glob("*/*"):
        for name in ("init.pid", "shim.pid"):
            pid = read_pid(bundle / name)
            if pid and alive(pid) and (name == "init.pid" or bundle.name in cmdline(pid)):
                pids.append(pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_gone(pids, 5.0)


def _clean_stale(engine: Engine) -> None:
    containerd = engine.containerd_pid()
    if containerd:
        terminate([containerd], timeout=5)
    _kill_stale_tasks(engine)
    unmount_under(engine.data_root)
    remove_tree(engine.exec_root)
    for path in (engine.pidfile, engine.sock):
        path.unlink(missing_ok=True)


def _ensure_local_bridge() -> None:
    if run(["ip", "link", "show", LOCAL_BRIDGE], check=False).returncode != 0:
        run(["ip", "link", "add", LOCAL_BRIDGE, "type", "bridge"])
    if LOCAL_BIP not in run(["ip", "-o", "addr", "show", "dev", LOCAL_BRIDGE]).stdout:
        run(["ip", "addr", "add", LOCAL_BIP, "dev", LOCAL_BRIDGE])
    run(["ip", "link", "set", LOCAL_BRIDGE, "up"])


def start(engine: Engine, *, fresh: bool = True, timeout: float = 60.0) -> bool:
    """Ensure the engine runs with the test images; True if it was (re)started by this call.

    With fresh, a cold start begins with no containers and no networks (an earlier run's leftovers).
    """
    if engine.healthy():
        images.preload(engine.url)
        return False
    pid = engine.pid()
    if pid is not None:  # running but not answering: maybe still starting
        with contextlib.suppress(LabError):
            wait_for(lambda: ping(engine.sock), f"engine {engine.name}", 10, pid=pid, log=engine.log)
            images.preload(engine.url)
            return False
        stop(engine)
    ensure_packages()
    _clean_stale(engine)
    engine.run_dir.mkdir(parents=True, exist_ok=True)
    engine.data_root.mkdir(parents=True, exist_ok=True)
    config = engine.run_dir / "daemon.json"
    # Own trust key, hence its own engine ID (the default, /etc/docker/key.json, would be shared).
    settings = {
        "deprecated-key-path": str(engine.data_root) + ".key.json",
        # /24s instead of the default 31 /16s and /20s: room for the networks of many stacks and
        # concurrent test sessions; 172.16/12 is used by nothing else on these machines
        "default-address-pools": [{"base": "172.16.0.0/12", "size": 24}],
    }
    config.write_text(json.dumps(settings) + "\n")
    cmd = [
        "dockerd", "--config-file", str(config), "--data-root", str(engine.data_root),
        "--exec-root", str(engine.exec_root), "--pidfile", str(engine.pidfile), "-H", engine.url,
        "--shutdown-timeout", "2", "--insecure-registry", REGISTRY,
    ]
    if engine.netns is None:
        _ensure_local_bridge()
        cmd += ["--bridge", LOCAL_BRIDGE]
    else:
        # nsenter, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
        cmd = ["nsenter", f"--net=/run/netns/{engine.netns}", *cmd]
    engine.log.write_text("")
    pid = spawn(cmd, engine.log)
    wait_for(lambda: ping(engine.sock), f"dockerd for {engine.name}", timeout, pid=pid, log=engine.log)
    if fresh:
        _remove_leftovers(engine)
    images.preload(engine.url)
    return True


def _remove_leftovers(engine: Engine) -> None:
    """Every container and every user-defined network an earlier run left (they persist in the
    data root; networks left behind would exhaust the engine's address pools)."""
    import docker

    api = docker.APIClient(base_url=engine.url, version="1.41", timeout=60)
    try:
        for c in api.containers(all=True, quiet=True):
            api.remove_container(c["Id"], force=True, v=True)
        for network in api.networks():
            if network["Name"] not in ("bridge", "host", "none"):
                api.remove_network(network["Id"])
    finally:
        api.close()


def stop(engine: Engine, *, timeout: float = 30.0) -> bool:
    """SIGTERM the engine and wait for it and its containerd to exit; True if it was running."""
    pid, containerd = engine.pid(), engine.containerd_pid()
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        if not wait_gone([pid], timeout):
            os.kill(pid, signal.SIGKILL)
            wait_gone([pid], 5)
    if containerd is not None and not wait_gone([containerd], 5):
        terminate([containerd], timeout=5)
    _clean_stale(engine)
    if engine.netns is None:
        remove_local_bridge()
    return pid is not None


def remove_local_bridge() -> None:
    if run(["ip", "link", "show", LOCAL_BRIDGE], check=False).returncode == 0:
        run(["ip", "link", "del", LOCAL_BRIDGE], check=False)
