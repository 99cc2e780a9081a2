"""The dashboard's doors, in a real browser: who may sign in, and forms that must carry their
CSRF token. A ``graphium-run serve`` process with two agent hosts and no agents (nothing here
deploys)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.keys import Keys

from tests.browser.dashboard import Dashboard, browser_fixture  # noqa: F401
from tests.integration.server_fixture import ServerProcess, server_process  # noqa: F401
from tests.support import stack_doc, unique_name


def test_sign_in_refuses_agent_tokens_and_unknown_ones(
    browser: webdriver.Chrome, server: ServerProcess
) -> None:
    ui = Dashboard(browser, server.url, "signin")
    ui.open("/web/stacks")
    assert ui.path.startswith("/web/signin"), "an anonymous page must redirect to the sign-in page"
    ui.sign_in(server.agent_tokens["h1"])
    error = ui.wait(lambda: ui.text("#signin-error"), 10, "no error for an agent token")
    assert "Agent tokens cannot sign in" in error
    assert ui.path.startswith("/web/signin") and not ui.all("nav")
    ui.screenshot("agent-token-refused")
    ui.sign_in("not-a-token")
    assert "Unknown token" in ui.wait(lambda: ui.text("#signin-error"), 10, "no error for a bad token")

    ui.sign_in(server.admin_token)
    ui.wait(lambda: ui.path == "/web/stacks", 10, "signing in did not land on the stacks list")
    assert server.url.startswith("https://"), "the dashboard is tested over TLS"
    cookie = browser.get_cookie("graphium_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["secure"]
    assert server.admin_token not in json.dumps(browser.get_cookies()), "the token must not be in a cookie"
    assert browser.execute_script("return document.cookie") == "", "scripts must not read the session"

    # the session cookie does not open the API, which wants the bearer token
    session = {"graphium_session": cookie["value"]}
    assert httpx.get(f"{server.url}/api/v1/stacks", cookies=session, verify=server.verify).status_code == 401

    # from the keyboard: the first Tab reaches the skip link, then the navigation's links
    ui.find("body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.text == "Skip to content"
    tabbed = []
    for _ in range(5):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        tabbed.append(browser.switch_to.active_element.text)
    assert tabbed[:5] == ["graphium", "Stacks", "Deploy", "Agents", "Sign out"], tabbed
    outline = browser.execute_script("return getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "a focused control must show it"
    browser.switch_to.active_element.send_keys(Keys.ENTER)  # Sign out, from the keyboard
    ui.wait(lambda: ui.path.startswith("/web/signin"), 10, "sign-out did not return to the sign-in page")
    ui.sign_in(server.admin_token)
    ui.wait(lambda: ui.path == "/web/stacks", 10, "not signed in again")
    ui.find(".signout button").click()
    ui.wait(lambda: ui.path.startswith("/web/signin"), 10, "sign-out did not return to the sign-in page")
    ui.open("/web/deploy")
    assert ui.path.startswith("/web/signin"), "the session must end at sign-out"
    assert server.admin_token not in server.log_tail()


def test_a_form_without_its_csrf_token_is_refused(browser: webdriver.Chrome, server: ServerProcess) -> None:
    ui = Dashboard(browser, server.url, "csrf")
    ui.signed_in(server.admin_token)
    ui.open("/web/deploy")
    name = unique_name("web-csrf-")
    doc = stack_doc(name, [{"name": "web", "image": "nginx:alpine", "locatedInHost": {"@id": "h1"}}])
    browser.execute_script("document.getElementById('stack').value = arguments[0]", json.dumps(doc))
    browser.execute_script("document.querySelector('#deploy-form input[name=csrf]').remove()")
    ui.find("#preview").click()
    ui.wait(lambda: "CSRF" in ui.body(), 10, "a form without its CSRF token was not refused")
    ui.screenshot("csrf-refused")
    # nor does a forged token pass
    ui.open("/web/deploy")
    browser.execute_script("document.querySelector('#deploy-form input[name=csrf]').value = 'forged'")
    browser.execute_script("document.getElementById('stack').value = arguments[0]", json.dumps(doc))
    ui.find("#preview").click()
    ui.wait(lambda: "CSRF" in ui.body(), 10, "a forged CSRF token was not refused")
    with server.admin() as api:
        assert api.get(f"/stacks/{name}").status_code == 404


def test_a_broken_stack_shows_every_problem_at_its_path(
    browser: webdriver.Chrome, server: ServerProcess, tmp_path: Path
) -> None:
    ui = Dashboard(browser, server.url, "broken-stack")
    ui.signed_in(server.admin_token)
    name = unique_name("web-broken-")
    broken = stack_doc(
        name,
        [
            {"name": "web", "imagee": "nginx:alpine", "ports": [{"containerPort": "eighty"}]},
            {"name": "db", "image": "postgres:16", "environment": {"DB_PASSWORD": "${DB_PASSWORD}"}},
        ],
    )
    ui.open("/web/deploy")
    path = tmp_path / "broken.jsonld"  # through the upload field this time
    path.write_text(json.dumps(broken, indent=2))
    ui.find("#file").send_keys(str(path))
    ui.find("#preview").click()
    problems = ui.wait(lambda: ui.text("#problems"), 10, "no problems shown for a broken stack")
    assert "nothing was deployed" in problems
    assert '$["@graph"][0].hasPart[0].imagee' in problems and "unknown property 'imagee'" in problems
    assert "hasPart[0].ports[0].containerPort" in problems
    assert "needs 'image'" in problems
    ui.screenshot("problems")
    with server.admin() as api:
        assert api.get(f"/stacks/{name}").status_code == 404
        assert api.get("/tasks/stats").json().get("total", 0) == 0, "nothing may be enqueued"


def test_variables_get_fields_and_secrets_are_never_echoed(
    browser: webdriver.Chrome, server: ServerProcess
) -> None:
    ui = Dashboard(browser, server.url, "variables")
    ui.signed_in(server.admin_token)
    name = unique_name("web-vars-")
    doc = stack_doc(
        name,
        [
            {
                "name": "db",
                "image": "postgres:${PG_TAG}",
                "locatedInHost": {"@id": "h1"},
                "environment": {"POSTGRES_PASSWORD": "${PG_PW}", "MODE": "${MODE:-fast}"},
            }
        ],
    )
    ui.open("/web/deploy")
    browser.execute_script("document.getElementById('stack').value = arguments[0]", json.dumps(doc))
    ui.find("#preview").click()
    ui.wait(lambda: ui.all("#variables"), 10, "no variable fields")
    assert ui.find("#var-PG_PW").get_attribute("type") == "password"
    assert ui.find("#var-PG_TAG").get_attribute("type") == "text"
    assert "optional" in ui.text("label[for=var-MODE]")
    ui.find("#var-PG_TAG").send_keys("16")
    secret = "s3cret-" + unique_name("")
    ui.find("#var-PG_PW").send_keys(secret)
    ui.find("#preview").click()
    # no agent ever reported, so planning refuses; the values typed must come back without the secret
    ui.wait(lambda: ui.text("#deploy-error") or ui.text("#plan"), 15, "no answer to the preview")
    assert ui.find("#var-PG_TAG").get_attribute("value") == "16"
    assert ui.find("#var-PG_PW").get_attribute("value") == ""
    assert secret not in browser.page_source
    ui.screenshot("variables")
