"""The dashboard's rules that need no browser: cookies and sessions, where sign-in may send you,
which variables a stack asks for, and that a container's row carries nothing from a payload's
environment. The app is the real one (``create_app``), driven in-process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from graphium.control.server.app import create_app
from graphium.control.server.auth import create_token, read_tokens, revoke_token
from graphium.control.server.web.session import safe_next
from graphium.control.server.web.variables import stack_variables
from graphium.control.server.web.views import containers
from graphium.plan.model import ObservedHost
from graphium.plan.planner import plan_apply
from graphium.records.stack import StackRecord, StackStatus
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Inventory
from tests.support import stack_doc


@pytest.fixture
def app_parts(tmp_path: Path) -> tuple[Path, str, str]:
    tokens = tmp_path / "tokens.json"
    admin = create_token(tokens, "admin", None)
    agent = create_token(tokens, "agent", "h1")
    return tokens, admin, agent


def _client(tmp_path: Path, tokens: Path, scheme: str) -> TestClient:
    app = create_app(str(tmp_path / "state.json"), str(tokens))
    return TestClient(app, base_url=f"{scheme}://testserver", follow_redirects=False)


def _sign_in(client: TestClient, token: str) -> object:
    form = client.get("/web/signin")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce is not None
    return client.post("/web/signin", data={"csrf": nonce[1], "token": token, "next": "/web/agents"})


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_session_cookie_is_httponly_strict_and_secure_under_tls(
    tmp_path: Path, app_parts: tuple[Path, str, str], scheme: str
) -> None:
    tokens, admin, _ = app_parts
    with _client(tmp_path, tokens, scheme) as client:
        response = _sign_in(client, admin)
        assert response.status_code == 303 and response.headers["location"] == "/web/agents"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("graphium_session="))
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert ("secure" in flags) is (scheme == "https")
        assert admin not in cookie


def test_revoking_the_token_ends_its_sessions(tmp_path: Path, app_parts: tuple[Path, str, str]) -> None:
    tokens, admin, _ = app_parts
    with _client(tmp_path, tokens, "http") as client:
        _sign_in(client, admin)
        assert client.get("/web/stacks").status_code == 200
        admin_id = next(t["id"] for t in read_tokens(tokens) if t["role"] == "admin")
        revoke_token(tokens, admin_id)  # `graphium-run token revoke ID`
        response = client.get("/web/stacks")
        assert response.status_code == 303 and response.headers["location"].startswith("/web/signin")


def test_agent_tokens_and_forged_sign_ins_are_refused(
    tmp_path: Path, app_parts: tuple[Path, str, str]
) -> None:
    tokens, admin, agent = app_parts
    with _client(tmp_path, tokens, "http") as client:
        response = _sign_in(client, agent)
        assert response.status_code == 403 and "Agent tokens cannot sign in" in response.text
        assert "graphium_session" not in response.headers.get("set-cookie", "")
        client.cookies.clear()
        forged = client.post("/web/signin", data={"csrf": "x", "token": admin})
        assert forged.status_code == 403 and "graphium_session" not in forged.headers.get("set-cookie", "")


def test_pages_need_a_session_and_refuse_posts_without_csrf(
    tmp_path: Path, app_parts: tuple[Path, str, str]
) -> None:
    tokens, admin, _ = app_parts
    with _client(tmp_path, tokens, "http") as client:
        for path in ("/web/stacks", "/web/deploy", "/web/agents", "/web/stacks/x", "/web/stacks/x/events"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/web/signin"), (
                path
            )
        assert client.get("/").headers["location"] == "/web/stacks"
        _sign_in(client, admin)
        page = client.get("/web/deploy")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        refused = client.post("/web/deploy", data={"stack": "{}"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert client.post("/web/signout", data={}).status_code == 403
        assert client.get("/web/stacks").status_code == 200, "a refused sign-out must not sign out"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/web/agents", "/web/agents"),
        ("//evil.example/web/", "/web/stacks"),
        ("https://evil.example/web/", "/web/stacks"),
        ("/web//evil.example", "/web/stacks"),
        ("/api/v1/stacks", "/web/stacks"),
        (None, "/web/stacks"),
    ],
)
def test_sign_in_only_sends_you_back_into_the_dashboard(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_the_deploy_form_asks_for_each_variable_and_marks_secret_looking_ones() -> None:
    doc = load_stack_data(
        stack_doc(
            "vars",
            [
                {
                    "name": "db",
                    "image": "postgres:${PG_TAG}",
                    "environment": {
                        "POSTGRES_PASSWORD": "${PW}",
                        "MODE": "${MODE:-fast}",
                        "X": "$${LITERAL}",
                    },
                },
                {"name": "api", "image": "api:1", "environment": {"API_TOKEN": "${TOKEN_VALUE}"}},
            ],
        )
    )
    found = {v.name: (v.secret, v.required) for v in stack_variables(doc)}
    assert found == {
        "PG_TAG": (False, True),
        "PW": (True, True),
        "MODE": (False, False),
        "TOKEN_VALUE": (True, True),
    }


def test_container_rows_carry_nothing_of_the_payloads_environment() -> None:
    doc = load_stack_data(
        stack_doc(
            "sec", [{"name": "db", "image": "postgres:16", "environment": {"DB_PASSWORD": "hunter2-secret"}}]
        )
    )
    inventory = Inventory.model_validate({"hosts": [{"@id": "h1", "connection": "agent"}]})
    plan = plan_apply(doc.stack, inventory, {"h1": ObservedHost(host="h1")}, None)
    record = StackRecord(id="sec", name="sec", status=StackStatus.deploying)
    rows = containers(record, plan.tasks)
    assert [(r.name, r.host, r.image, r.status) for r in rows] == [("db", "h1", "postgres:16", "pending")]
    assert "hunter2-secret" not in repr(rows)


def test_a_pasted_yaml_stack_is_read_as_yaml_and_its_problems_shown(
    tmp_path: Path, app_parts: tuple[Path, str, str]
) -> None:
    tokens, admin, _ = app_parts
    with _client(tmp_path, tokens, "http") as client:
        _sign_in(client, admin)
        page = client.get("/web/deploy")
        nonce = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert nonce is not None
        pasted = '"@context": https://schema.org\n"@graph":\n  - "@type": Stack\n    name: y\n    hasPart:\n'
        pasted += "      - {name: a, image: busybox, replicas: 5000}\n"
        response = client.post("/web/deploy", data={"csrf": nonce[1], "stack": pasted})
        assert response.status_code == 400, response.text
        assert "at most 1000 replicas" in response.text and "invalid JSON" not in response.text
