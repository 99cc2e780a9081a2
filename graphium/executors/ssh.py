"""The agentless executor: Docker hosts reached over SSH, the way Ansible and Kamal reach them.

Each host gets one SSH connection, opened lazily and reused for the whole run. The host's Docker
API socket is forwarded over that connection to a private local unix socket, and the same
:class:`~graphium.docker.engine.DockerEngine` the local executor uses drives it. Nothing runs in a remote
shell, so no docker CLI is needed on the host and no stack data ever reaches a command line.

Host keys are verified against ``knownHosts`` and the executor fails closed; skipping the check is
an explicit, loudly logged choice. This is the only module that imports asyncssh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncssh

from graphium.docker.engine import DockerEngine
from graphium.docker.interpreter import execute
from graphium.errors import ExecutionError, GraphiumError, HostKeyError, HostUnreachableError
from graphium.plan.model import ObservedHost
from graphium.records.task import Task
from graphium.stack.models import DEFAULT_DOCKER_HOST, Connection, Host

log = logging.getLogger(__name__)

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_MAX_CONNECTS = 10  # below sshd's default MaxStartups (10:30:100)
DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass
class _Session:
    """One host's live connection, its socket forward and the engine speaking through it."""

    host_id: str
    conn: asyncssh.SSHClientConnection
    listener: asyncssh.SSHListener
    engine: DockerEngine
    local_socket: str | None  # None when the remote engine is a TCP address
    remote: str  # the engine as the user named it, for messages

    @property
    def alive(self) -> bool:
        return not self.conn.is_closed()

    def explain(self, exc: GraphiumError) -> GraphiumError:
        """Name the host's own engine URL in ``exc``, not the private local end of the tunnel."""
        text = str(exc)
        if self.engine.base_url in text:
            exc.args = (text.replace(self.engine.base_url, self.remote),)
        return exc


@dataclass
class _Target:
    """Where a host's engine listens, on the host's side of the connection."""

    url: str
    unix_path: str | None = None
    tcp: tuple[str, int] | None = None


def _remote_engine(host: Host) -> _Target:
    """Parse ``dockerHost`` as seen from the host itself (``unix://`` or plain ``tcp://``)."""
    url = host.docker_host or DEFAULT_DOCKER_HOST
    parts = urlsplit(url)
    if parts.scheme == "unix" and parts.path:
        return _Target(url, unix_path=parts.path)
    if parts.scheme == "tcp" and parts.hostname and parts.port:
        return _Target(url, tcp=(parts.hostname, parts.port))
    raise ExecutionError(
        f"dockerHost {url!r} cannot be reached over ssh: give unix:///path/to/docker.sock "
        "or tcp://ADDR:PORT as seen from the host",
        host=host.id,
    )


def _known_hosts_path(host: Host) -> str:
    return os.path.expanduser(host.known_hosts or DEFAULT_KNOWN_HOSTS)


def _has_recorded_key(known_hosts: str, address: str, port: int) -> bool:
    """Whether known_hosts holds some key for the host: then a refusal means the key changed."""
    try:
        return any(asyncssh.read_known_hosts(known_hosts).match(address, address, port)[0:2])
    except (OSError, ValueError):
        return False


def _host_key_advice(host: Host, known_hosts: str, *, mismatch: bool) -> str:
    addr = host.address or ""
    entry = addr if host.ssh_port == 22 else f"[{addr}]:{host.ssh_port}"
    steps = []
    if mismatch:
        steps.append(
            "if the host was legitimately re-keyed, remove the old entry: "
            f"ssh-keygen -R '{entry}' -f {known_hosts}"
        )
    steps.append(
        "check the host key fingerprint out of band (on the host: "
        "ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), "
        f"then record it: ssh-keyscan -p {host.ssh_port} {addr} >> {known_hosts}"
    )
    steps.append("or, only on a network you trust, pass --insecure-skip-host-key-check")
    return "; ".join(steps)


def _for_task(exc: ExecutionError, task_id: str) -> ExecutionError:
    """A copy of a host-level error that also names the task (one connect error serves many)."""
    if exc.task is not None:
        return exc
    text = str(exc)
    prefix = f"host {exc.host}: "
    message = text[len(prefix) :] if exc.host and text.startswith(prefix) else text
    return type(exc)(message, host=exc.host, task=task_id)


class SshExecutor:
    """Executor for hosts with ``connection: ssh``.

    ``max_concurrent_connects`` caps SSH handshakes in flight (sshd drops connections beyond its
    ``MaxStartups``), independently of how many tasks the runner runs at once. ``connections_opened``
    counts successful connections, so tests and users can see connections are reused.
    """

    def __init__(
        self,
        *,
        insecure_skip_host_key_check: bool = False,
        max_concurrent_connects: int = DEFAULT_MAX_CONNECTS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        engine_timeout: float = 60.0,
        engine_pool_size: int = 16,
        observe_timeout: float = 20.0,
        keepalive_interval: float = 5.0,
        keepalive_count_max: int = 3,
    ) -> None:
        if max_concurrent_connects < 1:
            raise ValueError("max_concurrent_connects must be at least 1")
        self.insecure_skip_host_key_check = insecure_skip_host_key_check
        self.connect_timeout = connect_timeout
        self.engine_timeout = engine_timeout
        self.engine_pool_size = engine_pool_size
        self.observe_timeout = observe_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max
        self.connections_opened = 0
        self._connect_slots = asyncio.Semaphore(max_concurrent_connects)
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, asyncio.Task[_Session]] = {}
        self._socket_dir: str | None = None
        self._socket_seq = 0
        self._closed = False
        if insecure_skip_host_key_check:
            log.warning(
                "SSH host key verification is DISABLED (--insecure-skip-host-key-check): "
                "connections can be intercepted; use only on a network you trust"
            )

    # -- Executor -------------------------------------------------------------------------------

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        """All hosts at once, one list/inspect round each; a failing host yields ``error``."""
        results = await asyncio.gather(*(self._observe_one(h, stack) for h in hosts))
        return {obs.host: obs for obs in results}

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        """Run ``task`` through the host's shared connection.

        A failure that coincides with the connection going away is reported as
        :class:`HostUnreachableError` naming the host, not as whatever the engine call saw.
        """
        try:
            session = await self._session(host)
        except ExecutionError as exc:
            raise _for_task(exc, task.id) from exc
        try:
            result: dict[str, Any] = await execute(session.engine, task)
            return result
        except Exception as exc:
            if not session.alive:
                await self._drop(host.id, session)
                raise HostUnreachableError(
                    f"connection to {self._where(host)} was lost: {exc}", host=host.id, task=task.id
                ) from exc
            if isinstance(exc, GraphiumError):
                raise session.explain(exc) from exc.__cause__
            raise ExecutionError(f"{type(exc).__name__}: {exc}", host=host.id, task=task.id) from exc

    async def engine(self, host: Host) -> DockerEngine:
        """The host's engine over its shared connection (connecting if needed).

        ``engine(host).base_url`` is the local end of the tunnel: the benchmark's floor and
        debugging sessions drive the very same forward the tasks use.
        """
        return (await self._session(host)).engine

    async def close(self) -> None:
        """Close engines, forwards and connections, and remove the private socket directory."""
        self._closed = True
        for pending in list(self._pending.values()):
            pending.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        self._pending.clear()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(self._close_session(s) for s in sessions), return_exceptions=True)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    # -- connections ----------------------------------------------------------------------------

    async def _observe_one(self, host: Host, stack: str | None) -> ObservedHost:
        try:
            session = await self._session(host)
        except GraphiumError as exc:
            return ObservedHost(host=host.id, error=str(exc))
        try:
            observed: ObservedHost = await asyncio.wait_for(
                session.engine.observe(stack), self.observe_timeout
            )
            return observed
        except TimeoutError:
            error = f"host {host.id}: {session.remote} did not answer within {self.observe_timeout:g}s"
        except GraphiumError as exc:
            error = str(session.explain(exc))
        except Exception as exc:
            error = f"host {host.id}: {type(exc).__name__}: {exc}"
        if not session.alive:
            await self._drop(host.id, session)
            error = f"host {host.id}: connection to {self._where(host)} was lost ({error})"
        return ObservedHost(host=host.id, error=error)

    async def _session(self, host: Host) -> _Session:
        """The host's live session, connecting at most once however many tasks ask at the same time."""
        if self._closed:
            raise ExecutionError("the SSH executor is closed", host=host.id)
        if host.connection is not Connection.ssh:
            raise ExecutionError(f"connection is {host.connection.value}, not ssh", host=host.id)
        session = self._sessions.get(host.id)
        if session is not None:
            if session.alive:
                return session
            await self._drop(host.id, session)  # dropped since last use: reconnect
        pending = self._pending.get(host.id)
        if pending is None:
            pending = asyncio.ensure_future(self._open(host))
            self._pending[host.id] = pending
            pending.add_done_callback(self._forget_pending(host.id))
        # shield: one caller being cancelled must not cancel the connection the others wait for
        return await asyncio.shield(pending)

    def _forget_pending(self, host_id: str) -> Callable[[asyncio.Future[_Session]], None]:
        """Done-callback: a finished attempt (success or failure) no longer blocks a new one."""

        def forget(done: asyncio.Future[_Session]) -> None:
            if self._pending.get(host_id) is done:
                del self._pending[host_id]
            if not done.cancelled():
                done.exception()  # mark retrieved: waiters may all have been cancelled

        return forget

    async def _open(self, host: Host) -> _Session:
        target = _remote_engine(host)
        async with self._connect_slots:
            conn = await self._connect(host)
        try:
            session = await self._forward(host, conn, target)
        except BaseException:
            conn.abort()
            raise
        self.connections_opened += 1
        self._sessions[host.id] = session
        return session

    def _connect_options(self, host: Host) -> dict[str, Any]:
        options: dict[str, Any] = {
            "port": host.ssh_port,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval,
            "keepalive_count_max": self.keepalive_count_max,
        }
        if host.ssh_user:
            options["username"] = host.ssh_user
        if host.ssh_key:
            key = os.path.expanduser(host.ssh_key)
            if not os.path.isfile(key):
                raise HostUnreachableError(f"sshKey {key} does not exist", host=host.id)
            options["client_keys"] = [key]
        # without sshKey, asyncssh offers the SSH agent's keys and the default ~/.ssh/id_* keys
        if self.insecure_skip_host_key_check:
            log.warning("host %s: SSH host key NOT verified (insecure opt-out)", host.id)
            options["known_hosts"] = None
        else:
            known_hosts = _known_hosts_path(host)
            if not os.path.isfile(known_hosts):
                raise HostKeyError(
                    f"known_hosts file {known_hosts} does not exist, so the key of {self._where(host)} "
                    f"cannot be verified; {_host_key_advice(host, known_hosts, mismatch=False)}",
                    host=host.id,
                )
            options["known_hosts"] = known_hosts
        return options

    async def _connect(self, host: Host) -> asyncssh.SSHClientConnection:
        """Open the SSH connection, translating every failure into the error tree."""
        options = self._connect_options(host)
        where = self._where(host)
        address = host.address or ""
        try:
            # the outer timeout also bounds authentication, which connect_timeout alone may not
            async with asyncio.timeout(self.connect_timeout + 1.0):
                return await asyncssh.connect(address, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            known_hosts = options.get("known_hosts") or ""
            mismatch = _has_recorded_key(known_hosts, address, host.ssh_port)
            what = (
                "does NOT match the key recorded (the host was re-keyed, or someone is intercepting)"
                if mismatch
                else "is not recorded"
            )
            raise HostKeyError(
                f"the SSH host key of {where} {what} in {known_hosts} ({exc}); "
                f"{_host_key_advice(host, known_hosts, mismatch=mismatch)}",
                host=host.id,
            ) from exc
        except asyncssh.PermissionDenied as exc:
            user = host.ssh_user or "the current user"
            key = f"key {host.ssh_key}" if host.ssh_key else "the SSH agent and default keys"
            raise HostUnreachableError(
                f"SSH authentication to {where} as {user} with {key} was refused: {exc}", host=host.id
            ) from exc
        except TimeoutError as exc:
            raise HostUnreachableError(
                f"no SSH connection to {where} within {self.connect_timeout:g}s", host=host.id
            ) from exc
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise HostUnreachableError(
                f"sshKey {host.ssh_key} cannot be used: {exc} (for a passphrase-protected key, "
                "load it into ssh-agent and leave sshKey unset)",
                host=host.id,
            ) from exc
        except (OSError, asyncssh.Error) as exc:
            raise HostUnreachableError(f"cannot connect to {where}: {exc}", host=host.id) from exc
        except Exception as exc:  # asyncssh raises a few plain ValueErrors; never let one escape
            raise HostUnreachableError(
                f"cannot connect to {where}: {type(exc).__name__}: {exc}", host=host.id
            ) from exc

    async def _forward(self, host: Host, conn: asyncssh.SSHClientConnection, target: _Target) -> _Session:
        """Expose the remote engine locally (a 0700 temp dir's socket, or loopback TCP)."""
        try:
            if target.unix_path is not None:
                local_socket = self._new_socket_path()
                listener = await conn.forward_local_path(local_socket, target.unix_path)
                base_url = f"unix://{local_socket}"
            else:
                assert target.tcp is not None
                local_socket = None
                listener = await conn.forward_local_port("127.0.0.1", 0, *target.tcp)
                base_url = f"tcp://127.0.0.1:{listener.get_port()}"
        except (OSError, asyncssh.Error) as exc:
            raise HostUnreachableError(
                f"cannot forward the Docker socket of {self._where(host)}: {exc}", host=host.id
            ) from exc
        try:
            engine = DockerEngine(
                base_url, host_id=host.id, timeout=self.engine_timeout, pool_size=self.engine_pool_size
            )
        except BaseException:
            listener.close()
            raise
        remote = f"{target.url} on {self._where(host)} (over SSH)"
        return _Session(host.id, conn, listener, engine, local_socket, remote)

    def _new_socket_path(self) -> str:
        """A short path (unix socket paths are limited to ~108 bytes) in a private directory."""
        if self._socket_dir is None:
            base = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None
            self._socket_dir = tempfile.mkdtemp(prefix="gph-ssh-", dir=base)  # mode 0700
        self._socket_seq += 1
        return os.path.join(self._socket_dir, f"{self._socket_seq}.sock")

    async def _drop(self, host_id: str, session: _Session) -> None:
        if self._sessions.get(host_id) is session:
            del self._sessions[host_id]
        await self._close_session(session)

    async def _close_session(self, session: _Session) -> None:
        with contextlib.suppress(Exception):
            await session.engine.close()
        session.listener.close()
        with contextlib.suppress(Exception):
            await session.listener.wait_closed()
        session.conn.close()
        with contextlib.suppress(Exception):
            await session.conn.wait_closed()
        if session.local_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(session.local_socket)

    @staticmethod
    def _where(host: Host) -> str:
        user = f"{host.ssh_user}@" if host.ssh_user else ""
        return f"{user}{host.address}:{host.ssh_port}"
