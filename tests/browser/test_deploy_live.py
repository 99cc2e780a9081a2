"""The dashboard's headline, in a real browser, with real agents in the lab hosts: sign in,
deploy the multi-host nginx stack from the form, watch its page turn ``running`` without a
reload, and delete it from the page until its records are gone.

``graphium-run serve`` listens on the lab bridge; one ``graphium-run agent`` runs inside each lab
host's network namespace (as in tests/integration/test_agents_e2e.py). The stack gets a name and
host ports of its own, so nothing else on the lab is touched.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest
from selenium import webdriver

from graphium.store.json_store import JsonTaskStore
from lab import LabInfo
from tests.browser.dashboard import PHONE, Dashboard, browser_fixture  # noqa: F401
from tests.integration.server_fixture import ServerProcess
from tests.integration.test_agents_e2e import lab_server_fixture, start_agent  # noqa: F401
from tests.support import (
    http_get,
    remove_stack,
    stack_containers,
    stack_node,
    stop_processes,
    unique_name,
    wait_for,
    with_own_name_and_ports,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "examples" / "nginx-multihost.jsonld"


@pytest.fixture
def agents(lab: LabInfo, lab_server: ServerProcess, tmp_path: Path) -> Iterator[None]:
    procs = {h.id: start_agent(lab_server, lab, h.id, tmp_path) for h in lab.hosts}
    try:
        store = JsonTaskStore(lab_server.state)
        deadline = time.monotonic() + 30
        while not all(store.get_observation(h.id) for h in lab.hosts):  # planning needs every host
            assert time.monotonic() < deadline, "not every agent reported its host's state"
            assert all(p.poll() is None for p in procs.values()), "an agent exited"
            time.sleep(0.1)
        yield
    finally:
        stop_processes(*procs.values())


def test_deploy_watch_and_delete_the_multihost_stack_from_the_browser(
    lab: LabInfo, lab_server: ServerProcess, agents: None, browser: webdriver.Chrome
) -> None:
    name = unique_name("web-nginx-")
    doc, container_ports = with_own_name_and_ports(
        json.loads(STACK_FILE.read_text()), name, [h.address for h in lab.hosts]
    )
    ports = {p["locatedInHost"]["@id"]: container_ports[p["name"]] for p in stack_node(doc)["hasPart"]}
    ui = Dashboard(browser, lab_server.url, "deploy-live")
    try:
        ui.signed_in(lab_server.admin_token)
        ui.open("/web/agents")
        live = ui.rows("#agents tbody tr", "data-host")
        assert sorted(live) == sorted(h.id for h in lab.hosts), live
        assert all("live" in text for text in live.values()), live
        ui.screenshot("agents")
        ui.open("/web/stacks")
        ui.find("#deploy-link").click()
        ui.find("#stack").send_keys(json.dumps(doc))  # typed into the form, as a person pastes it
        ui.find("#preview").click()
        summary = ui.wait(lambda: ui.text("#plan-summary"), 30, "no plan preview")
        assert summary.startswith("3 to create, 0 to replace, 0 to remove"), summary
        actions = ui.text("#plan-actions")
        for host in lab.hosts:
            assert host.id in actions
        assert "new-instance" in actions
        ui.screenshot("plan-preview")
        with lab_server.admin() as api:
            assert api.get(f"/stacks/{name}").status_code == 404, "a preview must not enqueue anything"

        ui.find("#confirm").click()
        ui.wait(lambda: ui.path == f"/web/stacks/{name}", 15, "confirm did not open the stack's page")
        ui.marker()
        ui.wait(lambda: ui.text("#stream-status").startswith("Live"), 10, "the live stream did not open")
        ui.wait(lambda: ui.text("#stack-status") == "running", 90, "the stack page never showed running")
        assert ui.same_page(), "the page reloaded: it must update live"
        cells = ui.rows("#containers tbody tr", "data-container")
        assert len(cells) == 3, cells
        for part in stack_node(doc)["hasPart"]:
            assert "running" in cells[part["name"]] and part["locatedInHost"]["@id"] in cells[part["name"]]
        assert "100%" in ui.text("#stack-progress")
        assert len(ui.all("#tasks tbody tr")) >= 4  # the network tasks and one deploy per host
        ui.screenshot("running")
        ui.screenshot("running-phone", PHONE)
        for host in lab.hosts:
            assert http_get(host.address, ports[host.id]) is not None, f"{host.id}:{ports[host.id]} is silent"

        ui.open("/web/stacks")
        row = ui.rows("#stacks tbody tr", "data-stack")[name]  # the list is live too
        assert "running" in row and "3" in row, row
        ui.screenshot("stacks-list")
        ui.screenshot("stacks-list-phone", PHONE)

        ui.open(f"/web/stacks/{name}")
        ui.find("#delete-link").click()
        ui.wait(lambda: ui.all("#confirm-delete"), 10, "no delete confirmation")
        assert f"{name}-nginx-1" in ui.text("main"), "the confirmation must name what goes"
        ui.find("#confirm-delete").click()
        ui.wait(lambda: ui.path.startswith(f"/web/stacks/{name}"), 15, "deleting did not return to the page")
        ui.marker()
        ui.wait(lambda: ui.all("#gone"), 90, "the page never showed the stack gone")
        assert ui.same_page(), "the page reloaded while following the deletion"
        ui.screenshot("deleted")
        with lab_server.admin() as api:
            gone = lambda: api.get(f"/stacks/{name}").status_code == 404  # noqa: E731
            wait_for(gone, 10, "the records were not removed")
        for host in lab.hosts:
            assert not stack_containers(host.docker_url, name), f"containers left on {host.id}"
    finally:
        for host in lab.hosts:
            with contextlib.suppress(docker.errors.DockerException):
                remove_stack(host.docker_url, name)
