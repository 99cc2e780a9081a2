"""Ctrl-C during a replacing apply, as a person presses it: at random moments, on a real engine.

The first SIGINT drains the run: nothing new starts, a replace in flight finishes (or rolls
back), so once the command has exited every container of the stack runs; it says what it did and
what is left, and exits 130. A second SIGINT aborts at once, and the next apply repairs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import GRAPHIUM_RUN, local_env, remove_stack, stack_containers, unique_name, web_stack
from tests.support import graphium_run as run

REPLICAS = 2
def _apply_interrupted(
    stack: Path, env: dict[str, str], delay: float, *, signals: int = 1
) -> tuple[int, str]:
    """Start ``apply``; once its first task runs, wait ``delay`` and send SIGINT (``signals``
    times, 50 ms apart); the exit code and stderr."""
    proc = subprocess.Popen(
        [GRAPHIUM_RUN, "apply", str(stack), "--json", "--parallelism", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"status":"running"' in line:
            break
    time.sleep(delay)
    for _ in range(signals):
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def _down(docker_url: str, name: str, *, kept_aside: bool = True) -> list[str]:
    """Containers of the stack not running, and instances without a running container. An old
    container a rolling update keeps aside (stopped, ``-replaced-``) for a rollback until its
    clean-up task is not down: the next apply removes it (``kept_aside=False`` counts it)."""
    containers = stack_containers(docker_url, name)
    down = [
        f"{c.name}: {c.status}"
        for c in containers
        if c.status != "running" and not (kept_aside and "-replaced-" in c.name)
    ]
    running = {c.labels.get("graphium.container") for c in containers if c.status == "running"}
    down += [f"web-{i}: none running" for i in range(1, REPLICAS + 1) if f"web-{i}" not in running]
    return down


def _modes(docker_url: str, name: str) -> set[str]:
    out = set()
    for container in stack_containers(docker_url, name):
        env: list[Any] = container.attrs["Config"]["Env"] or []
        out |= {e.split("=", 1)[1] for e in env if e.startswith("MODE=")}
    return out


@pytest.fixture
def name(docker_url: str) -> Any:
    stack = unique_name("intr")
    yield stack
    remove_stack(docker_url, stack)


def test_sigint_at_random_points_of_a_replace_never_leaves_a_container_down(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "m0", REPLICAS)
    assert run("apply", str(stack), env=env).returncode == 0
    rng = random.Random(9)
    interrupted = 0
    for trial in range(1, 11):
        web_stack(stack, name, f"m{trial}", REPLICAS)  # every replica must be replaced
        code, err = _apply_interrupted(stack, env, rng.uniform(0.0, 1.2))
        assert "Traceback" not in err, err
        assert code in (0, 130), (trial, code, err)
        if code == 130:
            interrupted += 1
            assert "interrupted" in err and ("left" in err or "done" in err), err
        assert _down(docker_url, name) == [], (trial, err)
    assert interrupted >= 7, f"only {interrupted} of 10 runs were interrupted mid-way"
    final = run("apply", str(stack), "--json", env=env)
    assert final.returncode == 0, final.stderr
    assert _modes(docker_url, name) == {"m10"} and _down(docker_url, name, kept_aside=False) == []


def test_a_second_sigint_aborts_and_the_next_apply_repairs(
    docker_url: str, tmp_path: Path, name: str
) -> None:
    env = local_env(docker_url, tmp_path / "state.json")
    stack = web_stack(tmp_path / "stack.json", name, "a", REPLICAS)
    assert run("apply", str(stack), env=env).returncode == 0
    web_stack(stack, name, "b", REPLICAS)
    code, err = _apply_interrupted(stack, env, 0.1, signals=2)
    assert code == 130, err
    assert "aborted" in err and "Traceback" not in err, err
    plan = run("plan", str(stack), env=env)
    assert "changed outside graphium" not in plan.stdout, plan.stdout
    repaired = run("apply", str(stack), env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert _modes(docker_url, name) == {"b"} and _down(docker_url, name, kept_aside=False) == []
