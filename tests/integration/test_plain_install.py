"""A plain ``pip install`` serves every route: the event WebSocket needs no test extra.

The venv is built once per set of declared dependencies (keyed by setup.cfg and pyproject.toml)
and kept in the temp dir across sessions; graphium itself is reinstalled into it, the plain way,
whenever its source changed. It installs from a clean copy of the source so that no stale build
directory of the checkout leaks modules into the wheel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import websockets
from filelock import FileLock

from graphium.plan.payloads import DeletePayload
from graphium.records.task import Task, TaskType
from tests.integration.server_fixture import REPO, ServerProcess
from tests.support import unique_name

CACHE = Path(tempfile.gettempdir()) / "graphium-test-cache" / "plain-install"
DECLARED = ("setup.cfg", "pyproject.toml")
SOURCE = ("setup.cfg", "pyproject.toml", "README.md", "graphium")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _source_files() -> list[Path]:
    files = [REPO / name for name in SOURCE if (REPO / name).is_file()]
    return files + [p for p in (REPO / "graphium").rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def _pip_install(venv: Path, workdir: Path) -> None:
    """``pip install SOURCE``: no extras, dependencies resolved (from the machine's package index)."""
    source = workdir / "graphium-source"
    shutil.rmtree(source, ignore_errors=True)
    source.mkdir(parents=True)
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif (REPO / name).is_file():
            shutil.copy2(REPO / name, source / name)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def plain_venv(workdir: Path) -> Path:
    """A venv holding graphium as ``pip install`` gives it to a user, current with the source."""
    key = _digest([REPO / name for name in DECLARED])
    CACHE.mkdir(parents=True, exist_ok=True)
    venv, stamp = CACHE / key, CACHE / key / "graphium-source.sha"
    source = _digest(_source_files())
    with FileLock(str(CACHE / f"{key}.lock")):  # sessions run concurrently on this machine
        if not (venv / "bin" / "python").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        if not stamp.exists() or stamp.read_text() != source:
            stamp.unlink(missing_ok=True)
            _pip_install(venv, workdir)
            stamp.write_text(source)
    return venv


def test_a_plain_install_serves_the_event_websocket(tmp_path: Path) -> None:
    venv = plain_venv(tmp_path)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = (
        "import importlib.util as u, graphium\n"
        "print(graphium.__file__, [u.find_spec(m) is None for m in ('pytest', 'selenium')])"
    )
    where = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=True
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # that installation, not the checkout
    assert where.stdout.rstrip().endswith("[True, True]"), where.stdout  # and no test extras

    server = ServerProcess(tmp_path, ["h1"], runner=[str(venv / "bin" / "graphium-run")])
    server.start()
    try:
        event = asyncio.run(_first_event(server))
    finally:
        server.stop()
    assert event["type"] == "task_created", event
    log = server.log_path.read_text(errors="replace")
    assert "No supported WebSocket library detected" not in log, log
    assert "/events/ws" in log and "[accepted]" in log, log


async def _first_event(server: ServerProcess) -> dict[str, object]:
    """The test's own WebSocket client (this venv's websockets), token in the header."""
    url, headers = f"{server.ws_url}?after=0", server.admin_headers
    async with websockets.connect(url, additional_headers=headers, ssl=server.ssl_context) as ws:
        payload = DeletePayload(docker_name=unique_name("plain-absent-"), stop_timeout=1).dump()
        task = Task(id=unique_name("del-"), task_type=TaskType.delete, host_id="h1", payload=payload)
        with server.admin() as api:
            response = await asyncio.to_thread(api.post, "/tasks", json=task.dump())
        assert response.status_code == 201, response.text
        event: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return event
