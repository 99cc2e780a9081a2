"""Day-2 reads from the hosts themselves: ``ps``, ``logs``, and the live refresh of ``status``.

Local and SSH hosts are read through the executors' transports; agent hosts through the server
(``--server``), which relays to their agents. Nothing here writes to the store or the hosts.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import click

from graphium.cli.common import (
    EXIT_ERROR,
    emit,
    has_store,
    json_option,
    server_client,
    server_options,
    state_option,
)
from graphium.cli.output import make_console, render_ps
from graphium.docker.listing import mask_log_line, parse_since
from graphium.docker.live import LogOptions
from graphium.errors import GraphiumError
from graphium.executors.live import live_hosts, stream_host_logs
from graphium.executors.router import HostRouter, direct_executors
from graphium.records.live import LiveHost, LiveSummary, reconcile
from graphium.records.stack import StackRecord
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack
from graphium.stack.masking import collect_secrets
from graphium.stack.models import Connection, Host, Inventory
from graphium.store.open import open_store

_T = TypeVar("_T")


def inventory_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "-i", "--inventory", type=click.Path(dir_okay=False), help="Inventory file (JSON or JSON-LD)."
    )(func)


def insecure_option(func: Callable[..., object]) -> Callable[..., object]:
    return click.option(
        "--insecure-skip-host-key-check",
        "insecure",
        is_flag=True,
        help="DANGEROUS: do not verify SSH host keys.",
    )(func)


def _inventory(stack: str | None, path: str | None) -> tuple[str | None, Inventory]:
    """The stack's name (a stack file is read for it and its Host nodes) and the hosts to ask."""
    if stack is not None and os.path.isfile(stack):
        doc = load_stack(stack)
        return doc.stack.name, load_inventory(path, doc.hosts, stack_file=str(doc.path))
    return stack, load_inventory(path)


async def _with_executor(insecure: bool, work: Callable[[HostRouter], Awaitable[_T]]) -> _T:
    router = HostRouter({}, direct_executors(insecure))
    try:
        return await work(router)
    finally:
        await router.close()


def read_live(hosts: list[Host], stack: str | None, insecure: bool) -> list[LiveHost]:
    """The live containers of ``hosts`` reached directly (local and SSH)."""
    return asyncio.run(_with_executor(insecure, lambda router: live_hosts(router, hosts, stack)))


def refresh(records: list[StackRecord], inventory_path: str | None, insecure: bool) -> dict[str, LiveSummary]:
    """``status``: each stored stack reconciled with what its hosts report now. Hosts outside
    the inventory, and agent hosts (only the server reaches them), are listed as unchecked."""
    inventory = load_inventory(inventory_path).by_id()
    wanted = {h for r in records for h in r.hosts} | {
        str(p.get("hostId")) for r in records for p in r.placements.values()
    }
    known = [inventory[h] for h in sorted(wanted) if h in inventory]
    direct = [h for h in known if h.connection is not Connection.agent]
    found = read_live(direct, None, insecure) if direct else []
    return {r.name: reconcile(r, [only_stack(h, r.name) for h in found]) for r in records}


def only_stack(host: LiveHost, stack: str) -> LiveHost:
    return host.model_copy(update={"containers": [c for c in host.containers if c.stack == stack]})


def stored_secrets(state: str, stack: str) -> set[str]:
    """The secret values the store knows the stack by (its tasks list them, by key and by value),
    so that log lines are masked by value too; none when there is no state file."""
    if not has_store(state):
        return set()
    store = open_store(state)
    record = store.get_stack(stack)
    found = collect_secrets([t.payload for t in store.list_tasks(stack_id=stack)])
    return found | (collect_secrets(record.spec) if record is not None else set())


def _print_hosts(found: list[LiveHost], *, as_json: bool, with_stack: bool) -> None:
    if as_json:
        for host in found:
            for container in host.containers:
                emit("container", container.dump())
            if host.error is not None:
                emit("host_error", {"host": host.host, "error": host.error})
        return
    render_ps(found, make_console(), with_stack=with_stack)


@click.command()
@click.argument("stack", required=False)
@inventory_option
@state_option
@server_options
@insecure_option
@json_option
def ps(
    stack: str | None,
    inventory: str | None,
    state: str,
    server_url: str | None,
    token: str | None,
    insecure: bool,
    as_json: bool,
) -> None:
    """Containers as the hosts run them now: state, health, image, ports, uptime, restarts."""
    del state  # accepted like the other commands; ps reads the hosts, not the store
    name, hosts = _inventory(stack, inventory)
    if server_url:
        with server_client(server_url, token) as client:
            found = [LiveHost.model_validate(h) for h in client.hosts_status(name)]
    else:
        found = read_live(hosts.hosts, name, insecure)
    _print_hosts(found, as_json=as_json, with_stack=name is None)
    if any(h.error for h in found):
        sys.exit(EXIT_ERROR)


@click.command()
@click.argument("stack")
@click.argument("container", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines until Ctrl-C.")
@click.option("--tail", type=click.IntRange(0), default=None, help="Only the last N lines of each container.")
@click.option("--since", default=None, help="Only lines since: a duration (10m, 2h) or an RFC 3339 time.")
@inventory_option
@state_option
@server_options
@insecure_option
def logs(
    stack: str,
    container: str | None,
    follow: bool,
    tail: int | None,
    since: str | None,
    inventory: str | None,
    state: str,
    server_url: str | None,
    token: str | None,
    insecure: bool,
) -> None:
    """A stack's container logs, each line prefixed ``container@host |``, secrets masked."""
    name, hosts = _inventory(stack, inventory)
    assert name is not None
    secrets = stored_secrets(state, name)

    def echo(line: str) -> None:  # key-named secrets are masked at the source; these by value
        click.echo(mask_log_line(line, secrets))

    options = LogOptions(
        follow=follow, tail=tail, since=parse_since(since, datetime.now(UTC)) if since else None
    )
    try:
        if server_url:
            with server_client(server_url, token) as client:
                count = client.stream_logs(name, container, options, echo)
        else:
            count = asyncio.run(_local_logs(hosts.hosts, name, container, options, insecure, echo))
    except KeyboardInterrupt:
        return
    if count == 0:
        which = f"container {container} of stack {name}" if container else f"containers of stack {name}"
        raise GraphiumError(f"no {which} on the hosts asked")


async def _local_logs(
    hosts: list[Host],
    stack: str,
    container: str | None,
    options: LogOptions,
    insecure: bool,
    echo: Callable[[str], None],
) -> int:
    direct = [h for h in hosts if h.connection is not Connection.agent]

    async def one(router: HostRouter, host: Host) -> int:
        try:
            return await stream_host_logs(router, host, stack, container, options, echo)
        except (GraphiumError, TimeoutError) as exc:
            click.echo(f"error: {host.id}: {exc or 'did not answer in time'}", err=True)
            return 0

    async def work(router: HostRouter) -> int:
        return sum(await asyncio.gather(*(one(router, h) for h in direct)))

    return await _with_executor(insecure, work)
