"""Input errors are 4xx, secrets stay in claims, tokens stay out of logs and URLs, and the API docs
load nothing from outside: probed against a real server process."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.server_fixture import ServerProcess, server_process  # noqa: F401
from tests.tls import chrome_trust_flags

SECRET = "pa55-w0rd-xyz"
CLAIM = {"agentId": "a1", "leaseSeconds": 30}


def raw_post(client: httpx.Client, url: str, body: str, **params: Any) -> httpx.Response:
    """POST a body as written: Python's JSON encoder would refuse NaN, a client need not."""
    return client.post(url, content=body, params=params, headers={"Content-Type": "application/json"})


def deploy_with_secret(host: str = "h1") -> dict[str, Any]:
    spec = {"name": "db", "image": "postgres:16", "env": {"POSTGRES_PASSWORD": SECRET, "MODE": "x"}}
    return {"taskType": "deploy", "hostId": host, "payload": {"containerSpec": spec}, "id": "t-db"}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_input_errors(server: ServerProcess, number: str) -> None:
    with server.admin() as admin:
        task = '{"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x"}, "priority": %s}'
        assert raw_post(admin, "/tasks", task % number).status_code == 422
        timeout = '{"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x"}, "timeoutSeconds": %s}'
        assert raw_post(admin, "/tasks", timeout % number).status_code == 422
        inside = '{"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x", "stopTimeout": %s}}'
        assert raw_post(admin, "/tasks", inside % number).status_code in (400, 422)
        created = admin.post(
            "/tasks", json={"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x"}}
        )
        task_id = created.json()["id"]
    lease = f'{{"agentId": "a1", "leaseSeconds": {number}}}'
    with server.agent("h1") as agent:
        assert raw_post(agent, "/agents/h1/claims", lease).status_code == 422
        assert raw_post(agent, "/agents/h1/claim", lease).status_code == 422
        assert agent.post("/agents/h1/claim", json=CLAIM).status_code == 200
        assert raw_post(agent, f"/tasks/{task_id}/heartbeat", lease).status_code == 422
        result = json.dumps([{"id": task_id, "status": "running", "result": {"x": "N"}}]).replace(
            '"N"', number
        )
        assert (
            agent.put(
                "/tasks/status", content=result, headers={"Content-Type": "application/json"}
            ).status_code
            == 422
        )
        assert agent.post(f"/tasks/{task_id}/heartbeat", json=CLAIM).status_code == 200
    assert "Traceback" not in server.log_tail() and " 500 " not in server.log_tail()


def test_secrets_are_masked_everywhere_but_the_claim(server: ServerProcess) -> None:
    with server.admin() as admin:
        created = admin.post("/tasks", json=deploy_with_secret())
        assert created.status_code == 201, created.text
        shown = [created.json(), admin.get("/tasks/t-db").json(), *admin.get("/tasks").json()]
        assert admin.post("/tasks/t-db/cancel").status_code == 200
        shown.append(admin.post("/tasks/t-db/retry").json())
    with server.agent("h1") as agent:
        shown += [
            agent.get("/tasks/t-db").json(),
            *agent.get("/tasks").json(),
            *agent.get("/agents/h1/tasks").json(),
        ]
        for task in shown:
            assert SECRET not in json.dumps(task), task["id"]
        deploy = next(t for t in shown if t["id"] == "t-db")
        assert deploy["payload"]["container"]["spec"]["environment"] == {
            "POSTGRES_PASSWORD": "(sensitive)",
            "MODE": "x",
        }
        claimed = agent.post("/agents/h1/claims", params={"max": 10, "start": "true"}, json=CLAIM).json()
        assert [t["taskType"] for t in claimed] == ["ensure-network"]  # the deploy waits for it
        done = [{"id": claimed[0]["id"], "status": "completed", "agentId": "a1"}]
        assert agent.put("/tasks/status", json=done).json()[0]["code"] == 200
        [claim] = agent.post("/agents/h1/claims", params={"start": "true"}, json=CLAIM).json()
        assert claim["id"] == "t-db"
        assert claim["payload"]["container"]["spec"]["environment"]["POSTGRES_PASSWORD"] == SECRET
        beat = agent.post("/tasks/t-db/heartbeat", json=CLAIM)
        report = agent.put("/tasks/t-db/status", json={"status": "completed", "agentId": "a1"})
        for answer in (beat, report):
            assert answer.status_code == 200 and SECRET not in answer.text


def test_no_token_reaches_the_log(server: ServerProcess) -> None:
    """Tokens used in every way a client might (headers, a refused ?token= URL, WebSocket
    messages, bad ones) appear nowhere in the server's log; nor does a task's secret."""
    wrong = "not-a-token-but-secret-looking-0123456789"
    with server.admin() as admin:
        admin.post("/tasks", json=deploy_with_secret())
        admin.get("/tasks", params={"token": server.admin_token})
        admin.get("/tasks", headers={"Authorization": f"Bearer {wrong}"})
        raw_post(
            admin,
            "/tasks",
            '{"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x"}, "priority": NaN}',
        )
    with server.agent("h1") as agent:
        agent.post("/agents/h1/claims", json=CLAIM)
    base = server.ws_url

    async def websockets_every_way() -> None:
        for url in (
            f"{base}?token={urllib.parse.quote(server.admin_token)}",
            f"{base}?after=0&token={wrong}",
        ):
            with pytest.raises(InvalidStatus):
                async with websockets.connect(url, ssl=server.ssl_context):
                    pass
        async with websockets.connect(base, ssl=server.ssl_context) as ws:
            await ws.send(json.dumps({"token": server.admin_token}))
            await asyncio.wait_for(ws.recv(), 5)
        async with websockets.connect(
            base, additional_headers=server.admin_headers, ssl=server.ssl_context
        ) as ws:
            await asyncio.wait_for(ws.recv(), 5)

    asyncio.run(websockets_every_way())
    server.stop()  # flushes everything to the log
    log = server.log_path.read_text()
    assert "WebSocket /api/v1/events/ws?token=(redacted)" in log, "the refused URL is logged, redacted"
    for secret in (server.admin_token, server.agent_tokens["h1"], wrong, SECRET):
        assert secret not in log
    assert re.search(r"token=(?!\(redacted\))", log) is None


def test_websocket_auth_by_header_or_first_message(server: ServerProcess) -> None:
    base = server.ws_url

    async def first_event(**connect: Any) -> dict[str, Any]:
        async with websockets.connect(f"{base}?after=0", ssl=server.ssl_context, **connect) as ws:
            if "additional_headers" not in connect:
                await ws.send(json.dumps({"token": server.admin_token}))
            event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return event

    async def close_code(first: str | None, **connect: Any) -> int | None:
        async with websockets.connect(base, ssl=server.ssl_context, **connect) as ws:
            if first is not None:
                await ws.send(first)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            return ws.close_code

    async def refused_handshake(url: str, **connect: Any) -> int:
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(url, ssl=server.ssl_context, **connect):
                pass
        return info.value.response.status_code

    with server.admin() as admin:
        admin.post("/tasks", json={"taskType": "stop", "hostId": "h1", "payload": {"dockerName": "x"}})
    assert asyncio.run(first_event(additional_headers=server.admin_headers))["type"] == "task_created"
    assert asyncio.run(first_event())["type"] == "task_created"
    assert asyncio.run(close_code(json.dumps({"token": "unknown"}))) == 4401
    assert asyncio.run(close_code("not json")) == 4401
    assert asyncio.run(close_code(json.dumps({"token": server.agent_tokens["h1"]}))) == 4403
    assert asyncio.run(refused_handshake(f"{base}?token={server.admin_token}")) == 403
    assert asyncio.run(refused_handshake(base, additional_headers={"Authorization": "Bearer nope"})) == 403
    agent = {"Authorization": f"Bearer {server.agent_tokens['h1']}"}
    assert asyncio.run(refused_handshake(base, additional_headers=agent)) == 403


def test_docs_load_nothing_from_outside(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10, verify=server.verify) as client:
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            html = response.text
            urls = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
            urls += re.findall(r"""\burl:\s*['"]([^'"]+)['"]""", html)
            assert len(urls) >= 2, html
            assert "fonts.googleapis" not in html and "cdn." not in html
            for url in urls:
                assert url.startswith("/"), f"{page} loads {url}"
                assert client.get(url).status_code == 200, url
            assert re.search(r"https?://", html.replace("http://www.w3.org", "")) is None, html
        assert client.get("/openapi.json").json()["info"]["title"] == "graphium control server"


def test_docs_render_in_a_browser_without_leaving_the_server(server: ServerProcess, tmp_path: Path) -> None:
    """Headless Chromium renders both pages; it sends no request but to the server (ReDoc's
    bundle asks for its CDN logo, which the pages' Content-Security-Policy blocks unsent)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-proxy-server"):
        options.add_argument(flag)
    for flag in chrome_trust_flags(tmp_path / "chromium"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        for page in ("/docs", "/redoc"):
            driver.get(f"{server.url}{page}")
            WebDriverWait(driver, 30).until(
                lambda d: "Create Task" in d.page_source
            )  # an operation's summary
            requested: dict[str, str] = {}
            blocked: set[str] = set()
            for entry in driver.get_log("performance"):
                message = json.loads(entry["message"])["message"]
                params = message["params"]
                if message["method"] == "Network.requestWillBeSent":
                    requested[params["requestId"]] = params["request"]["url"]
                elif message["method"] == "Network.loadingFailed" and params.get("blockedReason") == "csp":
                    blocked.add(params["requestId"])
            sent = [url for rid, url in requested.items() if rid not in blocked]
            assert f"{server.url}/openapi.json" in sent
            outside = [url for url in sent if not url.startswith((server.url, "data:", "blob:", "chrome://"))]
            assert not outside, f"{page} sent {outside}"
    finally:
        driver.quit()
