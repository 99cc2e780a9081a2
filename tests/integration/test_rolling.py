"""Rolling updates on the lab over SSH: 3 replicas on 3 hosts, changed batch by batch.

The service is polled throughout as a client behind a load balancer sees it: every 50 ms each
host's published port is asked (0.3 s timeout); a request of the service fails when no host
answers. Each host's own answers show when it was down, so that batches can be seen one at a time.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

import lab as lab_pkg
from tests.support import (
    free_port_on,
    graphium_run,
    remove_stack,
    stack_containers,
    stack_doc,
    unique_name,
    write_json,
)

pytestmark = pytest.mark.lab

SERVE_MSG = ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www']
FAST_HEALTH = {"http": {"port": 80}, "interval": "0.3s", "timeout": "1s", "retries": 2}


def _get(address: str, port: int) -> str | None:
    conn = http.client.HTTPConnection(address, port, timeout=0.3)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode().strip()
    except OSError:
        return None
    finally:
        conn.close()


class Poller:
    """Polls every host's port in a thread; records per-host answers and service-level failures."""

    def __init__(self, addresses: list[str], port: int) -> None:
        self.addresses, self.port = addresses, port
        self.rounds = 0
        self.failed_rounds = 0
        self.seen: dict[str, list[tuple[float, str | None]]] = {a: [] for a in addresses}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answers = []
            for address in self.addresses:
                body = _get(address, self.port)
                self.seen[address].append((time.monotonic(), body))
                answers.append(body)
            self.rounds += 1
            self.failed_rounds += all(a is None for a in answers)
            self._stop.wait(0.05)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def down_windows(self) -> dict[str, tuple[float, float]]:
        """Per host, the first and last moment it did not answer (hosts that never failed are absent)."""
        out = {}
        for address, seen in self.seen.items():
            down = [t for t, body in seen if body is None]
            if down:
                out[address] = (down[0], down[-1])
        return out


@pytest.fixture
def stack_name(lab: lab_pkg.LabInfo) -> Iterator[str]:
    name = unique_name("roll")
    yield name
    for host in lab.hosts:
        remove_stack(host.docker_url, name)


def _doc(name: str, port: int, msg: str, image: str = "graphium-test/web:1", **web: Any) -> dict[str, Any]:
    container = {
        "@type": "datacenter:Container",
        "name": "web",
        "image": image,
        "replicas": 3,
        "command": SERVE_MSG,
        "environment": {"MSG": msg},
        "ports": [{"containerPort": 80, "hostPort": port}],
        "healthCheck": FAST_HEALTH,
        **web,
    }
    return stack_doc(name, [container], deployment={"placementStrategy": "spread"})


def _apply(lab: lab_pkg.LabInfo, tmp_path: Path, doc: dict[str, Any], *extra: str) -> Any:
    path = write_json(tmp_path / "stack.json", doc)
    state = str(tmp_path / "state.json")
    return graphium_run("apply", str(path), "-i", str(lab.inventory), "--state", state, *extra, timeout=90)


def _replicas(lab: lab_pkg.LabInfo, stack: str) -> dict[str, dict[str, Any]]:
    """Instance name -> {host, id, name, started} for every container of the stack on the lab."""
    out = {}
    for host in lab.hosts:
        for c in stack_containers(host.docker_url, stack):
            out[c.name] = {
                "host": host,
                "id": c.id,
                "instance": c.labels["graphium.container"],
                "status": c.status,
                "started": c.attrs["State"]["StartedAt"],
            }
    return out


def _ports_free(lab: lab_pkg.LabInfo) -> int:
    return free_port_on(*(h.address for h in lab.hosts))


def test_three_replicas_on_three_hosts_update_without_a_failed_request(
    lab: lab_pkg.LabInfo, stack_name: str, tmp_path: Path
) -> None:
    port = _ports_free(lab)
    addresses = [h.address for h in lab.hosts]
    first = _apply(lab, tmp_path, _doc(stack_name, port, "v1", update={"monitor": "0.5s"}))
    assert first.returncode == 0, first.stdout + first.stderr
    before = _replicas(lab, stack_name)
    assert sorted({r["host"].id for r in before.values()}) == sorted(h.id for h in lab.hosts)

    changed = _doc(stack_name, port, "v2", image="graphium-test/web:2", update={"monitor": "0.5s"})
    with Poller(addresses, port) as poller:
        time.sleep(0.3)
        second = _apply(lab, tmp_path, changed)
        time.sleep(0.3)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "rolling update of web: 3 batch(es) of up to 1" in second.stdout
    assert poller.rounds > 20
    assert poller.failed_rounds == 0, f"{poller.failed_rounds} of {poller.rounds} requests failed"
    assert all(_get(a, port) == "v2" for a in addresses)

    # one batch at a time: no two hosts were ever down together, and the new containers started
    # one after another, in replica order
    windows = sorted(poller.down_windows().values())
    assert windows, "a stop-first replace leaves its own host without an answer for a moment"
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end < start, f"two hosts were down at once: {windows}"
    after = _replicas(lab, stack_name)
    assert sorted(after) == sorted(before)  # nothing left aside: the rollout cleaned up
    started = sorted((r["started"], r["instance"]) for r in after.values())
    assert [name for _, name in started] == ["web-1", "web-2", "web-3"]
    assert not set(r["id"] for r in after.values()) & set(r["id"] for r in before.values())


def _tag_on(host: lab_pkg.LabHost, source: str, target: str) -> None:
    client = docker.DockerClient(base_url=host.docker_url, version="auto")
    try:
        repo, tag = target.rsplit(":", 1)
        client.images.get(source).tag(repo, tag)
    finally:
        client.close()


def _untag(lab: lab_pkg.LabInfo, target: str) -> None:
    for host in lab.hosts:
        client = docker.DockerClient(base_url=host.docker_url, version="auto")
        try:
            client.images.remove(target)
        except docker.errors.ImageNotFound:
            pass
        finally:
            client.close()


def test_a_failing_new_version_is_rolled_back_everywhere(
    lab: lab_pkg.LabInfo, stack_name: str, tmp_path: Path
) -> None:
    port = _ports_free(lab)
    addresses = [h.address for h in lab.hosts]
    first = _apply(lab, tmp_path, _doc(stack_name, port, "v1"))
    assert first.returncode == 0, first.stdout + first.stderr
    before = _replicas(lab, stack_name)
    by_instance = {r["instance"]: r for r in before.values()}

    # the new image is good on web-1's host only: there its health check passes (the page it
    # serves names web:2); on the other hosts the same tag is web:1, whose health never passes
    image = f"graphium-test/{stack_name}:2"
    for host in lab.hosts:
        good = host.id == by_instance["web-1"]["host"].id
        _tag_on(host, "graphium-test/web:2" if good else "graphium-test/web:1", image)
    health = {"test": "grep -q web:2 /www/index.html", "interval": "0.3s", "timeout": "1s", "retries": 2}
    bad = _doc(stack_name, port, "v2", image=image, healthCheck=health)
    del bad["@graph"][0]["hasPart"][0]["command"]  # the image's own page: its name
    try:
        with Poller(addresses, port) as poller:
            result = _apply(lab, tmp_path, bad)
    finally:
        _untag(lab, image)

    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "rolling update of web failed at batch 2 of 3" in out, out
    assert "rolled back: every replica runs its previous container again" in out, out
    assert poller.failed_rounds == 0, f"{poller.failed_rounds} of {poller.rounds} requests failed"
    after = _replicas(lab, stack_name)
    assert {n: (r["id"], r["status"]) for n, r in after.items()} == {
        n: (r["id"], "running") for n, r in before.items()
    }, "every replica runs its previous container again, and nothing is left aside"
    assert all(_get(a, port) == "v1" for a in addresses)
    state = json.loads(
        graphium_run("status", stack_name, "--json", "--state", str(tmp_path / "state.json")).stdout
    )
    assert state["status"] == "error", state
