"""Pull policies against a real registry: the lab's, on its bridge, reached by a lab host over SSH."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import pytest

import lab as lab_pkg
from graphium.executors.router import default_executor
from graphium.records.task import TaskType
from graphium.run.deployer import Deployer
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack_data
from graphium.store.json_store import JsonTaskStore

HOST = "vm1"


@pytest.fixture
async def deployer(lab: lab_pkg.LabInfo, lab_registry: str, tmp_path: Path) -> AsyncIterator[Deployer]:
    store = JsonTaskStore(tmp_path / "state.json")
    executor = default_executor(store)
    yield Deployer(store, executor, load_inventory(str(lab.inventory)))
    await executor.close()


def engine(lab: lab_pkg.LabInfo) -> docker.DockerClient:
    host = next(h for h in lab.hosts if h.id == HOST)
    return docker.DockerClient(base_url=host.docker_url)


def stack(name: str, image: str, policy: str) -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@graph": [{"@type": "datacenter:Stack", "name": name, "hasPart": [
            {"name": "web", "image": image, "pullPolicy": policy, "locatedInHost": HOST}]}],
    }  # fmt: skip


async def apply(deployer: Deployer, doc: dict[str, Any]) -> dict[str, Any]:
    result = await deployer.apply(await deployer.plan(load_stack_data(doc, "stack.json"), {}))
    assert result.ok, [t.error for t in result.failed]
    [deploy] = [t for t in result.tasks.values() if t.task_type in (TaskType.deploy, TaskType.replace)]
    return deploy.result or {}


async def test_pull_policies_against_the_lab_registry(
    deployer: Deployer, lab: lab_pkg.LabInfo, lab_registry: str
) -> None:
    image = f"{lab_registry}/graphium-test/web:2"
    name = f"pull{uuid.uuid4().hex[:6]}"
    client = engine(lab)
    try:
        for c in client.containers.list(all=True, filters={"ancestor": image}):
            c.remove(force=True)
        if client.images.list(name=image):
            client.images.remove(image, force=True)

        assert (await apply(deployer, stack(name, image, "if-not-present")))["pulled"] is True
        assert client.images.list(name=image)

        # present now: if-not-present does not pull again, always does
        await deployer.apply(await deployer.plan_destroy(name))
        assert (await apply(deployer, stack(name, image, "if-not-present")))["pulled"] is False
        await deployer.apply(await deployer.plan_destroy(name))
        assert (await apply(deployer, stack(name, image, "always")))["pulled"] is True
        assert (await deployer.apply(await deployer.plan_destroy(name))).ok
    finally:
        for c in client.containers.list(all=True, filters={"label": f"graphium.stack={name}"}):
            c.remove(force=True)
        client.close()
