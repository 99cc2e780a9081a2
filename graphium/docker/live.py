"""Live state and logs of a host's graphium containers, through a :class:`DockerEngine`.

Functions taking the engine rather than methods on it (the adapter is at its size limit): they
send through its worker pool and error translation. A log stream is read on its own daemon thread
(docker-py lifts the read timeout of a stream: a quiet container may say nothing for minutes), so
following never holds a worker of the engine's pool and Ctrl-C never waits for it.
Every line is masked (:func:`~graphium.docker.listing.mask_log_line`) before it leaves here.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from graphium.docker.listing import env_secrets, live_container, mask_log_line
from graphium.errors import EngineError
from graphium.plan.model import LABEL_MANAGED, LABEL_STACK
from graphium.records.live import LiveContainer

if TYPE_CHECKING:
    from graphium.docker.engine import DockerEngine

__all__ = ["LogOptions", "follow_logs", "list_live", "matches", "stream_stack_logs"]


@dataclass(frozen=True)
class LogOptions:
    """``logs`` options: ``tail`` lines (None: all), ``since`` a Unix time, ``follow`` until stopped."""

    follow: bool = False
    tail: int | None = None
    since: float | None = None

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"stream": True, "follow": self.follow, "timestamps": False}
        params["tail"] = "all" if self.tail is None else self.tail
        if self.since is not None and self.since > 0:
            params["since"] = float(self.since)
        return params


async def list_live(engine: DockerEngine, stack: str | None = None) -> list[LiveContainer]:
    """graphium-managed containers (all states) of ``stack`` (or all), one list and the inspects."""
    filters = {"label": [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_STACK}={stack}"] if stack else [])}
    summaries = await engine._call("listing containers", lambda c: c.containers(all=True, filters=filters))
    inspected = await asyncio.gather(*(engine.inspect_or_none(s["Id"]) for s in summaries))
    now = datetime.now(UTC)
    rows = [live_container(info, engine.host_id, now) for info in inspected if info is not None]
    return sorted(rows, key=lambda r: (r.stack, r.name, r.docker_name))


async def follow_logs(
    engine: DockerEngine, docker_name: str, options: LogOptions, emit: Callable[[str], None]
) -> None:
    """Send each (masked) log line of the container to ``emit``; returns when the stream ends
    (at once without ``follow``); cancelling closes the stream."""
    info = await engine.inspect(docker_name)
    secrets = env_secrets((info.get("Config") or {}).get("Env") or [])
    params = options.params()
    stream = await engine._call(f"reading logs of {docker_name}", lambda c: c.logs(docker_name, **params))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

    def put(item: bytes | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for chunk in stream:
                put(chunk)
        except BaseException as exc:
            put(exc)
        finally:
            put(None)

    threading.Thread(target=pump, name=f"logs-{engine.host_id}-{docker_name}", daemon=True).start()
    pending = b""
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise EngineError(f"reading logs of {docker_name}: {item}", host=engine.host_id) from item
            pending += item
            *lines, pending = pending.split(b"\n")
            for line in lines:
                emit(mask_log_line(line.decode("utf-8", "replace").rstrip("\r"), secrets))
        if pending:
            emit(mask_log_line(pending.decode("utf-8", "replace").rstrip("\r"), secrets))
    finally:
        with contextlib.suppress(Exception):
            stream.close()


def matches(container: LiveContainer, wanted: str | None) -> bool:
    """``logs STACK CONTAINER``: the stack's container name (every replica) or a docker name."""
    return wanted is None or wanted in (container.name, container.docker_name)


async def stream_stack_logs(
    engine: DockerEngine, stack: str, container: str | None, options: LogOptions, emit: Callable[[str], None]
) -> int:
    """The logs of ``stack``'s containers on this engine (those matching ``container``), all at
    once, each line prefixed ``docker-name@host |``; returns how many containers were read."""
    rows = [c for c in await list_live(engine, stack) if matches(c, container)]

    def prefixed(name: str) -> Callable[[str], None]:
        return lambda line: emit(f"{name}@{engine.host_id} | {line}")

    await asyncio.gather(
        *(follow_logs(engine, c.docker_name, options, prefixed(c.docker_name)) for c in rows)
    )
    return len(rows)
