"""Conflicts with the hosts at plan time, from data: tests/data/conflicts/<case>/.

A case holds ``stack.json`` (a StackSpec), ``inventory.json``, ``observed.json`` (host id ->
ObservedHost: the other containers and the volumes found) and ``expected.json``: ``conflicts``,
one list of fragments per expected conflict, each fragment found in that conflict's sentence (the
host, the culprit, what to do). The count must match exactly, and the plan must be refused with
every conflict in its error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.docker.observed import split_containers
from graphium.errors import ConflictError, PlanError
from graphium.plan.conflicts import find_conflicts
from graphium.plan.model import ObservedHost
from graphium.plan.planner import expand, plan_apply
from graphium.stack.models import Inventory, StackSpec

CASES_DIR = Path(__file__).resolve().parent.parent / "data" / "conflicts"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())


def _read(case: Path, name: str) -> Any:
    return json.loads((case / name).read_text())


def _inputs(case: Path) -> tuple[StackSpec, Inventory, dict[str, ObservedHost]]:
    stack = StackSpec.model_validate(_read(case, "stack.json"))
    inventory = Inventory.model_validate(_read(case, "inventory.json"))
    observed = {h: ObservedHost.model_validate(o) for h, o in _read(case, "observed.json").items()}
    return stack, inventory, observed


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conflicts(case: Path) -> None:
    expected = _read(case, "expected.json")
    assert set(expected) == {"conflicts"}
    stack, inventory, observed = _inputs(case)
    found = find_conflicts(expand(stack, inventory), observed)
    assert len(found) == len(expected["conflicts"]), found
    for fragments in expected["conflicts"]:
        matching = [line for line in found if all(f in line for f in fragments)]
        assert len(matching) == 1, f"{fragments} in {found}"
    if not found:
        plan_apply(stack, inventory, observed)  # plans without complaint
        return
    with pytest.raises(ConflictError) as raised:
        plan_apply(stack, inventory, observed)
    message = str(raised.value)
    assert isinstance(raised.value, PlanError) and raised.value.exit_code == 1
    assert "nothing was changed" in message
    assert all(line in message for line in found)


def test_the_engine_list_splits_into_the_stacks_and_the_others() -> None:
    """From ``GET /containers/json?all=1``: the stack's ids to inspect; the rest as conflicts
    could come from (name, owner, published ports only)."""
    summaries = [
        {"Id": "a" * 64, "Names": ["/shop-web"], "State": "running", "Ports": [],
         "Labels": {"graphium.managed": "true", "graphium.stack": "shop"}},
        {"Id": "b" * 64, "Names": ["/other-web"], "State": "running",
         "Labels": {"graphium.managed": "true", "graphium.stack": "other"},
         "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                   {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                   {"PrivatePort": 443, "Type": "tcp"}]},
        {"Id": "c" * 64, "Names": ["/hand-made"], "State": "exited", "Labels": {"graphium.stack": "shop"}},
    ]  # fmt: skip
    mine, others = split_containers(summaries, "shop")
    assert mine == ["a" * 64]
    assert [(o.docker_name, o.stack, o.state) for o in others] == [
        ("hand-made", None, "exited"),  # a graphium.stack label without graphium.managed is not ours
        ("other-web", "other", "running"),
    ]
    assert others[1].port_bindings == ["80/tcp->0.0.0.0:8080", "80/tcp->:::8080"]
    everything, _ = split_containers(summaries, None)
    assert everything == ["a" * 64, "b" * 64]


def test_an_agent_observation_of_every_stack_puts_other_stacks_among_the_others() -> None:
    observed = ObservedHost.model_validate(
        {
            "host": "vm1",
            "containers": [
                {"id": "1", "dockerName": "shop-web", "host": "vm1", "stack": "shop", "name": "web",
                 "live": {"state": "running"}},
                {"id": "2", "dockerName": "blog-web", "host": "vm1", "stack": "blog", "name": "web",
                 "live": {"state": "running", "portBindings": ["80/tcp->0.0.0.0:8080"]}},
                {"id": "3", "dockerName": "blog-old", "host": "vm1", "stack": "blog", "name": "old",
                 "live": {"state": "exited", "portBindings": ["80/tcp->0.0.0.0:8081"]}},
            ],
            "others": [{"id": "4", "dockerName": "hand-made"}],
        }
    )  # fmt: skip
    seen = observed.of_stack("shop")
    assert [c.docker_name for c in seen.containers] == ["shop-web"]
    assert [(o.docker_name, o.stack, o.port_bindings) for o in seen.others] == [
        ("blog-old", "blog", []),  # stopped: it publishes nothing now
        ("blog-web", "blog", ["80/tcp->0.0.0.0:8080"]),
        ("hand-made", None, []),
    ]
