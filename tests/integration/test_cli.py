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


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("plan", "{tmp}/missing.jsonld", "--detailed-exitcode"), "cannot read stack file"),
        (("apply", "{tmp}/missing.jsonld"), "does not exist"),
        (("plan", "{stack}", "--detailed-exitcod"), "Did you mean '--detailed-exitcode'?"),
        (("plan", "{stack}", "--parallelism", "0"), "--parallelism"),
        (("plna", "{stack}"), "No such command"),
    ],
    ids=["plan-missing", "apply-missing", "flag", "bad-value", "command"],
)
def test_usage_errors_exit_1_never_2_which_means_changes_present(
    args: tuple[str, ...], says: str, tmp_path: Path
) -> None:
    stack = write(tmp_path / "s.json", stack_doc("u", [{"name": "a", "image": "x"}]))
    argv = [a.format(tmp=tmp_path, stack=stack) for a in args]
    proc = run(*argv, "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "state.json").exists()


def _ndjson(stdout: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert all(obj["schema_version"] == 1 for obj in lines)
    return lines


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_json_problems_are_ndjson_with_file_path_line_and_a_suggestion(command: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        '"@context": https://schema.org\n"@graph":\n  - "@type": Stack\n    name: s\n    hasPart:\n'
        "      - name: a\n        imgae: busybox\n        ports: [{containerPort: 80, hostIP: localhost}]\n"
    )
    proc = run(command, str(bad), "--json", "--state", str(tmp_path / "state.json"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    problems = _ndjson(proc.stdout)
    assert {p["type"] for p in problems} == {"problem"} and {p["severity"] for p in problems} == {"error"}
    assert all(p["file"] == str(bad) and str(p["path"]).startswith("$") for p in problems)
    unknown = next(p for p in problems if "imgae" in str(p["message"]))
    assert unknown["path"] == '$["@graph"][0].hasPart[0].imgae' and (unknown["line"], unknown["column"]) == (
        7,
        9,
    )
    assert "did you mean 'image'?" in str(unknown["message"])
    assert "imgae" in proc.stderr  # people read the same problems on stderr
    assert not (tmp_path / "state.json").exists()


def test_validate_json_reports_warnings_as_problem_lines(tmp_path: Path) -> None:
    stack = write(
        tmp_path / "s.json",
        stack_doc("w", [{"name": "a", "image": "x", "environment": {"DB_PASSWORD": "hunter2"}}]),
    )
    proc = run("validate", str(stack), "--json")
    assert proc.returncode == 0, proc.stderr
    lines = _ndjson(proc.stdout)
    assert [line["type"] for line in lines] == ["problem", "validate"]
    assert lines[0]["severity"] == "warning" and "DB_PASSWORD" in str(lines[0]["path"])


@pytest.mark.parametrize(
    ("stack", "inventory", "says"),
    [
        (
            "stacks/bad/all-at-once.jsonld",
            None,
            ["hostIP must be an IP address", "whole host", "at most 1000"],
        ),
        ("stacks/bad/stack-without-haspart.jsonld", None, ['explicit "hasPart": []']),
        ("stacks/good/minimal.jsonld", "inventories/bad/array.json", ["expected an object with 'hosts'"]),
    ],
    ids=["all-at-once", "no-haspart", "inventory-array"],
)
def test_bad_input_exits_1_naming_file_path_and_expectation_touching_nothing(
    stack: str, inventory: str | None, says: list[str], tmp_path: Path
) -> None:
    data = ROOT / "tests" / "data"
    extra = ["-i", str(data / inventory)] if inventory else []
    proc = run(
        "plan", str(data / stack), *extra, "--state", str(tmp_path / "state.json"), "--detailed-exitcode"
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(data / (inventory or stack)) in proc.stderr and "$" in proc.stderr
    for fragment in says:
        assert fragment in proc.stderr, (fragment, proc.stderr)
    assert not (tmp_path / "state.json").exists()


def test_yaml_stack_validates_like_its_json_twin(tmp_path: Path) -> None:
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
