"""open_store picks the backend a location names; database URLs never show their password."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphium.store.json_store import JsonTaskStore
from graphium.store.open import is_database_url, mask_url, open_store


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("postgresql://u:p@db:5432/graphium", True),
        ("postgres://db/graphium", True),
        ("POSTGRESQL://db/graphium", True),
        ("postgresql:///graphium?host=/run/pg", True),
        (".graphium/state.json", False),
        ("/srv/postgresql/state.json", False),
        ("postgresql.json", False),
        ("mysql://db/x", False),
        ("", False),
    ],
)
def test_is_database_url(location: str, expected: bool) -> None:
    assert is_database_url(location) is expected


@pytest.mark.parametrize(
    ("location", "masked"),
    [
        ("postgresql://alice:s3cret@db:5432/graphium", "postgresql://alice:***@db:5432/graphium"),
        (
            "postgresql://alice:p%40ss@db/graphium?sslmode=require",
            "postgresql://alice:***@db/graphium?sslmode=require",
        ),
        (
            "postgresql://db/graphium?password=s3cret&sslmode=require",
            "postgresql://db/graphium?password=***&sslmode=require",
        ),
        ("postgresql://alice@db/graphium", "postgresql://alice@db/graphium"),
        ("state.json", "state.json"),
    ],
)
def test_mask_url_hides_passwords(location: str, masked: str) -> None:
    assert mask_url(location) == masked
    assert "s3cret" not in mask_url(location)


def test_unparseable_url_shows_only_its_scheme() -> None:
    assert mask_url("postgresql://alice:s3cret@[db/x") == "postgresql://***"
    assert mask_url("postgresql://alice:s3cret@db:notaport/x") == "postgresql://alice:***@db:notaport/x"


def test_a_path_opens_the_json_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "state.json"))
    try:
        assert isinstance(store, JsonTaskStore)
    finally:
        store.close()
