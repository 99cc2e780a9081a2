"""Builders and helpers shared by the test modules: stack documents, free ports, HTTP probes,
running ``graphium-run``, waiting, and the containers of one stack on an engine.

Tests on the shared lab must not collide with each other, with concurrent sessions, or with what
``make demo`` leaves deployed: they use stack names of their own and host ports nothing answers
on, and they only ever look at (and clean up) containers of their own stacks.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

#: The ``graphium-run`` of the interpreter running the tests (the venv's console script).
GRAPHIUM_RUN = str(Path(sys.executable).with_name("graphium-run"))
LABEL_STACK = "graphium.stack"


def unique_name(prefix: str) -> str:
    """A stack (or container) name no other test, session or demo uses: ``prefix`` + 6 hex digits."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def free_port(bind: str = "127.0.0.1") -> int:
    """A port free on this machine at ``bind`` (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((bind, 0))
        return int(sock.getsockname()[1])


def port_free(address: str, port: int) -> bool:
    """True if nothing accepts a TCP connection on address:port."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((address, port)) != 0


def free_port_on(*addresses: str, avoid: frozenset[int] = frozenset()) -> int:
    """A port nothing answers on at any of ``addresses`` (a lab host's ports are not this machine's)."""
    for _ in range(50):
        port = random.randint(20000, 39999)
        if port not in avoid and all(port_free(address, port) for address in addresses):
            return port
    raise RuntimeError(f"no free port found on {', '.join(addresses)}")


def stack_node(document: dict[str, Any]) -> dict[str, Any]:
    """The stack node of a stack document (the ``@graph`` node with ``hasPart``)."""
    graph = document.get("@graph", [document])
    found: dict[str, Any] = next(n for n in graph if isinstance(n, dict) and "hasPart" in n)
    return found


def with_own_name_and_ports(
    document: dict[str, Any], name: str, addresses: list[str]
) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of a stack document under ``name``, every published host port replaced by one free on
    all ``addresses``; returns the copy and each container's new host port (first port only)."""
    doc = copy.deepcopy(document)
    stack = stack_node(doc)
    stack["name"] = name
    if isinstance(stack.get("@id"), str):
        stack["@id"] = f"stack:{name}"
    ports: dict[str, int] = {}
    for part in stack["hasPart"]:
        for mapping in part.get("containerPort", part.get("ports", [])):
            if "hostPort" in mapping:
                port = free_port_on(*addresses, avoid=frozenset(ports.values()))
                mapping["hostPort"] = port
                ports.setdefault(part["name"], port)
    return doc, ports


def stack_doc(name: str, containers: list[dict[str, Any]], **stack: Any) -> dict[str, Any]:
    """A stack document in the plainest spelling: schema.org context, one stack node."""
    return {
        "@context": "https://schema.org",
        "@graph": [{"@type": "datacenter:Stack", "name": name, "hasPart": containers, **stack}],
    }


def write_json(path: Path, doc: Any) -> Path:
    """Write ``doc`` as JSON to ``path``; returns the path."""
    path.write_text(json.dumps(doc, indent=2))
    return path


WEB_HEALTH = {"http": {"port": 80}, "interval": "0.2s", "timeout": "1s", "retries": 25}


def web_stack(path: Path, name: str, mode: str, replicas: int) -> Path:
    """A stack of ``replicas`` healthy test web servers; a new ``mode`` (an env value) replaces them."""
    web = {
        "name": "web",
        "image": "graphium-test/web:1",
        "replicas": replicas,
        "environment": {"MODE": mode},
        "stopTimeout": "1s",
        "healthCheck": WEB_HEALTH,
    }
    return write_json(path, stack_doc(name, [web]))


def local_env(docker_url: str, state: Path) -> dict[str, str]:
    """Environment of a ``graphium-run`` on the lab's local engine with its own state file."""
    return {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(state)}


def http_get(address: str, port: int, timeout: float = 2.0) -> str | None:
    """Body of GET / on address:port, or None if nothing answers (never through a proxy)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    except OSError:
        return None
    finally:
        conn.close()


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``condition`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} (after {timeout}s)"
        time.sleep(interval)


def graphium_run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``graphium-run ARGS`` as a process (stdin closed, output captured), ``env`` over os.environ."""
    return subprocess.run(
        [GRAPHIUM_RUN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def stack_containers(docker_url: str, stack: str) -> list[Any]:
    """The containers (running or not) graphium made for ``stack`` on the engine at ``docker_url``."""
    client = docker.DockerClient(base_url=docker_url, version="auto")
    try:
        return list(client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack}"}))
    finally:
        client.close()


def stack_networks(docker_url: str, stack: str) -> list[Any]:
    """The networks graphium made for ``stack`` on the engine at ``docker_url``."""
    client = docker.DockerClient(base_url=docker_url, version="auto")
    try:
        return list(client.networks.list(filters={"label": f"{LABEL_STACK}={stack}"}))
    finally:
        client.close()


def remove_stack(docker_url: str, stack: str) -> None:
    """Remove what a test's stack left on an engine (containers, then networks), and nothing else."""
    for container in stack_containers(docker_url, stack):
        container.remove(force=True, v=True)
    for network in stack_networks(docker_url, stack):
        network.remove()


def stop_processes(*procs: subprocess.Popen[bytes]) -> None:
    """SIGTERM every process still running, then wait for each (15 s, then SIGKILL)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
