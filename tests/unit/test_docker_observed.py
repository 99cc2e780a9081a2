"""Reading inspects, from data: tests/data/docker/inspect/<case>/{inspect.json, expected.json}.

``inspect.json`` is a container inspect (two were captured from a real engine, the others are the
odd shapes engines and users produce); ``expected.json`` is the ObservedContainer graphium reads
from it on host ``h1``, live config included. Expectations are validated as ObservedContainer, so
an unknown or misspelled key fails instead of being ignored, and fields left out must hold their
defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.docker.observed import clip, crash_report, last_health, live_config, observed_container
from graphium.plan.model import ObservedContainer

CASES = sorted((Path(__file__).resolve().parent.parent / "data" / "docker" / "inspect").iterdir())


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_observed_container_from_inspect(case: Path) -> None:
    assert {p.name for p in case.iterdir()} == {"inspect.json", "expected.json"}
    expected = ObservedContainer.model_validate(_read(case / "expected.json"))
    info = _read(case / "inspect.json")
    observed = observed_container(info, "h1")
    assert observed == expected
    assert live_config(info) == expected.live


def test_a_misspelled_expectation_is_refused() -> None:
    expected = _read(CASES[0] / "expected.json")
    expected["live"]["portBinding"] = []
    with pytest.raises(ValueError, match="portBinding"):
        ObservedContainer.model_validate(expected)


def test_crash_report_quotes_exit_code_error_health_and_logs() -> None:
    state = {
        "Status": "exited",
        "ExitCode": 3,
        "Error": "oom",
        "Health": {"Status": "unhealthy", "Log": [{"ExitCode": 1, "Output": "connection refused\n"}]},
    }
    assert crash_report(state, "bye") == (
        "exited with code 3; error: oom; last health check: exit code 1, output: connection refused"
        "; logs: bye"
    )
    assert crash_report({"Status": "restarting", "ExitCode": 137}, "") == (
        "crashed and is restarting (last exit code 137)"
    )


def test_last_health_before_any_check_and_long_output_clipped() -> None:
    assert last_health(None) == "no check has run yet"
    assert last_health({"Log": []}) == "no check has run yet"
    long = "x" * 500 + "END"
    quoted = last_health({"Log": [{"ExitCode": 2, "Output": long}]})
    assert quoted.startswith("exit code 2, output: …") and quoted.endswith("END")
    assert len(clip(long, 10)) == 11
