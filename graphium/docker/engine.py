"""The Docker engine adapter: graphium's only door to docker-py.

One :class:`DockerEngine` drives one engine URL (a local socket, or an SSH-forwarded one) and
implements :class:`~graphium.docker.protocol.ContainerEngine`. It speaks in graphium's terms
(desired and observed containers, pull policies, health) and never lets a docker-py or requests
exception escape: they become :class:`EngineError` (the engine refused or failed) or
:class:`HostUnreachableError` (the engine could not be reached), both naming the host.

It sends and reads; it does not decide: create requests are built by :mod:`.requests`, inspects
are read by :mod:`.observed`, the replace-with-rollback sequence is :mod:`.replace`. docker-py is
synchronous: every call runs on this engine's own thread pool, so a slow host never blocks the
event loop nor starves other hosts' calls. The low-level ``APIClient`` maps one method to one
HTTP request, where the high-level client adds an inspect after most calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import docker
import docker.errors
import requests.exceptions

from graphium.docker.client import api_client
from graphium.docker.observed import clip, observed_container, split_containers
from graphium.docker.replace import replace_container, short_id
from graphium.docker.requests import container_create
from graphium.docker.settle import wait_running_and_healthy
from graphium.docker.volumes import VolumeOps
from graphium.docker.watch import ContainerEvents
from graphium.errors import EngineError, GraphiumError, HostUnreachableError
from graphium.plan.model import (
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_SPEC_HASH,
    LABEL_STACK,
    DesiredContainer,
    ObservedHost,
)
from graphium.plan.payloads import NetworkPayload
from graphium.stack.models import PullPolicy

__all__ = ["DockerEngine"]

_T = TypeVar("_T")


class _Missing(EngineError):
    """The object does not exist (HTTP 404); callers decide whether that is fine."""


class _Conflict(EngineError):
    """The engine refused because of a conflict (HTTP 409): name in use, removal in progress…"""


class DockerEngine(VolumeOps):
    """Async facade over one Docker engine, in the vocabulary of graphium's plans (+ VolumeOps)."""

    def __init__(
        self,
        base_url: str,
        *,
        host_id: str,
        timeout: float = 60.0,
        pool_size: int = 16,
        settle_seconds: float = 0.3,
        poll_interval: float = 0.1,
    ) -> None:
        """``settle_seconds``: how long a container without a health check must stay up before a
        deploy counts as done, so that a command that exits at once fails the task instead of
        slipping through between ``start`` and the first inspect; ``poll_interval``: between
        inspects when the engine's event stream is not there."""
        self.base_url = base_url
        self.host_id = host_id
        self.timeout = timeout
        self.pool_size = pool_size
        self.settle_seconds = settle_seconds
        self.poll_interval = poll_interval
        # images seen on this engine during its life (one run): a deploy need not ask again
        self._images_present: set[str] = set()
        self._image_checks: dict[str, asyncio.Future[bool]] = {}
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix=f"docker-{host_id}")
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._closed = False
        self._network_locks: dict[str, asyncio.Lock] = {}
        self._events = ContainerEvents(self._api, host_id)

    def __repr__(self) -> str:
        return f"DockerEngine({self.base_url!r}, host_id={self.host_id!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _api(self) -> Any:
        """The client, created on first use in a worker thread (creation asks the engine its API
        version, a network round trip). A failed creation is not cached: the next call retries."""
        with self._client_lock:
            if self._client is None:
                self._client = api_client(self.base_url, timeout=self.timeout, pool_size=self.pool_size)
            return self._client

    def _translate(self, exc: BaseException, what: str) -> GraphiumError:
        if isinstance(exc, GraphiumError):
            return exc
        host = self.host_id
        if isinstance(exc, docker.errors.NotFound):
            return _Missing(f"{what}: {exc.explanation or exc}", host=host)
        if isinstance(exc, docker.errors.APIError):
            explanation = exc.explanation or str(exc)
            if exc.status_code == 409:
                return _Conflict(f"{what}: {explanation}", host=host)
            return EngineError(f"{what}: {explanation}", host=host)
        cause: BaseException = exc
        if isinstance(exc, docker.errors.DockerException) and exc.__cause__ is not None:
            cause = exc.__cause__  # version detection wraps the connection error
        if isinstance(cause, requests.exceptions.ConnectionError | FileNotFoundError | ConnectionError):
            return HostUnreachableError(
                f"cannot reach the Docker engine at {self.base_url}: {_root_message(cause)}", host=host
            )
        if isinstance(cause, requests.exceptions.Timeout):
            return HostUnreachableError(
                f"the Docker engine at {self.base_url} did not answer within {self.timeout:g}s ({what})",
                host=host,
            )
        if isinstance(exc, docker.errors.DockerException | requests.exceptions.RequestException):
            return EngineError(f"{what}: {exc}", host=host)
        return EngineError(f"{what}: unexpected {type(exc).__name__}: {exc}", host=host)

    async def _call(self, what: str, fn: Callable[[Any], _T]) -> _T:
        """Run ``fn(client)`` on the worker pool; docker/requests errors come back translated."""
        if self._closed:
            raise EngineError(f"{what}: the engine connection is closed", host=self.host_id)

        def work() -> _T:
            try:
                return fn(self._api())
            except BaseException as exc:
                raise self._translate(exc, what) from exc

        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, work)
        except RuntimeError as exc:  # pool shut down by a concurrent close()
            if self._closed:
                raise EngineError(f"{what}: the engine connection is closed", host=self.host_id) from exc
            raise

    async def close(self) -> None:
        """Drop the connection pool and the worker threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._events.close()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- observe -------------------------------------------------------------------------------
    async def server_version(self) -> str:
        """The engine's version (``docker version``'s server side), for the agents' list."""
        return str((await self._call("reading the engine version", lambda c: c.version())).get("Version"))

    async def observe(self, stack: str | None = None) -> ObservedHost:
        """graphium's containers (all states, inspected concurrently), networks, volumes and the other
        containers, one list call each. Raises when unreachable (executors make it ``error``)."""
        filters = {"label": [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_STACK}={stack}"] if stack else [])}
        summaries, networks, volumes = await asyncio.gather(
            self._call("listing containers", lambda c: c.containers(all=True)),
            self._call("listing networks", lambda c: c.networks(filters=filters)),
            self.list_volumes(),
        )
        mine, others = split_containers(summaries, stack)
        # a container removed between the list and its inspect is simply not there
        inspected = await asyncio.gather(*(self.inspect_or_none(i) for i in mine))
        containers = [observed_container(info, self.host_id) for info in inspected if info is not None]
        containers.sort(key=lambda oc: (oc.stack, oc.name, oc.docker_name))
        names = sorted(n["Name"] for n in networks)
        return ObservedHost(
            host=self.host_id, containers=containers, networks=names, others=others, volumes=volumes
        )

    async def inspect(self, name_or_id: str) -> dict[str, Any]:
        return cast(
            "dict[str, Any]",
            await self._call(f"inspecting container {name_or_id}", lambda c: c.inspect_container(name_or_id)),
        )

    async def inspect_or_none(self, name_or_id: str) -> dict[str, Any] | None:
        """The inspect, or None when there is no such container."""
        try:
            return await self.inspect(name_or_id)
        except _Missing:
            return None

    # -- networks ------------------------------------------------------------------------------

    async def ensure_network(self, payload: NetworkPayload) -> dict[str, Any]:
        """Create the stack's network, or merge duplicates of it (:mod:`graphium.docker.networks`)."""
        from graphium.docker.networks import ensure_network  # it builds on this class

        return await ensure_network(self, payload)

    async def remove_network(self, name: str) -> dict[str, Any]:
        from graphium.docker.networks import remove_network

        return await remove_network(self, name)

    # -- images --------------------------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        """Whether the engine has ``image``; deploys asking at once share one inspect."""
        if image in self._images_present:
            return True
        asked = self._image_checks.get(image)
        if asked is None:
            asked = asyncio.ensure_future(self._inspect_image(image))
            self._image_checks[image] = asked
            asked.add_done_callback(lambda done: self._image_checked(image, done))
        return await asyncio.shield(asked)

    def _image_checked(self, image: str, done: asyncio.Future[bool]) -> None:
        self._image_checks.pop(image, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter may have been cancelled

    async def _inspect_image(self, image: str) -> bool:
        try:
            await self._call(f"inspecting image {image}", lambda c: c.inspect_image(image))
        except _Missing:
            return False
        self._images_present.add(image)
        return True

    async def ensure_image(self, image: str, policy: PullPolicy) -> dict[str, Any]:
        """Honour the pull policy; returns whether a pull happened."""
        if policy is not PullPolicy.always:
            if await self.image_present(image):
                return {"image": image, "pulled": False}
            if policy is PullPolicy.never:
                raise EngineError(
                    f"image {image} is not present on host {self.host_id} and its pull policy is 'never'; "
                    "load or pull it there first, or use pullPolicy 'if-not-present'",
                    host=self.host_id,
                )
        await self._call(f"pulling image {image}", lambda c: self._pull(c, image))
        self._images_present.add(image)
        return {"image": image, "pulled": True}

    def _pull(self, client: Any, image: str) -> None:
        # a failed pull often answers 200 and reports the error inside the progress stream
        error: str | None = None
        for event in client.pull(image, stream=True, decode=True):
            if isinstance(event, dict) and event.get("error"):
                error = str(event.get("error"))
        if error:
            raise EngineError(f"pulling image {image} failed: {error}", host=self.host_id)

    # -- containers ----------------------------------------------------------------------------

    async def create_and_start(self, desired: DesiredContainer) -> dict[str, Any]:
        """Create the container exactly as specified, attached to the stack network, and start it.

        A container already holding the name is adopted when it is this very spec and running
        (an idempotent retry), replaced when it is graphium's own leftover for the same stack and
        container, and otherwise left alone with an error, since it belongs to someone else.
        """
        request = container_create(desired)
        name = request.name

        def create(c: Any) -> dict[str, Any]:
            return cast("dict[str, Any]", c.create_container_from_config(request.config, name=name))

        try:
            created = await self._call(f"creating container {name}", create)
        except _Conflict:
            adopted = await self._clear_leftover(desired)
            if adopted is not None:
                return adopted
            created = await self._call(f"creating container {name}", create)
        container_id = str(created["Id"])
        try:
            await self._call(f"starting container {name}", lambda c: c.start(container_id))
        except BaseException:
            await asyncio.shield(self.force_remove(container_id))
            raise
        return {"containerId": container_id, "dockerName": name, "hostId": self.host_id, "adopted": False}

    async def _clear_leftover(self, desired: DesiredContainer) -> dict[str, Any] | None:
        name = desired.docker_name
        info = await self.inspect_or_none(name)
        if info is None:
            return None  # gone meanwhile: just create again
        labels = (info.get("Config") or {}).get("Labels") or {}
        ours = (
            labels.get(LABEL_MANAGED) == "true"
            and labels.get(LABEL_STACK) == desired.stack
            and labels.get(LABEL_CONTAINER) == desired.name
        )
        if not ours:
            raise EngineError(
                f"a container named {name} ({short_id(info['Id'])}) already exists and is not graphium's "
                f"container {desired.name} of stack {desired.stack}; remove or rename it",
                host=self.host_id,
            )
        running = (info.get("State") or {}).get("Running", False)
        if running and labels.get(LABEL_SPEC_HASH) == desired.spec_hash:
            return {"containerId": info["Id"], "dockerName": name, "hostId": self.host_id, "adopted": True}
        await self.force_remove(info["Id"])
        return None

    async def start(self, container_id: str) -> None:
        """Start a stopped container (a running one is left as it is)."""
        try:
            await self._call(f"starting container {container_id}", lambda c: c.start(container_id))
        except _Missing as exc:
            raise EngineError(f"container {container_id} no longer exists", host=self.host_id) from exc

    async def rename(self, container_id: str, new_name: str) -> None:
        await self._call(
            f"renaming container {short_id(container_id)} to {new_name}",
            lambda c: c.rename(container_id, new_name),
        )

    async def wait_running_and_healthy(self, container_id: str, timeout: float) -> str:
        """Wait until the container runs and, when it has a health check (declared or from the
        image), is healthy, watching the engine's events (see :mod:`.settle`). Fails fast, quoting
        the last health output or the exit code and log tail, when it exits, restarts or turns
        unhealthy. Returns the health: ``healthy`` or ``none`` (no health check)."""
        return await wait_running_and_healthy(self, self._events, container_id, timeout)

    async def log_tail(self, container_id: str) -> str:
        try:
            raw = await self._call(
                f"reading logs of {container_id}", lambda c: c.logs(container_id, tail=20, timestamps=False)
            )
        except EngineError:
            return ""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return clip(text)

    async def replace(self, old_id: str, desired: DesiredContainer, timeout: float) -> dict[str, Any]:
        """Swap ``old_id`` for ``desired``, or restore the old one (see :mod:`.replace`)."""
        return await replace_container(self, old_id, desired, timeout)

    async def stop(self, name_or_id: str, stop_timeout: float = 10.0) -> bool:
        """Stop gracefully (SIGTERM, then SIGKILL after ``stop_timeout``); False when the
        container does not exist."""
        try:
            await self._call(
                f"stopping container {name_or_id}",
                lambda c: c.stop(name_or_id, timeout=math.ceil(stop_timeout)),
            )
        except _Missing:
            return False
        return True

    async def force_remove(self, name_or_id: str) -> bool:
        """Remove at once (running or not), with its anonymous volumes; False when already gone."""
        try:
            await self._call(
                f"removing container {name_or_id}",
                lambda c: c.remove_container(name_or_id, v=True, force=True),
            )
        except _Missing:
            return False
        return True

    async def remove(self, name_or_id: str, stop_timeout: float = 10.0) -> bool:
        """Stop gracefully and remove, with its anonymous volumes. Returns False when the
        container was already gone, which is success."""
        try:
            if not await self.stop(name_or_id, stop_timeout):
                return False
        except _Conflict:
            pass  # removal already in progress; the remove below settles it
        try:
            await self.force_remove(name_or_id)
        except _Conflict:
            await self._wait_gone(name_or_id)
        return True

    async def _wait_gone(self, name_or_id: str) -> None:
        """Another removal of the same container is under way: wait for it to finish."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if await self.inspect_or_none(name_or_id) is None:
                return
            await asyncio.sleep(self.poll_interval)
        raise EngineError(
            f"container {name_or_id} is still being removed after {self.timeout:g}s", host=self.host_id
        )


def _root_message(exc: BaseException) -> str:
    """The innermost reason (``[Errno 2] No such file or directory``), not urllib3's wrapping."""
    seen: set[int] = set()
    while True:
        nxt = (
            exc.__cause__
            or exc.__context__
            or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else None)
        )
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(exc))
        exc = nxt
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
