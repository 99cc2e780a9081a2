"""Conflicts with what else runs on a host, refused at plan time on real engines: `plan` and
`apply` exit 1 naming the host, the culprit and what to do, and nothing is touched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors

from lab import LabInfo
from tests.support import free_port_on, remove_stack, stack_containers, stack_doc, stack_networks, unique_name
from tests.support import graphium_run as run
from tests.support import write_json as write

IMAGE = "graphium-test/web:1"


@contextlib.contextmanager
def foreign(url: str, name: str, **options: Any) -> Iterator[Any]:
    """A container graphium does not manage, removed afterwards."""
    client = docker.DockerClient(base_url=url, version="auto", timeout=30)
    container = client.containers.run(IMAGE, name=name, detach=True, **options)
    try:
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
        client.close()


def test_a_container_of_the_same_name_not_graphiums_fails_plan_and_apply(
    docker_url: str, tmp_path: Path
) -> None:
    name = unique_name("cfn")
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    path = write(tmp_path / "s.json", stack_doc(name, [{"name": "web", "image": IMAGE}]))
    with foreign(docker_url, f"{name}-web") as squatter:
        try:
            proc = run("plan", str(path), env=env)
            assert proc.returncode == 1, proc.stdout
            for fragment in (f"local: a container named {name}-web", "graphium does not manage it",
                             f"docker rm -f {name}-web", "nothing was changed"):  # fmt: skip
                assert fragment in proc.stderr, (fragment, proc.stderr)
            assert "Traceback" not in proc.stderr

            proc = run("apply", str(path), env=env)
            assert proc.returncode == 1 and f"a container named {name}-web" in proc.stderr, proc.stderr
            assert stack_networks(docker_url, name) == [] and stack_containers(docker_url, name) == []
            squatter.reload()
            assert squatter.status == "running"  # untouched
        finally:
            remove_stack(docker_url, name)


def test_a_port_taken_after_the_plan_was_saved_refuses_the_apply(docker_url: str, tmp_path: Path) -> None:
    name = unique_name("cfs")
    port = free_port_on("127.0.0.1")
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    web = {"name": "web", "image": IMAGE, "ports": [{"containerPort": 80, "hostPort": port}]}
    path = write(tmp_path / "s.json", stack_doc(name, [web]))
    saved = tmp_path / "plan.json"
    try:
        assert run("plan", str(path), "-o", str(saved), env=env).returncode == 0
        with foreign(docker_url, unique_name("squat"), ports={"80/tcp": port}) as squatter:
            proc = run("apply", str(saved), env=env)
            assert proc.returncode == 1, proc.stdout
            assert f"host port {port}/tcp of web" in proc.stderr and squatter.name in proc.stderr
            assert stack_networks(docker_url, name) == [] and stack_containers(docker_url, name) == []
    finally:
        remove_stack(docker_url, name)


def test_a_published_port_and_a_missing_external_volume_on_a_lab_host_over_ssh(
    lab: LabInfo, tmp_path: Path
) -> None:
    host = lab.host("vm1")
    name = unique_name("cfl")
    port = free_port_on(host.address)
    missing = unique_name("nosuchvolume")
    web = {
        "name": "web",
        "image": IMAGE,
        "locatedInHost": host.id,
        "ports": [{"containerPort": 80, "hostPort": port}],
        "mounts": [{"source": missing, "target": "/data", "external": True}],
    }
    path = write(tmp_path / "s.json", stack_doc(name, [web]))
    state = str(tmp_path / "state.json")
    with foreign(host.docker_url, unique_name("proxy"), ports={"80/tcp": port}) as squatter:
        try:
            proc = run("plan", str(path), "-i", str(lab.inventory), "--state", state)
            assert proc.returncode == 1, proc.stdout
            err = proc.stderr
            assert "2 conflict(s)" in err, err
            assert f"vm1: host port {port}/tcp of web is already published by container" in err
            assert f"{squatter.name} (not managed by graphium)" in err
            assert "another hostPort" in err
            assert f"vm1: external volume {missing}, mounted by web at /data, does not exist" in err
            assert f"docker volume create {missing}" in err
            assert stack_networks(host.docker_url, name) == []
        finally:
            remove_stack(host.docker_url, name)
