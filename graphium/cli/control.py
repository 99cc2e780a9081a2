"""The pull-mode commands: run the control server, run an agent, manage API tokens.

Each imports its side of the control plane only when run, so the other commands stay light.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.core import ParameterSource

from graphium.cli.common import DEFAULT_TOKENS, ca_cert_option, emit, json_option, state_option
from graphium.records.agent import DOWN_AFTER

tokens_option = click.option(
    "--tokens",
    "tokens_file",
    envvar="GRAPHIUM_TOKENS",
    default=DEFAULT_TOKENS,
    show_default=True,
    help="Token file (hashes only), written by `graphium-run token create`.",
)


@click.command()
@click.option(
    "--host",
    "bind_host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Beyond loopback, serve HTTPS (or pass --insecure-http).",
)
@click.option("--port", default=8095, show_default=True, type=click.IntRange(1, 65535))
@state_option
@click.option(
    "--store",
    "store",
    envvar="GRAPHIUM_STORE",
    default=None,
    metavar="LOCATION",
    help=(
        "The task store (env GRAPHIUM_STORE): a postgresql://USER@HOST/DB URL, which several "
        "servers (replicas) can share, or a JSON file's path. Takes the place of --state; "
        "without it the server uses --state, the JSON file by default."
    ),
)
@tokens_option
@click.option(
    "-i", "--inventory", type=click.Path(dir_okay=False), help="Hosts the server plans stacks onto."
)
@click.option(
    "--agent-down-after",
    type=click.FloatRange(min=1),
    default=DOWN_AFTER,
    show_default=True,
    metavar="SECONDS",
    help="An agent unseen this long is down.",
)
@click.option(
    "--tls-cert",
    metavar="FILE",
    envvar="GRAPHIUM_TLS_CERT",
    help="Serve HTTPS with this PEM certificate (chain) (env GRAPHIUM_TLS_CERT).",
)
@click.option(
    "--tls-key",
    metavar="FILE",
    envvar="GRAPHIUM_TLS_KEY",
    help="The certificate's unencrypted PEM private key (env GRAPHIUM_TLS_KEY).",
)
@click.option(
    "--insecure-http",
    is_flag=True,
    help="DANGEROUS: serve plain HTTP on a non-loopback address; tokens cross the network in clear.",
)
def serve(
    bind_host: str,
    port: int,
    state: str,
    store: str | None,
    tokens_file: str,
    inventory: str | None,
    agent_down_after: float,
    tls_cert: str | None,
    tls_key: str | None,
    insecure_http: bool,
) -> None:
    """Run the control server: task API, stack API, event stream. Refuses to start without tokens,
    and refuses plain HTTP beyond loopback unless --insecure-http is given."""
    from graphium.control.server.app import serve as run_server

    run_server(
        host=bind_host,
        port=port,
        state=_store_location(state, store),
        tokens_file=tokens_file,
        inventory=inventory,
        agent_down_after=agent_down_after,
        tls_cert=tls_cert,
        tls_key=tls_key,
        insecure_http=insecure_http,
    )


def _store_location(state: str, store: str | None) -> str:
    """The server's store: --store (or GRAPHIUM_STORE) when given, else --state. Both on the
    command line with different values is a mistake to point out, not to guess at."""
    if store is None or not store.strip():
        return state
    ctx = click.get_current_context()
    given = [ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE for name in ("state", "store")]
    if all(given) and state != store:
        raise click.UsageError("give the server's store once: --store LOCATION (or --state, its older name)")
    return store


@click.command()
@click.option("--host-id", required=True, help="The inventory id of the host this agent runs on.")
@click.option(
    "--server",
    "server_url",
    required=True,
    envvar="GRAPHIUM_SERVER",
    help=(
        "Control server URL, https://HOST:PORT (env GRAPHIUM_SERVER); replicas on one database as "
        "URL1,URL2: the agent moves to the next when one cannot be reached."
    ),
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True),
    envvar="GRAPHIUM_AGENT_TOKEN_FILE",
    help="File holding the agent token (env GRAPHIUM_AGENT_TOKEN_FILE).",
)
@click.option(
    "--token",
    envvar="GRAPHIUM_AGENT_TOKEN",
    help="Agent token; prefer env GRAPHIUM_AGENT_TOKEN or --token-file (a command line shows in ps).",
)
@ca_cert_option
@click.option("--docker-host", envvar="DOCKER_HOST", default=None, help="Engine URL (default: DOCKER_HOST).")
@click.option("--agent-id", default=None, help="Name of this agent process (default: host id + pid).")
@click.option(
    "--slots",
    default=4,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Tasks this agent runs at once.",
)
@click.pass_context
def agent(
    ctx: click.Context,
    host_id: str,
    server_url: str,
    token_file: str | None,
    token: str | None,
    ca_cert: str | None,
    docker_host: str | None,
    agent_id: str | None,
    slots: int,
) -> None:
    """Run the polling agent: claim this host's tasks from the server and execute them. The server's
    certificate is verified against --ca-cert, or the system trust store."""
    from graphium.control.agent import run_agent
    from graphium.control.servers import parse_server_urls
    from graphium.errors import GraphiumError

    try:
        urls = parse_server_urls(server_url)
    except GraphiumError as exc:
        raise GraphiumError(f"--server (env GRAPHIUM_SERVER): {exc}") from None
    run_agent(
        host_id=host_id,
        server_url=urls,
        token=_agent_token(ctx, token, token_file),
        docker_host=docker_host,
        agent_id=agent_id,
        slots=slots,
        ca_cert=ca_cert,
    )


def _agent_token(ctx: click.Context, token: str | None, token_file: str | None) -> str:
    """The agent token from --token-file, else env GRAPHIUM_AGENT_TOKEN (or --token, with a warning)."""
    if token_file and token:
        raise click.UsageError("give the agent token once: --token-file or GRAPHIUM_AGENT_TOKEN")
    if token_file:
        path = Path(token_file)
        if path.stat().st_mode & 0o077:
            click.echo(f"Warning: {token_file} is readable by other users; chmod 600 it", err=True)
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise click.UsageError(f"{token_file} holds no token")
        return token
    if not token:
        raise click.UsageError("the agent needs its token: --token-file FILE or env GRAPHIUM_AGENT_TOKEN")
    if ctx.get_parameter_source("token") is ParameterSource.COMMANDLINE:
        click.echo(
            "Warning: --token on the command line is visible to every user (ps, shell history); "
            "use env GRAPHIUM_AGENT_TOKEN or --token-file",
            err=True,
        )
    return token


@click.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@click.option("--agent", "agent_host", metavar="HOST", help="An agent token bound to one host id.")
@click.option("--admin", is_flag=True, help="An admin token (all routes, writes).")
@tokens_option
def token_create(agent_host: str | None, admin: bool, tokens_file: str) -> None:
    """Create a token and print it once; only its hash is stored."""
    from graphium.control.server.auth import create_token

    if bool(agent_host) == admin:
        raise click.UsageError("give exactly one of --agent HOST or --admin")
    click.echo(create_token(tokens_file, role="admin" if admin else "agent", host_id=agent_host))


@token.command("list")
@tokens_option
@json_option
def token_list(tokens_file: str, as_json: bool) -> None:
    """List tokens: id, role, host, created, last used (as the server last recorded it); never
    the token or its hash."""
    from graphium.cli.output import make_console, render_tokens
    from graphium.control.server.auth import list_tokens

    found = list_tokens(tokens_file)
    if not as_json:
        render_tokens(found, make_console())
        return
    for info in found:
        emit("token", info.dump())


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@tokens_option
def token_revoke(token_id: str, tokens_file: str) -> None:
    """Remove a token; a running server refuses it from its next request (no restart)."""
    from graphium.control.server.auth import revoke_token

    info = revoke_token(tokens_file, token_id)
    host = f" for host {info.host_id}" if info.host_id else ""
    click.echo(f"Revoked {info.role} token {info.id}{host}.")
