"""What every ``graphium-run`` command shares: options, exit codes, machine output, the deployer.

Commands load and check everything the user gave before any store or host is touched; the
deployer is built here once, with the default store and executors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from graphium.errors import GraphiumError, StackError
from graphium.run.defaults import DEFAULT_PARALLELISM, DEFAULT_PER_HOST
from graphium.store.open import DEFAULT_STATE, is_database_url

if TYPE_CHECKING:  # the rest is imported where used: a command pays only for what it runs
    from graphium.control.client import ServerClient
    from graphium.plan.model import Plan
    from graphium.records.event import Event
    from graphium.run.deployer import Deployer
    from graphium.stack.loader import StackDocument
    from graphium.stack.models import Inventory
    from graphium.store.base import TaskStore

DEFAULT_TOKENS = ".graphium/tokens.json"
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_STALE = 3
EXIT_INTERRUPTED = 130
JSON_SCHEMA_VERSION = 1  # of the NDJSON objects commands print with --json

F = TypeVar("F", bound=Callable[..., Any])


class Options:
    """The common options every deploying subcommand takes."""

    def __init__(
        self,
        inventory: str | None,
        state: str,
        as_json: bool,
        parallelism: int | None,
        insecure: bool,
        per_host: int = DEFAULT_PER_HOST,
    ) -> None:
        self.inventory = inventory
        self.state = state
        self.as_json = as_json
        self.parallelism = parallelism  # tasks at once in all (None: per_host on every host)
        self.per_host = per_host
        self.insecure = insecure

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> Options:
        """Take the common options out of a command's keyword arguments."""
        return cls(
            kwargs.pop("inventory"),
            kwargs.pop("state"),
            kwargs.pop("as_json"),
            kwargs.pop("parallelism"),
            kwargs.pop("insecure"),
            kwargs.pop("per_host"),
        )

    def store(self) -> TaskStore:
        from graphium.store.open import open_store

        return open_store(self.state)


def _decorate(func: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def state_option(func: F) -> F:
    return click.option(
        "--state",
        envvar="GRAPHIUM_STATE",
        default=DEFAULT_STATE,
        show_default=True,
        help="Task store: a JSON file, or a postgresql:// URL the servers share (env GRAPHIUM_STATE).",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine output: one JSON object per line.")(
        func
    )


def common_options(func: F) -> F:
    return _decorate(
        func,
        [
            click.option(
                "-i", "--inventory", type=click.Path(dir_okay=False), help="Inventory file (JSON or JSON-LD)."
            ),
            state_option,
            json_option,
            click.option(
                "--parallelism",
                type=click.IntRange(1, 1000),
                default=DEFAULT_PARALLELISM,
                help="Most tasks run at once across all hosts [default: no cap, --per-host on each].",
            ),
            click.option(
                "--per-host",
                type=click.IntRange(1, 1000),
                default=DEFAULT_PER_HOST,
                show_default=True,
                help="Most tasks run at once on one host.",
            ),
            click.option(
                "--insecure-skip-host-key-check",
                "insecure",
                is_flag=True,
                help="DANGEROUS: do not verify SSH host keys.",
            ),
        ],
    )


CA_CERT_HELP = (
    "PEM file of the CA that signed the server's certificate (env GRAPHIUM_CA_CERT; "
    "default: the system trust store)."
)
_CA_CERT = "graphium.ca_cert"  # where --server commands keep --ca-cert for server_client()


def ca_cert_option(func: F) -> F:
    return click.option("--ca-cert", metavar="FILE", envvar="GRAPHIUM_CA_CERT", help=CA_CERT_HELP)(func)


def _keep_ca_cert(ctx: click.Context, _: click.Parameter, value: str | None) -> str | None:
    ctx.meta[_CA_CERT] = value
    return value


def server_options(func: F) -> F:
    """--server, --token and --ca-cert; the last is kept in the click context for
    :func:`server_client`, so that every command taking --server verifies its server alike
    without threading one more argument through each."""
    return _decorate(
        func,
        [
            click.option(
                "--server",
                "server_url",
                envvar="GRAPHIUM_SERVER",
                default=None,
                help=(
                    "Control server URL (env GRAPHIUM_SERVER): it plans, its agents apply. Several "
                    "replicas as URL1,URL2: a request that cannot reach one goes to the next."
                ),
            ),
            click.option(
                "--token",
                envvar="GRAPHIUM_TOKEN",
                default=None,
                help="Admin token for --server (env GRAPHIUM_TOKEN).",
            ),
            click.option(
                "--ca-cert",
                metavar="FILE",
                envvar="GRAPHIUM_CA_CERT",
                expose_value=False,
                callback=_keep_ca_cert,
                help=CA_CERT_HELP,
            ),
        ],
    )


def emit_json(obj: dict[str, Any]) -> None:
    """Print one machine-output object (already carrying its ``schema_version``) as one line."""
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


def plan_json(plan: Plan) -> dict[str, Any]:
    """The ``--json`` summary of a plan: actions and counts, never payloads (they hold secrets).

    Each action carries its ``reason`` code (:class:`~graphium.plan.model.ActionReason`) and its
    ``changes`` (``field``, ``old``, ``new``, ``oldKnown``, ``sensitive``; secrets masked) for
    machines, and ``reasons``, the human sentences, not meant to be parsed.
    """
    return {
        "schema_version": 1,
        "type": "plan",
        "stack": plan.stack,
        "destroy": plan.destroy,
        "changes": plan.has_changes,
        "counts": plan.counts(),
        "actions": [a.dump() for a in plan.actions],
        "tasks": [
            {
                "id": t.id,
                "taskType": t.task_type.value,
                "hostId": t.host_id,
                "dependsOn": t.depends_on,
                "description": t.description,
            }
            for t in plan.tasks
        ],
        "rollouts": [r.dump() for r in plan.rollouts],
        "fingerprint": plan.fingerprint,
        "notes": plan.notes,
    }


def emit(kind: str, data: dict[str, Any]) -> None:
    """Print one machine-output object of type ``kind``."""
    emit_json({"schema_version": JSON_SCHEMA_VERSION, "type": kind, **data})


async def run_deployer(
    opts: Options,
    inventory: Inventory,
    subscriber: Callable[[Event], None] | None,
    work: Callable[[Deployer], Any],
) -> Any:
    """Run ``work`` with a Deployer over the default store and executors, closing them after."""
    from graphium.executors.router import default_executor
    from graphium.run.deployer import Deployer
    from graphium.run.events import EventBus

    store = opts.store()
    events = EventBus(store)
    if subscriber is not None:
        events.subscribe(subscriber)
    executor = default_executor(store, insecure_skip_host_key_check=opts.insecure, notify=events.emit)
    if opts.insecure:
        click.echo(
            "WARNING: SSH host keys are NOT verified (--insecure-skip-host-key-check); "
            "anyone on the network path can impersonate your hosts.",
            err=True,
        )
    try:
        deployer = Deployer(
            store, executor, inventory, events=events, parallelism=opts.parallelism, per_host=opts.per_host
        )
        return await work(deployer)
    finally:
        await executor.close()


def load_checked(stack: str, opts: Options, *, resolve: bool = True) -> tuple[StackDocument, Inventory]:
    """Load and check everything the user gave before any store or host is touched."""
    from graphium.stack.inventory import load_inventory
    from graphium.stack.loader import check_hosts, load_stack
    from graphium.stack.variables import resolve_variables

    doc = load_stack(stack)
    inventory = load_inventory(opts.inventory, doc.hosts, stack_file=str(doc.path))
    try:
        check_hosts(doc, inventory)
        if resolve:
            resolve_variables(doc.stack, os.environ, stack, path_of=doc.path_of)
    except StackError as error:
        raise StackError(doc.located(error.problems)) from None
    return doc, inventory


def print_warnings(doc: Any) -> None:
    for warning in getattr(doc, "warnings", []):
        click.echo(f"warning: {warning}", err=True)


def server_client(server_url: str, token: str | None) -> ServerClient:
    """The client of ``--server`` (one URL or replicas ``URL1,URL2``, checked before anything is
    sent); warns when the admin token came on the command line."""
    from graphium.control.client import ServerClient  # httpx: only for --server
    from graphium.control.servers import parse_server_urls

    try:
        urls = parse_server_urls(server_url)
    except GraphiumError as exc:
        raise GraphiumError(f"--server (env GRAPHIUM_SERVER): {exc}") from None
    if not token:
        raise click.UsageError("--server needs an admin token: --token or GRAPHIUM_TOKEN")
    ctx = click.get_current_context()
    if ctx.get_parameter_source("token") is click.core.ParameterSource.COMMANDLINE:
        click.echo(
            "Warning: --token on the command line is visible to every user (ps, shell history); "
            "set GRAPHIUM_TOKEN instead.",
            err=True,
        )
    return ServerClient(urls, token, ca_cert=ctx.meta.get(_CA_CERT))


def has_store(location: str) -> bool:
    """Whether there is a store to read at ``location``: a database always is; a JSON file only
    once written (commands that only look never create one)."""
    return is_database_url(location) or os.path.exists(location)


def stack_name(stack: str) -> str:
    """Commands that take a stack name also take a stack file, whose stack's name is read."""
    from graphium.stack.loader import load_stack

    if os.path.isfile(stack):
        return load_stack(stack).stack.name
    return stack
