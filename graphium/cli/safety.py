"""Acting safely on hosts from a terminal: asking before changing anything, and interrupts.

``apply``, ``destroy`` and ``rollback`` show the plan and ask, as Terraform does, only when a person
is there to answer (stdin and stdout both terminals); ``-y/--auto-approve`` skips the question and
pipelines never see it. While a run is in progress, the first SIGINT or SIGTERM drains it (nothing
new starts, tasks in flight finish or roll back) and the second aborts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from graphium.cli.common import stack_name, state_option
from graphium.errors import ApplyCancelled, GraphiumError

if TYPE_CHECKING:  # the engines and the store: imported by the functions that use them
    from graphium.plan.model import Plan
    from graphium.run.deployer import Deployer
    from graphium.run.runner import RunResult
    from graphium.stack.models import Host
    from graphium.store.base import TaskStore

F = TypeVar("F", bound=Callable[..., Any])

APPROVAL = "yes"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def auto_approve_option(func: F) -> F:
    """``-y/--auto-approve``: act without asking (the question is only ever asked on a terminal)."""
    return click.option(
        "-y",
        "--auto-approve",
        is_flag=True,
        help="Do not ask for confirmation (it is asked only when stdin and stdout are terminals).",
    )(func)


def lock_wait_option(func: F) -> F:
    """``--lock-wait SECONDS``: wait that long for another run's lock on the hosts."""
    return click.option(
        "--lock-wait",
        type=click.FloatRange(min=0),
        default=0.0,
        metavar="SECONDS",
        help="Wait this long for a lock another apply or destroy holds on the hosts (default: fail at once).",
    )(func)


def interactive() -> bool:
    """Whether a person can answer: stdin and stdout are both terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def question(verb: str, stack: str) -> str:
    if verb == "destroy":
        head = f"Do you really want to destroy stack {stack}?"
        what = "graphium will remove every container of the stack described above."
    else:
        head = f"Do you want to perform these actions on stack {stack}?"
        what = "graphium will perform the actions described above."
    return f"\n{head}\n  {what}\n  Only '{APPROVAL}' will be accepted to approve.\n\n  Enter a value: "


def confirm(verb: str, stack: str, *, as_json: bool) -> None:
    """Ask on the terminal; ApplyCancelled (nothing touched) unless the answer is exactly 'yes'.

    Ctrl-C or end of input at the question cancel too. Machine output cannot carry a question,
    so ``--json`` on a terminal needs ``-y``.
    """
    if as_json:
        raise GraphiumError(f"{verb} --json on a terminal needs -y/--auto-approve (nobody reads a question)")
    click.echo(question(verb, stack), nl=False)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C ends the read
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
        click.echo()
    finally:
        signal.signal(signal.SIGINT, previous)
    if answer.strip() != APPROVAL:
        raise ApplyCancelled(f"{verb} cancelled: nothing was changed")


@contextlib.contextmanager
def interrupts(on_first: Callable[[str], None]) -> Iterator[None]:
    """While a run goes on: the first SIGINT/SIGTERM calls ``on_first`` with the signal's name
    (drain), the second cancels the running task (abort); the previous handlers come back after."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[str] = []

    def handle(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        if len(received) == 1:
            on_first(received[0])
        elif task is not None:
            task.cancel("aborted by a second interrupt")

    previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)
            if previous[sig] is not None:
                signal.signal(sig, previous[sig])


def drain(deployer: Deployer, signal_name: str) -> None:
    deployer.drain()
    click.echo(
        f"\n{signal_name} received: starting nothing new; tasks in flight finish or roll back. "
        "Press Ctrl-C again to abort at once.",
        err=True,
    )


def hint_if_left_deleting(deployer: Deployer, stack: str, verb: str) -> None:
    from graphium.records.stack import StackStatus

    stored = deployer.store.get_stack(stack)
    if stored is not None and stored.status is StackStatus.deleting and verb != "destroy":
        click.echo(
            f"note: stack {stack} was left deleting by a destroy that stopped; this {verb} deploys it "
            "again (run destroy to finish removing it instead)",
            err=True,
        )


def interrupted_message(the_plan: Plan, result: RunResult, verb: str) -> str:
    """What an interrupted run did and what it left, for the error line."""
    from graphium.records.task import TaskStatus
    from graphium.stack.secrets import redact_text

    done = [t for t in result.tasks.values() if t.status is TaskStatus.completed]
    lines = [f"stack {the_plan.stack}: interrupted; {len(done)} task(s) done, {len(result.cancelled)} left"]
    lines += [f"  done: {t.host_id}: {t.description}" for t in done]
    secrets = the_plan.secret_values()
    lines += [
        f"  failed: {t.host_id}: {t.description}: {redact_text(t.error or '', secrets)}"
        for t in result.failed
    ]
    lines += [f"  left: {t.host_id}: {t.description}" for t in result.cancelled]
    if result.cancelled or result.failed:
        lines.append(f"Run `graphium-run {verb}` on the stack again to finish.")
    return "\n".join(lines)


@click.command()
@click.argument("stack")
@click.option("-i", "--inventory", type=click.Path(dir_okay=False), help="Inventory file (JSON or JSON-LD).")
@state_option
def unlock(stack: str, inventory: str | None, state: str) -> None:
    """Release a stack held by a process that is gone: its runner lease in the state file and its
    lock on each host (STACK may be the stack file, whose hosts count too). A dead process of this
    machine is taken over by the next apply without this."""
    from graphium.executors.owner import Owner
    from graphium.stack.inventory import load_inventory
    from graphium.stack.loader import load_stack
    from graphium.store.open import mask_url, open_store

    name = stack_name(stack)
    doc_hosts = load_stack(stack).hosts if os.path.isfile(stack) else []
    hosts = load_inventory(inventory, doc_hosts, stack_file=stack).hosts
    store = open_store(state)
    with store.batch():
        record = store.get_stack(name)
        if record is not None and record.runner_lease_until is not None:
            store.save_stack(record.model_copy(update={"runner_lease_until": None, "runner_owner": None}))
    if record is not None and record.runner_lease_until is not None:
        holder = Owner.parse(record.runner_owner)
        who = holder.describe() if holder else "an unknown process"
        click.echo(
            f"Released stack {name} in {mask_url(state)} (held by {who} until {record.runner_lease_until})."
        )
    released = asyncio.run(_release_on_hosts(store, hosts, name))
    for host_id, owner in released:
        click.echo(f"Released the lock of stack {name} on host {host_id} (held by {owner}).")
    if not released and (record is None or record.runner_lease_until is None):
        click.echo(f"Stack {name} is not locked.")


async def _release_on_hosts(store: TaskStore, hosts: list[Host], stack: str) -> list[tuple[str, str]]:
    from graphium.executors.host_lock import release_host_locks
    from graphium.executors.router import default_executor

    executor = default_executor(store)
    try:
        return await release_host_locks(executor, hosts, stack)
    finally:
        await executor.close()


__all__ = [
    "APPROVAL",
    "auto_approve_option",
    "confirm",
    "drain",
    "hint_if_left_deleting",
    "interactive",
    "interrupted_message",
    "interrupts",
    "lock_wait_option",
    "question",
    "unlock",
]
