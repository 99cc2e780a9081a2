"""The interpreter's dispatch table and its payload checks (no engine is ever reached here)."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator

import pytest

from graphium.docker.engine import DockerEngine
from graphium.docker.interpreter import HANDLERS, execute
from graphium.errors import ExecutionError
from graphium.plan.payloads import PAYLOADS
from graphium.records.task import Task, TaskType


def test_every_task_type_has_a_handler_and_a_payload_model() -> None:
    assert set(HANDLERS) == set(PAYLOADS) == set(TaskType)


@pytest.mark.parametrize("kind", list(TaskType), ids=[k.value for k in TaskType])
def test_each_handler_takes_the_payload_model_of_its_task_type(kind: TaskType) -> None:
    """The table is typed loosely (one Callable type for all); this holds each entry to PAYLOADS."""
    hints = typing.get_type_hints(HANDLERS[kind])
    assert hints["payload"] is PAYLOADS[kind]


@pytest.fixture
async def nowhere() -> AsyncIterator[DockerEngine]:
    """A real engine adapter aimed at no engine: any call to it would fail with 'cannot reach'."""
    engine = DockerEngine("unix:///nonexistent/graphium-test.sock", host_id="h1", timeout=2)
    yield engine
    await engine.close()


async def test_a_payload_that_does_not_fit_fails_naming_host_task_and_fields(nowhere: DockerEngine) -> None:
    task = Task(
        id="t-1",
        task_type=TaskType.deploy,
        host_id="h1",
        payload={"container": {"stack": "shop", "spec": {"name": "web"}}},
    )
    with pytest.raises(ExecutionError) as caught:
        await execute(nowhere, task)
    message = str(caught.value)
    assert message.startswith("host h1, task t-1: invalid deploy payload: ")
    assert "$.payload.container.spec.image: Field required" in message
    assert "cannot reach" not in message  # refused before any engine call
    assert caught.value.host == "h1" and caught.value.task == "t-1"


async def test_a_wrong_payload_type_for_the_task_type_is_refused(nowhere: DockerEngine) -> None:
    """A delete payload sent as a start task: the start model wants containerId."""
    task = Task(id="t-2", task_type=TaskType.start, host_id="h1", payload={"dockerName": "shop-web"})
    with pytest.raises(
        ExecutionError, match=r"invalid start payload: \$\.payload\.containerId: Field required"
    ):
        await execute(nowhere, task)


async def test_secret_values_in_an_invalid_payload_are_not_quoted(nowhere: DockerEngine) -> None:
    task = Task(
        id="t-3",
        task_type=TaskType.deploy,
        host_id="h1",
        payload={
            "container": {"spec": {"name": "db", "image": "pg", "environment": {"DB_PASSWORD": "hunter2"}}}
        },
    )
    with pytest.raises(ExecutionError) as caught:
        await execute(nowhere, task)
    assert "hunter2" not in str(caught.value)
