"""Inventory: plain JSON or JSON-LD, merged with the stack's Host nodes, default local host."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import InventoryError
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack
from graphium.stack.models import Connection, Host

DATA = Path(__file__).resolve().parents[1] / "data" / "stacks"


def _write(tmp_path: Path, data: Any, name: str = "inventory.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_no_hosts_means_one_local_host() -> None:
    inventory = load_inventory(None, [])
    assert [(h.id, h.connection) for h in inventory.hosts] == [("local", Connection.local)]


def test_plain_hosts_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "hosts": [
                {
                    "@id": "vm1",
                    "address": "10.0.0.2",
                    "connection": "ssh",
                    "sshUser": "root",
                    "labels": {"zone": "a"},
                },
                {"id": "vm2", "connection": "agent", "capacity": {"cpus": 2, "memory": "4g"}},
            ]
        },
    )
    hosts = load_inventory(path).by_id()
    assert hosts["vm1"].ssh_user == "root" and hosts["vm1"].labels == {"zone": "a"}
    assert hosts["vm2"].capacity.memory == 4 * 1024**3


def test_jsonld_graph_of_hosts(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "@context": "https://schema.org",
            "@graph": [
                {"@id": "vm1", "@type": "Host", "schema:address": "10.0.0.2", "connection": "ssh"},
                {"@id": "vm2", "@type": "datacenter:Host", "dockerHost": "tcp://10.0.0.3:2375"},
            ],
        },
        "inventory.jsonld",
    )
    hosts = load_inventory(path).by_id()
    assert hosts["vm1"].address == "10.0.0.2" and hosts["vm2"].docker_host == "tcp://10.0.0.3:2375"


def test_merged_with_stack_hosts(tmp_path: Path) -> None:
    doc = load_stack(DATA / "good" / "full.jsonld")
    path = _write(tmp_path, {"hosts": [{"@id": "vm2"}, doc.hosts[0].dump()]})
    assert sorted(load_inventory(path, doc.hosts).by_id()) == ["vm1", "vm2"]
    assert load_inventory(None, doc.hosts).hosts == doc.hosts


def test_conflicting_definitions(tmp_path: Path) -> None:
    stack_hosts = [Host.model_validate({"@id": "vm1", "address": "10.0.0.1", "connection": "ssh"})]
    path = _write(
        tmp_path,
        {"hosts": [{"@id": "vm1", "address": "10.0.0.9", "connection": "ssh"}, {"@id": "x"}, {"@id": "x"}]},
    )
    with pytest.raises(InventoryError) as caught:
        load_inventory(path, stack_hosts, stack_file="stack.jsonld")
    paths = {p.path: p.message for p in caught.value.problems}
    assert "defined in stack.jsonld" in paths["$.hosts[0]"]
    assert "already defined at $.hosts[1]" in paths["$.hosts[2]"]


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        ({"hosts": [{"@id": "vm1", "connection": "ssh"}]}, "$.hosts[0]", "needs 'address'"),
        ({"hosts": [{"@id": "vm1", "sshPort": 0}]}, "$.hosts[0].sshPort", "greater than or equal to 1"),
        ({"hosts": [{"@id": "vm1", "bogus": 1}]}, "$.hosts[0].bogus", "unknown property 'bogus'"),
        ({"hosts": [{"address": "x"}]}, "$.hosts[0]", "needs '@id'"),
        (
            {"hosts": [{"@id": "vm1", "connection": "telnet"}]},
            "$.hosts[0].connection",
            "'local', 'ssh' or 'agent'",
        ),
        ({"hosts": {}}, "$.hosts", "expected an array"),
        (
            {"@context": "https://schema.org", "@graph": [{"@id": "a", "@type": "Stack"}]},
            '$["@graph"][0]',
            "only Host",
        ),
        ('{"hosts": [', "$", "invalid JSON"),
    ],
)
def test_inventory_problems(tmp_path: Path, data: Any, path: str, fragment: str) -> None:
    file = _write(tmp_path, data)
    with pytest.raises(InventoryError) as caught:
        load_inventory(file)
    assert any(p.path == path and fragment in p.message for p in caught.value.problems), caught.value.problems
    assert all(p.file == str(file) for p in caught.value.problems)


def test_unreadable_inventory(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "none.json")
