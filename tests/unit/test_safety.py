"""The logic of safe runs without an engine: draining a run, lease owners, the lifecycle after a
crash, and the confirmation question."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from graphium.cli.safety import APPROVAL, question
from graphium.errors import LockedError, TransitionError
from graphium.executors.owner import Owner, current_owner, provably_dead
from graphium.plan.planner import plan_apply
from graphium.records.stack import StackRecord, StackStatus, check_stack_transition
from graphium.records.task import TaskStatus
from graphium.run.deployer import Deployer
from graphium.run.runner import Runner
from graphium.stack.models import Inventory, StackSpec
from graphium.store.json_store import JsonTaskStore
from tests.unit.test_planner import HOSTS as PLAN_HOSTS
from tests.unit.test_planner import STACK, _applied
from tests.unit.test_runner import HOSTS, ScriptedExecutor, task


async def test_drain_lets_tasks_in_flight_finish_and_starts_nothing_new(tmp_path: Path) -> None:
    store = JsonTaskStore(tmp_path / "state.json")
    tasks = [task("one"), task("two", deps=("one",)), task("three", "b")]
    store.create_tasks(tasks)
    executor = ScriptedExecutor(delay=0.3)
    runner = Runner(store, executor, HOSTS)
    running = asyncio.create_task(runner.run(tasks))
    await asyncio.sleep(0.1)  # "one" and "three" are in flight
    runner.drain()
    result = await running
    assert result.interrupted and not result.ok
    assert sorted(executor.finished) == ["one", "three"]  # finished, not cancelled
    assert store.get_task("one").status is TaskStatus.completed
    [left] = result.cancelled
    assert left.id == "two" and "interrupted" in (left.error or "")


async def test_a_run_drained_before_it_starts_starts_nothing(tmp_path: Path) -> None:
    store = JsonTaskStore(tmp_path / "state.json")
    tasks = [task("one")]
    store.create_tasks(tasks)
    executor = ScriptedExecutor()
    runner = Runner(store, executor, HOSTS)
    runner.drain()
    result = await runner.run(tasks)
    assert executor.started == [] and result.interrupted and len(result.cancelled) == 1


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_an_owner_is_provably_dead_only_on_this_machine_and_boot() -> None:
    me = current_owner()
    assert Owner.parse(str(me)) == me
    assert not provably_dead(str(me))  # this very process runs
    gone = Owner(me.hostname, me.boot_id, _dead_pid(), me.started, "t")
    assert provably_dead(str(gone))
    reused = Owner(me.hostname, me.boot_id, os.getpid(), "1", "t")  # the pid now names another process
    assert provably_dead(str(reused))
    elsewhere = Owner(socket.gethostname() + "-other", me.boot_id, gone.pid, "", "t")
    assert not provably_dead(str(elsewhere))
    rebooted = Owner(me.hostname, "another-boot", gone.pid, "", "t")
    assert not provably_dead(str(rebooted))
    for unknown in (None, "", "garbage", "a/b/c"):
        assert not provably_dead(unknown)


def _deployer(tmp_path: Path) -> Deployer:
    return Deployer(JsonTaskStore(tmp_path / "state.json"), ScriptedExecutor(), Inventory(hosts=[]))


def test_a_lease_of_a_dead_local_process_is_taken_over_and_a_live_one_refused(tmp_path: Path) -> None:
    deployer = _deployer(tmp_path)
    me = current_owner()
    live = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    dead = str(Owner(me.hostname, me.boot_id, _dead_pid(), "", "t"))
    deployer.store.save_stack(
        StackRecord(
            id="s", name="s", status=StackStatus.deploying, runner_lease_until=live, runner_owner=dead
        )
    )
    deployer.check_unlocked("s")  # no error: the holder is gone
    other = str(Owner(me.hostname, me.boot_id, os.getppid(), "", "t"))
    deployer.store.save_stack(
        deployer.store.get_stack("s").model_copy(update={"runner_owner": other})  # type: ignore[union-attr]
    )
    with pytest.raises(LockedError, match=rf"pid {os.getppid()} .*graphium-run unlock s"):
        deployer.check_unlocked("s")


def test_a_stack_left_deleting_by_a_dead_destroy_may_be_deployed_again() -> None:
    check_stack_transition("s", StackStatus.deleting, StackStatus.deploying)
    with pytest.raises(TransitionError):
        check_stack_transition("s", StackStatus.deleting, StackStatus.running)


def test_the_question_says_only_yes_approves() -> None:
    assert APPROVAL == "yes"
    assert "Only 'yes' will be accepted to approve." in question("apply", "shop")
    assert "destroy stack shop" in question("destroy", "shop")


def test_duplicate_networks_on_a_host_are_merged_by_the_next_apply() -> None:
    stack = StackSpec.model_validate(STACK)
    observed = _applied(stack)
    host = next(h for h in observed.values() if h.networks)
    host.networks.append(host.networks[0])  # two runs raced the engine's duplicate check
    plan = plan_apply(stack, PLAN_HOSTS, observed, None)
    assert [t.description for t in plan.tasks] == [
        f"merge duplicate networks {host.networks[0]} on {host.host}"
    ]
    assert plan_apply(stack, PLAN_HOSTS, _applied(stack), None).tasks == []
