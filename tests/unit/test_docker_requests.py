"""The Docker create requests, from data: tests/data/docker/create/<case>/ and network/<case>/.

A create case holds ``desired.json`` (a DesiredContainer; ``stack``, ``host``, ``network``, hashes
and the instance names default to a small stack ``shop`` on host ``h1``) and ``expected.json``, the
exact request: ``name`` and the ``config`` body of ``POST /containers/create``. A network case
holds ``payload.json`` (an ensure-network payload) and ``expected.json`` with the ``body`` of
``POST /networks/create``. The bodies are compared whole, as JSON, so a key graphium would send
but the file does not list fails as surely as a misspelled one; keys outside the request's own are
refused by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.docker.requests import container_create, network_create
from graphium.plan.model import DesiredContainer
from graphium.plan.payloads import NetworkPayload, payload_problems
from graphium.records.task import TaskType
from graphium.stack.models import NetworkSpec

DATA = Path(__file__).resolve().parent.parent / "data" / "docker"
CREATE_CASES = sorted(p for p in (DATA / "create").iterdir() if p.is_dir())
NETWORK_CASES = sorted(p for p in (DATA / "network").iterdir() if p.is_dir())

_DEFAULTS: dict[str, Any] = {
    "stack": "shop",
    "host": "h1",
    "network": {"name": "shop-net"},
    "pullPolicy": "if-not-present",
    "specHash": "v1:abc",
    "fieldHashes": {},
}


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _expected(case: Path, keys: set[str]) -> dict[str, Any]:
    expected = _read(case / "expected.json")
    unknown = set(expected) - keys
    assert not unknown, f"{case.name}/expected.json: unknown keys {sorted(unknown)} (allowed: {sorted(keys)})"
    return dict(expected)


def desired_from(data: dict[str, Any]) -> DesiredContainer:
    """A DesiredContainer from a fixture: unknown keys are refused, as in a real payload."""
    name = data["spec"]["name"]
    return DesiredContainer.model_validate({**_DEFAULTS, "name": name, "declaredName": name, **data})


@pytest.mark.parametrize("case", CREATE_CASES, ids=[c.name for c in CREATE_CASES])
def test_container_create_request(case: Path) -> None:
    expected = _expected(case, {"name", "config"})
    request = container_create(desired_from(_read(case / "desired.json")))
    # compared as JSON: what goes on the wire, not Python objects that merely compare equal
    assert json.loads(json.dumps(request.dump())) == expected


@pytest.mark.parametrize("case", NETWORK_CASES, ids=[c.name for c in NETWORK_CASES])
def test_network_create_request(case: Path) -> None:
    expected = _expected(case, {"body"})
    request = network_create(NetworkPayload.model_validate(_read(case / "payload.json")))
    assert json.loads(json.dumps(request.dump())) == expected
    assert request.name == expected["body"]["Name"]


def test_every_case_directory_is_complete() -> None:
    """A case missing its expectation (or its input) must not be skipped silently."""
    for case in CREATE_CASES:
        assert {p.name for p in case.iterdir()} == {"desired.json", "expected.json"}, case
    for case in NETWORK_CASES:
        assert {p.name for p in case.iterdir()} == {"payload.json", "expected.json"}, case
    assert len(CREATE_CASES) >= 10 and len(NETWORK_CASES) >= 3


def test_a_misspelled_fixture_key_is_refused() -> None:
    with pytest.raises(ValueError, match="pullPolicyy"):
        desired_from({"spec": {"name": "web", "image": "nginx"}, "pullPolicyy": "never"})


def test_the_set_network_name_is_used_and_none_is_made_up() -> None:
    desired = desired_from({"spec": {"name": "web", "image": "nginx"}, "network": {"name": "backbone"}})
    config = container_create(desired).config
    assert config["HostConfig"]["NetworkMode"] == "backbone"
    assert list(config["NetworkingConfig"]["EndpointsConfig"]) == ["backbone"]
    with pytest.raises(ValueError, match="name must be set"):  # refused before any request is built
        container_create(desired_from({"spec": {"name": "web", "image": "nginx"}, "network": {}}))
    with pytest.raises(ValueError, match="no name"):
        network_create(NetworkPayload.model_construct(stack="shop", network=NetworkSpec()))


@pytest.mark.parametrize(
    ("task_type", "payload", "where"),
    [
        (TaskType.ensure_network, {"stack": "shop", "network": {}}, "$.payload.network"),
        (
            TaskType.deploy,
            {
                "container": {
                    **_DEFAULTS,
                    "name": "web",
                    "declaredName": "web",
                    "network": {},
                    "spec": {"name": "web", "image": "nginx"},
                }
            },
            "$.payload.container.network",
        ),
    ],
    ids=["ensure-network", "deploy"],
)
def test_a_payload_with_an_unnamed_network_is_refused(task_type: TaskType, payload: Any, where: str) -> None:
    problems = payload_problems(task_type, payload)
    assert [p.path for p in problems] == [where]
    assert "name must be set" in problems[0].message


def test_the_request_is_rebuilt_equal_and_the_desired_state_is_not_touched() -> None:
    """Pure: the same input gives the same request, and building it changes nothing."""
    desired = desired_from(_read(DATA / "create" / "ports-tcp-udp-host-ip" / "desired.json"))
    before = desired.dump()
    first, second = container_create(desired), container_create(desired)
    assert first == second
    first.config["HostConfig"]["PortBindings"].clear()
    assert desired.dump() == before
