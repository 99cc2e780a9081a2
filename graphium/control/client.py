"""A small client of the control server's stack API, for ``graphium-run --server`` and scripts.

Server errors come back as :class:`GraphiumError` with the server's own explanation (a 400's list
of problems, a 409's reason), never as an HTTP library exception. An https server is verified
against ``ca_cert`` or the system trust store (see :mod:`graphium.control.transport`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from graphium.control import transport
from graphium.control.envelope import envelope
from graphium.control.live_requests import LOG_ERROR, LOG_TRAILER
from graphium.control.servers import ServerList
from graphium.docker.live import LogOptions
from graphium.errors import GraphiumError, Problem, StackError, WaitTimeoutError

FINAL = ("running", "error")


def emit_error(message: str) -> None:
    """A host's failure inside a log stream, to stderr (the lines go to stdout)."""
    print(f"error: {message}", file=sys.stderr, flush=True)


class ServerClient:
    """Calls the stack API; :meth:`follow` watches one stack's current run.

    ``url`` may name several replicas of the server (a comma list or a sequence, see
    :mod:`graphium.control.servers`): a request that cannot get through to the one in use goes
    to the next, which is then kept. Reads, PUTs and DELETEs (idempotent) move on any failure to
    get an answer; a POST only when it surely never reached a server (connection refused, connect
    timeout, a 503), since the first server may have started the run it asks for.
    """

    def __init__(
        self, url: str | Sequence[str], token: str, *, timeout: float = 30.0, ca_cert: str | None = None
    ) -> None:
        self.servers = ServerList(url)
        tls = transport.tls_context(ca_cert)
        self._clients = [transport.api_client(u, token, timeout=timeout, tls=tls) for u in self.servers.urls]

    @property
    def url(self) -> str:
        """The server in use now."""
        return self.servers.url

    def close(self) -> None:
        for http in self._clients:
            http.close()

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, idempotent: bool | None, **kwargs: Any) -> transport.Response:
        """The first answer among the servers, in failover order (see the class)."""
        safe = method in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent
        order = self.servers.order()
        for attempt, index in enumerate(order):
            last = attempt == len(order) - 1
            try:
                response = self._clients[index].request(method, path, **kwargs)
            except transport.HTTPError as exc:
                may_retry = safe and isinstance(exc, transport.TransportError)
                if not last and (may_retry or transport.surely_not_sent(exc)):
                    self.servers.failed(index, str(exc) or type(exc).__name__)
                    continue
                raise self._unreachable(index, method, path, exc, safe) from None
            code = response.status_code
            if not last and code in transport.FAILOVER_CODES and (safe or code == transport.UNAVAILABLE):
                self.servers.failed(index, f"it answered {code}")
                continue
            self.servers.answered(index)
            return response
        raise AssertionError("unreachable: the last server's outcome is returned or raised")

    def _unreachable(self, index: int, method: str, path: str, exc: Exception, safe: bool) -> GraphiumError:
        if isinstance(exc, transport.CertificateError):
            return GraphiumError(str(exc))
        where = ", ".join(self.servers.urls) if len(self.servers) > 1 else self.servers.urls[index]
        message = f"cannot reach the graphium server at {where}: {exc}"
        if not safe and not transport.surely_not_sent(exc):
            message += (
                f" (the server may have received {method} {path} before the connection broke: "
                "check with `graphium-run status --server ...` before sending it again)"
            )
        return GraphiumError(message)

    def _call(self, method: str, path: str, *, idempotent: bool | None = None, **kwargs: Any) -> Any:
        response = self._send(method, path, idempotent, **kwargs)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"detail": response.text}
            problems = body.get("problems") if isinstance(body, dict) else None
            if problems:
                raise StackError(
                    [
                        Problem(p.get("file", "stack"), p.get("path", "$"), p.get("message", ""))
                        for p in problems
                    ]
                )
            detail = body.get("detail", body) if isinstance(body, dict) else body
            raise GraphiumError(f"server refused {method} {path} ({response.status_code}): {detail}")
        return response.json() if response.content else None

    def post_stack(self, document: Any, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Post ``document``: with ``variables``, as written inside an envelope (the server fills
        them, masks the secret ones and records the version); without, as already filled."""
        body = document if variables is None else envelope(document, variables)
        result: dict[str, Any] = self._call("POST", "/stacks", json=body)
        return result

    def list_versions(self, stack_id: str) -> list[dict[str, Any]]:
        """The stack's recorded versions, oldest first (``history --server``)."""
        result: list[dict[str, Any]] = self._call("GET", f"/stacks/{stack_id}/versions")
        return result

    def rollback(self, stack_id: str, to: int | None, variables: Mapping[str, str]) -> dict[str, Any]:
        """Roll the stack back to version ``to`` (default: the one before the running one), with
        the values of the variables that version does not record."""
        body: dict[str, Any] = {"variables": dict(variables)}
        if to is not None:
            body["to"] = to
        result: dict[str, Any] = self._call("POST", f"/stacks/{stack_id}/rollback", json=body)
        return result

    def delete_stack(self, stack_id: str, *, volumes: bool = False) -> dict[str, Any]:
        params = {"volumes": "true"} if volumes else None
        result: dict[str, Any] = self._call("DELETE", f"/stacks/{stack_id}", params=params)
        return result

    def get_stack(self, stack_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", f"/stacks/{stack_id}")
        except GraphiumError as exc:
            if "(404)" in str(exc):
                return None
            raise
        return result

    def list_stacks(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/stacks")
        return result

    def list_agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/agents")
        return result

    def preview(
        self, document: Any, *, destroy: bool = False, variables: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The plan the server would run for ``document`` now (``plan --server``), secrets masked;
        ``variables`` as for :meth:`post_stack`."""
        body = document if variables is None else envelope(document, variables)
        result: dict[str, Any] = self._call(  # a POST that changes nothing: safe to resend
            "POST", "/plans", idempotent=True, json=body, params={"destroy": destroy}, timeout=60.0
        )
        return result

    def hosts_status(self, stack: str | None = None) -> list[dict[str, Any]]:
        """What the server's hosts run now (``ps``): one entry per host, or its error."""
        params = {"stack": stack} if stack else {}
        result: list[dict[str, Any]] = self._call("GET", "/hosts/status", params=params, timeout=60.0)
        return result

    def stream_logs(
        self, stack: str, container: str | None, options: LogOptions, emit: Callable[[str], None]
    ) -> int:
        """Relay the server's log stream of ``stack`` line by line to ``emit``; the number of
        containers read (the stream's last line, ``# containers: N``)."""
        params: dict[str, Any] = {"follow": options.follow}
        if container:
            params["container"] = container
        if options.tail is not None:
            params["tail"] = options.tail
        if options.since is not None:
            params["since"] = options.since
        count = 0
        path = f"/stacks/{stack}/logs"
        order = self.servers.order()
        for attempt, index in enumerate(order):
            try:
                with self._clients[index].stream("GET", path, params=params, timeout=None) as response:
                    if response.status_code >= 400:
                        response.read()
                        detail = response.json().get("detail") if response.content else response.text
                        raise GraphiumError(f"server refused GET {path} ({response.status_code}): {detail}")
                    self.servers.answered(index)
                    for line in response.iter_lines():
                        if line.startswith(LOG_TRAILER):
                            count = int(line[len(LOG_TRAILER) :] or 0)
                        elif line.startswith(LOG_ERROR):
                            emit_error(line[len(LOG_ERROR) :])
                        else:
                            emit(line)
                return count
            except transport.HTTPError as exc:  # another replica, unless lines were relayed already
                if attempt < len(order) - 1 and transport.surely_not_sent(exc):
                    self.servers.failed(index, str(exc) or type(exc).__name__)
                    continue
                raise self._unreachable(index, "GET", path, exc, True) from None
        return count

    def follow(
        self, stack_id: str, *, interval: float = 0.2, deleting: bool = False, timeout: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the stack's state each time it changes, until it is running or in error (or, when
        ``deleting``, gone: then the last state yielded has status ``deleted``). Its ``tasks`` are
        the current run's only: earlier runs' failed or cancelled tasks are not this run's news.
        Raises WaitTimeoutError once ``timeout`` seconds passed without that."""
        last: Any = None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = self.get_stack(stack_id)
            if state is None:
                if deleting:
                    yield {"id": stack_id, "status": "deleted", "tasks": []}
                return
            state = current_run(state)
            snapshot = (
                state.get("status"),
                state.get("progress"),
                [(t["id"], t["status"]) for t in state["tasks"]],
                state.get("waiting"),
            )
            if snapshot != last:
                last = snapshot
                yield state
            if state.get("status") in FINAL and not state.get("active") and not deleting:
                return
            if deleting and state.get("status") == "error" and not state.get("active"):
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeoutError(_timed_out(stack_id, state, timeout or 0))
            time.sleep(interval)


def _timed_out(stack_id: str, state: dict[str, Any], timeout: float) -> str:
    open_tasks = [t for t in state.get("tasks", []) if t.get("status") in ("pending", "assigned", "running")]
    why = "; ".join(w["message"] for w in state.get("waiting", []))
    return (
        f"stack {stack_id} is still {state.get('status')} after {timeout:g} s, "
        f"{len(open_tasks)} task(s) not done{f' ({why})' if why else ''}; the tasks stay queued: "
        f"follow with `graphium-run status {stack_id} --follow`"
    )


def current_run(state: dict[str, Any]) -> dict[str, Any]:
    """A stack state (``GET /stacks/{id}``) with only the tasks of the run its record names."""
    run = state.get("runId")
    if run is None:
        return state
    return {**state, "tasks": [t for t in state.get("tasks", []) if t.get("runId") == run]}


__all__ = ["ServerClient", "current_run"]
