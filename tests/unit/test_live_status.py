"""The pure parts of ``ps``, ``logs`` and the live ``status``, from data: inspects read as ps rows
(tests/data/docker/inspect), ``--since`` values, log masking, and stored stacks reconciled with
what hosts report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graphium.docker.listing import env_secrets, live_container, mask_log_line, parse_since, parse_time
from graphium.errors import GraphiumError
from graphium.records.live import LiveContainer, LiveHost, humanise_seconds, reconcile
from graphium.records.stack import StackRecord, StackStatus

INSPECTS = Path(__file__).resolve().parent.parent / "data" / "docker" / "inspect"
NOW = datetime(2026, 12, 2, 2, 21, 54, tzinfo=UTC)


def _inspect(case: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((INSPECTS / case / "inspect.json").read_text())
    return data


def test_a_running_container_reads_with_its_uptime_health_and_published_ports() -> None:
    row = live_container(_inspect("running-healthy-ports-resources"), "h1", NOW)
    assert (row.stack, row.name, row.docker_name, row.host) == ("shop", "web", "shop-web", "h1")
    assert (row.state, row.health, row.image, row.restarts, row.exit_code) == (
        "running",
        "healthy",
        "graphium-test/web:1",
        0,
        None,
    )
    assert row.uptime_seconds == pytest.approx(599.1, abs=0.2)
    assert row.ports == ["0.0.0.0:18999->80/tcp", "127.0.0.1:18998->53/udp", "[::]:18999->80/tcp"]
    assert len(row.id) == 12


def test_an_exited_container_has_its_exit_code_and_no_uptime() -> None:
    row = live_container(_inspect("exited-with-code"), "h1", NOW)
    assert (row.state, row.exit_code, row.uptime_seconds) == ("exited", 3, None)


def test_a_created_container_without_labels_reads_by_its_docker_name() -> None:
    row = live_container(_inspect("minimal-created"), "h1", NOW)
    assert (row.name, row.state, row.started_at, row.exit_code) == ("stray", "created", None, None)


def test_a_stopped_container_shows_the_ports_it_asks_for() -> None:
    row = live_container(_inspect("paused-unhealthy-two-networks"), "h1", NOW)
    assert "0.0.0.0:18080->8080/tcp" in row.ports and row.health == "unhealthy"


@pytest.mark.parametrize(
    ("value", "seconds_before"),
    [("10m", 600), ("90s", 90), ("2h", 7200), ("1d", 86400), ("1.5m", 90)],
)
def test_since_durations_count_back_from_now(value: str, seconds_before: float) -> None:
    assert parse_since(value, NOW) == pytest.approx(NOW.timestamp() - seconds_before)


def test_since_times_and_timestamps() -> None:
    assert parse_since("2026-12-02T02:00:00Z", NOW) == datetime(2026, 12, 2, 2, tzinfo=UTC).timestamp()
    assert parse_since("2026-12-02T03:00:00+01:00", NOW) == datetime(2026, 12, 2, 2, tzinfo=UTC).timestamp()
    assert parse_since("2026-12-02", NOW) == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert parse_since("1764641514", NOW) == 1764641514.0


@pytest.mark.parametrize("value", ["yesterday", "10 minutes", "-5m", "10x"])
def test_a_since_that_is_neither_says_what_is_expected(value: str) -> None:
    with pytest.raises(GraphiumError, match="expected a duration"):
        parse_since(value, NOW)


def test_engine_times_with_nanoseconds_and_the_zero_time() -> None:
    assert parse_time("2026-12-02T02:11:54.878460152Z") == datetime(
        2026, 12, 2, 2, 11, 54, 878460, tzinfo=UTC
    )
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None and parse_time("garbage") is None


def test_log_lines_lose_the_values_of_secret_looking_variables() -> None:
    secrets = env_secrets(["PATH=/bin", "API_TOKEN=tok-123456", "DB_PASSWORD=hunter22", "EMPTY_SECRET="])
    assert secrets == {"tok-123456", "hunter22"}
    line = "connecting to db with hunter22 and tok-123456 on /bin"
    assert mask_log_line(line, secrets) == "connecting to db with (sensitive) and (sensitive) on /bin"
    assert mask_log_line("nothing here", secrets) == "nothing here"


def _record(status: StackStatus = StackStatus.running) -> StackRecord:
    placements = {
        "app-1": {"hostId": "vm1", "dockerName": "web-app-1"},
        "app-2": {"hostId": "vm2", "dockerName": "web-app-2"},
        "db": {"hostId": "vm1", "dockerName": "web-db"},
    }
    return StackRecord(id="web", name="web", status=status, placements=placements, hosts=["vm1", "vm2"])


def _live(docker_name: str, host: str, state: str = "running", **more: Any) -> LiveContainer:
    return LiveContainer(
        stack="web", name=docker_name, docker_name=docker_name, host=host, id="x", state=state, **more
    )


def test_a_running_stack_whose_hosts_agree_stays_running() -> None:
    hosts = [
        LiveHost(host="vm1", containers=[_live("web-app-1", "vm1"), _live("web-db", "vm1")]),
        LiveHost(host="vm2", containers=[_live("web-app-2", "vm2")]),
    ]
    summary = reconcile(_record(), hosts)
    assert (summary.status, summary.running, summary.expected, summary.problems) == ("running", 3, 3, [])


def test_an_exited_missing_or_unhealthy_container_makes_a_running_stack_degraded() -> None:
    hosts = [
        LiveHost(host="vm1", containers=[_live("web-app-1", "vm1", "exited", exit_code=1)]),
        LiveHost(host="vm2", containers=[_live("web-app-2", "vm2", health="unhealthy")]),
    ]
    summary = reconcile(_record(), hosts)
    assert summary.status == "degraded" and summary.stored is StackStatus.running
    assert summary.running == 0
    assert summary.problems == [
        "web-app-1 on vm1: exited (code 1)",
        "web-app-2 on vm2: unhealthy",
        "web-db on vm1: missing",
    ]


def test_an_unreachable_host_is_unknown_not_failed() -> None:
    hosts = [
        LiveHost(host="vm1", containers=[_live("web-app-1", "vm1"), _live("web-db", "vm1")]),
        LiveHost(host="vm2", error="no live agent for vm2, last seen 45 s ago"),
    ]
    summary = reconcile(_record(), hosts)
    assert (summary.status, summary.running, summary.problems) == ("unknown", 2, [])
    assert summary.unreachable == ["vm2: no live agent for vm2, last seen 45 s ago"]


def test_a_stack_not_stored_running_keeps_its_status() -> None:
    summary = reconcile(_record(StackStatus.error), [LiveHost(host="vm1"), LiveHost(host="vm2")])
    assert summary.status == "error" and len(summary.problems) == 3


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0, "0s"), (59.9, "59s"), (61, "1m 1s"), (3720, "1h 2m"), (90000, "1d 1h"), (-3, "0s")],
)
def test_uptime_reads_in_two_units(seconds: float | None, text: str) -> None:
    assert humanise_seconds(seconds) == text


def test_hosts_not_asked_keep_the_stored_status_and_are_listed() -> None:
    summary = reconcile(
        _record(), [LiveHost(host="vm1", containers=[_live("web-app-1", "vm1"), _live("web-db", "vm1")])]
    )
    assert (summary.status, summary.running, summary.unchecked, summary.unreachable) == (
        "running",
        2,
        ["vm2"],
        [],
    )


@pytest.mark.parametrize(
    ("asked", "live"),
    [
        (["vm1", "vm2"], "3/3 running"),
        (["vm1"], "2/2 running, 1 not checked"),
        ([], "not checked"),  # never "0/3 running" for a stack whose hosts nobody asked
    ],
)
def test_the_live_column_counts_only_the_hosts_asked(asked: list[str], live: str) -> None:
    from rich.console import Console

    from graphium.cli.output import render_stacks

    running = {
        "vm1": [_live("web-app-1", "vm1"), _live("web-db", "vm1")],
        "vm2": [_live("web-app-2", "vm2")],
    }
    record = _record()
    summary = reconcile(record, [LiveHost(host=h, containers=running[h]) for h in asked])
    assert summary.checked == sum(len(running[h]) for h in asked)
    console = Console(record=True, width=200)
    render_stacks([record], console, {"web": summary})
    assert live in console.export_text()
