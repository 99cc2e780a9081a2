"""Agents you can see, and waits that say why: a real server process, real agents, the real CLI.

The server runs with ``--agent-down-after 3`` so that "down" comes within a test's patience.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from graphium.control.agent import Agent
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord
from graphium.records.task import Task, TaskType
from graphium.store.json_store import JsonTaskStore
from tests.integration.server_fixture import ServerProcess
from tests.support import graphium_run, stack_doc, unique_name, wait_for, write_json

DOWN_AFTER = 3


class QuickDownServer(ServerProcess):
    def command(self) -> list[str]:
        return [*super().command(), "--agent-down-after", str(DOWN_AFTER)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = QuickDownServer(tmp_path, ["h1", "h2"])
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def agents(server: ServerProcess, host: str | None = None) -> list[dict[str, Any]]:
    with server.admin() if host is None else server.agent(host) as api:
        response = api.get("/agents")
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found


async def test_an_agent_registers_is_listed_live_and_turns_down_when_gone(
    server: ServerProcess, docker_url: str
) -> None:
    token, ca = server.agent_tokens["h1"], str(server.ca_cert)
    agent = Agent("h1", server.url, token, docker_host=docker_url, slots=3, ca_cert=ca)
    running = asyncio.create_task(agent.run())
    try:
        await asyncio.to_thread(wait_for, lambda: agents(server), 20, "the agent registered")
        (seen,) = agents(server)
        assert seen["agentId"] == agent.agent_id and seen["hostId"] == "h1"
        assert seen["version"] == metadata.version("graphium") and seen["slots"] == 3
        assert seen["engineVersion"] and seen["engineVersion"] != "None"
        await asyncio.sleep(DOWN_AFTER + 1)  # idle in its long-poll all along: still live
        assert agents(server)[0]["status"] == "live"
        assert agents(server, "h2") == []  # an agent token sees its own host's agents only

        command = ["agents", "--json", "--server", server.url, "--token", server.admin_token, "--ca-cert", ca]
        listed = await asyncio.to_thread(graphium_run, *command)
        assert listed.returncode == 0, listed.stderr
        assert "--token on the command line is visible" in listed.stderr  # works, but warns
        (line,) = [json.loads(x) for x in listed.stdout.splitlines()]
        assert line["type"] == "agent" and line["status"] == "live" and line["agentId"] == agent.agent_id
    finally:
        agent.stop()
        await asyncio.wait_for(running, 30)

    def down() -> bool:
        return agents(server)[0]["status"] == "down"

    await asyncio.to_thread(wait_for, down, DOWN_AFTER + 10, "the stopped agent shows down")
    table = graphium_run(
        "agents", "--server", server.url, *server.ca_args, env={"GRAPHIUM_TOKEN": server.admin_token}
    )
    assert table.returncode == 0 and agent.agent_id in table.stdout and "down" in table.stdout
    assert "Warning" not in table.stderr  # the token from the environment, as the docs say
    # the store keeps the record: the CLI on the server's store sees it too
    stored = graphium_run("agents", "--state", str(server.state), "--json")
    assert json.loads(stored.stdout)["agentId"] == agent.agent_id


async def test_what_an_agent_registered_survives_a_server_restart(
    server: ServerProcess, docker_url: str
) -> None:
    agent = Agent(
        "h1", server.url, server.agent_tokens["h1"], docker_host=docker_url, slots=2, backoff_cap=0.5,
        ca_cert=str(server.ca_cert),
    )  # fmt: skip
    running = asyncio.create_task(agent.run())
    try:
        await asyncio.to_thread(wait_for, lambda: agents(server), 20, "the agent registered")
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        since = datetime.now(UTC)

        def polled_again() -> bool:  # its claims after the restart refreshed its record
            (seen,) = agents(server)
            return datetime.fromisoformat(seen["lastSeen"]) > since

        await asyncio.to_thread(wait_for, polled_again, 20, "the agent came back")
        (seen,) = agents(server)
        assert seen["version"] == metadata.version("graphium") and seen["slots"] == 2
        assert seen["engineVersion"] and seen["status"] == "live"
    finally:
        agent.stop()
        await asyncio.wait_for(running, 30)


def test_tasks_for_a_host_without_a_live_agent_say_so_and_timeout_bounds_the_wait(
    server: ServerProcess, tmp_path: Path
) -> None:
    for host in ("h1", "h2"):  # each agent registered and reported once, then went silent
        with server.agent(host) as api:
            body = {"agentId": f"{host}-gone", "hostId": host, "version": "0.1.0", "slots": 1}
            assert api.put(f"/agents/{host}/registration", json=body).is_success
            assert api.put(f"/agents/{host}/observed", json=ObservedHost(host=host).dump()).status_code == 204
    name = unique_name("waits")
    doc = stack_doc(name, [{"name": "web", "image": "nginx:alpine", "locatedInHost": "h2"}])
    time.sleep(DOWN_AFTER + 0.5)
    with server.admin() as api:
        posted = api.post("/stacks", json=doc)
        assert posted.status_code == 202, posted.text

        def waiting() -> list[dict[str, str]]:
            found: list[dict[str, str]] = api.get(f"/stacks/{name}").json()["waiting"]
            return found

        wait_for(waiting, 10, "the stack says what it waits for")
        (entry,) = waiting()
        assert entry["hostId"] == "h2" and entry["message"].startswith("no live agent for h2, last seen ")

        followed = graphium_run(
            "status",
            name,
            "--follow",
            "--timeout",
            "3",
            "--server",
            server.url,
            "--token",
            server.admin_token,
            *server.ca_args,
        )
        assert followed.returncode == 4, followed.stdout + followed.stderr
        assert "waiting" in followed.stdout and "no live agent for h2" in followed.stdout
        assert "still deploying after 3 s" in followed.stderr and "stay queued" in followed.stderr

        def told() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = api.get("/tasks", params={"stackId": name}).json()
            assert events and events[0]["status"] == "pending"  # nobody claimed it meanwhile
            return [
                e for e in JsonTaskStore(server.state).list_events(stack_id=name) if e.type == "task_waiting"
            ]

        wait_for(told, 15, "a task_waiting event was recorded")
        assert "no live agent for h2" in told()[0].data["message"]
        assert api.delete(f"/stacks/{name}").status_code == 202


def test_store_mode_apply_says_which_host_lacks_an_agent_and_stops_at_the_timeout(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    store = JsonTaskStore(state)
    store.save_observation(ObservedHost(host="ghost"))  # its agent reported, then died
    long_ago = (datetime.now(UTC) - timedelta(seconds=100)).isoformat()
    store.save_agents([AgentRecord(agent_id="ghost-1", host_id="ghost", last_seen=long_ago)])
    inventory = write_json(tmp_path / "hosts.json", {"hosts": [{"@id": "ghost", "connection": "agent"}]})
    name = unique_name("ghosted")
    stack = write_json(tmp_path / "stack.json", stack_doc(name, [{"name": "web", "image": "nginx:alpine"}]))
    applied = graphium_run("apply", str(stack), "-i", str(inventory), "--state", str(state), "--timeout", "6")
    assert applied.returncode == 4, applied.stdout + applied.stderr
    assert "no live agent for ghost, last seen 10" in applied.stdout  # 100-odd seconds ago
    assert f"stack {name} did not settle within 6 s" in applied.stderr
    left = JsonTaskStore(state).list_tasks(stack_id=name)
    assert left and {t.status.value for t in left} == {"pending"}  # queued for the agent, not cancelled


def claim_in_thread(server: ServerProcess, host: str, wait: float) -> tuple[threading.Thread, dict[str, Any]]:
    """A long-poll claim on a thread; the dict gets the claimed tasks and the seconds it took."""
    out: dict[str, Any] = {}

    def claim() -> None:
        started = time.monotonic()
        with server.agent(host) as api:
            response = api.post(
                f"/agents/{host}/claims", params={"wait": wait, "max": 5}, json={"agentId": f"{host}-t"}
            )
        out["tasks"], out["seconds"] = response.json(), time.monotonic() - started

    thread = threading.Thread(target=claim, daemon=True)
    thread.start()
    return thread, out


def test_a_long_poll_wakes_for_another_process_write_and_for_a_backoff_ending(server: ServerProcess) -> None:
    thread, out = claim_in_thread(server, "h1", wait=30)
    time.sleep(1.0)  # the claim is waiting in the server now
    JsonTaskStore(server.state).create_tasks([Task(id="foreign", task_type=TaskType.stop, host_id="h1")])
    thread.join(40)
    assert [t["id"] for t in out["tasks"]] == ["foreign"]
    assert out["seconds"] < 20  # woken by the write, not by the end of its 30 s wait

    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    JsonTaskStore(server.state).create_tasks(
        [Task(id="backing-off", task_type=TaskType.stop, host_id="h1", not_before=soon)]
    )
    time.sleep(0.5)  # the write is seen; the task is not claimable for another ~1.5 s
    thread, out = claim_in_thread(server, "h1", wait=30)
    thread.join(40)
    assert [t["id"] for t in out["tasks"]] == ["backing-off"]
    assert out["seconds"] < 20  # claimed when its backoff ended
