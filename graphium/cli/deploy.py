"""The commands that change hosts, and their checks: validate, plan, apply, destroy.

``apply`` and ``destroy`` run here (local, SSH and agent hosts through the deployer), or hand the
stack to a control server with ``--server`` and follow its current run there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphium.cli.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    Options,
    common_options,
    emit,
    emit_json,
    load_checked,
    plan_json,
    print_warnings,
    run_deployer,
    server_client,
    server_options,
)
from graphium.cli.following import hand_over
from graphium.cli.problems import emit_problems, problems_as_json, report_warnings
from graphium.cli.safety import (
    auto_approve_option,
    confirm,
    drain,
    hint_if_left_deleting,
    interactive,
    interrupted_message,
    interrupts,
    lock_wait_option,
)
from graphium.control.envelope import referenced_variables
from graphium.errors import InterruptedRunError, Problem, ValidationError, WaitTimeoutError
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack, read_stack_document
from graphium.stack.models import Inventory
from graphium.stack.secrets import redact_event, redact_text
from graphium.stack.variables import fill_variables, resolve_variables

if TYPE_CHECKING:  # rich (cli.output), httpx (control.client) and the engines: where they are used
    from graphium.plan.model import Plan
    from graphium.records.event import Event
    from graphium.run.deployer import Deployer
    from graphium.run.runner import RunResult

no_wait_option = click.option(
    "--no-wait", is_flag=True, help="Return once the tasks are enqueued (agent hosts only)."
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop waiting after this long (exit 4); queued tasks stay queued for the agents.",
)


@click.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@common_options
def validate(stack: str, **kwargs: Any) -> None:
    """Check a stack file (and its host references) without touching any host."""
    opts = Options.pop_from(kwargs)
    with problems_as_json(opts.as_json):
        doc, _ = load_checked(stack, opts, resolve=False)
    report_warnings(doc, opts.as_json)
    missing_problems: list[Problem] = []
    try:
        resolve_variables(doc.stack, os.environ, stack, path_of=doc.path_of)
    except ValidationError as exc:
        missing_problems = doc.located(exc.problems)
    missing = [str(p) for p in missing_problems]
    if opts.as_json:
        emit_problems(missing_problems, "warning")
        emit(
            "validate",
            {
                "stack": doc.stack.name,
                "valid": True,
                "containers": len(doc.stack.containers),
                "unsetVariables": missing,
            },
        )
        return
    for line in missing:
        click.echo(f"warning: {line} (must be set when you plan or apply)", err=True)
    click.echo(f"{stack}: stack {doc.stack.name} is valid ({len(doc.stack.containers)} container(s)).")


@click.command()
@click.argument("stack", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Save the plan to apply it later.")
@click.option("--destroy", "for_destroy", is_flag=True, help="Plan the removal of the stack.")
@click.option("--volumes", is_flag=True, help="With --destroy: remove the stack's own volumes too.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged containers too.")
@server_options
@common_options
def plan(
    stack: str,
    out: str | None,
    for_destroy: bool,
    volumes: bool,
    detailed_exitcode: bool,
    show_unchanged: bool,
    server_url: str | None,
    token: str | None,
    **kwargs: Any,
) -> None:
    """Show what apply would change, and why. Changes nothing."""
    opts = Options.pop_from(kwargs)
    if volumes and not for_destroy:
        raise click.UsageError("--volumes goes with --destroy: an apply never removes volumes")
    if server_url:
        if out:
            raise click.UsageError(
                "-o saves a plan to apply locally; with --server the server makes its own plan"
            )
        _server_plan(stack, server_url, token, opts, for_destroy, detailed_exitcode, show_unchanged)
        return
    with problems_as_json(opts.as_json):
        doc, inventory = load_checked(stack, opts)
    report_warnings(doc, opts.as_json)

    async def work(deployer: Deployer) -> Plan:
        if for_destroy:
            return await deployer.plan_destroy(doc.stack.name, volumes=volumes)
        return await deployer.plan(doc)

    result: Plan = asyncio.run(run_deployer(opts, inventory, None, work))
    if out:
        _save_plan(result, Path(out))
    _show_plan(result, opts.as_json, show_unchanged=show_unchanged)
    if not opts.as_json and out:
        click.echo(f"\nSaved the plan to {out}; run `graphium-run apply {out}` to apply exactly this plan.")
    if detailed_exitcode and result.has_changes:
        sys.exit(EXIT_CHANGES)


def _server_plan(
    stack: str,
    server_url: str,
    token: str | None,
    opts: Options,
    for_destroy: bool,
    detailed_exitcode: bool,
    show_unchanged: bool,
) -> None:
    """``plan --server``: the plan as the server sees it (its inventory, its agents' reports),
    shown exactly as a local plan is."""
    with problems_as_json(opts.as_json):
        doc = load_stack(stack)  # every problem reported here, before the server sees anything
    report_warnings(doc, opts.as_json)
    document, variables = _with_variables(stack)
    with server_client(server_url, token) as client:
        found = client.preview(document, destroy=for_destroy, variables=variables)
    from graphium.plan.model import Plan

    result = Plan.model_validate(found["plan"])
    _show_plan(result, opts.as_json, show_unchanged=show_unchanged)
    if detailed_exitcode and result.has_changes:
        sys.exit(EXIT_CHANGES)


def _show_plan(plan_: Plan, as_json: bool, *, show_unchanged: bool = False, console: Any = None) -> None:
    """The plan on stdout: one JSON object with --json, else rendered (rich imported only then)."""
    if as_json:
        emit_json(plan_json(plan_))
        return
    from graphium.cli.output import make_console, render_plan

    render_plan(plan_, make_console() if console is None else console, show_unchanged=show_unchanged)


def _with_variables(stack: str) -> tuple[Any, dict[str, str]]:
    """``--server``: the stack document as written, and the values of the variables it refers to
    from this environment (the server fills them, knowing which are secrets). An unset variable
    is reported here, before anything is sent."""
    document = read_stack_document(stack)
    fill_variables(document, os.environ, stack)
    return document, referenced_variables(document, os.environ)


def _save_plan(plan_: Plan, path: Path) -> None:
    from graphium.plan.saved import seal

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # plans hold env values
    with os.fdopen(fd, "w") as fh:
        json.dump(seal(plan_), fh, indent=1)


def _read_plan(path: str) -> Plan | None:
    """The saved plan in ``path`` (sensitive variables filled from the environment), or None when
    the file is a stack document."""
    from graphium.plan.saved import is_saved_plan, unseal

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return unseal(data, path, os.environ) if is_saved_plan(data) else None


def _execute(
    opts: Options,
    inventory: Inventory,
    make_plan: Callable[[Deployer], Any],
    *,
    stack: str,
    verify_fresh: bool,
    wait: bool = True,
    timeout: float | None = None,
    auto_approve: bool = False,
    lock_wait: float = 0.0,
    verb: str = "apply",
) -> tuple[Plan, RunResult]:
    """Hold the stack, plan, show the plan, ask (on a terminal, unless ``auto_approve``), apply it
    with live progress, and say how it went. ``timeout`` bounds the wait for the tasks
    (WaitTimeoutError: they stay queued for the agents); an interrupt drains the run
    (InterruptedRunError, exit 130, once it is drained)."""
    from graphium.run.events import event_json

    console: Any = None
    if not opts.as_json:
        from graphium.cli.output import make_console  # rich only when rendering

        console = make_console()
    holder: dict[str, Any] = {}
    ask = not auto_approve and interactive()

    def on_event(event: Event) -> None:
        if opts.as_json:
            emit_json(redact_event(event_json(event), holder.get("secrets", ())))
        elif "view" in holder:
            holder["view"].on_event(event)

    async def work(deployer: Deployer) -> tuple[Plan, RunResult]:
        async with deployer.hold(stack, lock_wait=lock_wait):  # before the plan: nobody approves
            return await locked(deployer)  # what cannot be applied

    async def locked(deployer: Deployer) -> tuple[Plan, RunResult]:
        hint_if_left_deleting(deployer, stack, verb)
        the_plan: Plan = await make_plan(deployer)
        holder["secrets"] = the_plan.secret_values()
        _show_plan(the_plan, opts.as_json, console=console)
        if ask and the_plan.has_changes:
            confirm(verb, the_plan.stack, as_json=opts.as_json)
        with interrupts(lambda name: drain(deployer, name)):
            if opts.as_json or not wait or not the_plan.has_changes:
                applying = deployer.apply(the_plan, verify_fresh=verify_fresh, wait=wait)
                return the_plan, await _bounded(applying, the_plan, timeout)
            from graphium.cli.output import ProgressView

            console.print()
            with ProgressView(console, the_plan) as view:
                holder["view"] = view
                applying = deployer.apply(the_plan, verify_fresh=verify_fresh)
                result = await _bounded(applying, the_plan, timeout)
        return the_plan, result

    try:
        the_plan, result = asyncio.run(run_deployer(opts, inventory, on_event, work))
    except asyncio.CancelledError:
        raise InterruptedRunError(
            f"stack {stack}: aborted by a second interrupt; tasks in flight stopped where they were. "
            f"Run `graphium-run apply` on the stack again to repair it"
        ) from None
    _report(opts, the_plan, result, wait, console)
    if result.interrupted:
        raise InterruptedRunError(interrupted_message(the_plan, result, verb))
    return the_plan, result


def _report(opts: Options, the_plan: Plan, result: RunResult, wait: bool, console: Any) -> None:
    secrets = the_plan.secret_values()
    if opts.as_json:
        emit(
            "result",
            {
                "stack": the_plan.stack,
                "ok": result.ok,
                "waited": wait,
                "interrupted": result.interrupted,
                "failed": [
                    {"id": t.id, "hostId": t.host_id, "error": redact_text(t.error or "", secrets)}
                    for t in result.failed
                ],
                "cancelled": len(result.cancelled),
                "notes": result.notes,
                "durationSeconds": round(result.duration, 3),
            },
        )
    elif not wait and the_plan.has_changes:
        click.echo(
            f"\nEnqueued {len(the_plan.tasks)} task(s) for the agents; follow with "
            f"`graphium-run status {the_plan.stack} --follow`."
        )
    elif the_plan.has_changes:
        from graphium.cli.output import render_result

        render_result(result, the_plan, console)


@click.command()
@click.argument("target", type=click.Path(exists=True, dir_okay=False))
@server_options
@no_wait_option
@timeout_option
@auto_approve_option
@lock_wait_option
@common_options
def apply(
    target: str,
    server_url: str | None,
    token: str | None,
    no_wait: bool,
    timeout: float | None,
    auto_approve: bool,
    lock_wait: float,
    **kwargs: Any,
) -> None:
    """Apply a stack file, or exactly a plan saved with `plan -o` (refused if stale)."""
    opts = Options.pop_from(kwargs)
    saved = _read_plan(target)
    if server_url:
        if saved is not None:
            raise click.UsageError("--server takes a stack file: the server makes its own plan")
        doc = load_stack(target)  # every problem reported here, before the server sees anything
        print_warnings(doc)
        document, variables = _with_variables(target)
        with server_client(server_url, token) as client:
            accepted = client.post_stack(document, variables)
            hand_over(client, accepted, opts.as_json, no_wait=no_wait, timeout=timeout)
        return
    if saved is not None:
        inventory = (
            load_inventory(opts.inventory, [])
            if opts.inventory
            else Inventory.model_validate(saved.inventory)
        )
        _, result = _execute(
            opts,
            inventory,
            lambda d: _const(saved),
            stack=saved.stack,
            verify_fresh=True,
            wait=not no_wait,
            timeout=timeout,
            auto_approve=auto_approve,
            lock_wait=lock_wait,
        )
    else:
        doc, inventory = load_checked(target, opts)
        print_warnings(doc)
        _, result = _execute(
            opts,
            inventory,
            lambda d: d.plan(doc),
            stack=doc.stack.name,
            verify_fresh=False,
            wait=not no_wait,
            timeout=timeout,
            auto_approve=auto_approve,
            lock_wait=lock_wait,
        )
    if not result.ok:
        sys.exit(EXIT_ERROR)


async def _bounded(applying: Any, plan: Plan, timeout: float | None) -> RunResult:
    try:
        result: RunResult = await asyncio.wait_for(applying, timeout)
    except TimeoutError:
        raise WaitTimeoutError(
            f"stack {plan.stack} did not settle within {timeout:g} s; its queued tasks stay queued for "
            f"the agents: follow with `graphium-run status {plan.stack} --follow`"
        ) from None
    return result


async def _const(value: Plan) -> Plan:
    return value


@click.command()
@click.argument("stack", type=click.Path(exists=True, dir_okay=False))
@click.option("--volumes", is_flag=True, help="Remove the stack's own named volumes too (their data).")
@server_options
@no_wait_option
@timeout_option
@auto_approve_option
@lock_wait_option
@common_options
def destroy(
    stack: str,
    volumes: bool,
    server_url: str | None,
    token: str | None,
    no_wait: bool,
    timeout: float | None,
    auto_approve: bool,
    lock_wait: float,
    **kwargs: Any,
) -> None:
    """Remove every container of the stack from every host, then its records.

    The stack's named volumes are kept (the output names them) unless --volumes."""
    opts = Options.pop_from(kwargs)
    if server_url:
        name = load_stack(stack).stack.name
        with server_client(server_url, token) as client:
            accepted = client.delete_stack(name, volumes=volumes)
            hand_over(client, accepted, opts.as_json, no_wait=no_wait, deleting=True, timeout=timeout)
        return
    doc, inventory = load_checked(stack, opts, resolve=False)
    _, result = _execute(
        opts,
        inventory,
        lambda d: d.plan_destroy(doc.stack.name, volumes=volumes),
        stack=doc.stack.name,
        verify_fresh=False,
        wait=not no_wait,
        timeout=timeout,
        auto_approve=auto_approve,
        lock_wait=lock_wait,
        verb="destroy",
    )
    if not result.ok:
        sys.exit(EXIT_ERROR)
