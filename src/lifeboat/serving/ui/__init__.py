"""The web UI: one server-rendered page per dataset whose tabs talk to that dataset's JSON
API with fetch; the default dataset's page is at `/`, every dataset's at `/datasets/{name}/`.

Everything the browser loads comes from this process, so the UI works with no network:
our own CSS and JS from `static/`, and plotly.js from the installed `plotly` package,
which ships the bundle (nothing is fetched from a CDN or copied into this repository).
Every URL in the page is relative to it, so the UI also works behind a proxy that mounts
the service under a prefix.
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from lifeboat.datasets import DatasetSpec
from lifeboat.serving.routes.datasets import dataset_path
from lifeboat.serving.schemas import Source
from lifeboat.serving.ui.form import form_fields

_HERE = Path(__file__).parent
_PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
_templates = Jinja2Templates(directory=_HERE / "templates")
_templates.env.trim_blocks = _templates.env.lstrip_blocks = True


def add_ui_assets(app: FastAPI) -> None:
    """The assets every page shares, under `/ui/`; none of it appears in the OpenAPI page."""
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static")
    app.add_api_route("/ui/vendor/plotly.min.js", _plotly, methods=["GET"],
                      include_in_schema=False)


def page_router(spec: DatasetSpec, specs: list[DatasetSpec], prefix: str) -> APIRouter:
    """The page of `spec` at `{prefix}/`: its form rendered from its spec, its API called
    from the page, and a switcher to the other datasets' pages when there are any."""
    root = "../" * prefix.count("/")  # from the page back to the service's root
    context = {
        "spec": spec,
        "fields": form_fields(spec),
        "sources": Source.__args__,
        "labels": spec.target.labels,
        "root": root,
        "api": f"{root}{prefix.lstrip('/')}/" if prefix else "",
        "datasets": _switcher(specs, root) if len(specs) > 1 else [],
        # In the plotly.js URL: a plotly upgrade is fetched again despite the long cache time.
        "plotly_version": version("plotly"),
    }
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return _templates.TemplateResponse(request, "index.html", context)

    return router


def _switcher(specs: list[DatasetSpec], root: str) -> list[dict[str, Any]]:
    """Each dataset's page, relative to the current one: the default's is the root page."""
    default = specs[0]
    return [{"name": spec.name, "description": spec.description,
             "href": (root or "./") if spec is default
             else f"{root}{dataset_path(spec.name).lstrip('/')}/"}
            for spec in specs]


def _plotly() -> FileResponse:
    """plotly.js as the installed plotly package ships it; cached, as it changes only with it."""
    return FileResponse(_PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
