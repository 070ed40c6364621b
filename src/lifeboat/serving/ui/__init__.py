"""The web UI at `/`: one server-rendered page whose tabs talk to the JSON API with fetch.

Everything the browser loads comes from this process, so the UI works with no network:
our own CSS and JS from `static/`, and plotly.js from the installed `plotly` package,
which ships the bundle (nothing is fetched from a CDN or copied into this repository).
"""

from __future__ import annotations

from importlib.metadata import version
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from lifeboat.serving.schemas import Source
from lifeboat.serving.ui.form import form_fields

_HERE = Path(__file__).parent
_PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
_templates = Jinja2Templates(directory=_HERE / "templates")
_templates.env.trim_blocks = _templates.env.lstrip_blocks = True


def add_ui_routes(app: FastAPI) -> None:
    """Serve the page at `/`, its assets under `/ui/`; none of it appears in the OpenAPI page."""
    app.mount("/ui/static", StaticFiles(directory=_HERE / "static"), name="ui-static")
    app.add_api_route("/", _index, methods=["GET"], response_class=HTMLResponse,
                      include_in_schema=False)
    app.add_api_route("/ui/vendor/plotly.min.js", _plotly, methods=["GET"],
                      include_in_schema=False)


def _index(request: Request) -> HTMLResponse:
    """The form is rendered from the dataset spec the service was started with."""
    spec = request.app.state.service.spec
    return _templates.TemplateResponse(request, "index.html", {
        "spec": spec,
        "fields": form_fields(spec),
        "sources": Source.__args__,
        "labels": spec.target.labels,
        # In the plotly.js URL: a plotly upgrade is fetched again despite the long cache time.
        "plotly_version": version("plotly"),
    })


def _plotly() -> FileResponse:
    """plotly.js as the installed plotly package ships it; cached, as it changes only with it."""
    return FileResponse(_PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
