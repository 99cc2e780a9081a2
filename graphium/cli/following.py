"""Following a stack's run on the control server (``--server``): what it accepted, then each
task's progress until the stack settles."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from graphium.cli.common import EXIT_ERROR, emit

if TYPE_CHECKING:
    from graphium.control.client import ServerClient


def follow_server(
    client: ServerClient,
    stack_id: str,
    as_json: bool,
    *,
    deleting: bool = False,
    timeout: float | None = None,
) -> bool:
    """Print a stack's progress from the server until it settles (or ``timeout``); True when it
    ended well. Hosts whose tasks wait for want of a live agent are said so."""
    seen: dict[str, str] = {}
    told: dict[str, str] = {}
    final: dict[str, Any] = {}
    for state in client.follow(stack_id, deleting=deleting, timeout=timeout):
        final = state
        if as_json:
            emit("stack_state", state)
            continue
        for waiting in state.get("waiting", []):
            host, message = waiting["hostId"], waiting["message"]
            if told.get(host, "").split(",")[0] != message.split(",")[0]:  # news, not a new age
                told[host] = message
                click.echo(f"{'waiting':<9} {host:<16} {message}")
        for task in state.get("tasks", []):
            if seen.get(task["id"]) != task["status"]:
                seen[task["id"]] = task["status"]
                error = f": {task['error']}" if task.get("error") else ""
                click.echo(f"{task['status']:<9} {task['hostId']:<16} {task['description']}{error}")
    status = final.get("status")
    if not as_json:
        detail = f": {final['error']}" if final.get("error") else ""
        click.echo(f"Stack {stack_id} is {status}{detail}.")
    return status in ("running", "deleted")


def hand_over(
    client: ServerClient,
    accepted: dict[str, Any],
    as_json: bool,
    *,
    no_wait: bool,
    deleting: bool = False,
    timeout: float | None = None,
) -> None:
    """Say what the server accepted, then follow the stack until it settles (exit 1 if it failed)."""
    if as_json:
        emit("accepted", accepted)
    else:
        click.echo(f"Stack {accepted['id']}: {accepted['status']} ({accepted['tasks']} task(s)).")
        for note in accepted.get("notes") or []:
            click.echo(f"Note: {note}")
    if no_wait or not accepted["tasks"]:
        return
    if not follow_server(client, accepted["id"], as_json, deleting=deleting, timeout=timeout):
        sys.exit(EXIT_ERROR)


__all__ = ["follow_server", "hand_over"]
