"""Stack loading: upstream examples, every field, equal meaning across spellings, every error class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import StackError
from graphium.stack.loader import (
    StackDocument,
    check_hosts,
    host_problems,
    load_stack,
    load_stack_data,
    load_stack_text,
)
from graphium.stack.models import Host, Inventory, MountType, PlacementStrategyName

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "stacks"
SHARED_UPSTREAM = REPO / ".." / "shared" / "reference" / "upstream-stacks"
UPSTREAM_NAMES = [
    "3-tier-webapp.json",
    "microservices-multi-host.json",
    "nginx-auto-spread-stack.json",
    "nginx-multihost-stack.json",
    "simple-nginx.json",
]
BAD = sorted(p for p in (DATA / "bad").iterdir() if p.suffix in (".jsonld", ".yaml"))


@pytest.mark.parametrize("name", UPSTREAM_NAMES)
def test_upstream_stack_loads(name: str) -> None:
    doc = load_stack(DATA / "upstream" / name, check_schema=True)
    assert doc.stack.containers
    assert all(c.image for c in doc.stack.containers)


@pytest.mark.parametrize("name", UPSTREAM_NAMES)
def test_upstream_copy_matches_shared(name: str) -> None:
    shared = SHARED_UPSTREAM / name
    if not shared.exists():
        pytest.skip("../shared is not checked out next to the repository")
    assert load_stack(shared).stack == load_stack(DATA / "upstream" / name).stack


def test_nginx_multihost_ports_env_restart_take_effect() -> None:
    stack = load_stack(DATA / "upstream" / "nginx-multihost-stack.json").stack
    by_name = {c.name: c for c in stack.containers}
    assert sorted(by_name) == ["nginx-1", "nginx-2", "nginx-3"]
    for index, host in enumerate(["localhost-docker", "vm1", "vm2"], start=1):
        c = by_name[f"nginx-{index}"]
        assert c.located_in_host == host
        assert [(p.container_port, p.host_port, p.protocol.value) for p in c.ports] == [
            (80, 8080 + index, "tcp")
        ]
        assert c.environment == {"NGINX_HOST": "localhost" if index == 1 else host, "NGINX_PORT": "80"}
        assert c.restart_policy.name == "unless-stopped"
        assert c.mounts == []
    assert stack.deployment.placement_strategy is PlacementStrategyName.manual


def test_upstream_details() -> None:
    tier = load_stack(DATA / "upstream" / "3-tier-webapp.json")
    db, api, _ = tier.stack.containers
    assert db.mounts[0].type is MountType.volume and db.mounts[0].source == "postgres-data"
    assert db.mounts[0].target == "/var/lib/postgresql/data" and db.mounts[0].driver == "local"
    assert db.health_check is not None and db.health_check.test == ["CMD-SHELL", "pg_isready -U webapp"]
    assert api.resources.limits.cpus == 0.5 and api.resources.limits.memory == 512 * 1024**2
    assert tier.stack.network is not None and tier.stack.network.ip_range == "172.20.1.0/24"
    assert any("POSTGRES_PASSWORD" in w.message for w in tier.warnings)
    micro = load_stack(DATA / "upstream" / "microservices-multi-host.json").stack
    assert micro.located_in_host == "host1"
    assert micro.containers[1].environment["JWT_SECRET"] == "${JWT_SECRET}"


def test_full_fixture_every_field() -> None:
    doc = load_stack(DATA / "good" / "full.jsonld", check_schema=True)
    assert [h.id for h in doc.hosts] == ["vm1"]
    assert doc.hosts[0].labels == {"zone": "a", "disk.type": "ssd"}
    s = doc.stack
    assert s.located_in_host == "vm1" and s.pull_policy.value == "never"
    assert [(c.label, c.op, c.value) for c in s.deployment.constraints] == [
        ("zone", "==", "a"),
        ("disk.type", "!=", "hdd"),
    ]
    assert s.network is not None and s.network.labels == {"a.b/c": "d"}
    db, web, probe = s.containers
    assert db.environment == {"PGDATA": "/d", "DB_PASS": "${DB_PASS}", "MODE": "fast"}
    assert db.sensitive == ["DB_PASS"]
    assert [m.type.value for m in db.mounts] == ["volume", "bind", "tmpfs"] and db.mounts[1].read_only
    assert (db.restart_policy.name, db.restart_policy.maximum_retry_count) == ("on-failure", 3)
    assert db.resources.reservations.memory == 512 * 1024**2
    assert db.health_check is not None and db.health_check.test == ["CMD-SHELL", "pg_isready"]
    assert db.health_check.start_period == 60 and db.stop_timeout == 30
    assert (db.user, db.working_dir) == ("postgres", "/d")
    assert web.command == ["nginx"] and web.args == ["-g", "daemon off;"] and web.depends_on == ["db"]
    assert web.ports[0].host_ip == "127.0.0.1" and web.ports[1].protocol.value == "udp"
    assert web.labels == {"app": "web", "n": "1"}
    assert web.health_check is not None and web.health_check.http is not None
    assert web.environment == {"API_TOKEN_X": "abc"} and web.secret_keys() == {"API_TOKEN_X"}
    assert probe.replicas == 3 and probe.health_check is not None and probe.health_check.tcp is not None


@pytest.mark.parametrize("name", ["minimal.jsonld", "single-node.jsonld"])
def test_good_fixtures(name: str) -> None:
    assert load_stack(DATA / "good" / name, check_schema=True).stack.containers


CANONICAL: dict[str, Any] = {
    "@context": "https://schema.org",
    "@graph": [
        {"@id": "h1", "@type": "Host", "address": "10.0.0.1", "labels": {"zone": "a"}},
        {
            "@type": "Stack",
            "name": "eq",
            "hasPart": [
                {
                    "@type": "Container",
                    "name": "web",
                    "image": "nginx:alpine",
                    "command": ["sh", "-c", "sh"],
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "udp"}],
                    "environment": {"A": "1", "B.c": "x=y"},
                    "labels": {"com.example/x": "1"},
                    "mounts": [{"type": "volume", "source": "data", "target": "/data"}],
                    "restartPolicy": {"name": "on-failure", "maximumRetryCount": 2},
                    "resources": {"limits": {"cpus": 0.5, "memory": "256M"}},
                    "locatedInHost": "h1",
                    "dependsOn": ["db"],
                },
                {"@type": "Container", "name": "db", "image": "postgres"},
            ],
        },
    ],
}

VARIANT: dict[str, Any] = {
    "@context": [
        "http://schema.org/",
        {"dc": "https://graphium.io/vocab/datacenter#", "s": "https://schema.org/"},
    ],
    "@graph": [
        {
            "@id": "h1",
            "@type": "dc:Host",
            "http://schema.org/address": "10.0.0.1",
            "datacenter:labels": {"zone": "a"},
        },
        {
            "@type": ["datacenter:Stack", "SoftwareApplication"],
            "schema:name": "eq",
            "http://schema.org/hasPart": [
                {
                    "@type": "SoftwareApplication",
                    "s:name": "web",
                    "https://schema.org/image": "nginx:alpine",
                    "http://schema.org/command": ["sh", "-c", "sh"],
                    "containerPort": [
                        {"@type": "Port", "portNumber": 80, "hostPort": 8080, "protocol": "UDP"}
                    ],
                    "environmentVariable": [
                        {"@type": "PropertyValue", "name": "A", "value": "1"},
                        {"@type": "PropertyValue", "schema:name": "B.c", "value": "x=y"},
                    ],
                    "http://schema.org/labels": {"com.example/x": 1},
                    "volumes": [{"name": "data", "mountPath": "/data"}],
                    "restartPolicy": "on-failure:2",
                    "dc:resources": {"cpu": "0.5", "memory": 268435456},
                    "locatedInHost": {"@id": "h1"},
                    "dependsOn": "db",
                },
                {"s:name": "db", "image": "postgres"},
            ],
        },
    ],
}


def test_spellings_load_equal() -> None:
    a = load_stack_data(CANONICAL, "canonical")
    b = load_stack_data(VARIANT, "variant")
    assert a.stack == b.stack
    assert a.hosts == b.hosts


def test_text_and_dict_entry_points(tmp_path: Path) -> None:
    text = json.dumps(CANONICAL)
    path = tmp_path / "s.jsonld"
    path.write_text(text)
    doc = load_stack(path)
    assert isinstance(doc, StackDocument) and doc.path == str(path)
    assert load_stack_text(text, "x").stack == doc.stack


def _expected(bad: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((bad.parent / f"{bad.stem}.expected.json").read_text())
    return data


@pytest.mark.parametrize("bad", BAD, ids=[p.stem for p in BAD])
def test_bad_fixture_reports_every_expected_problem(bad: Path) -> None:
    with pytest.raises(StackError) as caught:
        load_stack(bad)
    problems = caught.value.problems
    rendered = "\n".join(f"{p.path}: {p.message}" for p in problems)
    for expected in _expected(bad):
        matching = [p for p in problems if p.path == expected["path"] and expected["message"] in p.message]
        assert matching, f"missing {expected}; got:\n{rendered}"
        assert all(p.file == str(bad) for p in matching)
        if "line" in expected:
            assert (matching[0].line, matching[0].column) == (expected["line"], expected["column"])


def test_errors_reported_all_at_once() -> None:
    with pytest.raises(StackError) as caught:
        load_stack(DATA / "bad" / "wrong-types.jsonld")
    assert len(caught.value.problems) >= 5
    assert "Traceback" not in str(caught.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="cannot read"):
        load_stack(tmp_path / "missing.jsonld")


def test_check_hosts_reports_unknown_with_paths() -> None:
    doc = load_stack(DATA / "upstream" / "microservices-multi-host.json")
    inventory = Inventory(hosts=[Host.model_validate({"@id": "host1"})])
    problems = host_problems(doc, inventory)
    assert [p.path for p in problems] == ['$["@graph"][0].hasPart[2].locatedInHost']
    assert "unknown host 'host2'" in problems[0].message
    with pytest.raises(StackError):
        check_hosts(doc, inventory)
    check_hosts(doc, Inventory(hosts=[Host.model_validate({"@id": h}) for h in ("host1", "host2")]))


def test_stack_default_host_unknown() -> None:
    doc = load_stack(DATA / "upstream" / "microservices-multi-host.json")
    problems = host_problems(doc, Inventory(hosts=[Host.model_validate({"@id": "host2"})]))
    assert [p.path for p in problems] == ['$["@graph"][0].locatedInHost']


def _big_stack(count: int = 1000, hosts: int = 100) -> str:
    containers = [
        {
            "@type": "Container",
            "name": f"c{i}",
            "image": "nginx:alpine",
            "command": ["sh", "-c", "sleep 1"],
            "ports": [{"containerPort": 80, "hostPort": 10000 + i}],
            "environment": {"A": "1", "B": "2"},
            "labels": {"tier": "web"},
            "restartPolicy": "always",
            "dependsOn": [f"c{i - 1}"] if i else [],
            "resources": {"cpus": "0.1", "memory": "64M"},
            "locatedInHost": {"@id": f"h{i % hosts}"},
        }
        for i in range(count)
    ]
    return json.dumps(
        {
            "@context": "https://schema.org",
            "@graph": [{"@type": "Stack", "name": "big", "hasPart": containers}],
        }
    )


def test_thousand_container_stack_loads() -> None:
    # speed is measured by benchmarks/bench_plan.py (load), never asserted in a test
    doc = load_stack_text(_big_stack(), "big")
    assert len(doc.stack.containers) == 1000
