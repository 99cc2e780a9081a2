"""The versions of a stack, and going back to one: history, rollback.

Every successful apply records a version of its stack (:mod:`graphium.run.versions`);
``rollback`` plans an earlier one against the live hosts and applies it through the same path as
``apply``: the same plan output, progress and result, and a version of its own when it succeeds.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

import click

from graphium.cli.common import (
    EXIT_ERROR,
    Options,
    common_options,
    emit,
    has_store,
    json_option,
    server_client,
    server_options,
    stack_name,
    state_option,
)
from graphium.cli.deploy import _execute
from graphium.cli.following import hand_over
from graphium.cli.safety import auto_approve_option, confirm, interactive, lock_wait_option
from graphium.control.client import ServerClient
from graphium.errors import Problem, StackError
from graphium.records.stack import StackRecord
from graphium.records.version import StackVersion, current_version, rollback_target
from graphium.run import versions
from graphium.stack.inventory import load_inventory
from graphium.stack.models import Inventory
from graphium.store.open import open_store

#: what the server's listing adds for its own clients, left out of ``history --json``
SERVER_ONLY = ("rollbackTarget", "variablesNeeded")


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return stamp


def _stored(state: str, name: str) -> tuple[list[StackVersion], StackRecord | None]:
    """The stack's versions and record; none without a store (never create one just to look)."""
    if not has_store(state):
        return [], None
    with open_store(state) as store:
        return store.list_versions(name), store.get_stack(name)


def _images(images: dict[str, str]) -> str:
    return ", ".join(f"{name}={image}" for name, image in sorted(images.items()))


def _entries(found: list[StackVersion], record: StackRecord | None) -> list[dict[str, Any]]:
    """The versions as the server lists them (``GET /stacks/{id}/versions``)."""
    current = current_version(found, record)
    return [{**v.public_dump(), "current": v is current, "result": v.result()} for v in found]


def _table(name: str, entries: list[dict[str, Any]], as_json: bool) -> None:
    """The versions as a table, or one JSON line each; the same for local and ``--server``."""
    if as_json:
        for entry in entries:
            emit("version", {k: v for k, v in entry.items() if k not in SERVER_ONLY})
        return
    if not entries:
        click.echo(f"Stack {name} has no recorded versions (a successful apply records one).")
        return
    rows = [
        (
            "*" if e["current"] else " ",
            str(e["number"]),
            _when(e["appliedAt"]),
            e["appliedBy"],
            _images(e["images"]),
            e["result"],
        )
        for e in entries
    ]
    header = (" ", "VERSION", "APPLIED", "BY", "IMAGES", "RESULT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])


@click.command()
@click.argument("stack")
@state_option
@server_options
@json_option
def history(stack: str, state: str, server_url: str | None, token: str | None, as_json: bool) -> None:
    """List the recorded versions of STACK (a name or a stack file), oldest first; * marks the
    one running now. `rollback` applies one of them again."""
    name = stack_name(stack)
    if server_url:
        with server_client(server_url, token) as client:
            _table(name, client.list_versions(name), as_json)
        return
    _table(name, _entries(*_stored(state, name)), as_json)


@click.command()
@click.argument("stack")
@click.option(
    "--to",
    "to",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="The version to go back to (default: the one before the running version).",
)
@auto_approve_option
@lock_wait_option
@server_options
@common_options
def rollback(
    stack: str,
    to: int | None,
    auto_approve: bool,
    lock_wait: float,
    server_url: str | None,
    token: str | None,
    **kwargs: Any,
) -> None:
    """Plan and apply an earlier version of STACK (a name or a stack file), as `apply` would.

    Variables that cannot hold a secret (an image tag) come back as that version had them; the
    others (secrets) are read from this environment again. Each container goes back to the host
    the version had it on. Without -i, the hosts are the inventory that version used. With
    --server, the server plans it against its agents' hosts and this command follows the run.
    """
    opts = Options.pop_from(kwargs)
    name = stack_name(stack)
    if server_url:
        with server_client(server_url, token) as client:
            _server_rollback(client, name, to, opts.as_json, auto_approve)
        return
    target = rollback_target(*_stored(opts.state, name), to)
    versions.definition(target, os.environ)  # every unset variable reported before any host is touched
    inventory = (
        load_inventory(opts.inventory, []) if opts.inventory else Inventory.model_validate(target.inventory)
    )
    if not opts.as_json:
        click.echo(
            f"Rolling back stack {name} to version {target.number} "
            f"(applied {_when(target.applied_at)} by {target.applied_by}: {_images(target.images)}).\n"
        )
    _, result = _execute(
        opts,
        inventory,
        lambda d: d.plan_rollback(target),
        stack=name,
        verify_fresh=False,
        auto_approve=auto_approve,
        lock_wait=lock_wait,
        verb="rollback",
    )
    if not result.ok:
        sys.exit(EXIT_ERROR)


def _server_rollback(client: ServerClient, name: str, to: int | None, as_json: bool, approved: bool) -> None:
    """``rollback --server``: the server picks and plans the version; this sends the values of
    the variables it does not record (from this environment; an unset one is reported before
    anything is sent), asks on a terminal, then follows the run as ``apply --server`` does."""
    entries = client.list_versions(name)
    target = next((e for e in entries if (e["number"] == to if to else e.get("rollbackTarget"))), None)
    needed = target.get("variablesNeeded", []) if target else []
    missing = [n for n in needed if n not in os.environ]
    if missing:
        where = f"{name} version {target['number'] if target else '?'}"
        raise StackError([Problem(where, "$", f"variable {n} is not set") for n in missing])
    if target and not as_json:
        click.echo(
            f"Rolling back stack {name} to version {target['number']} (applied "
            f"{_when(target['appliedAt'])} by {target['appliedBy']}: {_images(target['images'])})."
        )
    if target and not approved and interactive():
        confirm("rollback", name, as_json=as_json)
    accepted = client.rollback(name, to, {n: os.environ[n] for n in needed})
    hand_over(client, accepted, as_json, no_wait=False)
