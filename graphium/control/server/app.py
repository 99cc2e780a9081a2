"""The control server: task API for agents, stack API for people, event stream for watchers.

Everything lives under ``/api/v1`` and works on the same task store as the CLI (a JSON file by
default), so a stack applied by the CLI and one posted here are the same records. Stacks posted
here are planned against the server's inventory with every host treated as an agent host, and run
by a :class:`~graphium.run.deployer.Deployer` in the background whose :class:`AgentExecutor` waits
for the agents' reports. The task monitor (:mod:`.monitor`) finishes what a background run could
not (a server restart) and returns expired leases to the queue.

This module assembles the app: the routers of :mod:`.routes` (one per resource), the shared
state (:mod:`.state`), the error handlers and the lifespan. FastAPI is imported only inside this
package.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from graphium.control.server import web
from graphium.control.server.auth import TokenFileError, TokenRegistry
from graphium.control.server.changes import ChangeFeed
from graphium.control.server.docs import add_docs
from graphium.control.server.listen import plan_listen
from graphium.control.server.logs import redact_server_logs
from graphium.control.server.monitor import monitor
from graphium.control.server.presence import AgentRegistry
from graphium.control.server.replication import MonitorLeadership, watch_others
from graphium.control.server.routes import agents, events, ops, stacks, tasks, versions
from graphium.control.server.state import Server
from graphium.errors import (
    GraphiumError,
    NotFoundError,
    PlacementError,
    PlanError,
    StoreError,
    TransitionError,
    ValidationError,
)
from graphium.executors.agent import AgentExecutor
from graphium.records.agent import DOWN_AFTER
from graphium.run.events import EventBus
from graphium.stack.inventory import load_inventory

log = logging.getLogger("graphium.control.server")


def create_app(
    state: str, tokens_file: str, inventory: str | None = None, *, agent_down_after: float = DOWN_AFTER
) -> FastAPI:
    """The ASGI app over the store at ``state`` (a JSON file's path or a PostgreSQL URL, see
    :func:`~graphium.store.open.open_store`); raises GraphiumError when it cannot serve safely.
    An agent unseen for ``agent_down_after`` seconds is down."""
    from graphium.store.open import open_store

    redact_server_logs()
    tokens = TokenRegistry(tokens_file)
    if len(tokens) == 0:
        raise TokenFileError(
            f"{tokens_file}: no tokens configured; the server never runs open. "
            "Create one with `graphium-run token create --admin`"
        )
    if inventory is not None:
        load_inventory(inventory)  # fail at start, not on the first stack
    store = open_store(state)
    leadership = MonitorLeadership(store)
    feed = ChangeFeed()
    feed.attach(store)
    registry = AgentRegistry(store, down_after=agent_down_after)
    srv = Server(
        store=store,
        feed=feed,
        tokens=tokens,
        inventory_path=inventory,
        executor=AgentExecutor(
            store,
            poll_interval=2.0,  # a safety net only: every change wakes it (see .changes)
            wait_for_change=feed.wait_any,
            last_contact=registry.last_seen,
            waiting_reason=registry.waiting_reason,
            notify=lambda event: EventBus(store).emit(event),
        ),
        agents=registry,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.bind(asyncio.get_running_loop())
        background = [
            asyncio.create_task(watch_others(store, feed)),  # other processes' commits
            asyncio.create_task(monitor(srv, leadership)),
            asyncio.create_task(tokens.flush_usage_every()),
        ]
        try:
            yield
        finally:
            for job in [*background, *srv.runs.values()]:
                job.cancel()
            for job in [*background, *srv.runs.values()]:
                with suppress(asyncio.CancelledError, Exception):
                    await job
            store.close()

    app = FastAPI(
        title="graphium control server",
        version="1",
        summary="Task API for agents, stack API for people, event stream for watchers.",
        lifespan=lifespan,
        docs_url=None,  # add_docs serves /docs and /redoc from bundled assets, not a CDN
        redoc_url=None,
    )
    add_docs(app)
    app.state.server = srv
    install_error_handlers(app)
    for router in (tasks.router, agents.router, stacks.router, versions.router, events.router, ops.router):
        app.include_router(router)
    app.include_router(web.router())
    app.mount(web.STATIC_URL, web.static_files(), name="web-static")
    return app


# errors -------------------------------------------------------------------------------------------
def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def install_error_handlers(app: FastAPI) -> None:
    """graphium's errors as JSON answers: 400 with ``problems`` for invalid input, 404, 409 with
    the reason, 500 (logged) for a bug."""

    def handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(_: Request, exc: Exception) -> JSONResponse:
            if isinstance(exc, ValidationError):
                problems = [{"file": p.file, "path": p.path, "message": p.message} for p in exc.problems]
                return _error(status, f"{len(problems)} problem(s) found", problems=problems)
            return _error(status, str(exc))

        return handle

    app.add_exception_handler(ValidationError, handler(400))
    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(TransitionError, handler(409))
    app.add_exception_handler(StoreError, handler(409))
    app.add_exception_handler(PlanError, handler(409))
    app.add_exception_handler(PlacementError, handler(409))
    app.add_exception_handler(GraphiumError, handler(400))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, pydantic.ValidationError)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _error(400, "invalid data", errors=errors)

    app.add_exception_handler(pydantic.ValidationError, invalid)

    async def unfit(_: Request, exc: Exception) -> JSONResponse:
        """FastAPI's 422 without the offending ``input``: it may hold a secret, and a NaN in it
        made the answer itself fail (a 500) since JSON cannot carry one."""
        assert isinstance(exc, RequestValidationError)
        errors = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    app.add_exception_handler(RequestValidationError, unfit)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(Exception, bug)


# entry point --------------------------------------------------------------------------------------
def serve(
    host: str,
    port: int,
    state: str,
    tokens_file: str,
    inventory: str | None,
    *,
    agent_down_after: float = DOWN_AFTER,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    insecure_http: bool = False,
) -> None:
    """Run the server until interrupted (``graphium-run serve``): HTTPS when given a certificate
    and key; plain HTTP only on loopback, or elsewhere with ``insecure_http`` (and a warning).
    Every option is checked before the socket is bound."""
    import uvicorn

    from graphium.store.open import is_database_url, mask_url

    listen = plan_listen(host, port, cert=tls_cert, key=tls_key, insecure_http=insecure_http)
    if not is_database_url(state):
        Path(state).parent.mkdir(parents=True, exist_ok=True)
    app = create_app(state, tokens_file, inventory, agent_down_after=agent_down_after)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if listen.warning:
        log.warning(listen.warning)
    log.info("serving %s://%s:%d, store %s", listen.scheme, host, port, mask_url(state))
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        timeout_graceful_shutdown=2,
        ssl_certfile=listen.cert,
        ssl_keyfile=listen.key,
    )


__all__ = ["create_app", "install_error_handlers", "serve"]
