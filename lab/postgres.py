"""A throwaway PostgreSQL 15 cluster for the tests and the benchmarks (Debian's binaries).

One cluster per port, shared by every test worker, worktree and session on the machine: it is
started under a file lock when missing and reused while it answers. PostgreSQL refuses to run as
root, so initdb and pg_ctl run as the ``postgres`` system user. It listens on 127.0.0.1 only (and
a unix socket in its own directory), TCP logins need the generated password (scram-sha-256),
which lives in a 0600 file beside the data directory and is never printed; fsync stays on, since
the store's durability is what the tests are about.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._proc import LabError, cmdline, locked, run, wait_for

BIN = Path("/usr/lib/postgresql/15/bin")
PORT = int(os.environ.get("GRAPHIUM_PG_PORT", "55432"))
BASE = Path(os.environ.get("GRAPHIUM_PG_DIR", "/var/tmp/graphium-pg"))
USER = "postgres"  # the system user the server runs as, and the cluster's superuser
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "on",
    "synchronous_commit": "on",
    "max_connections": "300",  # 3 test workers x several stores x their pools
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}


@dataclass(frozen=True)
class Cluster:
    """Where one cluster lives: ``<BASE>/<port>/{data,run,password,log}``."""

    port: int = PORT

    @property
    def home(self) -> Path:
        return BASE / str(self.port)

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def sockets(self) -> Path:
        return self.home / "run"

    @property
    def password_file(self) -> Path:
        return BASE / f"{self.port}.password"  # beside the data, readable by root only

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise LabError(f"{self.password_file}: no password for the PostgreSQL cluster") from exc

    def url(self, database: str = "postgres") -> str:
        """The cluster's superuser URL for ``database`` (it carries the password: never print it)."""
        password = urllib.parse.quote(self.password(), safe="")
        return f"postgresql://{USER}:{password}@127.0.0.1:{self.port}/{database}"


CLUSTER = Cluster()


def _as_postgres(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command as the postgres user, from / (it may not enter the caller's directory)."""
    full = ["runuser", "-u", USER, "--", *cmd]
    proc = subprocess.run(full, text=True, capture_output=True, check=False, cwd="/")
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(cmd[:1])} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ready(cluster: Cluster = CLUSTER) -> bool:
    """True if the cluster accepts connections."""
    proc = _as_postgres(
        str(BIN / "pg_isready"), "-q", "-h", str(cluster.sockets), "-p", str(cluster.port), check=False
    )
    return proc.returncode == 0


def _ensure_installed() -> None:
    if (BIN / "initdb").exists():
        return
    run(["sh", str(Path(__file__).with_name("install.sh"))], capture=False)
    if not (BIN / "initdb").exists():
        raise LabError(f"{BIN}/initdb missing after lab/install.sh (package postgresql-15)")


def _chown(path: Path) -> None:
    shutil.chown(path, USER, USER)


def _init(cluster: Cluster) -> None:
    """A new cluster with a new password (anything left of an earlier one is removed first)."""
    shutil.rmtree(cluster.home, ignore_errors=True)
    for directory in (BASE, cluster.home, cluster.sockets):
        directory.mkdir(parents=True, exist_ok=True)
    os.chmod(BASE, 0o755)
    _chown(cluster.home)
    _chown(cluster.sockets)
    password = secrets.token_urlsafe(24)
    fd = os.open(cluster.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    handoff = cluster.home / "initdb.pw"  # initdb reads it as postgres; removed right after
    fd = os.open(handoff, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    _chown(handoff)
    try:
        _as_postgres(
            str(BIN / "initdb"),
            "-D",
            str(cluster.data),
            "-U",
            USER,
            "--pwfile",
            str(handoff),
            "--auth-local=peer",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
        )
    finally:
        handoff.unlink(missing_ok=True)
    settings = SETTINGS | {"port": str(cluster.port), "unix_socket_directories": f"'{cluster.sockets}'"}
    with open(cluster.data / "postgresql.auto.conf", "a") as fh:
        fh.writelines(f"{key} = {value}\n" for key, value in settings.items())


def _clear_stale_pid(cluster: Cluster) -> None:
    """A postmaster.pid left by a server that is gone (or whose pid now names another program)
    would stop pg_ctl from starting one."""
    pidfile = cluster.data / "postmaster.pid"
    pid = read_pid_first_line(pidfile)
    if pid is not None and "postgres" not in cmdline(pid):
        pidfile.unlink(missing_ok=True)


def read_pid_first_line(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _start(cluster: Cluster) -> None:
    _clear_stale_pid(cluster)
    pg_ctl = str(BIN / "pg_ctl")
    data, log = str(cluster.data), str(cluster.log)
    proc = _as_postgres(pg_ctl, "-D", data, "-l", log, "-w", "-t", "120", "start", check=False)
    if proc.returncode != 0 and not ready(cluster):
        tail = cluster.log.read_text(errors="replace").splitlines()[-15:] if cluster.log.exists() else []
        raise LabError(
            f"PostgreSQL on port {cluster.port} did not start: {proc.stderr.strip()}\n" + "\n".join(tail)
        )
    wait_for(lambda: ready(cluster), f"PostgreSQL on port {cluster.port}", 120)


def ensure(cluster: Cluster = CLUSTER) -> str:
    """Start the cluster unless it runs (creating it on first use); return its superuser URL."""
    if ready(cluster) and cluster.password_file.exists():
        return cluster.url()
    with locked(f"postgres-{cluster.port}"):
        if ready(cluster) and cluster.password_file.exists():
            return cluster.url()
        _ensure_installed()
        complete = (cluster.data / "PG_VERSION").exists() and cluster.password_file.exists()
        if not complete:
            if ready(cluster):
                stop(cluster, lock=False)
            _init(cluster)
        _start(cluster)
    return cluster.url()


def stop(cluster: Cluster = CLUSTER, *, lock: bool = True) -> bool:
    """Stop the cluster (its data stays); True if it was running."""
    with locked(f"postgres-{cluster.port}") if lock else contextlib.nullcontext():
        if not (cluster.data / "postmaster.pid").exists() or not ready(cluster):
            return False
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(cluster.data), "-m", "fast", "-w", "stop")
        return True


def remove(cluster: Cluster = CLUSTER) -> None:
    """Stop the cluster and delete its data and password (a later :func:`ensure` starts anew)."""
    with locked(f"postgres-{cluster.port}"):
        stop(cluster, lock=False)
        shutil.rmtree(cluster.home, ignore_errors=True)
        cluster.password_file.unlink(missing_ok=True)


def _psql(cluster: Cluster, statement: str) -> None:
    _as_postgres(
        str(BIN / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        str(cluster.sockets),
        "-p",
        str(cluster.port),
        "-d",
        "postgres",
        "-c",
        statement,
    )


def create_database(prefix: str = "graphium", cluster: Cluster = CLUSTER) -> tuple[str, str]:
    """A new, empty, uniquely named database: ``(name, url)``. The cluster must be up."""
    safe = "".join(c if c.isalnum() else "_" for c in prefix.lower())[:30] or "db"
    name = f"{safe}_{os.getpid()}_{secrets.token_hex(4)}"
    _psql(cluster, f'CREATE DATABASE "{name}"')  # name: [a-z0-9_] only, made above
    return name, cluster.url(name)


def drop_database(name: str, cluster: Cluster = CLUSTER) -> None:
    """Drop a database made by :func:`create_database`, disconnecting whoever still uses it."""
    if not name.replace("_", "").isalnum():
        raise LabError(f"not a database name made by the lab: {name!r}")
    _psql(cluster, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(prefix: str = "graphium", cluster: Cluster = CLUSTER) -> Iterator[str]:
    """The URL of a new empty database, dropped on exit (the cluster is started if needed)."""
    ensure(cluster)
    name, url = create_database(prefix, cluster)
    try:
        yield url
    finally:
        drop_database(name, cluster)


def wait_ready(timeout: float = 30.0, cluster: Cluster = CLUSTER) -> None:
    deadline = time.monotonic() + timeout
    while not ready(cluster):
        if time.monotonic() > deadline:
            raise LabError(f"PostgreSQL on port {cluster.port} is not ready")
        time.sleep(0.05)


__all__ = [
    "BIN",
    "CLUSTER",
    "PORT",
    "Cluster",
    "create_database",
    "drop_database",
    "ensure",
    "fresh_database",
    "ready",
    "remove",
    "stop",
    "wait_ready",
]
