"""Session fixtures that start the test lab (see lab/): a root-namespace engine, a 3-host lab and
a throwaway PostgreSQL cluster.

Both are started only when missing, and stopped at session end only if a test session started them
and no other session (tests run concurrently on shared machines) still uses them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lab as lab_pkg  # noqa: E402  (needs the repository root on sys.path)
from lab import postgres as lab_postgres  # noqa: E402

_MARK_FOR_FIXTURE = {
    "docker_url": "docker",
    "lab": "lab",
    "lab_registry": "lab",
    "postgres_url": "postgres",
    "fresh_database": "postgres",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using an engine or the lab carry its marker even if unmarked, so `-m` selects them."""
    for item in items:
        for fixture, mark in _MARK_FOR_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(scope="session")
def docker_url() -> Iterator[str]:
    """DOCKER_HOST url of the lab's root-namespace engine with the test images (nothing global set)."""
    url = lab_pkg.acquire_engine()
    try:
        yield url
    finally:
        lab_pkg.release_engine()


@pytest.fixture(scope="session")
def lab() -> Iterator[lab_pkg.LabInfo]:
    """The multi-host lab (3 hosts: localhost-docker, vm1, vm2), with inventory and known_hosts."""
    info = lab_pkg.acquire_lab(hosts=3)
    try:
        yield info
    finally:
        lab_pkg.release_lab()


@pytest.fixture(scope="session")
def lab_registry(lab: lab_pkg.LabInfo) -> str:
    """Address of the lab's registry (10.231.0.1:5000), holding every test image under that prefix."""
    info = lab_pkg.ensure_lab(hosts=len(lab.hosts), registry=True)
    assert info.registry is not None
    return info.registry


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The superuser URL of the lab's PostgreSQL cluster, started if missing (never skipped).

    The cluster is shared by the xdist workers and other sessions and left running; give each test
    module its own database (:func:`fresh_database`, or ``lab.postgres.fresh_database()`` in a
    module-scoped fixture)."""
    return lab_postgres.ensure()


@pytest.fixture
def fresh_database(postgres_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a new, empty database for this test, dropped after it."""
    with lab_postgres.fresh_database(request.node.name) as url:
        yield url
