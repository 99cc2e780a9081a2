"""The multi-host lab itself: idempotent bring-up, engines, sshd host keys, per-host networking."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import docker
import pytest

import lab as lab_pkg
from graphium.executors.local import LocalExecutor
from graphium.records.task import TaskStatus
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Connection, Host, Inventory
from graphium.store.json_store import JsonTaskStore
from lab import LabHost, LabInfo
from tests.support import http_get, stack_containers, stack_doc, stack_networks, unique_name, wait_for

pytestmark = pytest.mark.lab


@contextlib.contextmanager
def _client(host: LabHost) -> Iterator[docker.DockerClient]:
    client = docker.DockerClient(base_url=host.docker_url, version="1.41", timeout=30)
    try:
        yield client
    finally:
        client.close()


def _pids(info: LabInfo) -> list[int | None]:
    return [p for h in info.hosts for p in (h.engine.pid(), h.engine.containerd_pid(), h.sshd_pid())]


def test_up_twice_is_idempotent(lab: LabInfo) -> None:
    before = _pids(lab)
    again = lab_pkg.ensure_lab(hosts=3)
    assert again == lab_pkg.ensure_lab(hosts=3)
    assert [h.id for h in again.hosts][:3] == ["localhost-docker", "vm1", "vm2"]
    assert _pids(again) == before and None not in before
    assert lab_pkg.lab_running()


def test_each_engine_answers_over_its_socket(lab: LabInfo) -> None:
    ids = set()
    for host in lab.hosts:
        with _client(host) as client:
            assert client.ping()
            ids.add(client.info()["ID"])
            tags = {t for image in client.images.list() for t in image.tags}
            assert set(lab_pkg.IMAGES) <= tags
    assert len(ids) == len(lab.hosts)


def test_inventory_describes_the_hosts(lab: LabInfo) -> None:
    from graphium.stack.models import Inventory

    inventory = Inventory.model_validate_json(lab.inventory.read_text())
    by_id = inventory.by_id()
    for host in lab.hosts:
        entry = by_id[host.id]
        assert (entry.address, entry.docker_host, entry.ssh_user) == (host.address, host.docker_url, "root")
        assert entry.known_hosts == str(lab.known_hosts) and entry.ssh_key == str(lab.ssh_key)


async def test_sshd_answers_with_the_recorded_host_key(lab: LabInfo, tmp_path: Path) -> None:
    for host in lab.hosts:
        async with asyncssh.connect(
            host.address, username=lab.ssh_user, client_keys=[str(lab.ssh_key)],
            known_hosts=str(lab.known_hosts), connect_timeout=5,
        ) as conn:
            result = await conn.run("echo $DOCKER_HOST", check=True)
            assert str(result.stdout).strip() == host.docker_url
            # The engine is reachable through a forwarded unix socket (what the SSH executor does).
            local = tmp_path / f"{host.id}.sock"
            listener = await conn.forward_local_path(str(local), str(host.docker_sock))
            try:
                client = docker.DockerClient(base_url=f"unix://{local}", version="1.41", timeout=10)
                assert await asyncio.to_thread(client.ping)  # docker-py blocks: keep it off the loop
                client.close()
            finally:
                listener.close()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        await asyncssh.connect(lab.hosts[1].address, username=lab.ssh_user, client_keys=[str(lab.ssh_key)],
                               known_hosts=str(empty), connect_timeout=5)


def test_published_port_answers_only_on_its_host(lab: LabInfo) -> None:
    port = 18090
    for host in lab.hosts[:3]:
        name = f"labtest-{uuid.uuid4().hex[:8]}"
        with _client(host) as client:
            container = client.containers.run("graphium-test/web:2", name=name, detach=True,
                                              ports={"80/tcp": port}, labels={"graphium.test": "lab"})
            try:
                wait_for(lambda h=host: http_get(h.address, port) is not None, 2.5, f"{host.id} answers")
                assert http_get(host.address, port) == lab_pkg.IMAGES["graphium-test/web:2"]
                others = [h for h in lab.hosts if h.id != host.id]
                assert all(http_get(h.address, port) is None for h in others)
            finally:
                container.remove(force=True)


def test_hosts_reach_the_bridge_address(lab: LabInfo) -> None:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hello from the bridge")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((lab.bridge_address, 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://{lab.bridge_address}:{server.server_address[1]}/"
        for host in lab.hosts:
            cmd = ["nsenter", f"--net=/run/netns/{host.netns}", "busybox", "wget", "-qO-", url]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True)
            assert out.stdout == "hello from the bridge"
    finally:
        server.shutdown()
        server.server_close()


def test_host_engine_stop_and_start_keeps_containers(lab: LabInfo) -> None:
    # on an extra host: the lab's own hosts serve other test files at the same time (xdist), and
    # an engine stopped under them fails their work (a network removal on vm2 once did)
    wide, _ = lab_pkg.ensure_extra_hosts(1)
    try:
        (host,) = wide.hosts
        with _client(host) as client:
            name = f"labtest-{uuid.uuid4().hex[:8]}"
            container = client.containers.create("graphium-test/web:1", name=name)
        try:
            assert lab_pkg.stop_host_engine(host.id)
            assert not host.engine.healthy() and host.engine.containerd_pid() is None
            assert lab_pkg.start_host_engine(host.id)
            with _client(host) as client:
                assert client.containers.get(container.id).name == container.name
        finally:
            lab_pkg.start_host_engine(host.id)
            with _client(host) as client, contextlib.suppress(docker.errors.NotFound):
                client.containers.get(container.id).remove(force=True)
    finally:
        lab_pkg.stop_extra_hosts()


def test_hosts_have_no_route_beyond_the_bridge(lab: LabInfo) -> None:
    """Only the bridge's /24 is reachable from a host: no default route, an outside address unroutable."""
    for host in lab.hosts:
        default = subprocess.run(["ip", "-n", host.netns, "route", "show", "default"],
                                 capture_output=True, text=True, check=True)
        assert default.stdout.strip() == "", f"{host.id} has a default route: {default.stdout}"
        outside = subprocess.run(["ip", "-n", host.netns, "route", "get", "192.0.2.1"],
                                 capture_output=True, text=True)
        assert outside.returncode != 0 and "unreachable" in outside.stderr.lower(), (host.id, outside)
        bridge = subprocess.run(["ip", "-n", host.netns, "route", "get", lab.bridge_address],
                                capture_output=True, text=True, check=True)
        assert "dev eth0" in bridge.stdout and " via " not in bridge.stdout, bridge.stdout


async def test_an_unknown_image_fails_with_the_engines_error_recorded_on_the_task(
    lab: LabInfo, tmp_path: Path
) -> None:
    """A misspelled image on a lab host: the engine's own pull error (it cannot reach any registry
    beyond the bridge), on the failed task and in the store, not a hang."""
    host = lab.host("vm1")
    inventory = Inventory(hosts=[Host.model_validate(
        {"@id": host.id, "connection": Connection.local, "dockerHost": host.docker_url}
    )])
    image = "graphium-test/wbe:1"  # graphium-test/web:1, misspelled
    name = unique_name("labimg")
    doc = stack_doc(name, [{"name": "web", "image": image, "locatedInHost": host.id}])
    store = JsonTaskStore(tmp_path / "state.json")
    executor = LocalExecutor()
    try:
        deployer = Deployer(store, executor, inventory, events=EventBus(store))
        result = await deployer.apply(await deployer.plan(load_stack_data(doc, "stack.json"), {}))
    finally:
        await executor.close()
        for network in stack_networks(host.docker_url, name):  # made before the pull failed
            network.remove()
    assert not result.ok and len(result.failed) == 1
    failed = result.failed[0]
    error = failed.error or ""
    assert image in error and host.id in error, error
    assert "registry-1.docker.io" in error, error  # the engine's words: what it could not reach
    stored = store.get_task(failed.id)
    assert stored.status is TaskStatus.failed and stored.error == failed.error
    assert stack_containers(host.docker_url, name) == []


def test_extra_hosts_stay_out_of_the_lab_proper(lab: LabInfo) -> None:
    wide, started = lab_pkg.ensure_extra_hosts(1)
    try:
        (extra,) = wide.hosts
        assert extra.index == len(lab.hosts) and extra.healthy() and extra.is_extra()
        assert wide.inventory != lab.inventory
        assert [h["@id"] for h in json.loads(wide.inventory.read_text())["hosts"]] == [extra.id]
        proper = lab_pkg.ensure_lab(hosts=len(lab.hosts))  # what every test session does meanwhile
        assert extra.id not in {h.id for h in proper.hosts}
        assert extra.id not in lab.inventory.read_text()
        assert extra.address in lab.known_hosts.read_text()  # the extra's user can still connect
        with _client(extra) as client:
            tags = {t for image in client.images.list() for t in image.tags}
        assert set(lab_pkg.IMAGES) <= tags, tags
    finally:
        stopped = lab_pkg.stop_extra_hosts()
    if started:  # nobody else (a benchmark) had them: this test started them and tore them down
        assert stopped == started
        assert not extra.netns_ok() and extra.address not in lab.known_hosts.read_text()
