"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), with every
script, stylesheet, icon and logo served by this process: FastAPI's own pages load them
from a CDN, so offline (an air-gapped host, a laptop on a train) they were blank.

The files come from the installed `fastapi-standalone-docs` package, which ships Swagger
UI's and ReDoc's browser bundles with their licences, ReDoc's built so that it asks for
its logo at `{page}/logo-mini.svg` rather than on Redocly's CDN (nothing is copied into
this repository). The pages are FastAPI's own, rendered with these files' URLs, following
FastAPI's recipe for self-hosted docs assets rather than the package's monkeypatching of
FastAPI. Every URL is relative to the page, as the web UI's are, so the pages also work
behind a proxy that mounts the service under a prefix.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

_ASSETS = Path(str(files("fastapi_standalone_docs") / "static"))


def add_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc` on an app created with `docs_url=None, redoc_url=None`, each
    page's files beneath it (`/docs/swagger-ui.css`, `/redoc/logo-mini.svg`, ...)."""
    openapi_url = app.openapi_url.lstrip("/")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url="docs/swagger-ui-bundle.js", swagger_css_url="docs/swagger-ui.css",
            swagger_favicon_url="docs/fastapi/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url="redoc/redoc.standalone.js",
            redoc_favicon_url="docs/fastapi/favicon.png", with_google_fonts=False)

    # The favicon's folder before the Swagger UI folder that would otherwise take its path.
    app.mount("/docs/fastapi", StaticFiles(directory=_ASSETS / "fastapi"), name="docs-icon")
    app.mount("/docs", StaticFiles(directory=_ASSETS / "swagger"), name="docs-assets")
    app.mount("/redoc", StaticFiles(directory=_ASSETS / "redoc"), name="redoc-assets")
