"""The versions of a stack, and going back to one: history, rollback.

Every successful apply records a version of its stack (:mod:`graphium.run.versions`);
``rollback`` plans an earlier one against the live hosts and applies it through the same path as
``apply``: the same plan output, progress and result, and a version of its own when it succeeds.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from graphium.cli.common import (
    EXIT_ERROR,
    Options,
    common_options,
    emit,
    json_option,
    stack_name,
    state_option,
)
from graphium.cli.deploy import _execute
from graphium.cli.safety import auto_approve_option, lock_wait_option
from graphium.records.stack import StackRecord
from graphium.records.version import StackVersion, current_version, rollback_target
from graphium.run import versions
from graphium.stack.inventory import load_inventory
from graphium.stack.models import Inventory
from graphium.store.json_store import JsonTaskStore


def _when(stamp: str) -> str:
    try:
        return datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M:%SZ")
    except ValueError:
        return stamp


def _stored(state: str, name: str) -> tuple[list[StackVersion], StackRecord | None]:
    """The stack's versions and record; none without a store (never create one just to look)."""
    if not Path(state).exists():
        return [], None
    with JsonTaskStore(state) as store:
        return store.list_versions(name), store.get_stack(name)


def _images(version: StackVersion) -> str:
    return ", ".join(f"{name}={image}" for name, image in sorted(version.images.items()))


@click.command()
@click.argument("stack")
@state_option
@json_option
def history(stack: str, state: str, as_json: bool) -> None:
    """List the recorded versions of STACK (a name or a stack file), oldest first; * marks the
    one running now. `rollback` applies one of them again."""
    name = stack_name(stack)
    found, record = _stored(state, name)
    current = current_version(found, record)
    if as_json:
        for version in found:
            emit(
                "version",
                {**version.public_dump(), "current": version is current, "result": version.result()},
            )
        return
    if not found:
        click.echo(f"Stack {name} has no recorded versions (a successful apply records one).")
        return
    rows = [
        (
            "*" if v is current else " ",
            str(v.number),
            _when(v.applied_at),
            v.applied_by,
            _images(v),
            v.result(),
        )
        for v in found
    ]
    header = (" ", "VERSION", "APPLIED", "BY", "IMAGES", "RESULT")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])


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
@common_options
def rollback(stack: str, to: int | None, auto_approve: bool, lock_wait: float, **kwargs: Any) -> None:
    """Plan and apply an earlier version of STACK (a name or a stack file), as `apply` would.

    Variables that cannot hold a secret (an image tag) come back as that version had them; the
    others (secrets) are read from this environment again. Each container goes back to the host
    the version had it on. Without -i, the hosts are the inventory that version used.
    """
    opts = Options.pop_from(kwargs)
    name = stack_name(stack)
    target = rollback_target(*_stored(opts.state, name), to)
    versions.definition(target, os.environ)  # every unset variable reported before any host is touched
    inventory = (
        load_inventory(opts.inventory, []) if opts.inventory else Inventory.model_validate(target.inventory)
    )
    if not opts.as_json:
        click.echo(
            f"Rolling back stack {name} to version {target.number} "
            f"(applied {_when(target.applied_at)} by {target.applied_by}: {_images(target)}).\n"
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
