"""graphium-run as users and CI pipelines run it: real processes, exit codes, stderr, NDJSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import graphium_run as run
from tests.support import stack_containers, stack_doc, unique_name
from tests.support import write_json as write

ROOT = Path(__file__).resolve().parents[2]


def test_invalid_stack_lists_every_problem_with_file_and_path(tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.json",
        stack_doc(
            "s",
            [
                {
                    "name": "a",
                    "ports": [{"containerPort": 80, "hostPort": 70000}],
                    "dependsOn": ["ghost"],
                },
                {"name": "a", "image": "x", "restartPolicy": "sometimes"},
            ],
        ),
    )
    proc = run("validate", str(bad))
    assert proc.returncode == 1
    err = proc.stderr
    assert "Traceback" not in err
    assert f"{bad}" in err
    for fragment in ("hasPart[0]", "image", "hostPort", "ghost", "duplicate", "restartPolicy"):
        assert fragment in err, (fragment, err)


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "@graph": [\n    {"name": "x",,}\n  ]\n}\n')
    proc = run("plan", str(bad))
    assert proc.returncode == 1 and "broken.json:3:" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_host_is_refused_before_touching_anything(tmp_path: Path) -> None:
    stack = ROOT / "examples" / "nginx-multihost.jsonld"
    proc = run("plan", str(stack), "--state", str(tmp_path / "s.json"))
    assert proc.returncode == 1
    assert "vm1" in proc.stderr and "locatedInHost" in proc.stderr
    assert not (tmp_path / "s.json").exists()


def test_saved_plan_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    saved = tmp_path / "old-plan.json"
    write(saved, {"schemaVersion": 1, "stack": "web", "fingerprint": "x", "tasks": [], "actions": []})
    proc = run("apply", str(saved), env={"GRAPHIUM_STATE": str(tmp_path / "state.json")})
    assert proc.returncode == 1
    assert "schema version 1" in proc.stderr and "plan again" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state.json").exists()  # refused before the store was opened


def test_missing_variable_is_an_error_at_plan_time(tmp_path: Path) -> None:
    stack = write(
        tmp_path / "s.json",
        stack_doc(
            "v",
            [
                {
                    "name": "a",
                    "image": "x",
                    "environment": {"JWT_SECRET": "${GRAPHIUM_TEST_UNSET_VAR}"},
                }
            ],
        ),
    )
    assert run("validate", str(stack)).returncode == 0
    proc = run("plan", str(stack), "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1 and "GRAPHIUM_TEST_UNSET_VAR" in proc.stderr


def test_usage_errors_exit_1_in_a_real_process(tmp_path: Path) -> None:
    """2 means "changes present" under --detailed-exitcode; a usage error must never look like it
    (tests/unit/test_cli_input.py covers every kind in-process)."""
    stack = write(tmp_path / "s.json", stack_doc("u", [{"name": "a", "image": "x"}]))
    proc = run("plan", str(stack), "--detailed-exitcod", "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1 and "Did you mean '--detailed-exitcode'?" in proc.stderr
    proc = run("plan", str(tmp_path / "missing.yaml"), "--detailed-exitcode")
    assert proc.returncode == 1 and "cannot read stack file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "state.json").exists()


def test_yaml_problems_as_ndjson_from_a_real_process(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        '"@context": https://schema.org\n"@graph":\n  - "@type": Stack\n    name: s\n    hasPart:\n'
        "      - name: a\n        imgae: busybox\n        ports: [{containerPort: 80, hostIP: localhost}]\n"
    )
    proc = run("plan", str(bad), "--json", "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "imgae" in proc.stderr
    problems = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {(p["schema_version"], p["type"], p["severity"], p["file"]) for p in problems} == {
        (1, "problem", "error", str(bad))
    }
    unknown = next(p for p in problems if "imgae" in p["message"])
    assert unknown["path"] == '$["@graph"][0].hasPart[0].imgae' and (unknown["line"], unknown["column"]) == (
        7,
        9,
    )
    assert "did you mean 'image'?" in unknown["message"]
    assert any(p["path"].endswith("hostIP") and "IP address" in p["message"] for p in problems)
    assert not (tmp_path / "state.json").exists()
    proc = run("validate", str(ROOT / "examples" / "simple-nginx.yaml"))
    assert proc.returncode == 0 and "simple-nginx is valid" in proc.stdout, proc.stderr


@pytest.mark.docker
def test_plan_apply_status_destroy_with_exit_codes_and_json(docker_url: str, tmp_path: Path) -> None:
    name = unique_name("c")
    stack = write(
        tmp_path / "stack.json",
        stack_doc(
            name,
            [
                {
                    "name": "web",
                    "image": "graphium-test/web:1",
                    "environment": {"DB_PASSWORD": "${PW}"},
                }
            ],
        ),
    )
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json"), "PW": "pa55-word"}

    proc = run("plan", str(stack), "--detailed-exitcode", "-o", str(tmp_path / "plan.json"), env=env)
    assert proc.returncode == 2, proc.stderr
    assert "+" in proc.stdout and "DB_PASSWORD=(sensitive)" in proc.stdout and "pa55-word" not in proc.stdout
    assert oct((tmp_path / "plan.json").stat().st_mode & 0o777) == "0o600"

    proc = run("apply", str(tmp_path / "plan.json"), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert all(obj["schema_version"] == 1 for obj in lines)
    types = [obj["type"] for obj in lines]
    assert types[0] == "plan" and types[-1] == "result" and "stack_running" in types
    assert "pa55-word" not in proc.stdout

    proc = run("plan", str(stack), "--detailed-exitcode", env=env)
    assert proc.returncode == 0 and "No changes" in proc.stdout

    proc = run("status", name, "--json", env=env)
    status = json.loads(proc.stdout)
    assert status["status"] == "running" and status["placements"]["web"]["hostId"] == "local"
    tasks = run("tasks", "list", "--json", env=env).stdout
    assert "pa55-word" not in tasks and '"payload"' not in tasks
    assert json.loads(run("tasks", "stats", "--json", env=env).stdout)["completed"] == 2

    proc = run("destroy", str(stack), env=env)
    assert proc.returncode == 0, proc.stderr
    assert stack_containers(docker_url, name) == []
    assert "No stacks" in run("status", env=env).stdout
