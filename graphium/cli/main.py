"""``graphium-run``: the thin runner over :mod:`graphium.run.deployer` for people and CI pipelines.

Exit codes (documented in README): 0 success or no changes; 1 error (invalid input, failed
apply); 2 changes present (``plan --detailed-exitcode``); 3 a saved plan refused as stale;
130 interrupted. Errors go to stderr without tracebacks; the mapping lives in :func:`main`.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from graphium.cli.output import (
    ProgressView,
    make_console,
    plan_json,
    render_plan,
    render_result,
    render_stack,
    render_stacks,
    render_tasks,
)
from graphium.control.client import ServerClient
from graphium.errors import GraphiumError, StalePlanError, ValidationError
from graphium.executors.router import default_executor
from graphium.plan.model import PLAN_SCHEMA_VERSION, Plan
from graphium.records.event import Event
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import TaskStatus
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus, event_json
from graphium.run.runner import DEFAULT_PARALLELISM, RunResult
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import StackDocument, check_hosts, load_stack
from graphium.stack.models import Inventory
from graphium.stack.variables import fill_variables, resolve_variables
from graphium.store.json_store import DEFAULT_STATE, JsonTaskStore

DEFAULT_TOKENS = ".graphium/tokens.json"
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_STALE = 3
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


class Options:
    """The common options every subcommand takes."""

    def __init__(
        self, inventory: str | None, state: str, as_json: bool, parallelism: int, insecure: bool
    ) -> None:
        self.inventory = inventory
        self.state = state
        self.as_json = as_json
        self.parallelism = parallelism
        self.insecure = insecure

    def store(self) -> JsonTaskStore:
        return JsonTaskStore(self.state)


def common_options(func: F) -> F:
    decorators = [
        click.option(
            "-i", "--inventory", type=click.Path(dir_okay=False), help="Inventory file (JSON or JSON-LD)."
        ),
        click.option(
            "--state",
            envvar="GRAPHIUM_STATE",
            default=DEFAULT_STATE,
            show_default=True,
            help="Task store file (env GRAPHIUM_STATE).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Machine output: one JSON object per line."),
        click.option(
            "--parallelism",
            type=click.IntRange(1, 1000),
            default=DEFAULT_PARALLELISM,
            show_default=True,
            help="Tasks run at once (across all hosts).",
        ),
        click.option(
            "--insecure-skip-host-key-check",
            "insecure",
            is_flag=True,
            help="DANGEROUS: do not verify SSH host keys.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _options(kwargs: dict[str, Any]) -> Options:
    return Options(
        kwargs.pop("inventory"),
        kwargs.pop("state"),
        kwargs.pop("as_json"),
        kwargs.pop("parallelism"),
        kwargs.pop("insecure"),
    )


def _emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


async def _run(
    opts: Options,
    inventory: Inventory,
    subscriber: Callable[[Event], None] | None,
    work: Callable[[Deployer], Any],
) -> Any:
    store = opts.store()
    events = EventBus(store)
    if subscriber is not None:
        events.subscribe(subscriber)
    executor = default_executor(store, insecure_skip_host_key_check=opts.insecure)
    if opts.insecure:
        click.echo(
            "WARNING: SSH host keys are NOT verified (--insecure-skip-host-key-check); "
            "anyone on the network path can impersonate your hosts.",
            err=True,
        )
    try:
        return await work(Deployer(store, executor, inventory, events=events, parallelism=opts.parallelism))
    finally:
        await executor.close()


def _load(stack: str, opts: Options, *, resolve: bool = True) -> tuple[StackDocument, Inventory]:
    """Load and check everything the user gave before any store or host is touched."""
    doc = load_stack(stack)
    inventory = load_inventory(opts.inventory, doc.hosts, stack_file=str(doc.path))
    check_hosts(doc, inventory)
    if resolve:
        resolve_variables(doc.stack, os.environ, stack, path_of=doc.path_of)
    return doc, inventory


def _print_warnings(doc: Any) -> None:
    for warning in getattr(doc, "warnings", []):
        click.echo(f"warning: {warning}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graphium")
def cli() -> None:
    """Deploy JSON-LD container stacks onto Docker hosts: locally, over SSH, or through agents."""


@cli.command()
@click.argument("stack", type=click.Path(exists=True, dir_okay=False))
@common_options
def validate(stack: str, **kwargs: Any) -> None:
    """Check a stack file (and its host references) without touching any host."""
    opts = _options(kwargs)
    doc, _ = _load(stack, opts, resolve=False)
    _print_warnings(doc)
    missing: list[str] = []
    try:
        resolve_variables(doc.stack, os.environ, stack, path_of=doc.path_of)
    except ValidationError as exc:
        missing = [str(p) for p in exc.problems]
    if opts.as_json:
        _emit_json(
            {
                "schema_version": 1,
                "type": "validate",
                "stack": doc.stack.name,
                "valid": True,
                "containers": len(doc.stack.containers),
                "unsetVariables": missing,
            }
        )
        return
    for line in missing:
        click.echo(f"warning: {line} (must be set when you plan or apply)", err=True)
    click.echo(f"{stack}: stack {doc.stack.name} is valid ({len(doc.stack.containers)} container(s)).")


@cli.command()
@click.argument("stack", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Save the plan to apply it later.")
@click.option("--destroy", "for_destroy", is_flag=True, help="Plan the removal of the stack.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when the plan has changes.")
@click.option("--show-unchanged", is_flag=True, help="List unchanged containers too.")
@common_options
def plan(
    stack: str,
    out: str | None,
    for_destroy: bool,
    detailed_exitcode: bool,
    show_unchanged: bool,
    **kwargs: Any,
) -> None:
    """Show what apply would change, and why. Changes nothing."""
    opts = _options(kwargs)
    doc, inventory = _load(stack, opts)
    _print_warnings(doc)

    async def work(deployer: Deployer) -> Plan:
        return await (deployer.plan_destroy(doc.stack.name) if for_destroy else deployer.plan(doc))

    result: Plan = asyncio.run(_run(opts, inventory, None, work))
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # plans hold env values
        with os.fdopen(fd, "w") as fh:
            json.dump(result.dump(), fh, indent=1)
    if opts.as_json:
        _emit_json(plan_json(result))
    else:
        render_plan(result, make_console(), show_unchanged=show_unchanged)
        if out:
            click.echo(
                f"\nSaved the plan to {out}; run `graphium-run apply {out}` to apply exactly this plan."
            )
    if detailed_exitcode and result.has_changes:
        sys.exit(EXIT_CHANGES)


def _read_plan(path: str) -> Plan | None:
    """The saved plan in ``path``, or None when the file is a stack document."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "fingerprint" in data and "tasks" in data and "@graph" not in data:
        if data.get("schema_version") != PLAN_SCHEMA_VERSION:
            raise GraphiumError(
                f"{path}: a saved plan of schema version {data.get('schema_version')}, but this graphium "
                f"reads version {PLAN_SCHEMA_VERSION}; plan again"
            )
        try:
            return Plan.model_validate(data)
        except Exception as exc:
            raise GraphiumError(f"{path}: not a valid saved plan: {exc}") from None
    return None


def _execute(
    opts: Options,
    inventory: Inventory,
    make_plan: Callable[[Deployer], Any],
    *,
    verify_fresh: bool,
    wait: bool = True,
) -> tuple[Plan, RunResult]:
    console = make_console()
    holder: dict[str, Any] = {}

    def on_event(event: Event) -> None:
        if opts.as_json:
            _emit_json(event_json(event))
        elif "view" in holder:
            holder["view"].on_event(event)

    async def work(deployer: Deployer) -> tuple[Plan, RunResult]:
        the_plan: Plan = await make_plan(deployer)
        if opts.as_json:
            _emit_json(plan_json(the_plan))
        else:
            render_plan(the_plan, console)
        if opts.as_json or not wait or not the_plan.has_changes:
            return the_plan, await deployer.apply(the_plan, verify_fresh=verify_fresh, wait=wait)
        console.print()
        with ProgressView(console, the_plan) as view:
            holder["view"] = view
            result = await deployer.apply(the_plan, verify_fresh=verify_fresh)
        return the_plan, result

    the_plan, result = asyncio.run(_run(opts, inventory, on_event, work))
    if opts.as_json:
        _emit_json(
            {
                "schema_version": 1,
                "type": "result",
                "stack": the_plan.stack,
                "ok": result.ok,
                "waited": wait,
                "failed": [{"id": t.id, "hostId": t.host_id, "error": t.error} for t in result.failed],
                "cancelled": len(result.cancelled),
                "durationSeconds": round(result.duration, 3),
            }
        )
    elif not wait and the_plan.has_changes:
        click.echo(
            f"\nEnqueued {len(the_plan.tasks)} task(s) for the agents; follow with "
            f"`graphium-run status {the_plan.stack} --follow`."
        )
    elif the_plan.has_changes:
        render_result(result, the_plan, console)
    return the_plan, result


def server_options(func: F) -> F:
    decorators = [
        click.option(
            "--server",
            "server_url",
            envvar="GRAPHIUM_SERVER",
            default=None,
            help="Control server URL: let it plan and its agents apply (env GRAPHIUM_SERVER).",
        ),
        click.option(
            "--token",
            envvar="GRAPHIUM_TOKEN",
            default=None,
            help="Admin token for --server (env GRAPHIUM_TOKEN).",
        ),
        click.option(
            "--no-wait", is_flag=True, help="Return once the tasks are enqueued (agent hosts only)."
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _client(server_url: str, token: str | None) -> ServerClient:
    if not token:
        raise click.UsageError("--server needs an admin token: --token or GRAPHIUM_TOKEN")
    return ServerClient(server_url, token)


def _follow(client: ServerClient, stack_id: str, as_json: bool, *, deleting: bool = False) -> bool:
    """Print a stack's progress from the server until it settles; True when it ended well."""
    seen: dict[str, str] = {}
    final: dict[str, Any] = {}
    for state in client.follow(stack_id, deleting=deleting):
        final = state
        if as_json:
            _emit_json({"schema_version": 1, "type": "stack_state", **state})
            continue
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


def _hand_over(
    client: ServerClient, accepted: dict[str, Any], as_json: bool, *, no_wait: bool, deleting: bool = False
) -> None:
    """Say what the server accepted, then follow the stack until it settles (exit 1 if it failed)."""
    if as_json:
        _emit_json({"schema_version": 1, "type": "accepted", **accepted})
    else:
        click.echo(f"Stack {accepted['id']}: {accepted['status']} ({accepted['tasks']} task(s)).")
    if no_wait or not accepted["tasks"]:
        return
    if not _follow(client, accepted["id"], as_json, deleting=deleting):
        sys.exit(EXIT_ERROR)


@cli.command()
@click.argument("target", type=click.Path(exists=True, dir_okay=False))
@server_options
@common_options
def apply(target: str, server_url: str | None, token: str | None, no_wait: bool, **kwargs: Any) -> None:
    """Apply a stack file, or exactly a plan saved with `plan -o` (refused if stale)."""
    opts = _options(kwargs)
    saved = _read_plan(target)
    if server_url:
        if saved is not None:
            raise click.UsageError("--server takes a stack file: the server makes its own plan")
        doc = load_stack(target)  # every problem reported here, before the server sees anything
        _print_warnings(doc)
        document = fill_variables(json.loads(Path(target).read_text()), os.environ, target)
        with _client(server_url, token) as client:
            _hand_over(client, client.post_stack(document), opts.as_json, no_wait=no_wait)
        return
    if saved is not None:
        inventory = (
            load_inventory(opts.inventory, [])
            if opts.inventory
            else Inventory.model_validate(saved.inventory)
        )
        _, result = _execute(opts, inventory, lambda d: _const(saved), verify_fresh=True, wait=not no_wait)
    else:
        doc, inventory = _load(target, opts)
        _print_warnings(doc)
        _, result = _execute(opts, inventory, lambda d: d.plan(doc), verify_fresh=False, wait=not no_wait)
    if not result.ok:
        sys.exit(EXIT_ERROR)


async def _const(value: Plan) -> Plan:
    return value


@cli.command()
@click.argument("stack", type=click.Path(exists=True, dir_okay=False))
@server_options
@common_options
def destroy(stack: str, server_url: str | None, token: str | None, no_wait: bool, **kwargs: Any) -> None:
    """Remove every container of the stack from every host, then its records."""
    opts = _options(kwargs)
    if server_url:
        name = load_stack(stack).stack.name
        with _client(server_url, token) as client:
            _hand_over(client, client.delete_stack(name), opts.as_json, no_wait=no_wait, deleting=True)
        return
    doc, inventory = _load(stack, opts, resolve=False)
    _, result = _execute(
        opts, inventory, lambda d: d.plan_destroy(doc.stack.name), verify_fresh=False, wait=not no_wait
    )
    if not result.ok:
        sys.exit(EXIT_ERROR)


@cli.command()
@click.argument("stack", required=False)
@click.option("--state", envvar="GRAPHIUM_STATE", default=DEFAULT_STATE, show_default=True)
@click.option(
    "--server", "server_url", envvar="GRAPHIUM_SERVER", default=None, help="Ask this control server."
)
@click.option("--token", envvar="GRAPHIUM_TOKEN", default=None, help="Admin token for --server.")
@click.option("--follow", is_flag=True, help="Keep printing progress until the stack settles.")
@click.option("--json", "as_json", is_flag=True)
def status(
    stack: str | None, state: str, server_url: str | None, token: str | None, follow: bool, as_json: bool
) -> None:
    """Deployment state of every stack, or of one (with its tasks)."""
    if server_url:
        with _client(server_url, token) as client:
            if stack is None:
                for entry in client.list_stacks():
                    if as_json:
                        _emit_json({"schema_version": 1, "type": "stack", **entry})
                    else:
                        click.echo(f"{entry['name']:<24} {entry['status']:<10} {entry.get('progress', 0)}%")
                return
            name = _stack_name(stack)
            found = client.get_stack(name)
            if follow:
                deleting = found is not None and found.get("status") == "deleting"
                if not _follow(client, name, as_json, deleting=deleting):
                    sys.exit(EXIT_ERROR)
                return
            if found is None:
                raise GraphiumError(f"no stack named {name} on {server_url}")
            if as_json:
                _emit_json({"schema_version": 1, "type": "stack", **found})
            else:
                click.echo(json.dumps(found, indent=2))
        return
    store = JsonTaskStore(state)
    console = make_console()
    if stack is None:
        stacks = store.list_stacks()
        if as_json:
            for s in stacks:
                _emit_json({"schema_version": 1, "type": "stack", **_public_stack(s.dump())})
        elif not stacks:
            click.echo("No stacks.")
        else:
            render_stacks(stacks, console)
        return
    name = _stack_name(stack)
    record = store.get_stack(name)
    if follow:
        record = _follow_store(store, name, console, as_json, record)
    if record is None:
        if follow:
            return
        raise GraphiumError(f"no stack named {name} in {state}")
    tasks = store.list_tasks(stack_id=name)
    if as_json:
        _emit_json(
            {
                "schema_version": 1,
                "type": "stack",
                **_public_stack(record.dump()),
                "tasks": store.stats(stack_id=name),
            }
        )
    else:
        render_stack(record, tasks, console)
    if record.status is StackStatus.error:
        sys.exit(EXIT_ERROR)


def _follow_store(
    store: JsonTaskStore, name: str, console: Any, as_json: bool, record: StackRecord | None
) -> StackRecord | None:
    """Wait for a stack in the store to settle (running, error, or deleted), printing the events
    of its current run (an earlier run's tasks are not this one's progress)."""
    after = 0
    while record is not None and record.status in (StackStatus.deploying, StackStatus.deleting):
        for event in store.list_events(after=after, stack_id=name):
            after = event.seq
            if record.run_id is not None and event.run_id != record.run_id:
                continue
            if as_json:
                _emit_json(event_json(event))
            elif event.task_id:
                data = event.data
                error = f": {data['error']}" if data.get("error") else ""
                line = f"{data.get('status', ''):<9} {event.host_id or '':<16} {data.get('description', '')}"
                click.echo(line + error)
        time.sleep(0.2)
        record = store.get_stack(name)
    return record


def _public_stack(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("spec", None)  # holds resolved env values
    return data


def _stack_name(stack: str) -> str:
    """``status`` takes a stack name, or a stack file whose name is read."""
    if os.path.isfile(stack):
        return load_stack(stack).stack.name
    return stack


@cli.group()
def tasks() -> None:
    """Inspect the task store."""


@tasks.command("list")
@click.option("--state", envvar="GRAPHIUM_STATE", default=DEFAULT_STATE, show_default=True)
@click.option("--stack", "stack_id")
@click.option("--status", type=click.Choice([s.value for s in TaskStatus]))
@click.option("--host", "host_id")
@click.option("--json", "as_json", is_flag=True)
def tasks_list(
    state: str, stack_id: str | None, status: str | None, host_id: str | None, as_json: bool
) -> None:
    """List tasks (payloads, which may hold secrets, are not shown)."""
    store = JsonTaskStore(state)
    found = store.list_tasks(
        status=TaskStatus(status) if status else None, stack_id=stack_id, host_id=host_id
    )
    if as_json:
        for t in found:
            data = t.dump()
            data.pop("payload", None)
            _emit_json({"schema_version": 1, "type": "task", **data})
    else:
        render_tasks(found, make_console())


@tasks.command("stats")
@click.option("--state", envvar="GRAPHIUM_STATE", default=DEFAULT_STATE, show_default=True)
@click.option("--stack", "stack_id")
@click.option("--json", "as_json", is_flag=True)
def tasks_stats(state: str, stack_id: str | None, as_json: bool) -> None:
    """Count tasks per status."""
    stats = JsonTaskStore(state).stats(stack_id=stack_id)
    if as_json:
        _emit_json({"schema_version": 1, "type": "task_stats", **stats})
    else:
        for key, value in stats.items():
            click.echo(f"{key:<10} {value}")


@cli.command()
@click.option("--host", "bind_host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8095, show_default=True, type=click.IntRange(1, 65535))
@click.option("--state", envvar="GRAPHIUM_STATE", default=DEFAULT_STATE, show_default=True)
@click.option(
    "--tokens",
    "tokens_file",
    envvar="GRAPHIUM_TOKENS",
    default=DEFAULT_TOKENS,
    show_default=True,
    help="Token file (hashes only), written by `graphium-run token create`.",
)
@click.option(
    "-i", "--inventory", type=click.Path(dir_okay=False), help="Hosts the server plans stacks onto."
)
def serve(bind_host: str, port: int, state: str, tokens_file: str, inventory: str | None) -> None:
    """Run the control server: task API, stack API, event stream. Refuses to start without tokens."""
    from graphium.control.server.app import serve as run_server

    run_server(host=bind_host, port=port, state=state, tokens_file=tokens_file, inventory=inventory)


@cli.command()
@click.option("--host-id", required=True, help="The inventory id of the host this agent runs on.")
@click.option("--server", "server_url", required=True, envvar="GRAPHIUM_SERVER", help="Control server URL.")
@click.option(
    "--token", envvar="GRAPHIUM_AGENT_TOKEN", required=True, help="Agent token (env GRAPHIUM_AGENT_TOKEN)."
)
@click.option("--docker-host", envvar="DOCKER_HOST", default=None, help="Engine URL (default: DOCKER_HOST).")
@click.option("--agent-id", default=None, help="Name of this agent process (default: host id + pid).")
@click.option(
    "--slots",
    default=4,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Tasks this agent runs at once.",
)
def agent(
    host_id: str, server_url: str, token: str, docker_host: str | None, agent_id: str | None, slots: int
) -> None:
    """Run the polling agent: claim this host's tasks from the server and execute them."""
    from graphium.control.agent import run_agent

    run_agent(
        host_id=host_id,
        server_url=server_url,
        token=token,
        docker_host=docker_host,
        agent_id=agent_id,
        slots=slots,
    )


@cli.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--agent", "agent_host", metavar="HOST", help="An agent token bound to one host id.")
@click.option("--admin", is_flag=True, help="An admin token (all routes, writes).")
@click.option("--tokens", "tokens_file", envvar="GRAPHIUM_TOKENS", default=DEFAULT_TOKENS, show_default=True)
def token_create(agent_host: str | None, admin: bool, tokens_file: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    from graphium.control.server.auth import create_token

    if bool(agent_host) == admin:
        raise click.UsageError("give exactly one of --agent HOST or --admin")
    click.echo(create_token(tokens_file, role="admin" if admin else "agent", host_id=agent_host))


def _print_error(exc: GraphiumError) -> None:
    if isinstance(exc, ValidationError):
        click.echo(f"Error: {len(exc.problems)} problem(s) found:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
    else:
        click.echo(f"Error: {exc}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the click app and maps graphium errors to exit codes, without tracebacks."""
    try:
        cli.main(args=argv, prog_name="graphium-run", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(EXIT_INTERRUPTED)
    except StalePlanError as exc:
        _print_error(exc)
        sys.exit(EXIT_STALE)
    except GraphiumError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
