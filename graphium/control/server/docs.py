"""``/docs`` (Swagger UI) and ``/redoc`` served from assets bundled with the package, no CDN.

FastAPI's own pages load their scripts, styles and favicon from public CDNs, so offline (or on a
control machine that must reach only its agents) they render blank. ``fastapi_offline`` ships
those assets; they are mounted here and FastAPI's page builders point at them, with ReDoc's
Google fonts and Swagger UI's online validator badge off. The bundles still name outside URLs
(ReDoc's footer logo comes from its CDN), so the pages also carry a Content-Security-Policy that
lets the browser load nothing but this server's own resources.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "DOCS_CSP", "add_docs"]

DOCS_ASSETS = "/docs-assets"  # where the bundled files are served
_STATIC = Path(fastapi_offline.__file__).parent / "static"
# the pages' own inline start-up script and styles, this server, and what the bundles make in memory
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


def add_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the bundled assets and add the two pages (the app is made with ``docs_url=None,
    redoc_url=None`` so that FastAPI's CDN pages are not there)."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = f"{docs_url}/oauth2-redirect"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=redirect_url,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # its badge is an image from validator.swagger.io
        )
        return _local_only(page)

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        return _local_only(page)
