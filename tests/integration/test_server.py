"""The control server as a real process: auth, task routes, long-poll claims, stacks, events."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from graphium.records.task import Task, TaskType
from graphium.store.json_store import JsonTaskStore
from tests.integration.server_fixture import RUNNER, ServerProcess, server_process  # noqa: F401

STACK = {
    "@context": "https://schema.org",
    "@graph": [
        {
            "@id": "https://graphium.local/stacks/srv-test",
            "@type": ["datacenter:Stack", "SoftwareApplication"],
            "name": "srv-test",
            "hasPart": [
                {
                    "@type": "datacenter:Container",
                    "name": "web",
                    "image": "nginx:alpine",
                    "locatedInHost": "h1",
                    "ports": [{"containerPort": 80, "hostPort": 18080}],
                }
            ],
        }
    ],
}


def new_task(host: str = "h1", **extra: Any) -> dict[str, Any]:
    return {
        "id": f"t-{uuid.uuid4().hex[:10]}",
        "taskType": "stop",
        "hostId": host,
        "payload": {"dockerName": "srv-test-web"},  # POST /tasks checks it fits the task type
        **extra,
    }


def lease(agent: str = "agent-1", seconds: float = 30) -> dict[str, Any]:
    return {"agentId": agent, "leaseSeconds": seconds}


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# auth -------------------------------------------------------------------------------------------
def test_auth_scoping(server: ServerProcess) -> None:
    with server.anonymous() as anon:
        assert anon.get("/tasks").status_code == 401
        bad = anon.get("/tasks", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["detail"] == "unknown token"
    with server.admin() as admin:
        created = admin.post("/tasks", json=new_task("h2"))
        assert created.status_code == 201, created.text
        other = created.json()["id"]
    with server.agent("h1") as agent:
        assert agent.get(f"/tasks/{other}").status_code == 403
        assert agent.put(f"/tasks/{other}/status", json={"status": "running"}).status_code == 403
        assert agent.post("/agents/h2/claim", json=lease()).status_code == 403
        assert agent.get("/agents/h2/tasks").status_code == 403
        assert agent.put("/agents/h2/observed", json={"host": "h2"}).status_code == 403
        assert agent.post("/stacks", json=STACK).status_code == 403
        assert agent.post("/tasks", json=new_task("h1")).status_code == 403
        assert agent.get("/tasks").json() == []  # forced to its own host
        assert agent.get("/tasks", params={"hostId": "h2"}).json() == []
    with server.agent("h2") as agent:
        assert agent.get(f"/tasks/{other}").status_code == 200


def test_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [
            *RUNNER,
            "serve",
            "--port",
            "1",
            "--state",
            str(tmp_path / "s.json"),
            "--tokens",
            str(tmp_path / "t.json"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "no tokens" in out.stderr and "Traceback" not in out.stderr


def test_token_create_cli(tmp_path: Path) -> None:
    import subprocess

    tokens = tmp_path / "tokens.json"
    out = subprocess.run([*RUNNER, "token", "create", "--agent", "vm1", "--tokens", str(tokens)],
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    token = out.stdout.strip()
    entry = json.loads(tokens.read_text())["tokens"][0]
    assert len(token) >= 40 and token not in tokens.read_text()
    assert entry["role"] == "agent" and entry["hostId"] == "vm1"


def test_tokens_file_holds_hashes_only(server: ServerProcess) -> None:
    raw = server.tokens.read_text()
    assert server.admin_token not in raw
    assert all(t not in raw for t in server.agent_tokens.values())
    assert server.tokens.stat().st_mode & 0o777 == 0o600


# task routes ------------------------------------------------------------------------------------
def test_task_lifecycle_and_transitions(server: ServerProcess) -> None:
    with server.admin() as admin, server.agent("h1") as agent:
        body = new_task()
        task = admin.post("/tasks", json=body).json()
        assert task["status"] == "pending"
        assert admin.post("/tasks", json=body).status_code == 409  # duplicate id
        assert admin.get("/tasks/nope").status_code == 404
        # illegal: pending -> completed
        bad = agent.put(f"/tasks/{task['id']}/status", json={"status": "completed"})
        assert bad.status_code == 409 and "cannot go from pending to completed" in bad.json()["detail"]
        claimed = agent.post("/agents/h1/claim", json=lease("a1", 5))
        assert claimed.status_code == 200 and claimed.json()["id"] == task["id"]
        assert claimed.json()["status"] == "assigned"
        assert agent.post(f"/tasks/{task['id']}/heartbeat", json=lease("a1", 5)).status_code == 200
        assert agent.post(f"/tasks/{task['id']}/heartbeat", json=lease("a2", 5)).status_code == 409
        running = agent.put(f"/tasks/{task['id']}/status", json={"status": "running", "agentId": "a1"})
        assert running.json()["status"] == "running"
        assert [t["id"] for t in agent.get("/agents/h1/tasks").json()] == [task["id"]]
        done = agent.put(
            f"/tasks/{task['id']}/status", json={"status": "completed", "agentId": "a1", "result": {"x": 1}}
        )
        assert done.status_code == 200 and done.json()["result"] == {"x": 1}
        assert agent.get("/agents/h1/tasks").json() == []
        assert admin.post(f"/tasks/{task['id']}/retry").status_code == 409  # completed never retries
        assert admin.post(f"/tasks/{task['id']}/cancel").status_code == 409
        stats = admin.get("/tasks/stats").json()
        assert stats["total"] == 1 and stats["completed"] == 1
        assert [t["id"] for t in admin.get("/tasks", params={"agentId": "a1"}).json()] == [task["id"]]
        assert admin.get("/tasks", params={"status": "pending"}).json() == []
        assert admin.get("/tasks", params={"status": "bogus"}).status_code == 422


def test_retry_and_cancel(server: ServerProcess) -> None:
    with server.admin() as admin, server.agent("h1") as agent:
        task = admin.post("/tasks", json=new_task()).json()
        cancelled = admin.post(f"/tasks/{task['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert agent.post("/agents/h1/claim", json=lease()).status_code == 204
        retried = admin.post(f"/tasks/{task['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
        assert agent.post("/agents/h1/claim", json=lease()).json()["id"] == task["id"]
        failed = agent.put(f"/tasks/{task['id']}/status", json={"status": "failed", "error": "boom"})
        assert failed.json()["error"] == "boom"
        assert admin.post(f"/tasks/{task['id']}/retry").json()["status"] == "pending"
        assert agent.post(f"/tasks/{task['id']}/retry").status_code == 403


def test_a_task_whose_payload_does_not_fit_its_type_is_refused(server: ServerProcess) -> None:
    """The payload is checked against the task type's model where tasks are created, so an agent
    never claims work it cannot read; each problem names its path in the request."""
    container = {
        "stack": "srv-test",
        "name": "web",
        "declaredName": "web",
        "host": "h1",
        "spec": {"name": "web", "image": "nginx:alpine"},
        "network": {"name": "srv-test-net"},
        "pullPolicy": "if-not-present",
        "specHash": "h",
        "fieldHashes": {},
    }
    bad = {**container, "spec": {"name": "web"}}  # no image
    with server.admin() as admin:
        refused = admin.post("/tasks", json=new_task(taskType="deploy", payload={"container": bad}))
        assert refused.status_code == 400, refused.text
        body = refused.json()
        assert body["detail"] and body["problems"]
        assert {k: body["problems"][0][k] for k in ("file", "path")} == {
            "file": "request",
            "path": "$.payload.container.spec.image",
        }
        assert admin.get("/tasks").json() == []
        good = admin.post("/tasks", json=new_task(taskType="deploy", payload={"container": container}))
        assert good.status_code == 201, good.text


def test_bad_requests_get_clear_4xx(server: ServerProcess) -> None:
    with server.admin() as admin:
        assert admin.post("/tasks", json={"hostId": "h1"}).status_code == 422
        r = admin.post("/tasks", json=new_task(dependsOn=["missing"]))
        assert r.status_code == 409 and "unknown" in r.json()["detail"]
        assert admin.post("/tasks", json=new_task(status="completed")).status_code == 400
        r = admin.post("/stacks", json={"@graph": []})
        assert r.status_code == 400 and r.json()["problems"], r.text
        assert (
            admin.post(
                "/stacks", content=b"{not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        assert admin.get("/stacks/nope").status_code == 404
        assert admin.delete("/stacks/nope").status_code == 404
        assert admin.post("/agents/h1/claim", params={"wait": 99}, json=lease()).status_code == 422


# batched claims and reports ----------------------------------------------------------------------
def test_claim_many_with_start_then_batch_report(server: ServerProcess) -> None:
    with server.admin() as admin, server.agent("h1") as agent:
        ids = [admin.post("/tasks", json=new_task(priority=9 - i)).json()["id"] for i in range(5)]
        foreign = admin.post("/tasks", json=new_task("h2")).json()["id"]
        first = agent.post("/agents/h1/claims", params={"max": 3, "start": "true"}, json=lease("a1"))
        assert first.status_code == 200, first.text
        assert [t["id"] for t in first.json()] == ids[:3]
        assert all(t["status"] == "running" and t["agentId"] == "a1" and t["startedAt"] for t in first.json())
        rest = agent.post("/agents/h1/claims", params={"max": 10}, json=lease("a1")).json()
        assert [t["id"] for t in rest] == ids[3:] and {t["status"] for t in rest} == {"assigned"}
        empty = agent.post("/agents/h1/claims", params={"max": 10, "wait": 0.2}, json=lease("a1"))
        assert empty.status_code == 200 and empty.json() == []

        report = [{"id": i, "status": "completed", "agentId": "a1", "result": {"n": 1}} for i in ids[:3]]
        report += [
            {"id": ids[3], "status": "completed", "agentId": "a1"},  # assigned: must run first
            {"id": ids[4], "status": "running", "agentId": "someone-else"},  # held by a1
            {"id": foreign, "status": "running"},  # another host's task
            {"id": "no-such-task", "status": "running"},
        ]
        answer = agent.put("/tasks/status", json=report)
        assert answer.status_code == 200, answer.text
        assert [(r["id"], r["code"]) for r in answer.json()] == [
            *[(i, 200) for i in ids[:3]],
            (ids[3], 409),
            (ids[4], 409),
            (foreign, 403),
            ("no-such-task", 404),
        ]
        assert all(r["status"] == "completed" for r in answer.json()[:3])
        assert "cannot go from assigned to completed" in answer.json()[3]["detail"]
        for task_id in ids[:3]:
            done = admin.get(f"/tasks/{task_id}").json()
            assert done["status"] == "completed" and done["result"] == {"n": 1}
        assert admin.get(f"/tasks/{foreign}").json()["status"] == "pending"
        assert len(admin.get("/tasks", params={"status": "completed"}).json()) == 3
        # an admin may report on any host's task
        assert (
            admin.put("/tasks/status", json=[{"id": foreign, "status": "running"}]).json()[0]["code"] == 200
        )


def test_batch_routes_check_their_input_and_scope(server: ServerProcess) -> None:
    with server.agent("h1") as agent:
        assert agent.post("/agents/h2/claims", json=lease()).status_code == 403
        assert agent.post("/agents/h1/claims", params={"max": 0}, json=lease()).status_code == 422
        assert agent.post("/agents/h1/claims", params={"max": 101}, json=lease()).status_code == 422
        assert agent.put("/tasks/status", json={"id": "x", "status": "running"}).status_code == 422
        assert agent.put("/tasks/status", json=[{"id": "x", "status": "bogus"}]).status_code == 422
        assert agent.put("/tasks/status", json=[]).json() == []
    with server.anonymous() as anon:
        assert anon.put("/tasks/status", json=[]).status_code == 401


def test_single_claim_keeps_its_contract_and_may_start(server: ServerProcess) -> None:
    with server.admin() as admin, server.agent("h1") as agent:
        first, second = (admin.post("/tasks", json=new_task()).json()["id"] for _ in range(2))
        claimed = agent.post("/agents/h1/claim", json=lease("a1"))
        assert claimed.status_code == 200 and claimed.json()["id"] == first
        assert claimed.json()["status"] == "assigned"
        started = agent.post("/agents/h1/claim", params={"start": "true"}, json=lease("a1"))
        assert started.json()["id"] == second and started.json()["status"] == "running"
        assert agent.post("/agents/h1/claim", json=lease("a1")).status_code == 204


# long-poll claims -------------------------------------------------------------------------------
def _claim_in_thread(server: ServerProcess, wait: float) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def claim() -> None:
        with server.agent("h1") as agent:
            start = time.monotonic()
            response = agent.post("/agents/h1/claim", params={"wait": wait}, json=lease())
            out["at"] = time.monotonic()
            out["elapsed"] = out["at"] - start
            out["response"] = response

    thread = threading.Thread(target=claim)
    thread.start()
    return thread, out


def test_claim_long_poll_wakes_on_posted_task(server: ServerProcess) -> None:
    thread, out = _claim_in_thread(server, 10)
    time.sleep(0.5)  # the claim is waiting
    with server.admin() as admin:
        posted = time.monotonic()
        task = admin.post("/tasks", json=new_task()).json()
    thread.join(12)
    assert out["response"].status_code == 200 and out["response"].json()["id"] == task["id"]
    assert out["at"] - posted < 0.5, f"picked up {out['at'] - posted:.3f}s after posting"


def test_claim_long_poll_times_out_with_204(server: ServerProcess) -> None:
    with server.agent("h1") as agent:
        start = time.monotonic()
        assert agent.post("/agents/h1/claim", params={"wait": 0.5}, json=lease()).status_code == 204
        assert 0.4 < time.monotonic() - start < 3


def test_an_agent_that_hung_up_is_not_handed_tasks(server: ServerProcess) -> None:
    """A long-poll whose agent went away (stopped, or died) must not claim what is posted next:
    the task would sit running under a dead agent's lease until the lease expired."""
    address = urllib.parse.urlsplit(server.url)
    body = json.dumps(lease()).encode()
    request = (
        "POST /api/v1/agents/h1/claims?wait=20&max=10&start=true HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\nAuthorization: Bearer {server.agent_tokens['h1']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with server.admin() as admin:
        admin.get("/tasks/stats")  # the admin's connection is open: the post below is quick
        for _ in range(3):
            poll = server.connect()
            poll.sendall(request)
            time.sleep(0.5)  # parked in the long-poll
            poll.close()  # the agent hangs up; the task comes right after
            task = admin.post("/tasks", json=new_task()).json()
            time.sleep(0.5)
            assert admin.get(f"/tasks/{task['id']}").json()["status"] == "pending"
            assert admin.post(f"/tasks/{task['id']}/cancel").status_code == 200  # out of the next poll's way
        task = admin.post("/tasks", json=new_task()).json()
    with server.agent("h1") as agent:  # a live agent gets it at once
        claimed = agent.post("/agents/h1/claims", params={"wait": 1, "max": 10}, json=lease()).json()
    assert [t["id"] for t in claimed] == [task["id"]]


def test_claim_sees_tasks_written_by_another_process(server: ServerProcess) -> None:
    """Tasks written straight into the JSON store (as the CLI does) wake a waiting claim."""
    thread, out = _claim_in_thread(server, 10)
    time.sleep(0.5)
    with JsonTaskStore(server.state) as store:
        written = time.monotonic()
        store.create_tasks([Task(id="cli-task", task_type=TaskType.stop, host_id="h1")])
    thread.join(12)
    assert out["response"].status_code == 200 and out["response"].json()["id"] == "cli-task"
    assert out["at"] - written < 0.5, f"picked up {out['at'] - written:.3f}s after the write"


def test_expired_lease_is_requeued_by_the_monitor(server: ServerProcess) -> None:
    with server.admin() as admin, server.agent("h1") as agent:
        task = admin.post("/tasks", json=new_task(maxRetries=1)).json()
        assert agent.post("/agents/h1/claim", json=lease("dead", 0.2)).status_code == 200
        requeued = wait_for(
            lambda: (t := admin.get(f"/tasks/{task['id']}").json())["status"] == "pending" and t,
            what="the monitor to requeue the expired lease",
        )
        assert requeued["retryCount"] == 1
        again = agent.post("/agents/h1/claim", params={"wait": 5}, json=lease("alive"))
        assert again.status_code == 200 and again.json()["agentId"] == "alive"


# stacks and events ------------------------------------------------------------------------------
class EventReader:
    """Reads the server-sent event stream on a thread, keeping events in arrival order."""

    def __init__(self, server: ServerProcess, after: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._server = server
        self._after = after
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server stopping ends the stream
            self._stream()

    def _stream(self) -> None:
        timeout = httpx.Timeout(5, read=None)
        base = f"{self._server.url}/api/v1"
        with (
            httpx.Client(
                base_url=base, headers=self._server.admin_headers, timeout=timeout, verify=self._server.verify
            ) as client,
            client.stream("GET", "/events", params={"after": self._after}) as response,
        ):
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data: "):
                    self.events.append(json.loads(line[6:]))

    def types(self, stack: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("stackId") == stack]

    def stop(self) -> None:
        self._stop.set()


def _act_as_agent(server: ServerProcess, host: str, result: dict[str, Any] | None = None) -> list[str]:
    """Claim and complete every task of ``host`` until none is left; returns their ids."""
    done = []
    with server.agent(host) as agent:
        while True:
            response = agent.post(f"/agents/{host}/claim", params={"wait": 1}, json=lease("fake"))
            if response.status_code == 204:
                return done
            task = response.json()
            agent.put(f"/tasks/{task['id']}/status", json={"status": "running", "agentId": "fake"})
            body = {"status": "completed", "agentId": "fake", "result": result or {"containerId": "c0ffee"}}
            assert agent.put(f"/tasks/{task['id']}/status", json=body).status_code == 200
            done.append(task["id"])


def test_stack_deploy_and_delete_through_a_fake_agent(server: ServerProcess) -> None:
    reader = EventReader(server)
    try:
        with server.admin() as admin, server.agent("h1") as agent:
            not_connected = admin.post("/stacks", json=STACK)
            assert not_connected.status_code == 409 and "not connected" in not_connected.text
            assert agent.put("/agents/h1/observed", json={"host": "h1"}).status_code == 204
            with server.agent("h2") as h2:  # every host must be seen: the planner never plans blind
                assert h2.put("/agents/h2/observed", json={"host": "h2"}).status_code == 204

            accepted = admin.post("/stacks", json=STACK)
            assert accepted.status_code == 202, accepted.text
            assert accepted.json() == {"id": "srv-test", "status": "deploying", "tasks": 2}
            record = admin.get("/stacks/srv-test").json()
            assert record["status"] == "deploying" and len(record["tasks"]) == 2
            assert "spec" not in record  # resolved env values stay on the server
            assert admin.post("/stacks", json=STACK).status_code == 409  # a run is in progress

            assert len(_act_as_agent(server, "h1")) == 2
            wait_for(
                lambda: admin.get("/stacks/srv-test").json()["status"] == "running", what="stack running"
            )
            record = admin.get("/stacks/srv-test").json()
            assert record["progress"] == 100
            assert record["placements"]["web"]["hostId"] == "h1"
            assert [s["id"] for s in admin.get("/stacks").json()] == ["srv-test"]

            # the agent reports what it now runs; deletion plans from that report
            observed = {
                "host": "h1",
                "networks": ["srv-test-net"],
                "containers": [{
                    "id": "c0ffee", "dockerName": "srv-test-web", "host": "h1", "stack": "srv-test",
                    "name": "web", "live": {"state": "running"},
                }],
                "volumes": [{"name": "srv-test-data", "stack": "srv-test"}],
            }  # fmt: skip
            assert agent.put("/agents/h1/observed", json=observed).status_code == 204
            deleting = admin.delete("/stacks/srv-test")
            assert deleting.status_code == 202, deleting.text
            assert deleting.json()["status"] == "deleting" and deleting.json()["tasks"] == 2
            assert deleting.json()["notes"] == [
                "kept volume srv-test-data on h1 (its data stays; `destroy --volumes` removes it)"
            ]
            assert len(_act_as_agent(server, "h1")) == 2
            wait_for(lambda: admin.get("/stacks/srv-test").status_code == 404, what="stack records removed")
            assert admin.get("/tasks", params={"stackId": "srv-test"}).json() == []
        wait_for(lambda: "stack_deleted" in reader.types("srv-test"), what="stack_deleted event")
    finally:
        reader.stop()
    types = reader.types("srv-test")
    lifecycle = [t for t in types if t.startswith("stack_")]
    assert lifecycle == ["stack_deploying", "stack_running", "stack_deleting", "stack_deleted"], types
    assert types.index("task_created") < types.index("stack_running")
    assert "task_updated" in types
    seqs = [e["seq"] for e in reader.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def report_empty(server: ServerProcess) -> None:
    for host in server.agent_tokens:
        with server.agent(host) as agent:
            assert agent.put(f"/agents/{host}/observed", json={"host": host}).status_code == 204


def test_monitor_finalises_a_deletion_after_restart(server: ServerProcess) -> None:
    """A deletion whose server died mid-way is finished by the monitor of the next server, and
    deploy tasks of an earlier run that never ran do not block it."""
    report_empty(server)
    with server.admin() as admin, server.agent("h1") as agent:
        assert admin.post("/stacks", json=STACK).status_code == 202  # its tasks never run
        observed = {"host": "h1", "networks": ["srv-test-net"]}
        assert agent.put("/agents/h1/observed", json=observed).status_code == 204
        deleting = admin.delete("/stacks/srv-test")
        assert deleting.status_code == 202 and deleting.json()["tasks"] == 1
        stale = [
            t for t in admin.get("/tasks", params={"stackId": "srv-test"}).json() if t["taskType"] == "deploy"
        ]
        assert stale and all(t["status"] == "cancelled" for t in stale)
    server.stop()
    server.start()
    with server.admin() as admin:
        assert admin.get("/stacks/srv-test").json()["status"] == "deleting"
        assert len(_act_as_agent(server, "h1")) == 1
        wait_for(lambda: admin.get("/stacks/srv-test").status_code == 404, what="the monitor to finalise")


def test_delete_with_volumes_removes_the_stacks_own(server: ServerProcess) -> None:
    report_empty(server)
    with server.admin() as admin, server.agent("h1") as agent:
        assert admin.post("/stacks", json=STACK).status_code == 202  # its tasks never run
        volumes = [{"name": "srv-test-data", "stack": "srv-test"}, {"name": "other-data", "stack": "other"}]
        assert agent.put("/agents/h1/observed", json={"host": "h1", "volumes": volumes}).status_code == 204
        deleting = admin.delete("/stacks/srv-test", params={"volumes": "true"})
        assert deleting.status_code == 202 and deleting.json()["notes"] == [], deleting.text
        tasks = admin.get("/tasks", params={"stackId": "srv-test"}).json()
        removing = [t for t in tasks if t["taskType"] == "remove-volume"]
        assert [t["payload"]["name"] for t in removing] == ["srv-test-data"]
        assert len(_act_as_agent(server, "h1")) == 1
        wait_for(lambda: admin.get("/stacks/srv-test").status_code == 404, what="stack records removed")


def test_monitor_reports_a_failed_deletion(server: ServerProcess) -> None:
    report_empty(server)
    with server.admin() as admin, server.agent("h1") as agent:
        agent.put("/agents/h1/observed", json={"host": "h1", "networks": ["srv-test-net"]})
        assert admin.post("/stacks", json=STACK).status_code == 202
        assert admin.delete("/stacks/srv-test").status_code == 202
    server.stop()
    server.start()
    with server.admin() as admin, server.agent("h1") as agent:
        task = agent.post("/agents/h1/claim", params={"wait": 2}, json=lease("x")).json()
        agent.put(f"/tasks/{task['id']}/status", json={"status": "running", "agentId": "x"})
        agent.put(f"/tasks/{task['id']}/status", json={"status": "failed", "agentId": "x", "error": "in use"})
        record = wait_for(
            lambda: (r := admin.get("/stacks/srv-test").json())["status"] == "error" and r,
            what="error status",
        )
        assert "in use" in record["error"]


def test_websocket_stream(server: ServerProcess) -> None:
    import asyncio

    import websockets

    async def read() -> list[dict[str, Any]]:
        url, tls = f"{server.ws_url}?after=0", server.ssl_context
        async with websockets.connect(url, additional_headers=server.admin_headers, ssl=tls) as ws:
            with server.admin() as admin:
                await asyncio.to_thread(admin.post, "/tasks", json=new_task())
            return [json.loads(await asyncio.wait_for(ws.recv(), 5))]

    first = asyncio.run(read())
    assert first[0]["type"] == "task_created"

    async def refused() -> None:
        async with websockets.connect(server.ws_url, ssl=server.ssl_context) as ws:
            await ws.send(json.dumps({"token": "unknown"}))  # no header: the token comes first
            await ws.recv()

    with pytest.raises((websockets.exceptions.InvalidStatus, websockets.exceptions.ConnectionClosed)):
        asyncio.run(refused())


def test_a_websocket_the_client_closes_ends_at_once(server: ServerProcess) -> None:
    """Not at the stream's next keepalive: a server stopped right after shuts down cleanly."""
    import asyncio

    import websockets

    async def open_and_close() -> None:
        tls = server.ssl_context
        async with websockets.connect(server.ws_url, additional_headers=server.admin_headers, ssl=tls):
            await asyncio.sleep(0.5)  # streaming (nothing to send yet) when the client leaves

    asyncio.run(open_and_close())
    time.sleep(0.5)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    log = server.log_tail()
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log, log


def test_monitor_leaves_a_stack_to_the_process_holding_its_runner_lease(server: ServerProcess) -> None:
    """`graphium-run apply` on the server's store runs a stack itself; the monitor must not settle
    (and delete the tasks of) that run while the lease is live, and must once it has expired."""
    from datetime import UTC, datetime, timedelta

    from graphium.records.stack import StackRecord, StackStatus
    from graphium.store.json_store import JsonTaskStore

    store = JsonTaskStore(server.state)
    live = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()
    store.save_stack(
        StackRecord(id="owned", name="owned", status=StackStatus.deleting, runner_lease_until=live)
    )
    with server.admin() as admin:
        time.sleep(2.5)  # two monitor passes
        assert admin.get("/stacks/owned").json()["status"] == "deleting"
        current = store.get_stack("owned")
        assert current is not None
        expired = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        store.save_stack(current.model_copy(update={"runner_lease_until": expired}))
        wait_for(lambda: admin.get("/stacks/owned").status_code == 404, what="the monitor to settle it")
