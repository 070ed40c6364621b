"""Every HTTP request counted by method, route and status, and timed by method and route.

The route is the template that served the request (`/models/{version}`), never the raw
path: a label value per model version, record id or scanner's guess would grow Prometheus
without bound. Paths no route serves share the one value `unmatched`. A dataset's routes
are registered under its literal prefix (`/datasets/titanic/predict`), so their templates
are as many as the datasets served.

A plain ASGI middleware, not Starlette's BaseHTTPMiddleware: that one runs each request
through a task and memory streams, which costs more than a one-record prediction. The
counters are prometheus-client's, so with several workers they count into the shared
multiprocess folder like every other process metric.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lifeboat.metrics import HTTP_REQUEST_DURATION, HTTP_REQUESTS

UNMATCHED = "unmatched"
_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
_SERVER_ERROR = 500


class HttpMetrics:
    """ASGI middleware, outermost of the app's own: its time includes reading and parsing
    the body. The router leaves the route it matched in the scope (`scope["route"]`),
    read here once the answer is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counted: dict[tuple, Any] = {}
        self._timed: dict[tuple, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status: int | None = None

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except HTTPException as exc:  # a body past the size limit, answered further out
            status = status or exc.status_code
            raise
        finally:  # no answer sent: the server's outermost handler answers a 500
            self._observe(scope, status or _SERVER_ERROR, perf_counter() - started)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "other"
        route = _route(scope)
        _child(self._counted, HTTP_REQUESTS, (method, route, status)).inc()
        _child(self._timed, HTTP_REQUEST_DURATION, (method, route)).observe(seconds)


def _child(children: dict[tuple, Any], metric: Any, labels: tuple) -> Any:
    """The metric's series of these labels, kept: `labels()` validates and locks on every
    call, which would be paid twice per request."""
    child = children.get(labels)
    if child is None:
        child = children[labels] = metric.labels(*labels)
    return child


def _route(scope: Scope) -> str:
    """The template of the route that served the request. A request answered before
    routing (a body refused by `JsonBodies` or the size limit) is matched here, as the
    router would have: the first route matching fully, else the first matching the path
    alone (a 405)."""
    route = scope.get("route")
    if route is None:
        routes = scope["app"].router.routes
        route = next((candidate for wanted in (Match.FULL, Match.PARTIAL)
                      for candidate in routes if candidate.matches(scope)[0] is wanted), None)
    return getattr(route, "path_format", None) or UNMATCHED
