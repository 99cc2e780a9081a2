"""``graphium-run store copy FROM TO``: move a task store to another backend (file <-> PostgreSQL)."""

from __future__ import annotations

import click

from graphium.cli.common import emit, has_store, json_option
from graphium.errors import GraphiumError


@click.group()
def store() -> None:
    """Manage task stores (a JSON file, or a postgresql:// database)."""


@store.command("copy")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@json_option
def store_copy(source: str, target: str, as_json: bool) -> None:
    """Copy every stack, version, task, event and agent of store FROM into the empty store TO
    (each a JSON file's path or a postgresql:// URL; see docs/postgresql.md). Stop the servers
    and applies that write FROM first."""
    from graphium.store.copy import copy_store
    from graphium.store.open import mask_url, open_store

    if not has_store(source):
        raise GraphiumError(f"{source}: no such store (nothing to copy)")
    with open_store(source) as src, open_store(target) as dst:
        counts = copy_store(src, dst)
    if as_json:
        emit("store_copy", {"from": mask_url(source), "to": mask_url(target), **counts.__dict__})
        return
    click.echo(
        f"Copied {counts.stacks} stack(s), {counts.versions} version(s), {counts.tasks} task(s), "
        f"{counts.events} event(s), {counts.agents} agent(s) and {counts.observations} host "
        f"observation(s) from {mask_url(source)} to {mask_url(target)}."
    )
