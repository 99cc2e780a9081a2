"""Benchmark: the dashboard's stack page with 100 containers, in headless Chromium.

    .venv/bin/python benchmarks/bench_dashboard.py [--containers 100] [--hosts 10] [--loads 20]
                                                   [--samples 20]

A store is seeded with one stack planned by the real planner (100 containers on 10 agent hosts:
one ensure-network task per host and one deploy task per container, each with its real
payload), 80 deploys completed and placed, 20 still pending, and the events that history would
have left. Then ``graphium-run serve`` runs over it on loopback and Chromium (Debian's
``chromium``/``chromium-driver``, as the browser tests use) signs in and measures:

1. Page load: the stack page, ``--loads`` times, read from the browser's Navigation Timing
   (response end: the server's render and transfer; DOMContentLoaded; load) and, beside it, the
   same GET from plain HTTP (the server's share alone).
2. Event-to-screen: ``--samples`` times, as the agent of a host, claim one of the pending deploys
   and report it ``running`` (PUT /tasks/{id}/status: the event is committed before the answer);
   the page's live stream re-renders the stack and a hook in the page stamps the moment the
   task's row reads ``running``. Latency is from the moment the report was sent (an upper bound:
   the commit is inside that request) and from its answer (a lower bound), same machine clock.

No Docker is involved: no agent runs, the benchmark plays the agent through the API.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from graphium.plan.model import ObservedHost  # noqa: E402
from graphium.plan.planner import plan_apply  # noqa: E402
from graphium.records.stack import StackRecord, StackStatus  # noqa: E402
from graphium.records.task import Task, TaskStatus, TaskType, utcnow  # noqa: E402
from graphium.run.events import EventBus, EventType, stack_event, task_event  # noqa: E402
from graphium.stack.loader import load_stack_data  # noqa: E402
from graphium.stack.models import Inventory  # noqa: E402
from graphium.store.json_store import JsonTaskStore  # noqa: E402
from tests.browser.dashboard import chrome  # noqa: E402
from tests.integration.server_fixture import ServerProcess  # noqa: E402
from tests.tls import session_pki  # noqa: E402

STACK = "bench-dash"
RUN = "run-bench"
PENDING = 20


def stack_document(containers: int, hosts: list[str]) -> dict[str, Any]:
    parts = [
        {
            "name": f"web{i:03}",
            "image": f"registry.local/web:{i % 5}",
            "locatedInHost": {"@id": hosts[i % len(hosts)]},
            "ports": [{"containerPort": 80, "hostPort": 20000 + i}],
            "environment": {"INSTANCE": str(i), "API_TOKEN": f"secret-{i}"},
            "restartPolicy": "unless-stopped",
        }
        for i in range(containers)
    ]
    return {
        "@context": "https://schema.org",
        "@graph": [{"@type": "datacenter:Stack", "name": STACK, "hasPart": parts}],
    }


def seed(state: Path, containers: int, hosts: list[str]) -> list[str]:
    """The stack's record, tasks and events in the store; returns the pending deploy task ids."""
    doc = load_stack_data(stack_document(containers, hosts), "bench")
    inventory = Inventory.model_validate({"hosts": [{"@id": h, "connection": "agent"} for h in hosts]})
    plan = plan_apply(doc.stack, inventory, {h: ObservedHost(host=h) for h in hosts}, None)
    deploys = [t for t in plan.tasks if t.task_type is TaskType.deploy]
    per_host = max(1, PENDING // len(hosts))  # the last deploys of every host stay pending
    pending = {t.id for h in hosts for t in [d for d in deploys if d.host_id == h][-per_host:]}
    tasks: list[Task] = []
    placements: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        done = task.id not in pending
        tasks.append(
            task.model_copy(
                update={
                    "run_id": RUN,
                    "status": TaskStatus.completed if done else TaskStatus.pending,
                    "completed_at": utcnow() if done else None,
                    "result": {"containerId": f"{abs(hash(task.id)):064x}"[:64]} if done else None,
                }
            )
        )
    for action in plan.actions:
        if not set(action.task_ids) & pending:
            placements[action.name] = {"hostId": action.host, "dockerName": action.docker_name,
                                       "containerId": f"{abs(hash(action.name)):064x}"[:64]}  # fmt: skip
    store = JsonTaskStore(state)
    done = len(plan.tasks) - len(pending)
    with store.batch():
        store.create_tasks(tasks)
        store.save_stack(
            StackRecord(
                id=STACK,
                name=STACK,
                status=StackStatus.deploying,
                phase="deploying",
                progress=done * 100 // len(tasks),
                placements=placements,
                hosts=hosts,
                run_id=RUN,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        bus = EventBus(store)
        bus.emit(stack_event(EventType.stack_deploying, STACK, run_id=RUN))
        bus.emit(*(task_event(EventType.task_created, t) for t in tasks))
        bus.emit(*(task_event(EventType.task_updated, t) for t in tasks if t.status is TaskStatus.completed))
    return sorted(pending)


def sign_in(driver: Any, server: ServerProcess) -> None:
    driver.get(f"{server.url}/web/signin")
    driver.find_element("css selector", "#token").send_keys(server.admin_token)
    driver.find_element("css selector", "#signin").click()
    deadline = time.monotonic() + 10
    while not driver.current_url.endswith("/web/stacks"):
        assert time.monotonic() < deadline, "sign-in failed"
        time.sleep(0.05)


NAV = """const n = performance.getEntriesByType('navigation')[0];
return [n.responseStart - n.startTime, n.responseEnd - n.startTime,
        n.domContentLoadedEventEnd - n.startTime, n.loadEventEnd - n.startTime];"""

WATCH = """window.__seen = {}; window.__watch = [];
window.graphiumOnState = function () {
  for (const id of window.__watch) {
    if (window.__seen[id]) continue;
    const row = document.querySelector('tr[data-task="' + id + '"] .badge');
    if (row && row.textContent === 'running') window.__seen[id] = Date.now();
  }
};"""


def page_loads(driver: Any, server: ServerProcess, loads: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"first byte": [], "response end": [], "DOMContentLoaded": [], "load": []}
    for _ in range(loads):
        driver.get(f"{server.url}/web/stacks/{STACK}")
        while driver.execute_script("return document.readyState") != "complete":
            time.sleep(0.01)
        time.sleep(0.05)  # loadEventEnd is set just after readyState turns complete
        for key, value in zip(out, driver.execute_script(NAV), strict=True):
            out[key].append(float(value))
    return out


def http_loads(server: ServerProcess, driver: Any, loads: int) -> list[float]:
    cookie = driver.get_cookie("graphium_session")["value"]
    times = []
    with httpx.Client(
        base_url=server.url, cookies={"graphium_session": cookie}, verify=server.verify
    ) as client:
        for _ in range(loads):
            started = time.perf_counter()
            response = client.get(f"/web/stacks/{STACK}")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and response.text.count('data-container="') >= 80
    return times


def latencies(
    driver: Any, server: ServerProcess, hosts: list[str], samples: int
) -> tuple[list[float], list[float]]:
    driver.get(f"{server.url}/web/stacks/{STACK}")
    deadline = time.monotonic() + 10
    while not driver.execute_script(
        "return document.getElementById('stream-status').textContent.startsWith('Live')"
    ):
        assert time.monotonic() < deadline, "the page's live stream did not open"
        time.sleep(0.05)
    driver.execute_script(WATCH)
    upper: list[float] = []
    lower: list[float] = []
    for i in range(samples):
        host = hosts[i % len(hosts)]
        with server.agent(host, timeout=10) as api:
            claimed = api.post(f"/agents/{host}/claim", json={"agentId": f"bench-{host}"})
            if claimed.status_code != 200:
                continue
            task_id = claimed.json()["id"]
            driver.execute_script("window.__watch.push(arguments[0])", task_id)
            time.sleep(0.3)  # let the claim's own re-render land first
            sent = time.time() * 1000
            answer = api.put(
                f"/tasks/{task_id}/status", json={"status": "running", "agentId": f"bench-{host}"}
            )
            answered = time.time() * 1000
            assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 10
        while (seen := driver.execute_script("return window.__seen[arguments[0]] || 0", task_id)) == 0:
            assert time.monotonic() < deadline, f"task {task_id} never showed running"
            time.sleep(0.005)
        upper.append(seen - sent)
        lower.append(seen - answered)
    return upper, lower


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(values):7.1f} ms   p90 {p90:7.1f} ms   max {max(values):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    hosts = [f"h{i:02}" for i in range(args.hosts)]
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        server = ServerProcess(Path(tmp), hosts)
        seed(server.state, args.containers, hosts)
        server.start()
        pki = session_pki()
        driver = chrome((pki.ca_cert, pki.server_cert))
        try:
            sign_in(driver, server)
            nav = page_loads(driver, server, args.loads)
            plain = http_loads(server, driver, args.loads)
            upper, lower = latencies(driver, server, hosts, min(args.samples, PENDING))
        finally:
            driver.quit()
            server.stop()
    print(f"dashboard: stack page with {args.containers} containers on {args.hosts} hosts "
          f"({platform.python_version()}, {platform.machine()}, headless Chromium)")  # fmt: skip
    print(f"  page load, {args.loads} loads (Navigation Timing):")
    for key, values in nav.items():
        print(f"    {key:<17} {summary(values)}")
    print(f"    plain HTTP GET    {summary(plain)}")
    print(f"  event to screen, {len(upper)} samples (agent report -> task row reads 'running'):")
    print(f"    from report sent  {summary(upper)}")
    print(f"    from its answer   {summary(lower)}")


if __name__ == "__main__":
    main()
