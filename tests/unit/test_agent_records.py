"""Agent records as operators see them: live or down, what they hold, why a host's tasks wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from graphium.records.agent import AgentRecord, AgentStatus, agents_view, no_live_agent
from graphium.records.task import Task, TaskStatus, TaskType

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def seen(agent: str, host: str, seconds_ago: float | None) -> AgentRecord:
    stamp = "" if seconds_ago is None else (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return AgentRecord(agent_id=agent, host_id=host, last_seen=stamp)


def test_an_agent_is_down_once_unseen_longer_than_the_threshold() -> None:
    assert seen("a", "vm1", 44).status(NOW) is AgentStatus.live
    assert seen("a", "vm1", 46).status(NOW) is AgentStatus.down
    assert seen("a", "vm1", 10).status(NOW, down_after=5) is AgentStatus.down
    assert seen("a", "vm1", None).status(NOW) is AgentStatus.down


def test_no_live_agent_names_the_host_and_the_freshest_sighting() -> None:
    records = [seen("old", "vm2", 300), seen("newer", "vm2", 61), seen("live", "vm1", 1)]
    assert no_live_agent("vm1", records, NOW) is None
    assert no_live_agent("vm2", records, NOW) == "no live agent for vm2, last seen 61 s ago"
    assert no_live_agent("vm3", records, NOW) == "no live agent for vm3: no agent has registered for it"
    # one live agent of several is enough
    assert no_live_agent("vm2", [*records, seen("back", "vm2", 3)], NOW) is None


def test_the_view_lists_every_agent_with_the_tasks_it_holds() -> None:
    def task(task_id: str, agent: str | None, status: TaskStatus) -> Task:
        return Task(id=task_id, task_type=TaskType.deploy, host_id="vm1", agent_id=agent, status=status)

    holding = [
        task("t1", "a1", TaskStatus.running),
        task("t2", "a1", TaskStatus.assigned),
        task("t3", "a1", TaskStatus.completed),  # done: no longer held
        task("t4", "a2", TaskStatus.running),
    ]
    view = agents_view([seen("a2", "vm1", 100), seen("a1", "vm1", 2)], holding, NOW)
    assert [(a.agent_id, a.state, a.running_tasks) for a in view] == [
        ("a1", AgentStatus.live, ["t1", "t2"]),
        ("a2", AgentStatus.down, ["t4"]),
    ]
    dumped = view[1].model_dump(mode="json", by_alias=True)
    assert dumped["status"] == "down" and dumped["seenSecondsAgo"] == 100.0
    assert dumped["runningTasks"] == ["t4"] and dumped["hostId"] == "vm1"
