"""Nothing left broken by a crash or a second operator, on a real engine.

kill -9 during destroy or during a replacing apply: the next apply converges at once (the dead
process's lease and host lock are taken over, a stack left ``deleting`` is deployed again). Two
operators with separate state files applying at once: the host lock lets one run, the other is
told the stack is locked (or waits with --lock-wait); never two networks of one name.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support import (
    GRAPHIUM_RUN,
    local_env,
    remove_stack,
    stack_containers,
    stack_networks,
    unique_name,
    web_stack,
)
from tests.support import graphium_run as run


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [GRAPHIUM_RUN, *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )


def _kill_once_running(proc: subprocess.Popen[str]) -> None:
    """kill -9 as soon as the first task runs."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"status":"running"' in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def _running(docker_url: str, name: str) -> list[str]:
    return sorted(c.name for c in stack_containers(docker_url, name) if c.status == "running")


@pytest.fixture
def name(docker_url: str) -> Any:
    stack = unique_name("crash")
    yield stack
    remove_stack(docker_url, stack)
    client = docker.DockerClient(base_url=docker_url, version="auto")
    try:
        for volume in client.volumes.list(filters={"name": f"graphium-lock-{stack}"}):
            volume.remove(force=True)
    finally:
        client.close()


def test_kill_9_during_destroy_then_apply_converges_at_once(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "a", replicas=3)
    assert run("apply", str(stack), env=env).returncode == 0
    _kill_once_running(_start("destroy", str(stack), "--parallelism", "1", env=env))
    status = run("status", name, "--json", env=env)
    assert '"deleting"' in status.stdout, status.stdout  # what the dead destroy left
    again = run("apply", str(stack), env=env)  # no waiting for the lease to expire
    assert again.returncode == 0, again.stderr
    assert "left deleting" in again.stderr
    assert len(_running(docker_url, name)) == 3


def test_kill_9_during_a_replace_then_apply_converges_at_once(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "a", replicas=3)
    assert run("apply", str(stack), env=env).returncode == 0
    web_stack(stack, name, "b", replicas=3)
    _kill_once_running(_start("apply", str(stack), "--parallelism", "1", env=env))
    plan = run("plan", str(stack), env=env)
    assert "changed outside graphium" not in plan.stdout, plan.stdout
    again = run("apply", str(stack), env=env)
    assert again.returncode == 0, again.stderr
    assert len(_running(docker_url, name)) == 3
    assert run("plan", str(stack), "--detailed-exitcode", env=env).returncode == 0


def test_two_operators_with_separate_state_files_never_race(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    stack = web_stack(tmp_path / "stack.json", name, "a", replicas=2)
    for trial in range(2):
        procs = [
            _start("apply", str(stack), env=local_env(docker_url, tmp_path / f"state-{trial}-{who}.json"))
            for who in ("ann", "bob")
        ]
        outcomes = [(p.wait(90), p.stderr.read() if p.stderr else "") for p in procs]
        for code, err in outcomes:
            assert code == 0 or (code == 1 and "locked" in err), (code, err)
        assert len(stack_networks(docker_url, name)) == 1, outcomes
        assert len(_running(docker_url, name)) == 2, outcomes
        remove_stack(docker_url, name)
    # with --lock-wait the second waits for the first, and both end converged
    procs = [
        _start(
            "apply", str(stack), "--lock-wait", "60", env=local_env(docker_url, tmp_path / f"wait-{who}.json")
        )
        for who in ("ann", "bob")
    ]
    codes = [p.wait(120) for p in procs]
    assert codes == [0, 0], [p.stderr.read() if p.stderr else "" for p in procs]
    assert len(stack_networks(docker_url, name)) == 1 and len(_running(docker_url, name)) == 2


def test_duplicate_networks_left_by_an_old_race_are_merged(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "a", replicas=1)
    assert run("apply", str(stack), env=env).returncode == 0
    [network] = stack_networks(docker_url, name)
    client = docker.APIClient(base_url=docker_url, version="auto")
    try:
        client.create_network(network.name, labels=network.attrs["Labels"], check_duplicate=False)
    finally:
        client.close()
    assert len(stack_networks(docker_url, name)) == 2
    again = run("apply", str(stack), env=env)
    assert again.returncode == 0, again.stderr
    assert "merge duplicate networks" in again.stdout
    assert len(stack_networks(docker_url, name)) == 1 and len(_running(docker_url, name)) == 1


def test_a_lock_held_from_another_machine_is_refused_until_unlocked(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "a", replicas=1)
    client = docker.APIClient(base_url=docker_url, version="auto")
    try:  # what a run on another machine holds: never provably dead from here
        owner = "ci-runner-7/boot-elsewhere/4242/1/t0"
        client.create_volume(f"graphium-lock-{name}", labels={"graphium.lock-owner": owner})
    finally:
        client.close()
    refused = run("apply", str(stack), env=env)
    assert refused.returncode == 1 and "locked on host local by pid 4242 on ci-runner-7" in refused.stderr
    assert "graphium-run unlock" in refused.stderr and stack_containers(docker_url, name) == []
    released = run("unlock", str(stack), env=env)
    assert released.returncode == 0 and "Released the lock" in released.stdout, released.stdout
    assert run("apply", str(stack), env=env).returncode == 0
    assert len(_running(docker_url, name)) == 1
