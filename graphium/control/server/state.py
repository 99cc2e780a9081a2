"""What the control server's routes and monitor share: the store, the change feed, the tokens,
the inventory, the background runs and the agents' presence."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass, field

from graphium.control.server.auth import TokenRegistry
from graphium.control.server.changes import ChangeFeed
from graphium.control.server.presence import AgentRegistry
from graphium.control.server.requests import RequestBroker
from graphium.executors.agent import AgentExecutor
from graphium.plan.model import Plan
from graphium.records.event import Event
from graphium.records.stack import StackStatus
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus, EventType, stack_event
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import StackDocument
from graphium.stack.models import Connection, Inventory
from graphium.store.base import TaskStore

log = logging.getLogger("graphium.control.server")


@dataclass
class Server:
    """The server's shared state; routes reach it through :func:`deps.server`."""

    store: TaskStore
    feed: ChangeFeed
    tokens: TokenRegistry
    inventory_path: str | None
    executor: AgentExecutor
    agents: AgentRegistry
    runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    requests: RequestBroker = field(default_factory=RequestBroker)  # live reads relayed to agents

    def touch(self, host_id: str, agent_id: str | None = None) -> None:
        """An agent showed it is alive (claim, heartbeat, report)."""
        self.agents.seen(host_id, agent_id)

    def inventory(self, doc: StackDocument | None) -> Inventory:
        """The server's hosts (and the stack's own Host nodes), every one reached through its agent."""
        inv = load_inventory(self.inventory_path, doc.hosts if doc else [])
        return Inventory(hosts=[h.model_copy(update={"connection": Connection.agent}) for h in inv.hosts])

    def active(self, stack_id: str) -> bool:
        run = self.runs.get(stack_id)
        return run is not None and not run.done()

    async def stop_run(self, stack_id: str) -> None:
        run = self.runs.get(stack_id)
        if run is not None and not run.done():
            run.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await run

    def emit(self, *events: Event) -> None:
        EventBus(self.store).emit(*events)

    async def start(self, deployer: Deployer, plan: Plan) -> bool:
        """Run ``plan`` in the background; return once its tasks are stored (True), or once it
        ended without storing any because nothing changes (False). Errors before that are raised
        here."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[bool] = loop.create_future()
        kinds = {EventType.stack_deploying.value, EventType.stack_deleting.value}

        def begun() -> None:
            if not started.done():
                started.set_result(True)

        def on_event(event: Event) -> None:  # called in whichever thread committed it
            if event.type in kinds and event.stack_id == plan.stack:
                if _in_loop(loop):
                    begun()
                else:
                    loop.call_soon_threadsafe(begun)

        unsubscribe = deployer.events.subscribe(on_event)

        async def run() -> None:
            try:
                await deployer.apply(plan)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not started.done():
                    started.set_exception(exc)
                    return
                log.exception("stack %s: background run failed", plan.stack)
                await asyncio.to_thread(self.mark_error, plan.stack, f"{type(exc).__name__}: {exc}")
            finally:
                unsubscribe()
                if not started.done():
                    started.set_result(False)
                if self.runs.get(plan.stack) is asyncio.current_task():
                    del self.runs[plan.stack]

        self.runs[plan.stack] = asyncio.create_task(run(), name=f"stack-{plan.stack}")
        return await started

    def mark_error(self, stack_id: str, error: str) -> None:
        """A background run crashed: the stack it left deploying or deleting is in error."""
        with self.store.batch():
            record = self.store.get_stack(stack_id)
            if record is None or record.status not in (StackStatus.deploying, StackStatus.deleting):
                return
            self.store.save_stack(
                record.model_copy(update={"status": StackStatus.error, "phase": "failed", "error": error})
            )
            self.emit(stack_event(EventType.stack_failed, stack_id, run_id=record.run_id, error=error))


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["Server"]
