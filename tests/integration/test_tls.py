"""The control plane over TLS: HTTPS serving, verification by agents and the CLI, and the refusals
(plain HTTP beyond loopback, certificate files that do not load, a server nobody can verify)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

import lab as lab_pkg
from graphium.plan.payloads import DeletePayload
from graphium.records.task import Task, TaskType
from lab.tls import make_ca, make_server_cert
from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.support import graphium_run, port_free, unique_name, wait_for
from tests.tls import session_pki

HOST = "h1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path, [HOST])
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


def serve(workdir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``graphium-run serve ARGS`` (over a valid state, tokens and inventory) expected to refuse:
    it must exit by itself. Returns its exit code and stderr, after checking it never listened."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(workdir, [HOST], tls=False)
    cmd = [*RUNNER, "serve", "--state", str(server.state), "--tokens", str(server.tokens),
           "-i", str(server.inventory), "--port", str(server.port), *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})  # fmt: skip
    assert "Traceback" not in proc.stderr and "Uvicorn running" not in proc.stderr, proc.stderr
    host = args[args.index("--host") + 1] if "--host" in args else "127.0.0.1"
    assert port_free("127.0.0.1" if host == "0.0.0.0" else host, server.port)
    return proc.returncode, proc.stderr


def start_agent(server: ServerProcess, docker_url: str, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DOCKER_HOST": docker_url, "GRAPHIUM_AGENT_TOKEN": server.agent_tokens[HOST]}
    env.pop("GRAPHIUM_CA_CERT", None)
    return subprocess.Popen(
        [*RUNNER, "agent", "--host-id", HOST, "--server", server.url, *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise


def test_https_server_and_an_agent_verifying_it_with_ca_cert_complete_a_task(
    server: ServerProcess, docker_url: str, tmp_path: Path
) -> None:
    assert server.url.startswith("https://")
    plain = f"http://{server.bind}:{server.port}"  # it speaks TLS only, and a client says so
    proc = graphium_run("status", "--server", plain, "--token", server.admin_token)
    assert proc.returncode == 1 and "serves HTTPS, use an https:// URL" in proc.stderr, proc.stderr
    log = tmp_path / "agent.log"
    agent = start_agent(server, docker_url, log, "--ca-cert", str(server.ca_cert))
    try:
        payload = DeletePayload(docker_name=unique_name("tls-absent-"), stop_timeout=1)
        task = Task(id=unique_name("del-"), task_type=TaskType.delete, host_id=HOST, payload=payload.dump())
        with server.admin() as api:
            assert api.post("/tasks", json=task.dump()).status_code == 201
            wait_for(
                lambda: api.get(f"/tasks/{task.id}").json()["status"] == "completed",
                30,
                f"task over HTTPS not completed: {log.read_text(errors='replace')}",
            )
        assert stop(agent) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
    text = log.read_text(errors="replace")
    assert "certificate verify failed" not in text and "Traceback" not in text, text
    assert server.agent_tokens[HOST] not in text


def test_a_client_without_the_ca_is_refused_with_a_clear_message(
    server: ServerProcess, docker_url: str, tmp_path: Path
) -> None:
    status = ["status", "--server", server.url, "--token", server.admin_token]
    proc = graphium_run(*status)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    expected = f"cannot verify the graphium server at {server.url}: certificate verify failed"
    assert expected in proc.stderr and "--ca-cert" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and server.admin_token not in proc.stderr

    other_ca, _ = make_ca(tmp_path / "other", "another CA")  # a CA, but not the one that signed it
    proc = graphium_run(*status, "--ca-cert", str(other_ca))
    assert proc.returncode == 1 and expected in proc.stderr, proc.stderr

    proc = graphium_run(*status, *server.ca_args)
    assert proc.returncode == 0, proc.stderr  # the right CA: it answers

    missing = tmp_path / "nowhere" / "ca.pem"
    proc = graphium_run(*status, "--ca-cert", str(missing))
    assert proc.returncode == 1 and f"CA certificate {missing}: cannot read it" in proc.stderr, proc.stderr

    log = tmp_path / "agent.log"  # an agent without the CA says why it cannot work, and keeps trying
    agent = start_agent(server, docker_url, log)
    try:
        wait_for(lambda: expected in log.read_text(errors="replace"), 20, "the agent did not explain")
        assert stop(agent) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
    assert "Traceback" not in log.read_text(errors="replace")


def test_an_agent_with_an_unreadable_ca_file_exits_at_start(server: ServerProcess, tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    agent = start_agent(server, "unix:///nonexistent.sock", log, "--ca-cert", str(tmp_path / "none.pem"))
    assert agent.wait(20) == 1
    assert f"CA certificate {tmp_path / 'none.pem'}: cannot read it" in log.read_text(), log.read_text()


def test_plain_http_beyond_loopback_is_refused_before_listening(lab: lab_pkg.LabInfo, tmp_path: Path) -> None:
    for address in (lab.bridge_address, "0.0.0.0"):
        code, stderr = serve(tmp_path / address, "--host", address)
        assert code == 1, stderr
        assert f"refusing to serve plain HTTP on {address}" in stderr, stderr
        assert "--tls-cert" in stderr and "--insecure-http" in stderr


def test_insecure_http_serves_beyond_loopback_with_a_loud_warning(
    lab: lab_pkg.LabInfo, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path, [HOST], bind=lab.bridge_address, tls=False, insecure_http=True)
    server.start()
    try:
        with server.admin() as api:
            assert api.get("/tasks/stats").status_code == 200
        log = server.log_tail()
        assert f"WARNING: serving plain HTTP on {lab.bridge_address} (--insecure-http)" in log, log
        assert "in clear" in log and server.admin_token not in log
    finally:
        server.stop()


def test_https_beyond_loopback_needs_no_flag(lab: lab_pkg.LabInfo, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, [HOST], bind=lab.bridge_address)  # the certificate names the bridge
    server.start()
    try:
        with server.admin() as api:
            assert api.get("/tasks/stats").status_code == 200
        assert "WARNING" not in server.log_tail()
    finally:
        server.stop()


def _encrypted_copy(key: Path, to: Path) -> Path:
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    to.write_bytes(
        loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return to


def test_certificate_files_that_do_not_load_are_named_before_listening(tmp_path: Path) -> None:
    pki = session_pki()
    cert, key = str(pki.server_cert), str(pki.server_key)
    other_cert, other_key = make_server_cert(tmp_path, pki.ca_cert, pki.ca_key, stem="other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = str(tmp_path / "missing.pem")
    encrypted = _encrypted_copy(pki.server_key, tmp_path / "encrypted-key.pem")
    cases = [
        (["--tls-cert", missing, "--tls-key", key], f"TLS certificate {missing}: cannot read it"),
        (["--tls-cert", cert, "--tls-key", missing], f"TLS key {missing}: cannot read it"),
        (
            ["--tls-cert", cert, "--tls-key", str(other_key)],
            f"TLS key {other_key} does not match the certificate",
        ),
        (["--tls-cert", str(garbage), "--tls-key", key], f"TLS certificate {garbage}: no PEM certificate"),
        (["--tls-cert", str(other_cert), "--tls-key", str(garbage)], f"TLS key {garbage}: not a usable"),
        (["--tls-cert", cert, "--tls-key", str(encrypted)], f"TLS key {encrypted}: it is encrypted"),
        (["--tls-cert", cert], "--tls-cert and --tls-key go together"),
    ]
    for number, (args, message) in enumerate(cases):
        code, stderr = serve(tmp_path / str(number), *args)
        assert code == 1 and message in stderr, (args, stderr)

    env = {"GRAPHIUM_TLS_CERT": missing, "GRAPHIUM_TLS_KEY": key}  # the environment works alike
    code, stderr = serve(tmp_path / "env", env=env)
    assert code == 1 and f"TLS certificate {missing}: cannot read it" in stderr, stderr


def test_help_texts_name_the_tls_options() -> None:
    serve_help = graphium_run("serve", "--help").stdout
    for option in ("--tls-cert", "--tls-key", "--insecure-http", "GRAPHIUM_TLS_CERT", "GRAPHIUM_TLS_KEY"):
        assert option in serve_help, serve_help
    for command in (["agent"], ["status"], ["apply"], ["destroy"]):
        text = graphium_run(*command, "--help").stdout
        assert "--ca-cert" in text and "GRAPHIUM_CA_CERT" in text, text
