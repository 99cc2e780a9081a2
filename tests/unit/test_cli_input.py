"""graphium-run in-process on bad input and usage errors: exit codes, stderr, NDJSON problems.

Nothing here reaches a host: every case fails (or validates) before the store or an engine is
opened. tests/integration/test_cli.py runs the same paths in real processes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.cli.main import main

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
        raise SystemExit(0)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def _stack(tmp_path: Path, containers: list[dict[str, Any]], **stack: Any) -> str:
    path = tmp_path / "s.json"
    node = {"@type": "Stack", "name": "s", "hasPart": containers, **stack}
    path.write_text(json.dumps({"@context": "https://schema.org", "@graph": [node]}, indent=1))
    return str(path)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["plan", "{tmp}/missing.jsonld", "--detailed-exitcode"], "cannot read stack file"),
        (["validate", "{tmp}/missing.yaml"], "cannot read stack file"),
        (["apply", "{tmp}/missing.jsonld"], "does not exist"),
        (["destroy", "{tmp}/missing.jsonld"], "does not exist"),
        (["plan", "{stack}", "--detailed-exitcod"], "Did you mean '--detailed-exitcode'?"),
        (["plan", "{stack}", "--parallelism", "0"], "--parallelism"),
        (["plna", "{stack}"], "No such command"),
        (["plan"], "Missing argument"),
        (["plan", "{stack}", "-i", "{tmp}/missing-hosts.json"], "cannot read inventory"),
        (["apply", "{stack}", "--server", "https://127.0.0.1:9"], "--server needs an admin token"),
    ],
    ids=[
        "plan-missing",
        "validate-missing",
        "apply-missing",
        "destroy-missing",
        "flag",
        "bad-value",
        "command",
        "argument",
        "inventory-missing",
        "usage-error-raised-by-a-command",
    ],
)
def test_usage_errors_exit_1_never_2(
    argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(tmp_path, [{"name": "a", "image": "x"}])
    state = ["--state", str(tmp_path / "state.json")] if len(argv) > 1 and argv[0] != "plna" else []
    code, _, err = _run(capsys, *[a.format(tmp=tmp_path, stack=stack) for a in argv], *state)
    assert code == 1, err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "state.json").exists()


def test_help_and_version_still_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "--help")[0] == 0 and _run(capsys, "plan", "--help")[0] == 0
    assert _run(capsys, "--version")[0] == 0


def _problems(out: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(line["schema_version"] == 1 and line["type"] == "problem" for line in lines)
    return lines


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_json_problems_one_line_each_with_file_path_position_and_suggestion(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(
        tmp_path,
        [
            {
                "name": "a",
                "imgae": "x",
                "ports": [{"containerPort": 80, "hostIP": "localhost"}],
                "replicas": 10000,
            }
        ],
    )
    code, out, err = _run(capsys, command, stack, "--json", "--state", str(tmp_path / "state.json"))
    assert code == 1 and "Traceback" not in err
    problems = _problems(out)
    assert len(problems) == 4 and all(p["severity"] == "error" and p["file"] == stack for p in problems)
    by_path = {p["path"].removeprefix('$["@graph"][0].hasPart[0]'): p for p in problems}
    assert set(by_path) == {"", ".imgae", ".ports[0].hostIP", ".replicas"}
    assert "did you mean 'image'?" in by_path[".imgae"]["message"]
    assert all(isinstance(p["line"], int) and isinstance(p["column"], int) for p in problems)
    assert len(err.splitlines()) == 5  # the same problems for people, after a summary line
    assert not (tmp_path / "state.json").exists()


def test_json_problems_of_an_inventory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack = _stack(tmp_path, [{"name": "a", "image": "x"}])
    inventory = DATA / "inventories" / "bad" / "array.json"
    code, out, _ = _run(capsys, "validate", stack, "-i", str(inventory), "--json")
    assert code == 1
    [problem] = _problems(out)
    assert problem["file"] == str(inventory) and problem["path"] == "$" and "'hosts'" in problem["message"]


def test_warnings_are_problem_lines_too_and_validation_still_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(tmp_path, [{"name": "a", "image": "x", "environment": {"DB_PASSWORD": "hunter2"}}])
    code, out, err = _run(capsys, "validate", stack, "--json")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["type"] for line in lines] == ["problem", "validate"]
    assert lines[0]["severity"] == "warning" and "DB_PASSWORD" in lines[0]["path"] and lines[0]["line"] == 12
    assert "hunter2" not in out


def test_an_empty_stack_needs_haspart_and_gets_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.json"
    path.write_text(
        json.dumps({"@context": "https://schema.org", "@graph": [{"@type": "Stack", "name": "e"}]})
    )
    code, _, err = _run(capsys, "validate", str(path))
    assert code == 1 and 'explicit "hasPart": []' in err
    path.write_text(
        json.dumps(
            {"@context": "https://schema.org", "@graph": [{"@type": "Stack", "name": "e", "hasPart": []}]}
        )
    )
    code, out, err = _run(capsys, "validate", str(path))
    assert code == 0 and "warning:" in err and "no containers" in err and "valid" in out


def test_problems_found_after_loading_carry_positions_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = _stack(tmp_path, [{"name": "a", "image": "x", "locatedInHost": "ghost"}])
    code, out, _ = _run(capsys, "plan", stack, "--json", "--state", str(tmp_path / "state.json"))
    [unknown] = _problems(out)
    assert code == 1 and "unknown host 'ghost'" in unknown["message"] and unknown["line"] == 11
    stack = _stack(
        tmp_path, [{"name": "a", "image": "x", "environment": {"A": "${GRAPHIUM_TEST_SURELY_UNSET}"}}]
    )
    code, out, _ = _run(capsys, "plan", stack, "--json", "--state", str(tmp_path / "state.json"))
    [unset] = _problems(out)
    assert code == 1 and "GRAPHIUM_TEST_SURELY_UNSET" in unset["message"] and unset["line"] == 12
    assert not (tmp_path / "state.json").exists()
