"""lab/postgres.py: a cluster starts once however many callers race, comes back after a crash,
and hands out fresh databases. Runs a private cluster on its own port, never the shared one."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab import postgres  # noqa: E402
from tests.support import free_port_on  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[postgres.Cluster]:
    private = postgres.Cluster(port=free_port_on("127.0.0.1"))
    try:
        yield private
    finally:
        postgres.remove(private)


def test_racing_callers_start_one_cluster(cluster: postgres.Cluster) -> None:
    urls: list[str] = []
    callers = [threading.Thread(target=lambda: urls.append(postgres.ensure(cluster))) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(120)
    assert len(urls) == 3 and len(set(urls)) == 1
    assert oct(cluster.password_file.stat().st_mode & 0o777) == "0o600"
    with psycopg.connect(urls[0]) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
    wrong = urls[0].replace(cluster.password(), "wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_a_crashed_cluster_is_started_again(cluster: postgres.Cluster) -> None:
    postgres.ensure(cluster)
    assert postgres.stop(cluster)
    (cluster.data / "postmaster.pid").write_text(f"{os.getpid()}\n")  # stale: names this test process
    assert not postgres.ready(cluster)
    url = postgres.ensure(cluster)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_fresh_databases_are_empty_and_dropped(cluster: postgres.Cluster) -> None:
    with postgres.fresh_database("Some Test[1]", cluster) as url, psycopg.connect(url) as conn:
        assert url.rsplit("/", 1)[1].startswith("some_test_1_")
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url)
