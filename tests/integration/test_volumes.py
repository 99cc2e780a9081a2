"""Named volumes belong to their stack, on real engines: ``data`` of stack ``s`` is ``s-data``,
labelled as the stack's; destroy keeps it and says so; ``destroy --volumes`` removes it; an
external volume is mounted by its own name and never removed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

import graphium
from lab import LabInfo
from tests.support import graphium_run as run
from tests.support import remove_stack, stack_containers, stack_doc, unique_name
from tests.support import write_json as write

IMAGE = "graphium-test/web:1"


@contextlib.contextmanager
def engine(url: str) -> Iterator[Any]:
    client = docker.DockerClient(base_url=url, version="auto", timeout=30)
    try:
        yield client
    finally:
        client.close()


def volume_or_none(url: str, name: str) -> Any:
    with engine(url) as client:
        try:
            return client.volumes.get(name)
        except docker.errors.NotFound:
            return None


def drop_volumes(url: str, *names: str) -> None:
    with engine(url) as client:
        for name in names:
            with contextlib.suppress(docker.errors.NotFound):
                client.volumes.get(name).remove(force=True)


def web(mounts: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {"name": "web", "image": IMAGE, "mounts": mounts, "stopTimeout": 1, **more}  # httpd ignores TERM


def exec_in(url: str, container: str, command: str) -> str:
    with engine(url) as client:
        result = client.containers.get(container).exec_run(["sh", "-c", command])
        return str(result.output.decode().strip())


def test_each_stack_has_its_own_volume_and_destroy_keeps_it_until_asked(
    docker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = unique_name("vola"), unique_name("volb")
    mount = [{"source": "data", "target": "/data"}]
    state = tmp_path / "state.json"
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(state)}
    monkeypatch.setenv("DOCKER_HOST", docker_url)  # the same "local" host in-process as for the CLI
    files = {n: write(tmp_path / f"{n}.json", stack_doc(n, [web(mount)])) for n in (first, second)}
    try:
        for name, path in files.items():
            planned = graphium.plan(str(path), state=state)
            ensured = [t.payload["name"] for t in planned.tasks if t.task_type.value == "ensure-volume"]
            assert ensured == [f"{name}-data"]
            assert graphium.apply(planned, state=state).ok
        for name in files:
            volume = volume_or_none(docker_url, f"{name}-data")
            assert volume is not None
            labels = volume.attrs["Labels"]
            assert labels["graphium.managed"] == "true" and labels["graphium.stack"] == name
            assert labels["graphium.volume"] == "data"
        exec_in(docker_url, f"{first}-web", "echo kept > /data/f")
        assert exec_in(docker_url, f"{second}-web", "cat /data/f 2>/dev/null || echo none") == "none"

        proc = run("destroy", str(files[first]), env=env)
        assert proc.returncode == 0, proc.stderr
        assert f"kept volume {first}-data on local" in proc.stdout and "--volumes" in proc.stdout
        assert stack_containers(docker_url, first) == [] and volume_or_none(docker_url, f"{first}-data")

        assert graphium.apply(str(files[first]), state=state).ok  # the data is still there
        assert exec_in(docker_url, f"{first}-web", "cat /data/f") == "kept"
        assert graphium.destroy(str(files[first]), state=state).ok

        proc = run("destroy", str(files[first]), "--volumes", env=env)  # only volumes are left
        assert proc.returncode == 0, proc.stderr
        assert "No changes" not in proc.stdout and f"remove volume {first}-data from local" in proc.stdout
        assert volume_or_none(docker_url, f"{first}-data") is None
        assert volume_or_none(docker_url, f"{second}-data") is not None  # another stack's: untouched
    finally:
        for name in files:
            remove_stack(docker_url, name)
            drop_volumes(docker_url, f"{name}-data")


def test_an_external_volume_is_used_as_named_and_never_removed(
    docker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, shared = unique_name("volx"), unique_name("shared-")
    state = tmp_path / "state.json"
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(state)}
    monkeypatch.setenv("DOCKER_HOST", docker_url)
    path = write(
        tmp_path / "s.json", stack_doc(name, [web([{"source": shared, "target": "/data", "external": True}])])
    )
    with engine(docker_url) as client:
        client.volumes.create(shared)
    try:
        assert graphium.apply(str(path), state=state).ok
        with engine(docker_url) as client:
            mounts = client.containers.get(f"{name}-web").attrs["Mounts"]
        assert [m["Name"] for m in mounts] == [shared]
        assert volume_or_none(docker_url, f"{name}-{shared}") is None
        proc = run("destroy", str(path), "--volumes", env=env)
        assert proc.returncode == 0, proc.stderr
        assert volume_or_none(docker_url, shared) is not None
    finally:
        remove_stack(docker_url, name)
        drop_volumes(docker_url, shared)


def test_volumes_on_a_lab_host_over_ssh_with_the_python_api(lab: LabInfo, tmp_path: Path) -> None:
    host = lab.host("vm1")
    name = unique_name("volssh")
    path = write(
        tmp_path / "s.json",
        stack_doc(name, [web([{"source": "data", "target": "/data"}], locatedInHost=host.id)]),
    )
    state = tmp_path / "state.json"
    try:
        assert graphium.apply(str(path), inventory=lab.inventory, state=state).ok
        volume = volume_or_none(host.docker_url, f"{name}-data")
        assert volume is not None and volume.attrs["Labels"]["graphium.stack"] == name
        kept = graphium.plan(str(path), inventory=lab.inventory, state=state)
        assert not kept.has_changes
        result = graphium.destroy(str(path), inventory=lab.inventory, state=state, volumes=True)
        assert result.ok
        assert volume_or_none(host.docker_url, f"{name}-data") is None
    finally:
        remove_stack(host.docker_url, name)
        drop_volumes(host.docker_url, f"{name}-data")
