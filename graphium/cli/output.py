"""Human-facing rendering: Terraform-style plans, live apply progress, status and task tables.

Rich does the terminal work (colour only on a TTY, ``NO_COLOR`` honoured); when stdout is not a
terminal the progress display degrades to one plain line per event. Secret values are never
rendered: environment values of secret-looking or ``sensitive`` keys show as ``(sensitive)``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from graphium.cli.details import container_details
from graphium.plan.model import Action, ActionKind, ActionReason, FieldChange, Plan, Rollout
from graphium.plan.payloads import created_container
from graphium.records.agent import AgentInfo, AgentStatus
from graphium.records.event import Event
from graphium.records.live import LiveHost, LiveSummary, humanise_seconds
from graphium.records.stack import StackRecord
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.runner import RunResult
from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import MARKER, redact_container, redact_text

if TYPE_CHECKING:
    from graphium.control.server.auth import TokenInfo

_SYMBOL = {
    ActionKind.create: ("+", "green"),
    ActionKind.replace: ("-/+", "yellow"),
    ActionKind.remove: ("-", "red"),
    ActionKind.drift: ("~", "magenta"),
    ActionKind.keep: (" ", "dim"),
}
_CREATES = frozenset({TaskType.ensure_network, TaskType.ensure_volume})
_SUPPORT = _CREATES | {TaskType.remove_network, TaskType.remove_volume}
_STATUS_STYLE = {
    TaskStatus.pending: "dim",
    TaskStatus.assigned: "cyan",
    TaskStatus.running: "cyan",
    TaskStatus.completed: "green",
    TaskStatus.failed: "red",
    TaskStatus.cancelled: "yellow",
}


def make_console(*, stderr: bool = False) -> Console:
    """A console that wraps tables to the terminal, and never wraps them in pipes and logs."""
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=stderr, highlight=False, soft_wrap=True, width=240)
    return console


def _spec_of(action: Action, tasks: dict[str, Task], secrets: set[str]) -> ContainerSpec | None:
    """The container an action creates, its secret values (and the plan's ``secrets``) masked
    wherever they occur."""
    for task_id in action.task_ids:
        container = created_container(tasks[task_id]) if task_id in tasks else None
        if container is not None:
            return redact_container(container.spec, secrets)
    return None


def _value_text(value: Any) -> str:
    """A changed value as JSON; a masked secret as the bare marker."""
    return MARKER if value == MARKER else json.dumps(value, ensure_ascii=False)


def change_line(change: FieldChange) -> str:
    """``~ field  old -> new`` in Terraform's habit: ``+`` for a field set, ``-`` for one unset."""
    if not change.old_known:
        symbol, text = "~", f"(only its hash was recorded) -> {_value_text(change.new)}"
    elif change.sensitive and change.old == change.new == MARKER:
        symbol, text = "~", "(sensitive, changed)"
    elif change.old is None:
        symbol, text = "+", _value_text(change.new)
    elif change.new is None:
        symbol, text = "-", _value_text(change.old)
    else:
        symbol, text = "~", f"{_value_text(change.old)} -> {_value_text(change.new)}"
    return f"{symbol} {change.field:<22} {text}"


_BY_FIELDS = frozenset({ActionReason.config_changed, ActionReason.host_changed})


def _headline(action: Action) -> tuple[str, str]:
    """What follows an action's name: the fields forcing a replace, the fields that drifted (the
    change lines below give their values), or the human reason."""
    fields = [c.field for c in action.changes]
    if action.kind is ActionKind.replace:
        shown = fields if action.reason in _BY_FIELDS else action.reasons
        return f"  forces replacement: {', '.join(shown)}", _SYMBOL[action.kind][1]
    if action.reason is ActionReason.interrupted_replace:  # graphium's own doing, not drift
        return "  left by an interrupted replace: repaired by this apply", _SYMBOL[action.kind][1]
    if action.kind is ActionKind.drift:
        return f"  changed outside graphium: {', '.join(fields)}", _SYMBOL[action.kind][1]
    return (f"  ({', '.join(action.reasons)})" if action.reasons else ""), "dim"


def rollout_line(rollout: Rollout) -> str:
    """A rolling update in one line: its batches and the policy it follows."""
    batches = " | ".join(", ".join(batch) for batch in rollout.batches)
    timing = "".join(
        f", {what} {seconds:g}s"
        for what, seconds in (("delay", rollout.delay), ("monitor", rollout.monitor))
        if seconds
    )
    return (
        f"rolling update of {rollout.container}: {len(rollout.batches)} batch(es) of up to "
        f"{rollout.parallelism} ({batches}), {rollout.order}{timing}, on failure {rollout.failure_action}"
    )


def render_plan(plan: Plan, console: Console, *, show_unchanged: bool = False) -> None:
    """Print a plan the way Terraform users expect: one block per change, then a summary line.

    Each block is the action's symbol and name, the fields that force a replace (or what drifted,
    or why it goes), one line per field change (live or recorded value -> the new one), and for a
    container being created or replaced its attributes.
    """
    tasks = {t.id: t for t in plan.tasks}
    secrets = plan.secret_values()
    verb = "destroy" if plan.destroy else "apply"
    changes = [a for a in plan.actions if a.kind is not ActionKind.keep]
    if not changes and not plan.tasks:
        console.print(
            f"[green]No changes.[/] Stack [bold]{plan.stack}[/] matches its definition "
            f"({len(plan.actions)} container(s) up to date)."
        )
        _render_notes(plan, console)
        return
    console.print(f"graphium will perform the following actions to {verb} stack [bold]{plan.stack}[/]:\n")
    for action in sorted(plan.actions, key=lambda a: (a.host, a.name)):
        if action.kind is ActionKind.keep and not show_unchanged:
            continue
        symbol, style = _SYMBOL[action.kind]
        line = Text(f"  {symbol:>3} ", style=style)
        line.append(f"{action.name}", style="bold")
        line.append(f" on {action.host} ({action.docker_name})")
        headline, headline_style = _headline(action)
        line.append(headline, style=headline_style)
        console.print(line)
        # a create's changes are every field it sets: the details below show them, once
        for change in action.changes if action.reason is not ActionReason.new_instance else ():
            console.print(f"        {change_line(change)}", style=style, markup=False)
        creates = action.kind in (ActionKind.create, ActionKind.replace)
        spec = _spec_of(action, tasks, secrets) if creates else None
        for key, value in container_details(spec) if spec else []:
            console.print(f"          {key:<10} {value}", style="dim", markup=False)
    for rollout in plan.rollouts:
        console.print(f"\n  {rollout_line(rollout)}", style="yellow", markup=False)
        for note in rollout.notes:
            console.print(f"        note: {note}", style="yellow", markup=False)
    _render_support(plan, console)
    counts = plan.counts()
    console.print(
        f"\n[bold]Plan:[/] {counts['create']} to create, {counts['replace']} to replace, "
        f"{counts['remove']} to remove, {counts['drift']} drifted, {counts['keep']} unchanged "
        f"({len(plan.tasks)} tasks)."
    )
    _render_notes(plan, console)


def _render_support(plan: Plan, console: Console) -> None:
    """The tasks of no container's action: networks and volumes created or removed."""
    listed = {task_id for a in plan.actions for task_id in a.task_ids}
    for task in plan.tasks:
        if task.id not in listed and task.task_type in _SUPPORT:
            symbol, style = _SYMBOL[ActionKind.create if task.task_type in _CREATES else ActionKind.remove]
            console.print(f"  {symbol:>3} {task.description}", style=style, markup=False)


def _render_notes(plan: Plan, console: Console) -> None:
    for note in plan.notes:
        console.print(f"Note: {note}", style="yellow", markup=False)


class ProgressView:
    """Live task progress during apply: a table on a terminal, one line per event otherwise."""

    def __init__(self, console: Console, plan: Plan) -> None:
        self._console = console
        self._tasks = {t.id: t for t in plan.tasks}
        self._status: dict[str, str] = {t.id: t.status.value for t in plan.tasks}
        self._errors: dict[str, str] = {}
        self._secrets = plan.secret_values()
        self._live: Live | None = None
        if console.is_terminal:
            self._live = Live(self._table(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> ProgressView:
        if self._live:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.update(self._table())
            self._live.__exit__(None, None, None)

    def on_event(self, event: Event) -> None:
        if event.type == "task_created" and event.task_id and event.task_id not in self._tasks:
            self._adopt(event)  # a task the run added (a rollout's rollback)
        if event.task_id is None or event.task_id not in self._tasks:
            return
        if event.type == "task_waiting":  # a line of its own, above a live table too
            host = event.host_id or ""
            message = redact_text(str(event.data.get("message", "")), self._secrets)
            self._console.print(f"{'waiting':<9} {host:<16} {message}", markup=False)
            return
        status = str(event.data.get("status", ""))
        self._status[event.task_id] = status
        error = redact_text(str(event.data.get("error") or ""), self._secrets)
        if error:
            self._errors[event.task_id] = error
        if self._live:
            self._live.update(self._table())
        elif event.type != "task_created":  # the plan above already listed every task
            task = self._tasks[event.task_id]
            detail = f": {error}" if error else ""
            self._console.print(f"{status:<9} {task.host_id:<16} {task.description}{detail}", markup=False)

    def _adopt(self, event: Event) -> None:
        if event.stack_id is None or event.task_id is None:
            return
        task = Task(
            id=event.task_id,
            task_type=TaskType(str(event.data.get("taskType"))),
            host_id=event.host_id or "",
            stack_id=event.stack_id,
            description=str(event.data.get("description", "")),
        )
        self._tasks[task.id] = task
        self._status[task.id] = task.status.value
        if self._live is None:
            self._console.print(f"{'added':<9} {task.host_id:<16} {task.description}", markup=False)

    def _table(self) -> Table:
        table = _table(("status", "host", "task"), ())
        for task_id, task in self._tasks.items():
            status = self._status[task_id]
            style = (
                _STATUS_STYLE.get(TaskStatus(status), "") if status in TaskStatus._value2member_map_ else ""
            )
            detail = task.description + (f": {self._errors[task_id]}" if task_id in self._errors else "")
            table.add_row(Text(status, style=style), task.host_id, detail)
        done = sum(1 for s in self._status.values() if s in ("completed", "failed", "cancelled"))
        table.caption = f"{done}/{len(self._tasks)} tasks ended"
        return table


def render_result(result: RunResult, plan: Plan, console: Console) -> None:
    if result.ok:
        what = "destroyed" if plan.destroy else "applied"
        console.print(
            f"[green]Stack {plan.stack} {what}:[/] {len(result.tasks)} task(s) completed "
            f"in {result.duration:.1f} s."
        )
        return
    console.print(
        f"[red]Stack {plan.stack}: {len(result.failed)} task(s) failed, "
        f"{len(result.cancelled)} not started.[/]"
    )
    secrets = plan.secret_values()
    for host, failed in sorted(result.failures_by_host().items()):
        for task in failed:
            error = redact_text(task.error or "", secrets)
            console.print(f"  [bold]{host}[/]: {task.description}: ", Text(error), sep="")
    for note in result.notes:
        console.print(f"  {redact_text(note, secrets)}", style="yellow", markup=False)


def _table(columns: Iterable[str], rows: Iterable[Iterable[str | Text]]) -> Table:
    """The one table style of the CLI: no box, bold headers, no edge padding."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def render_stacks(
    stacks: Iterable[StackRecord], console: Console, live: dict[str, LiveSummary] | None = None
) -> None:
    """The stacks table, local or ``--server`` alike; with ``live``, each stack's status is what
    its hosts report (``degraded`` when a container of a running stack is not running)."""
    columns: tuple[str, ...] = ("stack", "status", "phase", "progress", "containers", "hosts", "updated")
    if live is not None:
        columns = (*columns[:2], "live", *columns[2:])
    rows = []
    for s in stacks:
        row: list[str | Text] = [s.name, s.status.value]
        if live is not None:
            summary = live.get(s.name)
            row[1] = _live_status(s.status.value if summary is None else summary.status)
            row.append("" if summary is None else _live_count(summary))
        row += [s.phase, f"{s.progress}%", str(len(s.placements)), ", ".join(s.hosts), s.updated_at]
        rows.append(row)
    console.print(_table(columns, rows))
    for summary in (live or {}).values():
        _render_live_problems(summary, console)


def _live_count(summary: LiveSummary) -> str:
    """``2/3 running`` of the placements whose hosts were asked; never a count of hosts not asked."""
    if summary.checked == 0:
        return "not checked" if summary.expected else ""
    count = f"{summary.running}/{summary.checked} running"
    unchecked = summary.expected - summary.checked
    return f"{count}, {unchecked} not checked" if unchecked else count


def _live_status(status: str) -> Text:
    style = {"running": "green", "degraded": "red", "error": "red", "unknown": "yellow"}
    return Text(status, style=style.get(status, ""))


def _render_live_problems(summary: LiveSummary, console: Console) -> None:
    for problem in summary.problems:
        console.print(Text(f"{summary.stack}: {problem}", style="red"))
    for host in summary.unreachable:
        console.print(Text(f"{summary.stack}: could not check {host}", style="yellow"))
    if summary.unchecked:
        hosts = ", ".join(summary.unchecked)
        console.print(
            Text(
                f"{summary.stack}: not checked on {hosts} (not in the inventory, or agent hosts)",
                style="dim",
            )
        )


def render_ps(hosts: Iterable[LiveHost], console: Console, *, with_stack: bool) -> None:
    """``ps``: one row per live container, then each host that could not be read."""
    columns: tuple[str, ...] = (
        "container",
        "host",
        "state",
        "health",
        "image",
        "ports",
        "uptime",
        "restarts",
    )
    if with_stack:
        columns = ("stack", *columns)
    rows = []
    errors = []
    for host in hosts:
        if host.error is not None:
            errors.append(f"{host.host}: {host.error}")
        for c in host.containers:
            state = c.state if c.exit_code is None else f"{c.state} ({c.exit_code})"
            style = "green" if c.state == "running" and c.health != "unhealthy" else "red"
            row: list[str | Text] = [c.docker_name, c.host, Text(state, style=style), c.health or ""]
            row += [c.image, ", ".join(c.ports), humanise_seconds(c.uptime_seconds), str(c.restarts)]
            rows.append([c.stack, *row] if with_stack else row)
    if rows:
        console.print(_table(columns, rows))
    else:
        console.print("No containers.")
    for error in errors:
        console.print(Text(f"error: {error}", style="red"))


def render_tokens(tokens: Iterable[TokenInfo], console: Console) -> None:
    """API tokens without their secret or hash (``token list``)."""
    columns = ("id", "role", "host", "created", "last used")
    rows = ((t.id, t.role, t.host_id or "", t.created or "", t.last_used or "never") for t in tokens)
    console.print(_table(columns, rows))


def render_stack(
    stack: StackRecord, tasks: list[Task], console: Console, live: LiveSummary | None = None
) -> None:
    status = stack.status.value if live is None else live.status
    counts = "" if live is None else f"  live: {live.running}/{live.expected} running"
    console.print(
        f"[bold]{stack.name}[/]  status: {status}{counts}  phase: {stack.phase}  progress: {stack.progress}%"
    )
    if live is not None:
        _render_live_problems(live, console)
    if stack.error:
        console.print(f"[red]error:[/] {stack.error}", markup=True)
    rows = (
        (name, str(p.get("hostId")), str(p.get("dockerName")), str(p.get("containerId") or "")[:12])
        for name, p in sorted(stack.placements.items())
    )
    console.print(_table(("container", "host", "docker name", "container id"), rows))
    if tasks:
        render_tasks(tasks, console)


def render_agents(agents: Iterable[AgentInfo], console: Console) -> None:
    columns = ("agent", "host", "status", "last seen", "version", "engine", "slots", "running")
    rows = (
        (
            a.agent_id,
            a.host_id,
            Text(a.state.value, style="green" if a.state is AgentStatus.live else "red"),
            "never" if a.seen_seconds_ago is None else f"{a.seen_seconds_ago:.0f} s ago",
            a.version or "?",
            a.engine_version or "?",
            str(a.slots),
            str(len(a.running_tasks)),
        )
        for a in agents
    )
    console.print(_table(columns, rows))


def render_tasks(tasks: Iterable[Task], console: Console) -> None:
    """Tasks without payloads: the store's human view never shows secrets."""
    columns = ("id", "type", "status", "host", "stack", "created", "description / error")
    rows = (
        (
            t.id,
            t.task_type.value,
            Text(t.status.value, style=_STATUS_STYLE[t.status]),
            t.host_id,
            t.stack_id or "",
            t.date_created[:19],
            t.error or t.description,
        )
        for t in tasks
    )
    console.print(_table(columns, rows))
