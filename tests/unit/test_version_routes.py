"""The server's version routes, in-process over the real app: listing a stack's versions (admin
only, ``current`` marked, no definition), and a rollback refused with the reason."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from graphium.control.server.app import create_app
from graphium.control.server.auth import create_token
from graphium.records.stack import StackRecord, StackStatus
from graphium.store.json_store import JsonTaskStore
from tests.contract.store_contract import make_version


def test_versions_are_listed_for_admins_and_a_rollback_without_one_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    admin = {"Authorization": f"Bearer {create_token(tokens, 'admin', None)}"}
    agent = {"Authorization": f"Bearer {create_token(tokens, 'agent', 'h1')}"}
    state = tmp_path / "state.json"
    with JsonTaskStore(state) as store:
        store.save_version(make_version(run_id="r1", images={"web": "nginx:1"}, summary={"create": 1}))
        store.save_version(make_version(image="nginx:2", run_id="r2"))
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying, run_id="r2"))
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.running, run_id="r2"))
    with TestClient(create_app(str(state), str(tokens))) as client:
        listed = client.get("/api/v1/stacks/web/versions", headers=admin)
        assert listed.status_code == 200
        body = listed.json()
        assert [(v["number"], v["current"]) for v in body] == [(1, False), (2, True)]
        assert body[0]["result"] == "applied: 1 create" and body[0]["images"] == {"web": "nginx:1"}
        assert all("definition" not in v and "inventory" not in v for v in body)
        assert client.get("/api/v1/stacks/web/versions", headers=agent).status_code == 403
        assert client.get("/api/v1/stacks/nope/versions", headers=admin).status_code == 404
        missing = client.post("/api/v1/stacks/web/rollback", json={"to": 9}, headers=admin)
        assert missing.status_code == 409 and "no version 9" in missing.text
        none = client.post("/api/v1/stacks/nope/rollback", headers=admin)
        assert none.status_code == 409 and "no recorded versions" in none.text
        bad = client.post("/api/v1/stacks/web/rollback", json={"to": 0}, headers=admin)
        assert bad.status_code in (400, 422)
