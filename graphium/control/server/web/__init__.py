"""The web dashboard under ``/web``: server-rendered pages over the same state as the API.

A person signs in with an admin token (:mod:`.signin`), lists stacks and follows one live
(:mod:`.stacks`), deploys from a form through a plan preview (:mod:`.deploy`) and sees the agents
and the task queue (:mod:`.agents`). Pages are Jinja2 templates; the little JavaScript there is
(the live stack page) and the stylesheet are served from :func:`static_files`, never a CDN.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from graphium.control.server.web import agents, deploy, signin, stacks
from graphium.control.server.web.render import STATIC_DIR, STATIC_URL


def router() -> APIRouter:
    """Every dashboard route (``/`` and ``/web/...``), for ``app.include_router``."""
    combined = APIRouter(include_in_schema=False)
    for part in (signin.router, stacks.router, deploy.router, agents.router):
        combined.include_router(part)
    return combined


def static_files() -> StaticFiles:
    """The dashboard's stylesheet and script, for ``app.mount(STATIC_URL, ...)``."""
    return StaticFiles(directory=STATIC_DIR)


__all__ = ["STATIC_URL", "router", "static_files"]
