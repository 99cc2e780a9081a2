"""plan / apply / destroy through graphium.Deployer against a real Docker engine (the lab's).

Each test uses its own stack name and free host ports, so tests never see each other's containers.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from graphium.cli.output import make_console, render_plan
from graphium.errors import StalePlanError
from graphium.executors.local import LocalExecutor
from graphium.plan.model import ActionKind, Plan
from graphium.records.event import Event
from graphium.records.stack import StackStatus
from graphium.records.task import TaskStatus
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Connection, Host, Inventory
from graphium.store.json_store import JsonTaskStore
from tests.support import free_port, remove_stack, stack_doc, unique_name

pytestmark = pytest.mark.docker

WEB = "graphium-test/web:1"
SERVE_MSG = ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www']


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode().strip())


def web(name: str, port: int, msg: str = "one", **fields: Any) -> dict[str, Any]:
    return {
        "@type": "datacenter:Container",
        "name": name,
        "image": WEB,
        "command": SERVE_MSG,
        "environment": {"MSG": msg},
        "ports": [{"containerPort": 80, "hostPort": port}],
        **fields,
    }


@pytest.fixture
def client(docker_url: str) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_url)
    yield c
    c.close()


@pytest.fixture
def stack_name(docker_url: str) -> Iterator[str]:
    name = unique_name("t")
    yield name
    remove_stack(docker_url, name)


@pytest.fixture
async def deployer(docker_url: str, tmp_path: Path) -> AsyncIterator[Deployer]:
    host = Host.model_validate({"@id": "local", "connection": Connection.local, "dockerHost": docker_url})
    store = JsonTaskStore(tmp_path / "state.json")
    executor = LocalExecutor()
    yield Deployer(store, executor, Inventory(hosts=[host]), events=EventBus(store))
    await executor.close()


async def plan_of(deployer: Deployer, doc: dict[str, Any], environ: dict[str, str] | None = None) -> Plan:
    return await deployer.plan(load_stack_data(doc, "stack.json"), environ or {})


async def test_apply_orders_by_health_then_reapply_is_a_noop(deployer: Deployer, stack_name: str) -> None:
    db_port, app_port = free_port(), free_port()
    health = {
        "test": ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/ || exit 1"],
        "interval": "0.3s",
        "timeout": "2s",
        "retries": 10,
    }
    doc = stack_doc(
        stack_name,
        [web("app", app_port, "app", dependsOn=["db"]), web("db", db_port, "db", healthCheck=health)],
    )
    plan = await plan_of(deployer, doc)
    assert plan.counts()["create"] == 2
    result = await deployer.apply(plan)
    assert result.ok, result.failed
    assert http_get(db_port) == "db" and http_get(app_port) == "app"

    by_desc = {t.description: t for t in result.tasks.values()}
    db_task = next(t for d, t in by_desc.items() if d.startswith("create db"))
    app_task = next(t for d, t in by_desc.items() if d.startswith("create app"))
    assert db_task.result and db_task.result["health"] == "healthy"
    assert app_task.started_at and db_task.completed_at and app_task.started_at >= db_task.completed_at

    record = deployer.store.get_stack(stack_name)
    assert record and record.status is StackStatus.running and record.progress == 100
    assert {p["hostId"] for p in record.placements.values()} == {"local"}
    assert all(p["containerId"] for p in record.placements.values())

    again = await plan_of(deployer, doc)
    assert again.tasks == [] and again.counts()["keep"] == 2
    revision = record.revision
    assert (await deployer.apply(again)).ok
    assert deployer.store.get_stack(stack_name).revision == revision  # type: ignore[union-attr]


async def test_change_replaces_with_reasons_and_secrets_stay_hidden(
    deployer: Deployer, stack_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    assert (await deployer.apply(await plan_of(deployer, stack_doc(stack_name, [web("web", port)])))).ok
    changed = web("web", port, "two")
    changed["environment"]["API_TOKEN"] = "${API_TOKEN}"
    plan = await plan_of(deployer, stack_doc(stack_name, [changed]), {"API_TOKEN": "s3cr3t-value"})
    [action] = plan.actions
    assert action.kind is ActionKind.replace and action.reasons == ["environment"]

    events: list[Event] = []
    deployer.events.subscribe(events.append)
    render_plan(plan, make_console())
    assert (await deployer.apply(plan)).ok
    assert http_get(port) == "two"
    shown = capsys.readouterr().out + "".join(e.model_dump_json() for e in events)
    assert "API_TOKEN=(sensitive)" in shown and "s3cr3t-value" not in shown


async def test_drift_is_detected_and_corrected(
    deployer: Deployer, stack_name: str, client: docker.DockerClient
) -> None:
    port = free_port()
    doc = stack_doc(stack_name, [web("web", port, restartPolicy="unless-stopped")])
    assert (await deployer.apply(await plan_of(deployer, doc))).ok
    container = client.containers.get(f"{stack_name}-web")
    container.stop(timeout=1)
    plan = await plan_of(deployer, doc)
    [action] = plan.actions
    assert action.kind is ActionKind.drift and any("exited" in r for r in action.reasons)
    assert (await deployer.apply(plan)).ok
    assert http_get(port) == "one"

    client.api.update_container(container.id, restart_policy={"Name": "no"})
    plan = await plan_of(deployer, doc)
    [action] = plan.actions
    assert action.kind is ActionKind.drift and any("restartPolicy" in r for r in action.reasons)
    assert (await deployer.apply(plan)).ok
    assert (await plan_of(deployer, doc)).tasks == []


async def test_saved_plan_is_refused_when_state_changed(
    deployer: Deployer, stack_name: str, client: docker.DockerClient
) -> None:
    port = free_port()
    doc = stack_doc(stack_name, [web("web", port)])
    assert (await deployer.apply(await plan_of(deployer, doc))).ok
    saved = Plan.model_validate_json(
        (await plan_of(deployer, stack_doc(stack_name, [web("web", port, "x")]))).model_dump_json(
            by_alias=True
        )
    )
    client.containers.get(f"{stack_name}-web").stop(timeout=1)
    with pytest.raises(StalePlanError, match="stale"):
        await deployer.apply(saved, verify_fresh=True)
    assert client.containers.get(f"{stack_name}-web").status == "exited"


async def test_failure_stops_dependents_and_a_rerun_converges(deployer: Deployer, stack_name: str) -> None:
    port, dep_port = free_port(), free_port()
    broken = web("base", port, pullPolicy="never", image="graphium-test/absent:1")
    doc = stack_doc(stack_name, [broken, web("top", dep_port, dependsOn=["base"])])
    result = await deployer.apply(await plan_of(deployer, doc))
    assert not result.ok
    [failed] = result.failed
    assert "graphium-test/absent:1" in (failed.error or "") and "never" in (failed.error or "")
    assert [t.description for t in result.cancelled] and all(
        t.status is TaskStatus.cancelled for t in result.cancelled
    )
    record = deployer.store.get_stack(stack_name)
    assert record and record.status is StackStatus.error and "absent" in (record.error or "")
    assert all(t.terminal for t in deployer.store.list_tasks(stack_id=stack_name))

    fixed = stack_doc(stack_name, [web("base", port), web("top", dep_port, dependsOn=["base"])])
    assert (await deployer.apply(await plan_of(deployer, fixed))).ok
    assert http_get(dep_port) == "one"
    assert deployer.store.get_stack(stack_name).status is StackStatus.running  # type: ignore[union-attr]


async def test_container_that_exits_fails_its_task(deployer: Deployer, stack_name: str) -> None:
    doc = stack_doc(stack_name, [{"name": "crash", "image": WEB, "command": ["sh", "-c", "exit 3"]}])
    result = await deployer.apply(await plan_of(deployer, doc))
    assert not result.ok and "exit" in (result.failed[0].error or "").lower()


async def test_pull_policy_if_not_present_uses_the_local_image(deployer: Deployer, stack_name: str) -> None:
    port = free_port()
    doc = stack_doc(stack_name, [web("web", port, pullPolicy="if-not-present")])
    assert (await deployer.apply(await plan_of(deployer, doc))).ok  # no registry reachable: no pull made


async def test_destroy_removes_containers_network_and_records(
    deployer: Deployer, stack_name: str, client: docker.DockerClient
) -> None:
    doc = stack_doc(stack_name, [web("a", free_port()), web("b", free_port(), dependsOn=["a"])])
    assert (await deployer.apply(await plan_of(deployer, doc))).ok
    plan = await deployer.plan_destroy(stack_name)
    assert plan.destroy and plan.counts()["remove"] == 2
    order = [t.description for t in plan.tasks]
    assert order.index(next(d for d in order if " b " in d)) < order.index(
        next(d for d in order if " a " in d)
    )
    assert (await deployer.apply(plan)).ok
    assert client.containers.list(all=True, filters={"label": f"graphium.stack={stack_name}"}) == []
    assert client.networks.list(filters={"label": f"graphium.stack={stack_name}"}) == []
    assert deployer.store.get_stack(stack_name) is None
    again = await deployer.plan_destroy(stack_name)
    assert again.tasks == [] and (await deployer.apply(again)).ok


async def test_a_failing_container_cannot_leak_its_secrets_through_its_logs(
    deployer: Deployer, stack_name: str
) -> None:
    leaky = {
        "name": "leaky",
        "image": WEB,
        "command": ["sh", "-c", 'echo "connecting with $DB_PASSWORD"; exit 1'],
        "environment": {"DB_PASSWORD": "${DB_PASSWORD}"},
    }
    events: list[Event] = []
    deployer.events.subscribe(events.append)
    plan = await plan_of(deployer, stack_doc(stack_name, [leaky]), {"DB_PASSWORD": "hunter2-hunter2"})
    result = await deployer.apply(plan)
    [failed] = result.failed
    assert "connecting with (sensitive)" in (failed.error or ""), failed.error
    stored = deployer.store.get_stack(stack_name)
    shown = (
        (failed.error or "") + "".join(e.model_dump_json() for e in events) + (stored.error if stored else "")
    )
    assert "hunter2-hunter2" not in shown


async def test_a_second_apply_is_refused_while_another_process_runs_the_stack(
    deployer: Deployer, stack_name: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from graphium.errors import PlanError
    from graphium.records.stack import StackRecord

    port = free_port()
    live = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    deployer.store.save_stack(
        StackRecord(id=stack_name, name=stack_name, status=StackStatus.deploying, runner_lease_until=live)
    )
    plan = await plan_of(deployer, stack_doc(stack_name, [web("web", port)]))
    with pytest.raises(PlanError, match="being applied by another process"):
        await deployer.apply(plan)
    assert deployer.store.list_tasks(stack_id=stack_name) == []  # nothing enqueued, nothing run


async def test_a_rerun_after_a_crash_settles_what_the_dead_run_left(
    deployer: Deployer, stack_name: str
) -> None:
    """A run killed mid-way leaves tasks pending and running; the next run cancels and fails them."""
    from graphium.records.task import Task, TaskType

    port = free_port()
    doc = stack_doc(stack_name, [web("web", port)])
    first = await plan_of(deployer, doc)
    left = [
        Task(id=f"{stack_name}-dead-1", task_type=TaskType.deploy, host_id="local", stack_id=stack_name),
        Task(id=f"{stack_name}-dead-2", task_type=TaskType.deploy, host_id="local", stack_id=stack_name),
    ]
    deployer.store.create_tasks(left)
    deployer.store.transition(left[1].id, TaskStatus.running)  # the dead process was running it
    assert (await deployer.apply(first)).ok
    assert deployer.store.get_task(left[0].id).status is TaskStatus.cancelled
    dead = deployer.store.get_task(left[1].id)
    assert dead.status is TaskStatus.failed and "process running it stopped" in (dead.error or "")
    assert http_get(port) == "one"
