"""The polling agent: runs on a Docker host, pulls that host's tasks from the control server.

Only outbound HTTP to the server is needed, so hosts behind NAT work. The agent long-polls the
claim route (a new task is picked up as soon as the server has it, not on a 5 s tick), holds each
task under a lease kept alive by heartbeats, and hands execution to
:func:`graphium.docker.interpreter.execute`, the interpreter every executor shares.

Requests are batched because each one costs the server a durable write: one claim asks for as
many tasks as the agent has free slots and marks them running at once (``/claims?start=true``),
and results go out through one reporter (:mod:`graphium.control.reporter`), which sends whatever
finished while its previous batch was in flight as a single ``PUT /tasks/status``. A task thus
costs two writes shared with its batch, instead of three of its own.

Failure model: network errors never end the agent (every request is retried with capped,
jittered backoff; a finished task's report until it lands or the server says the task is no longer
ours). A killed agent's leases expire and the server requeues its tasks; re-running one is harmless
because execution is idempotent (a container with the task's name and spec hash is adopted), and
completed tasks are never claimable. A lost lease (heartbeat 409) means someone else may own the
task: this agent stops reporting on it.

The agent registers when it starts and reports its host's containers after tasks
(:mod:`.self_report`); its claims and heartbeats keep it live, so an idle agent sends nothing else.

The token goes in one request header and nowhere else: it is never logged nor put in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from graphium.control import transport
from graphium.control.live_requests import RequestPoller
from graphium.control.reporter import Answer, Backoff, Refused, Reporter, Unreachable, batch_answers
from graphium.control.self_report import SelfReport
from graphium.control.server_calls import ServerCalls
from graphium.docker.engine import DockerEngine
from graphium.docker.interpreter import execute
from graphium.docker.protocol import ContainerEngine
from graphium.errors import GraphiumError
from graphium.records.task import Task, TaskStatus
from graphium.stack.models import DEFAULT_DOCKER_HOST

__all__ = ["Agent", "run_agent"]

log = logging.getLogger("graphium.control.agent")

#: Server-side cap of the claim long-poll; the read timeout leaves room above it.
CLAIM_WAIT = 25.0
#: The hard stop fires this long after ``timeoutSeconds`` so that the engine's own deadline
#: (which quotes the container's health and logs) normally produces the error message.
TIMEOUT_GRACE = 1.0
#: Most tasks one claim asks for (the server's cap).
CLAIM_BATCH = 100

_TASKS = TypeAdapter(list[Task])


@dataclass
class TaskOutcome:
    """What the agent did with one claimed task (kept for tests and logs)."""

    task_id: str
    status: TaskStatus | None  # completed/failed as reported; None when the report was abandoned
    error: str | None = None
    seconds: float = 0.0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Agent:
    """One agent for one host. ``await run()`` until ``stop()`` (or a signal via :func:`run_agent`).

    ``slots`` tasks may run at once: one long-poll claims as many as are free, so a busy host
    fetches its work in batches. The default of one keeps a host's tasks strictly sequential.
    """

    def __init__(
        self,
        host_id: str,
        server_url: str | Sequence[str],
        token: str,
        *,
        docker_host: str | None = None,
        agent_id: str | None = None,
        lease_seconds: float = 30.0,
        claim_wait: float = CLAIM_WAIT,
        backoff_cap: float = 5.0,
        slots: int = 1,
        engine: ContainerEngine | None = None,
        ca_cert: str | None = None,
    ) -> None:
        # a bad URL or CA file fails here, at start
        self._calls = ServerCalls(server_url, token, transport.tls_context(ca_cert), logger=log)
        self.servers = self._calls.servers
        if lease_seconds <= 0 or slots < 1:
            raise GraphiumError("lease_seconds must be > 0 and slots >= 1")
        self.host_id = host_id
        self.agent_id = agent_id or f"{host_id}-{os.getpid()}"
        self.lease_seconds = lease_seconds
        self.claim_wait = claim_wait
        self.backoff_cap = backoff_cap
        self.slots = slots
        self.docker_host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST
        self._own_engine = engine is None
        self.engine: ContainerEngine = engine or DockerEngine(self.docker_host, host_id=host_id, pool_size=8)
        self._held: set[str] = set()  # ids of the tasks this agent runs now
        self._claim_lost = False  # a claim's answer may have been lost: give back what it took
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self._reporter = Reporter(
            self._send_reports,
            force=self._force,
            backoff_cap=backoff_cap,
            on_unreachable=self._lost_server,
            on_back=self._server_back,
        )
        self._self_report = SelfReport(
            self._calls.request, self.engine, agent_id=self.agent_id, slots=slots, backoff_cap=backoff_cap
        )
        # every server's request channel is polled: a live read may be asked of any replica
        self._live_requests = [
            RequestPoller(
                functools.partial(self._calls.request, pinned=index),
                self.engine,
                host_id=host_id,
                agent_id=self.agent_id,
                wait=claim_wait,
                backoff_cap=backoff_cap,
            )
            for index in range(len(self.servers))
        ]
        self._connected = True  # flips on the first failure, so each outage is logged once
        self.outcomes: list[TaskOutcome] = []

    def __repr__(self) -> str:  # never the token
        return f"Agent(host_id={self.host_id!r}, agent_id={self.agent_id!r}, server={self.server_url!r})"

    @property
    def server_url(self) -> str:
        """The server in use now (one of :attr:`servers`)."""
        return self.servers.url

    # -- lifecycle -------------------------------------------------------------------------

    def stop(self, *, force: bool = False) -> None:
        """Stop claiming; running tasks finish and are reported. ``force`` abandons them too
        (their leases expire and the server requeues them)."""
        self._stop.set()
        if force:
            self._force.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Work until stopped. Never raises for network or engine trouble."""
        read_timeout = self.claim_wait + 10.0
        limit = 2 * self.slots + 4
        self._calls.open(read_timeout=read_timeout, max_connections=limit)
        log.info(
            "agent %s for host %s: server %s, engine %s",
            self.agent_id,
            self.host_id,
            ", ".join(self.servers.urls),
            self.docker_host,
        )
        try:
            await self._self_report.first()
            helpers = [
                asyncio.create_task(self._reporter.run()),
                asyncio.create_task(self._self_report.run()),
                *(asyncio.create_task(p.run()) for p in self._live_requests),  # relayed ps and logs
            ]
            try:
                await self._claim_loop()
                while self._running:  # a graceful stop lets the tasks in hand finish and report
                    await asyncio.wait(set(self._running))
            finally:
                jobs = [*self._running, *helpers]
                for job in jobs:
                    job.cancel()
                for job in jobs:
                    with contextlib.suppress(asyncio.CancelledError):
                        await job
        finally:
            await self._calls.close()
            if self._own_engine:
                await self.engine.close()
            log.info("agent %s stopped", self.agent_id)

    async def _claim_loop(self) -> None:
        """Claim as many tasks as there are free slots, start each at once, repeat until stopped."""
        backoff = Backoff(cap=self.backoff_cap)
        missed = 0  # claims in a row that did not get through
        while not self.stopping:
            free = self.slots - len(self._running)
            if free <= 0:
                self._slot_freed.clear()
                await self._until(self._slot_freed)
                continue
            failovers = self._calls.failovers
            try:
                if self._claim_lost:
                    await self._give_back_unheld()
                tasks = await self._claim_or_stop(min(free, CLAIM_BATCH))
            except (Unreachable, Refused) as exc:
                # an attempt that did not get through may still have claimed tasks on its server
                self._claim_lost = self._claim_lost or isinstance(exc, Unreachable)
                missed += 1
                if missed < len(self.servers) and self._calls.failovers != failovers:
                    continue  # on to the next server at once (the give-back goes first)
                missed = 0  # every server tried: wait before the next round
                self._lost_server(exc)
                await self._sleep(backoff.next_delay())
                continue
            missed = 0
            backoff.reset()
            self._server_back()
            for task in tasks:
                self._held.add(task.id)  # now, so that a give-back never takes it
                job = asyncio.create_task(self._run_task(task), name=f"task-{task.id}")
                self._running.add(job)
                job.add_done_callback(self._slot_done)

    def _slot_done(self, job: asyncio.Task[None]) -> None:
        self._running.discard(job)
        self._slot_freed.set()

    async def _until(self, event: asyncio.Event) -> None:
        """Wait for ``event``, or until stopping."""
        waiting = asyncio.ensure_future(event.wait())
        try:
            await _done_or_set(waiting, self._stop)
        finally:
            waiting.cancel()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when stopping."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _lost_server(self, exc: BaseException) -> None:
        if self._connected:
            self._connected = False
            which = "server" if len(self.servers) == 1 else "every server, last"
            log.warning("%s %s unavailable (%s); retrying with backoff", which, self.server_url, exc)
        else:
            log.debug("server still unavailable: %s", exc)

    def _server_back(self) -> None:
        if not self._connected:
            self._connected = True
            log.info("server %s reachable again", self.server_url)

    # -- HTTP ------------------------------------------------------------------------------

    async def _claim_or_stop(self, limit: int) -> list[Task]:
        """Long-poll for up to ``limit`` tasks, claimed as running; empty on timeout or stop."""
        claim = asyncio.ensure_future(
            self._calls.request(
                "POST",
                f"/agents/{self.host_id}/claims",
                params={"wait": self.claim_wait, "max": limit, "start": "true"},
                json={"agentId": self.agent_id, "leaseSeconds": self.lease_seconds},
                single=True,  # a failed claim is given back before the next, maybe elsewhere
            )
        )
        await _done_or_set(claim, self._stop)
        if not claim.done():
            # stopping while idle: drop the poll. Should the server hand out tasks at this very
            # instant, their leases expire and they are requeued.
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError, Unreachable, Refused):
                await claim
            return []
        response = claim.result()
        if response is None:
            return []
        try:
            return _TASKS.validate_json(response.content)
        except ValueError as exc:
            raise Unreachable(f"claim answered unreadable tasks: {exc}") from exc

    async def _give_back_unheld(self) -> None:
        """After a claim whose answer never came (its server died, the connection broke), the
        store may hold tasks claimed for this agent that it never received: hand them back to
        the queue now rather than leave them under a lease nobody renews until it expires."""
        response = await self._calls.request("GET", f"/agents/{self.host_id}/tasks")
        try:
            held = _TASKS.validate_json(response.content) if response is not None else []
        except ValueError as exc:
            raise Unreachable(f"the host's tasks came back unreadable: {exc}") from exc
        orphans = [
            t
            for t in held
            if t.agent_id == self.agent_id
            and t.status in (TaskStatus.assigned, TaskStatus.running)
            and t.id not in self._held
        ]
        if orphans:
            body = [{"id": t.id, "status": "pending", "agentId": self.agent_id} for t in orphans]
            await self._calls.request("PUT", "/tasks/status", json=body)
            log.info("gave back %d task(s) claimed for this agent whose claim answer was lost", len(orphans))
        self._claim_lost = False

    # -- one task ------------------------------------------------------------------------------

    async def _run_task(self, task: Task) -> None:
        started = time.monotonic()
        log.info(
            "task %s claimed: %s%s",
            task.id,
            task.task_type.value,
            f" (stack {task.stack_id})" if task.stack_id else "",
        )
        lost = asyncio.Event()
        outcome = TaskOutcome(task.id, None)  # claimed with start=true: it is running already
        heartbeat = asyncio.create_task(self._heartbeat(task, lost))
        try:
            status, result, error = await self._execute(task)
            outcome.error, outcome.seconds = error, time.monotonic() - started
            if status is None:
                log.warning("task %s abandoned: agent forced to stop; its lease will expire", task.id)
            elif lost.is_set():
                log.warning("task %s ended (%s) but its lease was lost; not reported", task.id, status.value)
            else:
                body: dict[str, Any] = {"status": status.value}
                if error is not None:
                    body["error"] = error
                if result is not None:
                    body["result"] = result
                if await self._report(task, body, lost):
                    outcome.status = status
                    if status is TaskStatus.completed:
                        log.info("task %s completed in %.2fs", task.id, outcome.seconds)
                    else:
                        log.warning("task %s failed in %.2fs: %s", task.id, outcome.seconds, error)
        finally:
            self._held.discard(task.id)
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.outcomes.append(outcome)
            self._self_report.engine_changed()

    async def _execute(self, task: Task) -> tuple[TaskStatus | None, dict[str, Any] | None, str | None]:
        """Run the task on the engine: (completed, result, None), (failed, None, error), or
        (None, None, None) when a forced stop abandoned it."""
        limit = task.timeout_seconds
        work = asyncio.ensure_future(asyncio.wait_for(execute(self.engine, task), limit + TIMEOUT_GRACE))
        await _done_or_set(work, self._force)
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work  # let the interpreter clean up (it shields its own cleanup)
            return None, None, None
        try:
            return TaskStatus.completed, work.result(), None
        except TimeoutError:
            error = f"timed out: {task.task_type.value} did not finish within timeoutSeconds={limit:g}"
            return TaskStatus.failed, None, error
        except GraphiumError as exc:
            return TaskStatus.failed, None, str(exc)
        except Exception as exc:  # a bug, not the task's fault: still report it rather than hang
            log.exception("task %s: unexpected error", task.id)
            return TaskStatus.failed, None, f"agent error: {_describe(exc)}"

    async def _report(self, task: Task, body: dict[str, Any], lost: asyncio.Event) -> bool:
        """Hand a status to the reporter and wait until it lands. False when the task is no
        longer ours (409/404), the server refuses the change, or a forced stop gives up."""
        if lost.is_set() or self._force.is_set():
            return False
        answer = await self._reporter.deliver({**body, "id": task.id, "agentId": self.agent_id}, lost)
        if answer is None:
            return False
        code, detail = answer
        if code == 200:
            return True
        if code in (404, 409):
            lost.set()
            log.warning(
                "task %s: no longer held by this agent (lease expired or task cancelled); "
                "not reporting %s: %s",
                task.id,
                body["status"],
                detail,
            )
        else:
            log.error("task %s: server refused status %s: %s %s", task.id, body["status"], code, detail)
        return False

    async def _send_reports(self, bodies: list[dict[str, Any]]) -> list[Answer]:
        """One batch report: ``PUT /tasks/status`` answers per task, in order."""
        response = await self._calls.request("PUT", "/tasks/status", json=bodies)
        try:
            items = response.json() if response is not None else None
        except ValueError:
            items = None
        return batch_answers(items, len(bodies))

    async def _heartbeat(self, task: Task, lost: asyncio.Event) -> None:
        """Extend the lease every third of it; a 409/404 means the lease is lost."""
        interval = self.lease_seconds / 3
        body = {"agentId": self.agent_id, "leaseSeconds": self.lease_seconds}
        while True:
            await asyncio.sleep(interval)
            try:
                response = await self._calls.request(
                    "POST", f"/tasks/{task.id}/heartbeat", json=body, gone_ok=True
                )
            except (Unreachable, Refused) as exc:
                log.debug("task %s: heartbeat failed: %s", task.id, exc)
                continue
            if response is None:
                lost.set()
                log.warning("task %s: lease lost (heartbeat refused); will not report it", task.id)
                return


async def _done_or_set(work: asyncio.Future[Any], event: asyncio.Event) -> None:
    """Wait until ``work`` is done or ``event`` is set, whichever comes first; ``work`` goes on."""
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({work, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()


def run_agent(
    host_id: str,
    server_url: str | Sequence[str],
    token: str,
    docker_host: str | None = None,
    agent_id: str | None = None,
    slots: int = 4,
    ca_cert: str | None = None,
) -> None:
    """Run an agent until SIGTERM/SIGINT: the first signal stops claiming and lets the task in
    hand finish and be reported; a second one abandons it (its lease expires on the server)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    transport.quiet_request_logs()

    async def main() -> None:
        agent = Agent(
            host_id,
            server_url,
            token,
            docker_host=docker_host,
            agent_id=agent_id,
            slots=slots,
            ca_cert=ca_cert,
        )
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            again = agent.stopping
            log.info(
                "%s: %s",
                signal.Signals(signum).name,
                "abandoning the task in hand" if again else "stopping after the task in hand",
            )
            agent.stop(force=again)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await agent.run()

    asyncio.run(main())
