"""PostgresTaskStore: the store contract on a real PostgreSQL, plus what only a database does
(migrations, concurrent claims across instances, NOTIFY between replicas, leadership)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graphium.store.base import TaskStore  # noqa: E402
from graphium.store.postgres import PostgresTaskStore  # noqa: E402
from lab import postgres as lab_postgres  # noqa: E402
from tests.contract.store_contract import TaskStoreContract  # noqa: E402

TABLES = "tasks, stacks, versions, events, observations, agents"


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """One database for the module; each test starts from empty tables (:func:`store`)."""
    with lab_postgres.fresh_database("pgstore") as url:
        yield url


@pytest.fixture
def store(database: str) -> Iterator[PostgresTaskStore]:
    with PostgresTaskStore(database, max_connections=4) as store:
        with store._sessions.batch() as frame:
            for table in TABLES.split(", "):
                frame.conn.execute(f"DELETE FROM {table}")
            frame.conn.execute("UPDATE counters SET value = 0")
        yield store


class TestPostgresStoreContract(TaskStoreContract):
    @pytest.fixture
    def store(self, store: PostgresTaskStore) -> TaskStore:
        return store
