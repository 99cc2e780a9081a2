"""Session fixtures that start the test lab's engines (see lab/ and docs on the lab)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import lab  # noqa: E402


@pytest.fixture(scope="session")
def docker_url() -> Iterator[str]:
    """DOCKER_HOST url of the lab's root-namespace engine, started if needed (nothing global is set).

    Stopped at session end only if a test session started it and no other session still uses it.
    """
    url = lab.acquire_engine()
    try:
        yield url
    finally:
        lab.release_engine()
