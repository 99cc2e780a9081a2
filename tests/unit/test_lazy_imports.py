"""Commands import only what they use (issue 10, fast start-up): the heavy libraries behind the
web server, the HTTP client, JSON-LD processing, the engines, SSH, PostgreSQL and the terminal
renderer are imported by the commands that need them and by no other.

Each case runs ``graphium-run`` (or an import) in a fresh interpreter and reads which of those
libraries are in ``sys.modules`` when it exits. The last test proves that the names checked are
the real ones: the modules that use each library do import it. Time is measured by
``benchmarks/bench_startup.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import stack_doc, write_json

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "httpx",
    "pyld",
    "docker",
    "asyncssh",
    "psycopg",
    "rich",
)

# Runs graphium-run's entry point with the arguments given, and writes the heavy libraries that
# are imported when the process exits (whatever its exit code) to the file $LOADED_TO.
_CLI = """
import atexit, json, os, sys
def _dump():
    with open(os.environ["LOADED_TO"], "w") as fh:
        json.dump(sorted({name.split(".")[0] for name in sys.modules}), fh)
atexit.register(_dump)
from graphium.cli.main import main
main(sys.argv[1:])
"""


def loaded_by(tmp_path: Path, *args: str, code: str = _CLI, env: dict[str, str] | None = None) -> set[str]:
    """The heavy libraries imported by ``graphium-run ARGS`` (or by ``code``) in a new process."""
    out = tmp_path / "loaded.json"
    environ = {**os.environ, "LOADED_TO": str(out), "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**environ, **(env or {})},
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    return set(json.loads(out.read_text())) & set(HEAVY)


def imports_of(tmp_path: Path, statement: str) -> set[str]:
    code = f"{statement}\n{_CLI.split('from graphium.cli.main')[0]}"
    return loaded_by(tmp_path, code=code)


@pytest.fixture
def small_stack(tmp_path: Path) -> Path:
    """The examples' plain spelling: the schema.org context, one stack node, one container."""
    web = {"name": "web", "image": "nginx:alpine", "ports": [{"containerPort": 80, "hostPort": 8080}]}
    return write_json(tmp_path / "small.json", stack_doc("small", [web]))


def test_import_graphium_and_the_cli_import_no_heavy_library(tmp_path: Path) -> None:
    assert imports_of(tmp_path, "import graphium, graphium.cli.main") == set()


def test_version_imports_no_heavy_library(tmp_path: Path) -> None:
    assert loaded_by(tmp_path, "--version") == set()


def test_validate_of_a_plain_stack_imports_no_heavy_library(tmp_path: Path, small_stack: Path) -> None:
    """The schema.org context and graphium's are plain: expanded without pyld."""
    for args in (["validate", str(small_stack)], ["validate", "--json", str(small_stack)]):
        assert loaded_by(tmp_path, *args) == set(), args


def test_a_document_beyond_plain_json_ld_is_expanded_by_pyld(tmp_path: Path) -> None:
    web = {"name": "web", "image": "nginx:alpine"}
    doc = {
        "@context": {"@vocab": "http://schema.org/", "type": "@type"},  # a keyword alias
        "@graph": [{"type": "datacenter:Stack", "name": "s", "hasPart": [web]}],
    }
    assert loaded_by(tmp_path, "validate", str(write_json(tmp_path / "alias.json", doc))) == {"pyld"}


def test_local_plan_imports_docker_py_only(tmp_path: Path, small_stack: Path) -> None:
    """A plan on the local engine observes it through docker-py; SSH, the server's client and the
    web server stay out (the engine here is absent: the plan fails, its imports are still read)."""
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    loaded = loaded_by(tmp_path, "plan", "--json", str(small_stack), env=env)
    assert loaded == {"docker"}


def test_the_modules_that_use_each_library_do_import_it(tmp_path: Path) -> None:
    """The other tests could fail: these are the names the adapters really import."""
    # beyond loopback without TLS, serve refuses before binding, once it has imported the server
    served = loaded_by(tmp_path, "serve", "--host", "0.0.0.0", "--tokens", str(tmp_path / "t.json"))
    assert {"fastapi", "starlette", "uvicorn", "jinja2"} <= served
    assert "httpx" in imports_of(tmp_path, "import graphium.control.client")
    assert "docker" in imports_of(tmp_path, "import graphium.docker.engine")
    assert "asyncssh" in imports_of(tmp_path, "import graphium.executors.ssh")
    assert "rich" in imports_of(tmp_path, "import graphium.cli.output")
    assert "psycopg" in imports_of(tmp_path, "import graphium.store.postgres")
    assert "pyld" in imports_of(
        tmp_path, "from graphium.stack.jsonld import expand_reference; expand_reference({'@id': 'x'})"
    )
