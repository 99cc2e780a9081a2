"""history and rollback as users run them, against the lab's engine.

One stack goes through two good applies, a rollback, a failing apply (which records nothing), and
a rollback to a chosen version; each step is checked on the engine (which image, which values
the container serves) and in `history`. Secrets stay `${VAR}` in every recorded version. The
first rollback runs as a graphium-run process; the other commands run the same entry point in
this process, since starting one costs seconds on a loaded machine.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from graphium.cli.main import main
from graphium.store.json_store import JsonTaskStore
from tests.support import free_port_on, graphium_run, remove_stack, stack_containers, stack_doc, unique_name
from tests.support import write_json as write

pytestmark = pytest.mark.docker

SERVE = ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www']
SECRET = "s3cret-one-two"


def served(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode().strip())


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """``graphium-run ARGS`` in this process with ``env`` set: (exit code, stdout, stderr)."""

    def run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def stack(docker_url: str) -> Iterator[str]:
    name = unique_name("rb")
    yield name
    remove_stack(docker_url, name)


def document(name: str, port: int, msg: str, command: list[str] = SERVE) -> dict[str, Any]:
    web = {
        "name": "web",
        "image": "graphium-test/web:${TAG}",
        "command": command,
        "environment": {"MSG": msg, "APP_PASSWORD": "${APP_PASSWORD}"},
        "ports": [{"containerPort": 80, "hostPort": port}],
    }
    return stack_doc(name, [web])


def test_history_and_rollback_bring_back_earlier_versions(
    docker_url: str, stack: str, tmp_path: Path, cli: Cli
) -> None:
    port = free_port_on("127.0.0.1")
    state = tmp_path / "state.json"
    file = tmp_path / "stack.json"
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(state), "APP_PASSWORD": SECRET}

    def run(*args: str, **more: str) -> tuple[int, str, str]:
        return cli(*args, env={**env, **more})

    def running() -> tuple[str, str, dict[str, str]]:
        [container] = stack_containers(docker_url, stack)
        container.reload()
        environ = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        return container.image.tags[0], served(port), environ

    write(file, document(stack, port, "one"))
    assert run("apply", str(file), TAG="1")[0] == 0
    write(file, document(stack, port, "two"))
    saved = tmp_path / "plan.json"  # a saved plan records its version too
    assert run("plan", str(file), "-o", str(saved), TAG="2")[0] == 0
    assert run("apply", str(saved))[0] == 0
    assert running()[:2] == ("graphium-test/web:2", "two")

    # as users run it; secrets are resolved again, here, while TAG comes back as it was
    back = graphium_run("rollback", stack, env={**env, "APP_PASSWORD": "rotated"})
    assert back.returncode == 0, back.stderr
    assert "to version 1" in back.stdout and "-/+" in back.stdout and "graphium-test/web:1" in back.stdout
    image, body, environ = running()
    assert (image, body, environ["APP_PASSWORD"]) == ("graphium-test/web:1", "one", "rotated")

    write(file, document(stack, port, "three", ["sh", "-c", "exit 1"]))
    assert run("apply", str(file), TAG="2")[0] == 1
    assert running()[1] == "one"  # the failed replace put the old container back

    code, listed, _ = run("history", stack, "--json")
    versions = [json.loads(line) for line in listed.splitlines()]
    assert [(v["number"], v["kind"], v["rollbackOf"]) for v in versions] == [
        (1, "apply", None),
        (2, "apply", None),
        (3, "rollback", 1),
    ]
    assert [v["images"] for v in versions] == [{"web": f"graphium-test/web:{t}"} for t in "121"]
    assert not any(v["current"] for v in versions)  # the failed apply changed the stack since

    code, to_two, err = run("rollback", stack, "--to", "2", "--json")
    assert code == 0, err
    assert running()[:2] == ("graphium-test/web:2", "two")

    code, table, _ = run("history", str(file))  # a stack file names its stack too
    lines = table.splitlines()
    assert code == 0 and len(lines) == 5 and "VERSION" in lines[0] and lines[-1].startswith("*")
    assert "rollback to 2" in lines[-1] and "web=graphium-test/web:2" in lines[-1]
    assert SECRET not in listed + to_two + table
    with JsonTaskStore(state) as store:
        recorded = json.dumps([v.dump() for v in store.list_versions(stack)])
    assert SECRET not in recorded and "rotated" not in recorded and "${APP_PASSWORD}" in recorded


def test_rollback_refuses_clearly_and_touches_nothing(
    docker_url: str, stack: str, tmp_path: Path, cli: Cli
) -> None:
    port = free_port_on("127.0.0.1")
    state = tmp_path / "state.json"
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(state), "TAG": "1"}
    code, _, err = cli("rollback", stack, env=env)
    assert code == 1 and "no recorded versions" in err
    assert not state.exists()
    file = write(tmp_path / "stack.json", document(stack, port, "one"))
    assert cli("apply", str(file), env={**env, "APP_PASSWORD": "x"})[0] == 0
    code, _, err = cli("rollback", stack, env=env)
    assert code == 1 and "no earlier version" in err
    code, _, err = cli("rollback", stack, "--to", "1", env=env)  # APP_PASSWORD is not set here
    assert code == 1 and "APP_PASSWORD is not set" in err
    code, _, err = cli("rollback", stack, "--to", "9", env=env)
    assert code == 1 and "no version 9" in err and "Traceback" not in err
    assert len(stack_containers(docker_url, stack)) == 1


def test_rollback_over_ssh_puts_each_replica_back_on_its_host(lab: Any, tmp_path: Path, cli: Cli) -> None:
    hosts = [h for h in json.loads(Path(lab.inventory).read_text())["hosts"] if h["@id"] in ("vm1", "vm2")]
    inventory = write(tmp_path / "hosts.json", {"hosts": hosts})
    engines = {h["@id"]: h["dockerHost"] for h in hosts}
    name = unique_name("rbs")
    web = {"name": "web", "image": "graphium-test/web:${TAG}", "replicas": 2}
    file = write(tmp_path / "stack.json", stack_doc(name, [web], deployment={"placementStrategy": "spread"}))
    env = {"GRAPHIUM_STATE": str(tmp_path / "state.json")}

    def images() -> dict[str, tuple[str, str]]:
        found = {}
        for host, url in engines.items():
            for container in stack_containers(url, name):
                found[container.labels["graphium.container"]] = (host, container.attrs["Config"]["Image"])
        return found

    try:
        assert cli("apply", str(file), "-i", str(inventory), env={**env, "TAG": "1"})[0] == 0
        first = images()
        assert {host for host, _ in first.values()} == {"vm1", "vm2"}
        assert cli("apply", str(file), "-i", str(inventory), env={**env, "TAG": "2"})[0] == 0
        assert {image for _, image in images().values()} == {"graphium-test/web:2"}
        code, out, err = cli("rollback", name, env=env)  # the hosts: the inventory version 1 used
        assert code == 0, out + err
        assert images() == first
    finally:
        for url in engines.values():
            remove_stack(url, name)
