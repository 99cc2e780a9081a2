"""SshExecutor against the lab's real sshd and engines: the executor contract, then what only SSH
brings (host keys, connect timeouts, reuse of one connection, lost connections and engines) and a
mixed local + SSH apply through HostRouter."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import lab as lab_pkg
from graphium.errors import ExecutionError, HostKeyError, HostUnreachableError
from graphium.executors.local import LocalExecutor
from graphium.executors.router import HostRouter
from graphium.executors.ssh import SshExecutor
from graphium.plan.payloads import DeletePayload, DeployPayload, NetworkPayload, RemoveNetworkPayload
from graphium.records.task import TaskType
from graphium.stack.models import Connection, Host, Inventory
from tests.contract.executor_contract import (
    SERVE_MSG,
    ExecutorContract,
    ExecutorFixtures,
    desired,
    http_get,
    task,
)
from tests.support import free_port_on, port_free

pytestmark = pytest.mark.lab

CONTRACT_HOST = "vm1"
# the engine these tests stop: the last lab host, so the contract host is never disturbed
STOPPED_HOST = "vm2"
UNUSED_ADDRESS = "10.231.0.250"  # in the lab bridge's /24, no host there


@pytest.fixture(scope="module")
def lab_hosts(lab: lab_pkg.LabInfo) -> dict[str, Host]:
    inventory = Inventory.model_validate(json.loads(Path(lab.inventory).read_text()))
    return {h.id: h for h in inventory.hosts}


@pytest.fixture
async def executor() -> AsyncIterator[SshExecutor]:
    ssh = SshExecutor(connect_timeout=5.0, observe_timeout=10.0)
    yield ssh
    await ssh.close()


@pytest.fixture
def host(lab_hosts: dict[str, Host]) -> Host:
    return lab_hosts[CONTRACT_HOST]


def _with(host: Host, **fields: Any) -> Host:
    return Host.model_validate({**host.dump(), **fields})


class TestSshExecutorContract(ExecutorContract):
    @pytest.fixture
    def published_ip(self, host: Host) -> str:
        assert host.address is not None
        return host.address

    @pytest.fixture
    def free_port(self, host: Host) -> int:
        assert host.address is not None
        return free_port_on(host.address)


# -- host keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize("known", ["empty", "missing", "other-key"])
async def test_an_unknown_host_key_is_refused_with_how_to_fix_it(
    executor: SshExecutor, host: Host, lab: lab_pkg.LabInfo, tmp_path: Path, known: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    if known == "empty":
        known_hosts.write_text("")
    elif known == "other-key":  # the address recorded with another host's key: a changed key
        other = next(line for line in Path(lab.known_hosts).read_text().splitlines() if "vm2" in line)
        known_hosts.write_text(f"{host.address} {' '.join(other.split()[1:3])}\n")
    stranger = _with(host, knownHosts=str(known_hosts))

    observed = (await executor.observe([stranger], None))[host.id]
    assert observed.error is not None and observed.containers == []
    assert f"ssh-keyscan -p 22 {host.address} >> {known_hosts}" in observed.error
    assert "--insecure-skip-host-key-check" in observed.error
    if known == "other-key":
        assert "does NOT match" in observed.error and "ssh-keygen -R" in observed.error
    with pytest.raises(HostKeyError, match=f"host {host.id}, task t-"):
        await executor.run(task(TaskType.ensure_network, stranger, _network("x")), stranger)
    assert executor.connections_opened == 0


async def test_the_insecure_opt_out_connects_and_says_so_loudly(
    host: Host, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    stranger = _with(host, knownHosts=str(empty))
    with caplog.at_level(logging.WARNING, logger="graphium.executors.ssh"):
        insecure = SshExecutor(insecure_skip_host_key_check=True)
        try:
            observed = (await insecure.observe([stranger], None))[host.id]
        finally:
            await insecure.close()
    assert observed.error is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DISABLED" in w for w in warnings)
    assert any(host.id in w and "NOT verified" in w for w in warnings)


# -- user, port, key, agent ----------------------------------------------------------------------


async def test_ssh_user_port_and_key_are_honoured(executor: SshExecutor, host: Host, tmp_path: Path) -> None:
    wrong_port = _with(host, **{"@id": "p", "sshPort": 2222})
    wrong_user = _with(host, **{"@id": "u", "sshUser": "nobody"})
    stranger_key = tmp_path / "id_ed25519"
    await asyncio.to_thread(_keygen, stranger_key)
    wrong_key = _with(host, **{"@id": "k", "sshKey": str(stranger_key)})
    no_key = _with(host, **{"@id": "n", "sshKey": str(tmp_path / "absent")})
    observed = await executor.observe([host, wrong_port, wrong_user, wrong_key, no_key], None)
    assert observed[host.id].error is None
    assert f"{host.address}:2222" in (observed["p"].error or "")
    # the lab authorises its key for every user; as nobody, the engine's socket is out of reach
    assert "nobody@" in (observed["u"].error or "")
    assert str(stranger_key) in (observed["k"].error or "") and "refused" in (observed["k"].error or "")
    assert "does not exist" in (observed["n"].error or "")
    assert executor.connections_opened == 2  # the right one, and nobody's


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture
def ssh_agent(lab: lab_pkg.LabInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An ssh-agent of this test's own, holding the lab's client key; HOME without default keys."""
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-s", "-a", str(sock)], check=True, capture_output=True, text=True)
    pid = int(out.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(lab.ssh_key)], check=True, env=env, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))
        yield str(sock)
    finally:
        os.kill(pid, signal.SIGTERM)


async def test_without_ssh_key_the_agent_is_used(executor: SshExecutor, host: Host, ssh_agent: str) -> None:
    keyless = Host.model_validate({k: v for k, v in host.dump().items() if k != "sshKey"})
    assert keyless.ssh_key is None
    observed = (await executor.observe([keyless], None))[host.id]
    assert observed.error is None


# -- unreachable hosts ---------------------------------------------------------------------------


async def test_an_unreachable_address_errors_within_the_connect_timeout(host: Host) -> None:
    ghost = _with(host, **{"@id": "ghost", "address": UNUSED_ADDRESS})
    ssh = SshExecutor(connect_timeout=2.0)
    try:
        started = time.monotonic()
        observed = await ssh.observe([host, ghost], None)
        assert time.monotonic() - started < 4.0
        assert observed[host.id].error is None
        assert "ghost" in (observed["ghost"].error or "") and UNUSED_ADDRESS in (
            observed["ghost"].error or ""
        )
        started = time.monotonic()
        with pytest.raises(HostUnreachableError, match="host ghost"):
            await ssh.run(task(TaskType.ensure_network, ghost, _network("x")), ghost)
        assert time.monotonic() - started < 4.0
    finally:
        await ssh.close()


async def test_many_tasks_waiting_on_an_unreachable_host_share_one_attempt(host: Host) -> None:
    ghost = _with(host, **{"@id": "ghost", "address": UNUSED_ADDRESS})
    ssh = SshExecutor(connect_timeout=1.5)
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(ssh.run(task(TaskType.ensure_network, ghost, _network("x")), ghost) for _ in range(10)),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 3.0  # not 10 attempts in a row
        assert all(isinstance(r, HostUnreachableError) for r in results)
    finally:
        await ssh.close()


# -- connections ---------------------------------------------------------------------------------


def _network(stack: str) -> NetworkPayload:
    from graphium.stack.models import NetworkSpec

    return NetworkPayload(stack=stack, network=NetworkSpec(name=f"{stack}-net"))


async def test_one_connection_per_host_is_reused_across_many_tasks(
    lab_hosts: dict[str, Host],
) -> None:
    hosts = list(lab_hosts.values())
    ssh = SshExecutor(max_concurrent_connects=2)  # also: the cap queues connects, it does not fail them
    name = f"re{uuid.uuid4().hex[:8]}"
    try:
        observed = await ssh.observe(hosts, None)
        assert all(o.error is None for o in observed.values())
        for _ in range(3):
            results = await asyncio.gather(
                *(
                    ssh.run(task(TaskType.ensure_network, h, _network(name)), h)
                    for h in hosts
                    for _ in range(5)
                )
            )
            assert len(results) == 5 * len(hosts)
            seen = await ssh.observe(hosts, name)
            # concurrent creates of one network end in exactly one network per host
            assert all(seen[h.id].networks == [f"{name}-net"] for h in hosts), seen
        assert ssh.connections_opened == len(hosts)
    finally:
        remove = RemoveNetworkPayload(stack=name, name=f"{name}-net")
        await asyncio.gather(*(ssh.run(task(TaskType.remove_network, h, remove), h) for h in hosts))
        await ssh.close()


async def test_close_removes_the_private_socket_directory(executor: SshExecutor, host: Host) -> None:
    assert (await executor.observe([host], None))[host.id].error is None
    sockets = [p for p in Path("/tmp").glob("gph-ssh-*") if p.is_dir()]
    mine = [p for p in sockets if any(p.glob("*.sock"))]
    assert mine and all((p.stat().st_mode & 0o777) == 0o700 for p in mine)
    before = set(sockets)
    await executor.close()
    after = {p for p in Path("/tmp").glob("gph-ssh-*") if p.is_dir()}
    assert len(before - after) >= 1


async def test_a_connection_lost_mid_task_fails_it_naming_the_host_and_the_next_task_reconnects(
    executor: SshExecutor, host: Host
) -> None:
    stack = f"lo{uuid.uuid4().hex[:8]}"
    await executor.run(task(TaskType.ensure_network, host, _network(stack)), host)
    never_healthy = desired(stack, "web", host, healthCheck={"test": ["CMD", "false"], "interval": "30s"})
    deploy = asyncio.ensure_future(
        executor.run(task(TaskType.deploy, host, DeployPayload(container=never_healthy), timeout=20), host)
    )
    await asyncio.sleep(1.5)  # the task is now waiting for health, through the tunnel
    executor._sessions[host.id].conn.abort()  # what a network drop or a killed sshd looks like
    started = time.monotonic()
    with pytest.raises(HostUnreachableError) as failure:
        await deploy
    assert time.monotonic() - started < 5
    assert f"host {host.id}" in str(failure.value) and "lost" in str(failure.value)

    observed = (await executor.observe([host], stack))[host.id]  # reconnects
    assert observed.error is None
    assert executor.connections_opened == 2
    for container in observed.containers:
        payload = DeletePayload(docker_name=container.docker_name, container_id=container.id, stop_timeout=0)
        await executor.run(task(TaskType.delete, host, payload), host)
    await executor.run(
        task(TaskType.remove_network, host, RemoveNetworkPayload(stack=stack, name=f"{stack}-net")), host
    )


@pytest.fixture
def restore_engine(lab: lab_pkg.LabInfo) -> Iterator[str]:
    """The id of a host whose engine a test may stop; started again whatever happens."""
    try:
        yield STOPPED_HOST
    finally:
        lab_pkg.start_host_engine(STOPPED_HOST)


async def test_a_host_whose_engine_stops_mid_run_fails_alone_and_recovers(
    executor: SshExecutor, lab_hosts: dict[str, Host], restore_engine: str
) -> None:
    victim, healthy = lab_hosts[restore_engine], lab_hosts[CONTRACT_HOST]
    stack = f"es{uuid.uuid4().hex[:8]}"
    both = [victim, healthy]
    assert all(o.error is None for o in (await executor.observe(both, stack)).values())

    await asyncio.to_thread(lab_pkg.stop_host_engine, victim.id)
    started = time.monotonic()
    with pytest.raises(HostUnreachableError) as failure:
        await executor.run(task(TaskType.ensure_network, victim, _network(stack)), victim)
    message = str(failure.value)
    assert f"host {victim.id}" in message and str(victim.docker_host) in message  # the host's URL
    observed = await executor.observe(both, stack)
    assert time.monotonic() - started < 10  # an error, never a hang
    assert observed[victim.id].error and victim.id in observed[victim.id].error
    assert observed[healthy.id].error is None
    result = await executor.run(task(TaskType.ensure_network, healthy, _network(stack)), healthy)
    assert result["created"] is True

    await asyncio.to_thread(lab_pkg.start_host_engine, victim.id)
    assert (await executor.observe([victim], stack))[victim.id].error is None  # same connection
    assert executor.connections_opened == 2
    remove = RemoveNetworkPayload(stack=stack, name=f"{stack}-net")
    await executor.run(task(TaskType.remove_network, healthy, remove), healthy)


# -- mixed inventories ---------------------------------------------------------------------------


@pytest.mark.docker
class TestMixedLocalAndSsh(ExecutorFixtures):
    async def test_one_router_deploys_to_a_local_and_an_ssh_host(
        self, docker_url: str, lab_hosts: dict[str, Host]
    ) -> None:
        local = Host.model_validate({"@id": "local", "connection": "local", "dockerHost": docker_url})
        remote = lab_hosts[CONTRACT_HOST]
        ssh = SshExecutor()
        router = HostRouter({Connection.local: LocalExecutor(), Connection.ssh: ssh})
        stack = f"mx{uuid.uuid4().hex[:8]}"
        targets = {local.id: (local, "127.0.0.1"), remote.id: (remote, str(remote.address))}
        ports = {hid: free_port_on(ip) for hid, (_, ip) in targets.items()}
        try:
            await asyncio.gather(
                *(
                    router.run(task(TaskType.ensure_network, h, _network(stack)), h)
                    for h, _ in targets.values()
                )
            )

            async def deploy(hid: str) -> None:
                h, ip = targets[hid]
                web = desired(
                    stack,
                    f"web-{hid}",
                    h,
                    command=SERVE_MSG,
                    environment={"MSG": f"hello from {hid}"},
                    ports=[{"containerPort": 80, "hostPort": ports[hid], "hostIP": ip}],
                )
                await self.deploy(router, h, web)

            await asyncio.gather(*(deploy(hid) for hid in targets))
            for hid, (_, ip) in targets.items():
                assert await http_get(ip, ports[hid]) == f"hello from {hid}"
            observed = await router.observe([local, remote], stack)
            assert list(observed) == [local.id, remote.id]
            for hid in targets:
                assert observed[hid].error is None
                assert [c.name for c in observed[hid].containers] == [f"web-{hid}"]
            assert ssh.connections_opened == 1
        finally:
            observed = await router.observe([local, remote], stack)
            for hid, (h, _) in targets.items():
                for c in observed[hid].containers:
                    payload = DeletePayload(docker_name=c.docker_name, container_id=c.id, stop_timeout=0)
                    await router.run(task(TaskType.delete, h, payload), h)
                await router.run(
                    task(TaskType.remove_network, h, RemoveNetworkPayload(stack=stack, name=f"{stack}-net")),
                    h,
                )
            await router.close()

    async def test_a_host_without_an_executor_gets_its_own_error(self, lab_hosts: dict[str, Host]) -> None:
        remote = lab_hosts[CONTRACT_HOST]
        agent = Host.model_validate({"@id": "far", "connection": "agent"})
        router = HostRouter({Connection.ssh: SshExecutor()})
        try:
            observed = await router.observe([agent, remote], None)
            assert observed[remote.id].error is None
            assert "no executor for connection 'agent'" in (observed["far"].error or "")
            with pytest.raises(ExecutionError, match="host far"):
                await router.run(task(TaskType.ensure_network, agent, _network("x")), agent)
        finally:
            await router.close()


# -- graphium-run over SSH: the success criteria on the lab ------------------------------

RUN = str(Path(sys.executable).with_name("graphium-run"))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _graphium_run(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUN, *args, "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def _example(tmp_path: Path, file: str, name: str, hosts: list[Host]) -> tuple[Path, dict[str, int]]:
    """An example stack under a unique name and with host ports free on every lab host (so that
    concurrent sessions on the same lab cannot collide); returns its path and container ports."""
    doc = json.loads((EXAMPLES / file).read_text())
    stack = next(n for n in doc["@graph"] if "hasPart" in n)
    stack["name"] = name
    ports: dict[str, int] = {}
    for part in stack["hasPart"]:
        port = free_port_on(str(hosts[0].address))
        while port in ports.values() or not all(port_free(str(h.address), port) for h in hosts):
            port = free_port_on(str(hosts[0].address))
        part["containerPort"][0]["hostPort"] = ports[part["name"]] = port
    path = tmp_path / f"{name}.jsonld"
    path.write_text(json.dumps(doc))
    return path, ports


async def _on_host(address: str, port: int) -> bool:
    try:
        await asyncio.wait_for(asyncio.open_connection(address, port), 2)
    except (OSError, TimeoutError):
        return False
    return True


@pytest.mark.parametrize("example", ["nginx-multihost.jsonld", "nginx-auto-spread.jsonld"])
async def test_multihost_examples_deploy_answer_per_host_converge_and_destroy_over_ssh(
    lab: lab_pkg.LabInfo, lab_hosts: dict[str, Host], tmp_path: Path, example: str
) -> None:
    hosts = list(lab_hosts.values())[:3]
    inventory = str(lab.inventory)
    name = f"e2e{uuid.uuid4().hex[:6]}"
    stack, ports = _example(tmp_path, example, name, hosts)
    state = tmp_path / "state.json"
    base = ["-i", inventory]

    proc = await asyncio.to_thread(
        _graphium_run, "plan", str(stack), *base, "--detailed-exitcode", state=state
    )
    assert proc.returncode == 2, proc.stderr
    proc = await asyncio.to_thread(_graphium_run, "apply", str(stack), *base, state=state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(
        (await asyncio.to_thread(_graphium_run, "status", name, "--json", state=state)).stdout
    )
    placed = {c: p["hostId"] for c, p in status["placements"].items()}
    assert sorted(placed.values()) == sorted(h.id for h in hosts)  # one container on each host
    for container, host_id in placed.items():
        for h in hosts:  # answers on its own host's address, and on no other
            assert await _on_host(str(h.address), ports[container]) is (h.id == host_id), (container, h.id)
        assert await http_get(str(lab_hosts[host_id].address), ports[container]) == "nginx:alpine"

    proc = await asyncio.to_thread(
        _graphium_run, "plan", str(stack), *base, "--detailed-exitcode", state=state
    )
    assert proc.returncode == 0 and "No changes" in proc.stdout, proc.stdout + proc.stderr

    # a change on every container (a slow health check keeps the tasks in flight), and one host's
    # engine stopped once its new container exists: mid-apply. That host fails, the run says so.
    doc = json.loads(stack.read_text())
    for part in next(n for n in doc["@graph"] if "hasPart" in n)["hasPart"]:
        part["environmentVariable"].append({"@type": "PropertyValue", "name": "REV", "value": "2"})
        part["healthCheck"] = {"http": {"port": 80}, "interval": "3s", "timeout": "2s", "retries": 2}
    stack.write_text(json.dumps(doc))
    down = next(h for h in hosts if h.id in placed.values() and h.id != hosts[0].id)
    apply = asyncio.ensure_future(
        asyncio.to_thread(_graphium_run, "apply", str(stack), *base, "--json", state=state)
    )
    try:
        watcher = SshExecutor()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not apply.done():
                seen = (await watcher.observe([down], name))[down.id]
                if any("REV=2" in c.live.env for c in seen.containers):
                    break
                await asyncio.sleep(0.1)
        finally:
            await watcher.close()
        assert not apply.done(), "the apply ended before the engine could be stopped"
        await asyncio.to_thread(lab_pkg.stop_host_engine, down.id)
        started = time.monotonic()
        proc = await apply
        assert time.monotonic() - started < 60  # an error, never a hang
    finally:
        await asyncio.to_thread(lab_pkg.start_host_engine, down.id)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["type"] == "result" and result["ok"] is False, proc.stdout
    assert {t["hostId"] for t in result["failed"]} == {down.id}, proc.stdout  # the others completed
    assert all(down.id in t["error"] for t in result["failed"])
    proc = await asyncio.to_thread(_graphium_run, "apply", str(stack), *base, state=state)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a re-run converges
    proc = await asyncio.to_thread(
        _graphium_run, "plan", str(stack), *base, "--detailed-exitcode", state=state
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

    proc = await asyncio.to_thread(_graphium_run, "destroy", str(stack), *base, state=state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ssh = SshExecutor()
    try:
        observed = await ssh.observe(hosts, name)
    finally:
        await ssh.close()
    for h in hosts:
        assert observed[h.id].error is None and observed[h.id].containers == [], h.id
        assert observed[h.id].networks == [], h.id
