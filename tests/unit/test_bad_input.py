"""Bad input is refused with file, JSON path and what is expected: the corpus of bad inventories
(bad stacks are in test_loader's corpus), the value rules on their own, and every example and
upstream stack still loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import InventoryError
from graphium.stack import rules
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import load_stack

REPO = Path(__file__).resolve().parents[2]
BAD_INVENTORIES = sorted(
    p
    for p in (REPO / "tests" / "data" / "inventories" / "bad").iterdir()
    if not p.name.endswith(".expected.json")
)
SHARED_UPSTREAM = REPO / ".." / "shared" / "reference" / "upstream-stacks"
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if p.suffix in (".jsonld", ".yaml"))
DIGEST = "sha256:" + "a" * 64


def _expected(bad: Path) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((bad.parent / f"{bad.stem}.expected.json").read_text())
    return data


def test_every_bad_stack_and_inventory_has_its_expectations() -> None:
    stacks = REPO / "tests" / "data" / "stacks" / "bad"
    inputs = [p for p in stacks.iterdir() if not p.name.endswith(".expected.json")] + BAD_INVENTORIES
    assert len(inputs) >= 90
    assert all((p.parent / f"{p.stem}.expected.json").is_file() for p in inputs)


@pytest.mark.parametrize("bad", BAD_INVENTORIES, ids=[p.stem for p in BAD_INVENTORIES])
def test_bad_inventory_reports_every_expected_problem(bad: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load_inventory(bad)
    problems = caught.value.problems
    rendered = "\n".join(map(str, problems))
    assert "Traceback" not in rendered and "could not match" not in rendered
    for expected in _expected(bad):
        matching = [p for p in problems if p.path == expected["path"] and expected["message"] in p.message]
        assert matching, f"missing {expected}; got:\n{rendered}"
        assert all(p.file == str(bad) for p in matching)
        if "line" in expected:
            assert (matching[0].line, matching[0].column) == (expected["line"], expected["column"])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_loads(example: Path) -> None:
    assert load_stack(example, check_schema=True).stack.containers


@pytest.mark.skipif(not SHARED_UPSTREAM.is_dir(), reason="shared/ is not beside the repository")
def test_every_upstream_stack_of_shared_loads() -> None:
    stacks = sorted(SHARED_UPSTREAM.glob("*.json"))
    assert stacks
    for stack in stacks:
        assert load_stack(stack).stack.containers, stack


def test_the_lab_inventory_loads() -> None:
    assert len(load_inventory(REPO / "examples" / "lab-inventory.json").hosts) == 3


@pytest.mark.parametrize(
    "image",
    [
        "nginx",
        "nginx:1.27-alpine",
        "library/nginx:latest",
        "ghcr.io/team/app:v2.1.0",
        "localhost:5000/a/b/c:t",
        "registry.example.com:443/x__y/z-1.2",
        "[::1]:5000/app",
        f"app@{DIGEST}",
        f"r.io/app:1@{DIGEST}",
        "reg/${IMAGE}:${TAG:-latest}",
        "Registry.IO/app",
    ],
)
def test_image_references_that_are_valid(image: str) -> None:
    assert rules.check_image(image) == image


@pytest.mark.parametrize(
    "image",
    [
        "nginx latest",
        " nginx",
        "Nginx",
        "nginx:",
        "nginx:-x",
        "-nginx",
        "nginx@sha256:1",
        "a//b",
        "a/",
        "x" * 600,
    ],
)
def test_image_references_that_are_refused(image: str) -> None:
    with pytest.raises(ValueError, match="image reference"):
        rules.check_image(image)


@pytest.mark.parametrize(
    ("source", "read_only", "refused"),
    [
        ("/", True, "whole host"),
        ("//", False, "whole host"),
        ("/srv/../", True, "whole host"),
        ("/proc/sys", False, "readOnly"),
        ("/var/run/docker.sock", False, "root on the host"),
        ("/etc", False, "host's /etc"),
        ("/proc/sys", True, None),
        ("/var/run/docker.sock", True, None),
        ("/etc/nginx/conf.d", False, None),
        ("/var/lib/app", False, None),
        ("/srv/data", False, None),
        ("${DATA_DIR}", False, None),
    ],
)
def test_bind_sources(source: str, read_only: bool, refused: str | None) -> None:
    if refused is None:
        rules.check_bind_source(source, read_only)
    else:
        with pytest.raises(ValueError, match=refused):
            rules.check_bind_source(source, read_only)


def test_host_ip_is_normalised_and_templates_wait_for_their_value() -> None:
    assert rules.check_host_ip("::1") == "::1" and rules.check_host_ip("[::1]") == "::1"
    assert rules.check_host_ip("${BIND_IP}") == "${BIND_IP}"
    with pytest.raises(ValueError, match="IP address"):
        rules.check_host_ip("127.0.0.1 ")


def test_addresses_and_engine_urls() -> None:
    for good in ("10.0.0.1", "vm1", "vm1.lab.example.", "fe80::1"):
        assert rules.check_address(good)
    assert rules.check_docker_host("unix:///run/x.sock", True) and rules.check_docker_host(
        "tcp://1.2.3.4:2375", True
    )
    assert rules.check_docker_host("ssh://root@vm1", False) and rules.check_docker_host(
        "https://vm1:2376", False
    )
    with pytest.raises(ValueError, match="engine URL"):
        rules.check_docker_host("tcp://vm1:notaport", False)


def test_a_template_filled_with_a_bad_value_is_refused_at_plan_time() -> None:
    from graphium.errors import StackError
    from graphium.stack.loader import load_stack_data
    from graphium.stack.variables import resolve_variables

    document = {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": "Stack",
                "name": "t",
                "hasPart": [
                    {
                        "name": "a",
                        "image": "app:${TAG}",
                        "ports": [{"containerPort": 80, "hostIP": "${IP}"}],
                        "mounts": [{"type": "bind", "source": "${DIR}", "target": "/d"}],
                    }
                ],
            }
        ],
    }
    doc = load_stack_data(document, "t.json")
    with pytest.raises(StackError) as caught:
        resolve_variables(
            doc.stack, {"TAG": "1 2", "IP": "localhost", "DIR": "/"}, "t.json", path_of=doc.path_of
        )
    text = str(caught.value)
    assert "whitespace" in text and "IP address" in text and "whole host" in text
    ok = resolve_variables(doc.stack, {"TAG": "1.2", "IP": "127.0.0.1", "DIR": "/srv"}, "t.json")
    assert ok.containers[0].image == "app:1.2"


def test_what_the_newer_rules_still_accept() -> None:
    rules.check_network("10.20.0.0/24", "10.20.0.1", "10.20.0.128/25")
    rules.check_network("fd00::/64", "fd00::1", None)
    for user in ("app", "1000", "1000:1000", "www-data:www-data", "${APP_USER}"):
        assert rules.check_user(user) == user
    assert rules.check_working_dir("/srv/app") and rules.check_working_dir("${WORKDIR}")
    rules.check_volume_name("pg_data-1.0")
    rules.check_mount_target("/data/")
    rules.check_distinct_targets(["/a", "/b", "/a/b"])
