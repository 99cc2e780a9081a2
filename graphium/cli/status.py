"""The commands that read: ``status`` of stacks (from the store or a server), ``agents`` and
``tasks``."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

import click

from graphium.cli.common import (
    EXIT_ERROR,
    emit,
    emit_json,
    json_option,
    server_client,
    server_options,
    stack_name,
    state_option,
)
from graphium.cli.deploy import timeout_option
from graphium.cli.following import follow_server
from graphium.cli.ops import insecure_option, inventory_option, only_stack, refresh
from graphium.cli.output import make_console, render_agents, render_stack, render_stacks, render_tasks
from graphium.control.client import ServerClient
from graphium.errors import GraphiumError, WaitTimeoutError
from graphium.records.agent import AgentInfo, agents_view
from graphium.records.live import LiveHost, LiveSummary, reconcile
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus
from graphium.run.events import event_json
from graphium.store.base import TaskStore
from graphium.store.open import mask_url, open_store


@click.command()
@click.argument("stack", required=False)
@state_option
@server_options
@click.option("--follow", is_flag=True, help="Keep printing progress until the stack settles.")
@timeout_option
@inventory_option
@click.option("--no-refresh", is_flag=True, help="Show the stored state only; do not ask the hosts.")
@insecure_option
@json_option
def status(
    stack: str | None,
    state: str,
    server_url: str | None,
    token: str | None,
    follow: bool,
    timeout: float | None,
    inventory: str | None,
    no_refresh: bool,
    insecure: bool,
    as_json: bool,
) -> None:
    """Deployment state of every stack, or of one (with its tasks), checked against what the
    hosts run now (``--no-refresh``: the stored state only)."""
    if server_url:
        _server_status(
            stack, server_url, token, follow=follow, as_json=as_json, timeout=timeout, no_refresh=no_refresh
        )
        return
    store = open_store(state)
    console = make_console()
    if stack is None:
        stacks = store.list_stacks()
        live = None if no_refresh or not stacks else refresh(stacks, inventory, insecure)
        if as_json:
            for s in stacks:
                emit("stack", {**s.public_dump(), **_live_json(live, s.name)})
        elif not stacks:
            click.echo("No stacks.")
        else:
            render_stacks(stacks, console, live)
        return
    name = stack_name(stack)
    record = store.get_stack(name)
    if follow:
        record = _follow_store(store, name, as_json, record, timeout)
    if record is None:
        if follow:
            return
        raise GraphiumError(f"no stack named {name} in {mask_url(state)}")
    live = None if no_refresh else refresh([record], inventory, insecure)
    if as_json:
        emit("stack", {**record.public_dump(), "tasks": store.stats(stack_id=name), **_live_json(live, name)})
    else:
        render_stack(record, store.list_tasks(stack_id=name), console, None if live is None else live[name])
    if record.status is StackStatus.error:
        sys.exit(EXIT_ERROR)


def _live_json(live: dict[str, LiveSummary] | None, name: str) -> dict[str, Any]:
    return {} if live is None or name not in live else {"live": live[name].dump()}


def _server_status(
    stack: str | None,
    server_url: str,
    token: str | None,
    *,
    follow: bool,
    as_json: bool,
    timeout: float | None,
    no_refresh: bool,
) -> None:
    """``status --server``: the same tables (and the same live check) as local status, from the
    server's records and its agents' live reports."""
    console = make_console()
    with server_client(server_url, token) as client:
        if stack is None:
            entries = client.list_stacks()
            records = [StackRecord.model_validate(e) for e in entries]
            live = None if no_refresh or not records else _server_live(client, records, None)
            if as_json:
                for entry, record in zip(entries, records, strict=True):
                    emit("stack", {**entry, **_live_json(live, record.name)})
            elif not records:
                click.echo("No stacks.")
            else:
                render_stacks(records, console, live)
            return
        name = stack_name(stack)
        found = client.get_stack(name)
        if follow:
            deleting = found is not None and found.get("status") == "deleting"
            if not follow_server(client, name, as_json, deleting=deleting, timeout=timeout):
                sys.exit(EXIT_ERROR)
            return
        if found is None:
            raise GraphiumError(f"no stack named {name} on {server_url}")
        record = StackRecord.model_validate(found)
        live = None if no_refresh else _server_live(client, [record], name)
        if as_json:
            emit("stack", {**found, **_live_json(live, name)})
        else:
            tasks = [Task.model_validate({**t, "stackId": name}) for t in found.get("tasks", [])]
            render_stack(record, tasks, console, None if live is None else live[name])
        if record.status is StackStatus.error:
            sys.exit(EXIT_ERROR)


def _server_live(
    client: ServerClient, records: list[StackRecord], stack: str | None
) -> dict[str, LiveSummary]:
    hosts = [LiveHost.model_validate(h) for h in client.hosts_status(stack)]
    return {r.name: reconcile(r, [only_stack(h, r.name) for h in hosts]) for r in records}


def _follow_store(
    store: TaskStore, name: str, as_json: bool, record: StackRecord | None, timeout: float | None
) -> StackRecord | None:
    """Wait for a stack in the store to settle (running, error, or deleted), printing the events
    of its current run (an earlier run's tasks are not this one's progress)."""
    after = 0
    deadline = None if timeout is None else time.monotonic() + timeout
    while record is not None and record.status in (StackStatus.deploying, StackStatus.deleting):
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeoutError(
                f"stack {name} is still {record.status.value} after {timeout:g} s; its queued tasks "
                "stay queued for the agents"
            )
        for event in store.list_events(after=after, stack_id=name):
            after = event.seq
            if record.run_id is not None and event.run_id != record.run_id:
                continue
            if as_json:
                emit_json(event_json(event))
            elif event.type == "task_waiting":
                click.echo(f"{'waiting':<9} {event.host_id or '':<16} {event.data.get('message', '')}")
            elif event.task_id:
                data = event.data
                error = f": {data['error']}" if data.get("error") else ""
                line = f"{data.get('status', ''):<9} {event.host_id or '':<16} {data.get('description', '')}"
                click.echo(line + error)
        time.sleep(0.2)
        record = store.get_stack(name)
    return record


@click.command()
@state_option
@server_options
@json_option
def agents(state: str, server_url: str | None, token: str | None, as_json: bool) -> None:
    """The agents known to the server (or the store), live or down, with what they hold."""
    if server_url:
        with server_client(server_url, token) as client:
            found = [AgentInfo.model_validate(a) for a in client.list_agents()]
    else:
        store = open_store(state)
        holding = [t for s in (TaskStatus.assigned, TaskStatus.running) for t in store.list_tasks(status=s)]
        found = agents_view(store.list_agents(), holding, datetime.now(UTC))
    if as_json:
        for agent in found:
            emit("agent", agent.model_dump(mode="json", by_alias=True))
    elif not found:
        click.echo("No agents have registered.")
    else:
        render_agents(found, make_console())


@click.group()
def tasks() -> None:
    """Inspect the task store."""


@tasks.command("list")
@state_option
@click.option("--stack", "stack_id")
@click.option("--status", type=click.Choice([s.value for s in TaskStatus]))
@click.option("--host", "host_id")
@json_option
def tasks_list(
    state: str, stack_id: str | None, status: str | None, host_id: str | None, as_json: bool
) -> None:
    """List tasks (payloads, which may hold secrets, are not shown)."""
    found = open_store(state).list_tasks(
        status=TaskStatus(status) if status else None, stack_id=stack_id, host_id=host_id
    )
    if not as_json:
        render_tasks(found, make_console())
        return
    for task in found:
        data: dict[str, Any] = task.dump()
        data.pop("payload", None)
        emit("task", data)


@tasks.command("stats")
@state_option
@click.option("--stack", "stack_id")
@json_option
def tasks_stats(state: str, stack_id: str | None, as_json: bool) -> None:
    """Count tasks per status."""
    stats = open_store(state).stats(stack_id=stack_id)
    if as_json:
        emit("task_stats", stats)
    else:
        for key, value in stats.items():
            click.echo(f"{key:<10} {value}")
