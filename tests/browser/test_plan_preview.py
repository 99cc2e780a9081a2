"""Deploy's preview and confirm in a real browser, without Docker: the test plays the agents by
reporting their hosts' state (``PUT /agents/{host}/observed``), so the server can plan; nothing
runs the enqueued tasks.

A confirm runs exactly the previewed plan, or refuses it once the hosts changed; secret values
typed into the form never reach a page, not even once the tasks that carry them are stored.
"""

from __future__ import annotations

import json
from typing import Any

from selenium import webdriver
from selenium.webdriver.common.keys import Keys

from tests.browser.dashboard import PHONE, Dashboard, browser_fixture  # noqa: F401
from tests.integration.server_fixture import ServerProcess, server_process  # noqa: F401
from tests.support import stack_doc, unique_name


def observe(server: ServerProcess, host: str, containers: list[dict[str, Any]]) -> None:
    with server.agent(host) as api:
        body = {"host": host, "containers": containers, "networks": []}
        response = api.put(f"/agents/{host}/observed", json=body)
        assert response.status_code == 204, response.text


POST_FORM = """const [action, fields] = arguments;
const form = document.createElement('form');
form.method = 'post';
form.action = action;
fields.csrf = document.querySelector('input[name=csrf]').value;
for (const [name, value] of Object.entries(fields)) {
  const input = document.createElement('input');
  input.type = 'hidden'; input.name = name; input.value = value;
  form.append(input);
}
document.body.append(form);
form.submit();"""


def post_form(browser: webdriver.Chrome, action: str, fields: dict[str, str]) -> None:
    """Post a form the page did not offer, with the page's CSRF token (as a second tab would)."""
    browser.execute_script(POST_FORM, action, fields)


def test_confirm_runs_the_previewed_plan_or_refuses_a_stale_one(
    browser: webdriver.Chrome, server: ServerProcess
) -> None:
    for host in ("h1", "h2"):
        observe(server, host, [])
    name = unique_name("web-plan-")
    doc = stack_doc(
        name,
        [
            {
                "name": "db",
                "image": "postgres:16",
                "locatedInHost": {"@id": "h1"},
                "environment": {"POSTGRES_PASSWORD": "${DB_PW}", "POSTGRES_DB": "shop"},
            },
            {"name": "web", "image": "nginx:alpine", "locatedInHost": {"@id": "h2"}},
        ],
    )
    secret = "pw-" + unique_name("")
    ui = Dashboard(browser, server.url, "plan-preview")
    ui.open("/web/signin")  # from the keyboard: the token field has focus, Enter submits
    browser.switch_to.active_element.send_keys(server.admin_token, Keys.ENTER)
    ui.wait(lambda: ui.path == "/web/stacks", 10, "signing in from the keyboard failed")

    def preview() -> str:
        ui.open("/web/deploy")
        browser.execute_script("document.getElementById('stack').value = arguments[0]", json.dumps(doc))
        ui.find("#preview").click()
        ui.wait(lambda: ui.all("#var-DB_PW"), 10, "no field for ${DB_PW}")
        assert ui.find("#var-DB_PW").get_attribute("type") == "password"
        ui.find("#var-DB_PW").send_keys(secret)
        ui.find("#preview").click()
        return str(ui.wait(lambda: ui.text("#plan-summary"), 20, "no plan preview"))

    assert preview().startswith("2 to create, 0 to replace, 0 to remove")
    assert secret not in browser.page_source
    ui.screenshot("preview")
    ui.screenshot("preview-phone", PHONE)

    # the hosts change under the preview: a container of this stack turns up on h1
    stray = {"id": "c0ffee", "dockerName": f"{name}-old", "host": "h1", "stack": name, "name": "old",
             "live": {"state": "running"}}  # fmt: skip
    observe(server, "h1", [stray])
    ui.find("#confirm").click()
    error = ui.wait(lambda: ui.text("#deploy-error"), 20, "a stale plan was not refused")
    assert "stale" in error
    with server.admin() as api:
        assert api.get(f"/stacks/{name}").status_code == 404, "a refused plan must enqueue nothing"

    summary = preview()
    assert summary.startswith("2 to create, 0 to replace, 1 to remove"), summary
    assert "no longer in the stack" in ui.text("#plan-actions")
    used = ui.find("input[name=preview]").get_attribute("value")
    ui.find("#confirm").click()
    ui.wait(lambda: ui.path == f"/web/stacks/{name}", 15, "confirm did not open the stack's page")
    with server.admin() as api:
        stack = api.get(f"/stacks/{name}").json()
    assert stack["status"] == "deploying"
    kinds = sorted(t["taskType"] for t in stack["tasks"])
    assert kinds == ["delete", "deploy", "deploy", "ensure-network", "ensure-network"], kinds
    ui.wait(lambda: len(ui.all("#tasks tbody tr")) == 5, 10, "the page does not list the stack's tasks")
    rows = ui.rows("#containers tbody tr", "data-container")
    assert "pending" in rows["db"] and "h1" in rows["db"], rows
    assert "postgres:16" in rows["db"]
    waiting = ui.text(".waiting")  # no agent ever registered: the page says why nothing moves
    assert "no live agent for h1" in waiting and "no live agent for h2" in ui.text("#live"), waiting
    # the deploy task's payload holds the secret: no page shows it
    for path in (f"/web/stacks/{name}", "/web/stacks", "/web/agents"):
        ui.open(path)
        assert secret not in browser.page_source, path
    ui.screenshot("deploying")

    # an agent fails a task: the page shows the error in full, live
    ui.open(f"/web/stacks/{name}")
    ui.marker()
    ui.wait(lambda: ui.text("#stream-status").startswith("Live"), 10, "the live stream did not open")
    why = "network create failed: " + "x" * 300 + " (the end of a long error)"
    failed = {}
    for host in ("h1", "h2"):  # each host's network task fails, so nothing else can run
        with server.agent(host) as agent:
            claimed = agent.post(f"/agents/{host}/claim", json={"agentId": f"test-{host}"})
            assert claimed.status_code == 200, claimed.text
            failed[host] = claimed.json()["id"]
            body = {"status": "failed", "error": f"{why} on {host}", "agentId": f"test-{host}"}
            assert agent.put(f"/tasks/{failed[host]}/status", json=body).status_code == 200
    for host, task_id in failed.items():
        cell = f'#tasks tr[data-task="{task_id}"] pre.error'
        shown = ui.wait(lambda cell=cell: ui.text(cell), 15, "no task error")
        assert shown == f"{why} on {host}", "the error must be shown in full"
    ui.wait(lambda: ui.text("#stack-status") == "error", 30, "the stack never showed its error")
    assert "(the end of a long error)" in ui.text("#stack-error")
    assert ui.same_page()
    ui.screenshot("failed")

    # the same preview confirmed again (a second tab, a double click) is refused: it ran already
    ui.open("/web/deploy")
    post_form(browser, "/web/deploy/confirm", {"preview": used})
    assert "expired or was already used" in ui.wait(lambda: ui.text("#deploy-error"), 10, "no refusal")


def test_the_stacks_list_follows_new_stacks_live(browser: webdriver.Chrome, server: ServerProcess) -> None:
    for host in ("h1", "h2"):
        observe(server, host, [])
    ui = Dashboard(browser, server.url, "stacks-live")
    ui.signed_in(server.admin_token)
    assert ui.all("#no-stacks")
    ui.marker()
    ui.wait(lambda: ui.find("#live").get_attribute("data-updated"), 10, "the list's live stream did not open")
    name = unique_name("web-list-")
    with server.admin() as api:  # someone else deploys, from the CLI or the API
        doc = stack_doc(name, [{"name": "web", "image": "nginx:alpine", "locatedInHost": {"@id": "h2"}}])
        assert api.post("/stacks", json=doc).status_code == 202
    row = ui.wait(lambda: ui.text(f'#stacks tr[data-stack="{name}"]'), 10, "the new stack never showed")
    assert "deploying" in row and "h2" in row
    assert ui.same_page(), "the list reloaded: it must update live"
