"""The tokens file under concurrent edits: `token create` and `token revoke` never lose a change."""

from __future__ import annotations

import threading
from pathlib import Path

from graphium.control.server.auth import create_token, list_tokens, read_tokens, revoke_token


def test_concurrent_creates_and_revokes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    for i in range(8):
        create_token(path, "agent", f"old-{i}")
    doomed = [t.id for t in list_tokens(path)]

    def create(worker: int) -> None:
        for i in range(10):
            create_token(path, "agent", f"h{worker}-{i}")

    def revoke(token_id: str) -> None:
        revoke_token(path, token_id)

    threads = [threading.Thread(target=create, args=(w,)) for w in range(6)]
    threads += [threading.Thread(target=revoke, args=(t,)) for t in doomed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hosts = sorted(entry["hostId"] for entry in read_tokens(path))
    assert hosts == sorted(f"h{w}-{i}" for w in range(6) for i in range(10))
