"""The original design note's task API, as written, against a real server (and, in the lab, a real
agent on a real engine): ``POST /api/v1/tasks`` with ``payload.containerSpec``."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import docker.errors

from graphium.plan.model import LABEL_CONTAINER, LABEL_HOST, LABEL_MANAGED, LABEL_SPEC_HASH, LABEL_STACK
from lab import LabInfo
from tests.integration.server_fixture import ServerProcess, server_process  # noqa: F401
from tests.integration.test_agents_e2e import lab_server_fixture, start_agent  # noqa: F401
from tests.support import http_get, remove_stack, stack_containers, stop_processes, unique_name, wait_for

# the note's "API Testing" example, verbatim
NOTE_EXAMPLE = """
{
  "@type": "AgentTask",
  "taskType": "deploy",
  "status": "pending",
  "agentId": "localhost-docker",
  "hostId": "localhost-docker",
  "priority": 5,
  "payload": {
    "containerSpec": {
      "name": "test-nginx",
      "image": "nginx:alpine",
      "ports": [{"containerPort": 80, "hostPort": 8888}],
      "restartPolicy": "unless-stopped"
    },
    "pullPolicy": "if-not-present"
  }
}
"""


def form(spec: Any, **payload: Any) -> dict[str, Any]:
    return {"taskType": "deploy", "hostId": "h1", "payload": {"containerSpec": spec, **payload}}


def problems_of(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.text
    return {p["path"]: p["message"] for p in response.json()["problems"]}


def test_container_form_is_stored_as_graphiums_deploy(server: ServerProcess) -> None:
    """The form is normalised like a stack file's container (``env`` map, restart policy string,
    ``portNumber``), pinned to the task's host, after a network task it depends on."""
    spec = {
        "name": "web",
        "image": "nginx:alpine",
        "ports": [{"portNumber": 80, "hostPort": 18081}],
        "env": {"MODE": "prod", "DB_PASSWORD": "s3cret-value"},
        "restartPolicy": "on-failure:3",
    }
    with server.admin() as admin:
        created = admin.post(
            "/tasks", json={**form(spec, pullPolicy="never"), "stackId": "shop", "id": "t-web"}
        )
        assert created.status_code == 201, created.text
        task = admin.get("/tasks/t-web").json()
        assert task == created.json()
        container = task["payload"]["container"]
        assert container["stack"] == "shop" and container["name"] == "web" and container["host"] == "h1"
        assert container["pullPolicy"] == "never"
        assert container["network"]["name"] == "shop-net"
        assert container["specHash"].startswith("v1:")
        assert container["spec"]["ports"] == [
            {"containerPort": 80, "hostPort": 18081, "protocol": "tcp", "hostIP": None}
        ]
        assert container["spec"]["restartPolicy"] == {"name": "on-failure", "maximumRetryCount": 3}
        assert container["spec"]["environment"] == {"MODE": "prod", "DB_PASSWORD": "(sensitive)"}
        [net] = task["dependsOn"]
        network = admin.get(f"/tasks/{net}").json()
        assert network["taskType"] == "ensure-network" and network["hostId"] == "h1"
        assert network["payload"]["network"]["name"] == "shop-net"
    with server.agent("h1") as agent:
        claimed = agent.post("/agents/h1/claims", params={"max": 10}, json={"agentId": "a1"}).json()
        # the deploy waits for its network; the claim (only) carries the secret to the agent
        assert [t["taskType"] for t in claimed] == ["ensure-network"]
        agent.put(f"/tasks/{net}/status", json={"status": "running", "agentId": "a1"})
        agent.put(f"/tasks/{net}/status", json={"status": "completed", "agentId": "a1"})
        [deploy] = agent.post("/agents/h1/claims", json={"agentId": "a1"}).json()
        assert deploy["payload"]["container"]["spec"]["environment"]["DB_PASSWORD"] == "s3cret-value"


def test_container_form_problems_name_their_json_paths(server: ServerProcess) -> None:
    with server.admin() as admin:
        bad = problems_of(
            admin.post(
                "/tasks",
                json=form(
                    {
                        "name": "web",
                        "image": "nginx",
                        "ports": [{"containerPort": "eighty", "hostPort": 8080}],
                    }
                ),
            )
        )
        assert list(bad) == ["$.payload.containerSpec.ports[0].containerPort"]
        bad = problems_of(
            admin.post(
                "/tasks",
                json=form(
                    {"name": "web", "ports": [{"hostPort": 1}], "bogus": 1}, pullPolicy="sometimes", x=1
                ),
            )
        )
        assert set(bad) == {
            "$.payload.x",
            "$.payload.pullPolicy",
            "$.payload.containerSpec",  # no image
            "$.payload.containerSpec.bogus",
            "$.payload.containerSpec.ports[0]",  # no containerPort
        }
        assert "image" in bad["$.payload.containerSpec"]
        bad = problems_of(
            admin.post("/tasks", json=form({"name": "w", "image": "i", "restartPolicy": "sometimes"}))
        )
        assert "unsupported restart policy" in bad["$.payload.containerSpec.restartPolicy"]
        bad = problems_of(admin.post("/tasks", json=form({"name": "w", "image": "${IMAGE}"})))
        assert "IMAGE" in bad["$.payload.containerSpec.image"]  # the server fills no variables
        bad = problems_of(admin.post("/tasks", json=form({"name": "w", "image": "i", "replicas": 3})))
        assert list(bad) == ["$.payload.containerSpec.replicas"]
        assert problems_of(admin.post("/tasks", json=form("nginx"))) == {
            "$.payload.containerSpec": "expected a container object, got a string"
        }
        # graphium's own deploy payload is checked too
        bad = problems_of(admin.post("/tasks", json={"taskType": "deploy", "hostId": "h1", "payload": {}}))
        assert list(bad) == ["$.payload.container"]
        assert admin.get("/tasks").json() == [], "nothing is enqueued for a payload that does not fit"


def test_the_notes_example_deploys_a_labelled_container(
    lab: LabInfo,
    lab_server: ServerProcess,
    tmp_path: Path,
) -> None:
    """The note's literal JSON through a real server and the agent in lab host localhost-docker."""
    host = lab.host("localhost-docker")
    remove_stack(host.docker_url, "test-nginx")  # a leftover of an interrupted run
    assert http_get(host.address, 8888) is None, "something else answers on 8888"
    agent = start_agent(lab_server, lab, host.id, tmp_path)
    try:
        with lab_server.admin() as admin:
            created = admin.post("/tasks", content=NOTE_EXAMPLE, headers={"Content-Type": "application/json"})
            assert created.status_code == 201, created.text
            task_id = created.json()["id"]

            def finished() -> dict[str, Any] | None:
                task: dict[str, Any] = admin.get(f"/tasks/{task_id}").json()
                assert agent.poll() is None, "the agent exited"
                return task if task["status"] in ("completed", "failed", "cancelled") else None

            deadline = time.monotonic() + 60
            while (task := finished()) is None:
                assert time.monotonic() < deadline, "the deploy did not finish"
                time.sleep(0.1)
            assert task["status"] == "completed", task["error"]
            assert task["payload"]["container"]["spec"]["image"] == "nginx:alpine"
            assert task["result"]["dockerName"] == "test-nginx-test-nginx"
        wait_for(lambda: http_get(host.address, 8888) is not None, 10, "nothing answers on 8888")
        [container] = stack_containers(host.docker_url, "test-nginx")
        labels = container.labels
        assert container.name == "test-nginx-test-nginx"
        assert labels[LABEL_MANAGED] == "true" and labels[LABEL_STACK] == "test-nginx"
        assert labels[LABEL_CONTAINER] == "test-nginx" and labels[LABEL_HOST] == "localhost-docker"
        assert labels[LABEL_SPEC_HASH] == task["payload"]["container"]["specHash"]
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    finally:
        stop_processes(agent)
        with contextlib.suppress(docker.errors.DockerException):
            remove_stack(host.docker_url, "test-nginx")
    assert http_get(host.address, 8888) is None


def test_the_form_and_a_stack_file_give_the_same_spec_hash(server: ServerProcess) -> None:
    """Same rules as stack files: the form's container hashes like the same container in a stack."""
    name = unique_name("form-")
    from graphium.plan.planner import expand
    from graphium.stack.loader import load_stack_data
    from graphium.stack.models import Host, Inventory

    spec = {"name": "web", "image": "nginx:alpine", "ports": [{"containerPort": 80, "hostPort": 18082}],
            "environment": [{"name": "MODE", "value": "prod"}], "restartPolicy": "always"}  # fmt: skip
    document = {
        "@context": "https://schema.org",
        "@graph": [{"@type": "Stack", "name": name, "hasPart": [{**spec, "locatedInHost": "h1"}]}],
    }
    inventory = Inventory(hosts=[Host.model_validate({"@id": "h1", "connection": "agent"})])
    [desired] = expand(load_stack_data(json.loads(json.dumps(document))).stack, inventory)
    with server.admin() as admin:
        created = admin.post("/tasks", json={**form(spec), "stackId": name})
        assert created.status_code == 201, created.text
    assert created.json()["payload"]["container"]["specHash"] == desired.spec_hash
