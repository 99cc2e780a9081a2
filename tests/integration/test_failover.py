"""The client side of ``--server URL1,URL2`` against a real server process: a replica that is
down (nothing listens), one that accepts and drops the connection (it died mid-request), and
one that answers. Which requests move to the next replica, which must not, and what the CLI says.

The two-replica scenarios on one PostgreSQL database live in test_replicas.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from graphium.control.agent import Agent
from graphium.control.client import ServerClient
from graphium.errors import GraphiumError
from tests.integration.server_fixture import DEFAULT_HOSTS, ServerProcess
from tests.support import free_port, graphium_run, stack_doc, unique_name, wait_for
from tests.tls import session_pki


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One live server for the module (starting one per test costs seconds on a busy machine)."""
    proc = ServerProcess(tmp_path_factory.mktemp("failover"), DEFAULT_HOSTS)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="dropper")
def dropper_fixture() -> Iterator[str]:
    """An https URL whose server completes the TLS handshake, reads the request and then drops
    the connection, as a server killed while handling it would: the request did reach it."""
    pki = session_pki()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), tls.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(5)
                conn.recv(65536)  # the request's head
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # closed with linger 0: a reset, not an answer

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def dead_url() -> str:
    return f"https://127.0.0.1:{free_port()}"  # nothing listens: connection refused


def test_a_dead_replica_is_skipped_and_the_live_one_kept(server: ServerProcess) -> None:
    dead = dead_url()
    with ServerClient([dead, server.url], server.admin_token, ca_cert=str(server.ca_cert)) as client:
        assert client.list_stacks() == []
        assert client.url == server.url  # remembered: the next request goes there first
        assert client.servers.order()[0] == 1
        # a POST that never reached the dead replica (refused) is safe to send to the next one,
        # whose answer (it has no agents to plan with) shows that it got it
        client.servers.failed(1, "test: back to the dead one first")
        doc = stack_doc(unique_name("fo-"), [{"name": "web", "image": "busybox"}])
        with pytest.raises(GraphiumError, match=r"\(409\): cannot plan without seeing every host"):
            client.post_stack(doc)
        assert client.url == server.url


def test_a_read_moves_on_after_a_dropped_connection_but_a_post_stack_does_not(
    server: ServerProcess, dropper: str
) -> None:
    doc = stack_doc(unique_name("fo-"), [{"name": "web", "image": "busybox"}])
    with ServerClient([dropper, server.url], server.admin_token, ca_cert=str(server.ca_cert)) as client:
        assert client.list_stacks() == []  # GET: idempotent, sent again to the live replica
        assert client.url == server.url
    with ServerClient([dropper, server.url], server.admin_token, ca_cert=str(server.ca_cert)) as client:
        with pytest.raises(GraphiumError) as caught:
            client.post_stack(doc)  # may have started a run on the first replica: never resent
        message = str(caught.value)
        assert "may have received POST /stacks" in message and "status --server" in message
        assert server.admin_token not in message
    with server.admin() as api:
        assert api.get("/stacks").json() == [], "the POST must not have reached the live replica"


def test_cli_with_a_dead_and_a_live_server(server: ServerProcess) -> None:
    env = {"GRAPHIUM_TOKEN": server.admin_token, "GRAPHIUM_CA_CERT": str(server.ca_cert)}
    done = graphium_run("status", "--server", f"{dead_url()},{server.url}", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert server.admin_token not in done.stdout + done.stderr
    # the same list from the environment
    done = graphium_run("agents", env={**env, "GRAPHIUM_SERVER": f"{dead_url()},{server.url}"})
    assert done.returncode == 0, done.stderr


def test_cli_names_the_bad_url_in_the_list(server: ServerProcess) -> None:
    env = {"GRAPHIUM_TOKEN": server.admin_token}
    done = graphium_run("status", "--server", f"{server.url},htps://typo:8095", env=env)
    assert done.returncode == 1
    assert "--server (env GRAPHIUM_SERVER): server URL 2 of 2: server URL must start with" in done.stderr
    assert "Traceback" not in done.stderr
    done = graphium_run(
        "agent", "--host-id", "h1", "--server", f"{server.url},", env={"GRAPHIUM_AGENT_TOKEN": "x"}
    )
    assert done.returncode == 1
    assert "server URL 2 of 2 is empty" in done.stderr


def test_every_replica_down_says_so(server: ServerProcess) -> None:
    first, second = dead_url(), dead_url()
    with ServerClient([first, second], server.admin_token) as client, pytest.raises(GraphiumError) as caught:
        client.list_stacks()
    assert f"cannot reach the graphium server at {first}, {second}" in str(caught.value)


# the agent: a claim whose answer never came back -------------------------------------------------
class AnswerDropper:
    """A TCP proxy to a plain-HTTP server that passes everything through, except the answer to a
    claim that hands out tasks: that one is swallowed and the client's connection reset, as when
    a replica dies after committing the claim but before answering it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        claiming = threading.Event()
        with (
            contextlib.suppress(OSError),
            client,
            socket.create_connection(("127.0.0.1", self.upstream_port)) as up,
        ):

            def forward() -> None:  # client -> server, noting when a claim goes out
                with contextlib.suppress(OSError):
                    while data := client.recv(65536):
                        if (
                            data.startswith(b"POST /api/v1/agents/")
                            and b"/claims?" in data.split(b"\r\n", 1)[0]
                        ):
                            claiming.set()
                        up.sendall(data)

            threading.Thread(target=forward, daemon=True).start()
            while data := up.recv(65536):
                if claiming.is_set() and b"\r\n\r\n[]" not in data:  # tasks were handed out
                    self.dropped += 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.shutdown(socket.SHUT_RDWR)  # wakes the forwarding thread, ends the answer
                    return
                claiming.clear()
                client.sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.listener.close()


@pytest.fixture(name="plain_server", scope="module")
def plain_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("plain"), ["h1"], tls=False)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


async def test_an_agent_gives_back_the_tasks_of_a_claim_whose_answer_was_lost(
    plain_server: ServerProcess, docker_url: str
) -> None:
    """Without the give-back the task would sit under the lost claim's lease (20 s here) and come
    back with retryCount 1; with it, the agent claims it again at once through the other URL."""
    proxy = AnswerDropper(plain_server.port)
    token = plain_server.agent_tokens["h1"]
    agent = Agent("h1", [proxy.url, plain_server.url], token, docker_host=docker_url, lease_seconds=20)
    running = asyncio.create_task(agent.run())
    try:
        with plain_server.admin() as api:
            await asyncio.to_thread(wait_for, lambda: api.get("/agents").json(), 20, "the agent registered")
            body = {"taskType": "stop", "hostId": "h1", "payload": {"dockerName": unique_name("gone-")}}
            task_id = api.post("/tasks", json=body).json()["id"]
            started = time.monotonic()

            def ended() -> bool:
                return api.get(f"/tasks/{task_id}").json()["status"] in ("completed", "failed")

            await asyncio.to_thread(wait_for, ended, 15, "the task of the lost claim was not run")
            took = time.monotonic() - started
            task = api.get(f"/tasks/{task_id}").json()
        assert proxy.dropped == 1, "the claim's answer was not lost: nothing was tested"
        assert task["retryCount"] == 0 and took < 20, (task, took)
        assert agent.server_url == plain_server.url
        assert [o.task_id for o in agent.outcomes] == [task_id]  # run once
    finally:
        agent.stop()
        await running
        proxy.close()
