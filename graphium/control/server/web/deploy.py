"""Deploying from the browser: paste or upload a stack, fill its variables, preview, confirm.

Nothing is enqueued before the confirm: the preview loads and checks the stack (every problem is
shown at its JSON path), plans it against the hosts as ``POST /api/v1/stacks`` would, and keeps
that exact plan in the session under a random id. Confirm runs that plan, after checking that
nothing it was computed from changed (a stale plan is refused and must be previewed again). The
plan, which holds resolved variable values, never leaves the server; secret-looking variables are
typed into password fields and never written back into the page.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.datastructures import FormData
from fastapi.responses import RedirectResponse, Response

from graphium.control.server.state import Server
from graphium.control.server.web.forms import Posted, posted_form
from graphium.control.server.web.render import page
from graphium.control.server.web.session import Session, signed_in
from graphium.control.server.web.variables import Variable, stack_variables
from graphium.errors import GraphiumError, Problem, StalePlanError, ValidationError
from graphium.plan.model import ActionReason, Plan
from graphium.records.stack import StackStatus
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import StackDocument, load_stack_text

router = APIRouter(include_in_schema=False)

MAX_STACK_BYTES = 2 * 1024 * 1024
PREVIEW_SECONDS = 15 * 60.0
PREVIEWS_PER_SESSION = 5
VAR_PREFIX = "var."


@dataclass
class PendingPlan:
    """A previewed plan, waiting for its confirm."""

    deployer: Deployer
    plan: Plan
    text: str = field(repr=False)
    filename: str
    made: float


@dataclass
class DeployForm:
    """What the deploy page shows: the stack text, its variables, problems, and a plan preview."""

    text: str = ""
    filename: str = "stack.jsonld"
    variables: list[Variable] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # non-secret values only, echoed back
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None
    notice: str | None = None
    plan: Plan | None = None
    preview_id: str | None = None


SignedIn = Annotated[Session, Depends(signed_in)]


# why an action is what it is, in words (the code is shown beside it)
REASON_TEXT = {
    ActionReason.new_instance: "no container of this instance runs on any host",
    ActionReason.unchanged: "runs as declared",
    ActionReason.config_changed: "its configuration changed",
    ActionReason.spec_hash_missing: "the running container carries no spec hash to compare",
    ActionReason.old_hash_version: "the running container was labelled by an older graphium",
    ActionReason.host_changed: "it moves to another host",
    ActionReason.not_running: "it exists but is not running",
    ActionReason.changed_out_of_band: "it was changed outside graphium",
    ActionReason.renamed: "it was found under another name",
    ActionReason.interrupted_replace: "a replace was interrupted; this apply repairs it",
    ActionReason.removed_from_stack: "it is no longer in the stack",
    ActionReason.replicas_changed: "the stack declares fewer replicas",
    ActionReason.duplicate: "a second copy runs on another host",
    ActionReason.replace_leftover: "left behind by an interrupted replace",
    ActionReason.stack_destroyed: "the stack is deleted",
}


def _show(request: Request, session: Session, form: DeployForm, status: int = 200) -> Response:
    reasons = {k.value: v for k, v in REASON_TEXT.items()}
    return page(
        request, "deploy.html", session, status=status, form=form, changes=_changes, reason_text=reasons
    )


def _changes(value: Any) -> str:
    """A field value of a plan change, as JSON (the planner already masked secret ones)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@router.get("/web/deploy")
def deploy_form(request: Request, session: SignedIn) -> Response:
    return _show(request, session, DeployForm())


async def _stack_text(data: FormData) -> tuple[str, str]:
    """The uploaded file if one was chosen, else the pasted text; and a name for error messages."""
    upload = data.get("file")  # Starlette's UploadFile (FastAPI's is a subclass of it)
    if upload is not None and not isinstance(upload, str) and upload.filename:
        raw = await upload.read(MAX_STACK_BYTES + 1)
        if raw:
            return raw.decode("utf-8", errors="replace"), upload.filename
    pasted = data.get("stack") if isinstance(data.get("stack"), str) else ""
    text = str(pasted)
    # pasted text has no file name to tell its format: JSON starts with '{' (or '['), YAML not
    return text, "stack.jsonld" if text.lstrip()[:1] in ("{", "[", "") else "stack.yaml"


def _environ(data: FormData, variables: list[Variable]) -> dict[str, str]:
    """The variables typed in; a field left empty is not set (planning then says so)."""
    out: dict[str, str] = {}
    for var in variables:
        value = data.get(VAR_PREFIX + var.name)
        if isinstance(value, str) and value != "":
            out[var.name] = value
    return out


@router.post("/web/deploy")
async def preview(request: Request) -> Response:
    """Check and plan the stack; show every problem, or the plan with its confirm button."""
    posted = await posted_form(request)
    if not isinstance(posted, Posted):
        return posted
    srv: Server = request.app.state.server
    text, filename = await _stack_text(posted.form)
    form = DeployForm(text=text, filename=filename)
    if not text.strip():
        form.error = "Paste a stack document or choose a file."
        return _show(request, posted.session, form, 400)
    if len(text.encode()) > MAX_STACK_BYTES:
        form.text, form.error = "", f"The stack is larger than {MAX_STACK_BYTES // 1024} KiB."
        return _show(request, posted.session, form, 400)
    try:
        doc = load_stack_text(text, filename)
    except ValidationError as exc:
        form.problems = exc.problems
        return _show(request, posted.session, form, 400)
    form.variables = stack_variables(doc)
    environ = _environ(posted.form, form.variables)
    secret = {v.name for v in form.variables if v.secret}
    form.values = {k: v for k, v in environ.items() if k not in secret}
    asked = any(key.startswith(VAR_PREFIX) for key in posted.form)
    if not asked and any(v.required for v in form.variables):
        form.notice = "This stack uses variables: fill them in, then preview again."
        return _show(request, posted.session, form)
    return await _plan(request, srv, posted.session, form, doc, environ)


async def _plan(
    request: Request,
    srv: Server,
    session: Session,
    form: DeployForm,
    doc: StackDocument,
    environ: dict[str, str],
) -> Response:
    name = doc.stack.name
    refusal = _busy(srv, name)
    if refusal:
        form.error = refusal
        return _show(request, session, form, 409)
    deployer = Deployer(srv.store, srv.executor, srv.inventory(doc), events=EventBus(srv.store))
    try:
        plan = await deployer.plan(doc, environ=environ)
    except ValidationError as exc:
        form.problems = exc.problems
        return _show(request, session, form, 400)
    except GraphiumError as exc:
        form.error = str(exc)
        return _show(request, session, form, 409)
    _forget_old(session)
    form.plan, form.preview_id = plan, secrets.token_urlsafe(16)
    session.plans[form.preview_id] = PendingPlan(deployer, plan, form.text, form.filename, time.monotonic())
    return _show(request, session, form)


def _busy(srv: Server, name: str) -> str | None:
    """Why stack ``name`` cannot be deployed now (the API's own refusals), or None."""
    if srv.active(name):
        return f"Stack {name} has a run in progress: wait for it, or delete the stack."
    stored = srv.store.get_stack(name)
    if stored is not None and stored.status is StackStatus.deleting:
        return f"Stack {name} is being deleted."
    return None


def _forget_old(session: Session) -> None:
    now = time.monotonic()
    for key, pending in list(session.plans.items()):
        if now - pending.made > PREVIEW_SECONDS:
            del session.plans[key]
    while len(session.plans) >= PREVIEWS_PER_SESSION:
        del session.plans[next(iter(session.plans))]


@router.post("/web/deploy/confirm")
async def confirm(request: Request) -> Response:
    """Enqueue exactly the previewed plan, unless what it was computed from has changed."""
    posted = await posted_form(request)
    if not isinstance(posted, Posted):
        return posted
    srv: Server = request.app.state.server
    preview_id = posted.form.get("preview")
    pending = posted.session.plans.pop(preview_id, None) if isinstance(preview_id, str) else None
    if pending is None or time.monotonic() - pending.made > PREVIEW_SECONDS:
        form = DeployForm(error="This preview expired or was already used: preview the stack again.")
        return _show(request, posted.session, form, 409)
    form = DeployForm(text=pending.text, filename=pending.filename)
    try:
        await pending.deployer.check_fresh(pending.plan)
    except StalePlanError as exc:
        form.error = f"The plan went stale ({exc}): preview the stack again."
        return _show(request, posted.session, form, 409)
    refusal = _busy(srv, pending.plan.stack)
    if refusal:
        form.error = refusal
        return _show(request, posted.session, form, 409)
    try:
        await srv.start(pending.deployer, pending.plan)
    except GraphiumError as exc:
        form.error = str(exc)
        return _show(request, posted.session, form, 409)
    return RedirectResponse(f"/web/stacks/{quote(pending.plan.stack)}", status_code=303)


__all__ = ["PendingPlan", "router"]
