"""Every JSON request body is parsed here, once, before any route sees it.

A body a route would choke on is refused with a 422 naming where the problem is, whichever
route it was sent to: nesting deeper than any request needs (the parser and every later
walk over the value would recurse), a lone UTF-16 surrogate (`"\\ud800"`: valid JSON, but
no UTF-8 text can hold it, so the database, the log and the error page would all fail on
it), a NUL character (PostgreSQL's text and JSON columns cannot hold one, so the logged
prediction would be lost), the `NaN`/`Infinity` literals (not JSON) and numbers too large
for a float.

The checks after parsing cost a walk over the value, so they run only when the parse or the
raw bytes say they might fail: the common body (one record) is parsed and passed on
unwalked.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_DEPTH = 32
"""Deepest nesting a body may have: a batch request is three levels deep."""

_PARSED = "lifeboat.json_body"
_FORMS = (b"multipart/form-data", b"application/x-www-form-urlencoded")
_MAX_DIGITS = 308  # a longer integer is beyond any float
_CONTAINERS = {dict, list}  # JSON's, exactly: a type lookup is the fastest test
_ODD_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")  # a surrogate's or NUL's


class _Unusable(str):
    """A literal no route can use (`NaN`, `Infinity`, a number beyond a float), kept as
    written with the reason, for the walk to refuse where it is."""

    reason: str

    def __new__(cls, text: str, reason: str) -> _Unusable:
        unusable = super().__new__(cls, text)
        unusable.reason = reason
        return unusable


class _Found(Exception):
    """An unusable literal, met on the fast parse."""


def _literals(unusable: Any) -> dict[str, Any]:
    """The decoder's hooks for numbers and constants; `unusable(text, reason)` is what an
    unusable literal becomes (or raises)."""

    def number(text: str) -> Any:
        value = float(text)
        return value if math.isfinite(value) else unusable(text, "Number is too large")

    def integer(text: str) -> Any:
        return int(text) if len(text) <= _MAX_DIGITS else unusable(text, "Number is too large")

    def constant(text: str) -> Any:
        return unusable(text, f"{text} is not a JSON number")

    return {"parse_float": number, "parse_int": integer, "parse_constant": constant}


def _stop(_text: str, _reason: str) -> Any:
    raise _Found


# Made once: `json.loads` with hooks builds a decoder per call, which costs more than
# parsing a one-record body.
_FAST = json.JSONDecoder(**_literals(_stop))
_MARKING = json.JSONDecoder(**_literals(_Unusable))


def parse_json(content: bytes) -> Any:
    """The body's JSON value; a RequestValidationError (422) naming the problem if it has none
    or holds something no route can use."""
    if not content:
        raise _invalid(("body",), "missing", "Field required", None)
    try:
        # Strict decoding: `json.loads` would let UTF-8-encoded surrogates through.
        text = content.decode(json.detect_encoding(content))
        try:
            value, walk = _FAST.decode(text), False
        except _Found:
            value, walk = _MARKING.decode(text), True
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        position = getattr(exc, "pos", getattr(exc, "start", 0))
        raise _invalid(("body", position), "json_invalid", "JSON decode error", {},
                       {"error": getattr(exc, "msg", None) or str(exc)}) from None
    except RecursionError:
        raise _too_deep(("body",)) from None
    # Depth is looked at only past as many brackets, and text only if it holds a surrogate or
    # NUL escape (raw control characters are not JSON, strict decoding refused invalid
    # UTF-8); the value is walked, naming where, only when one of them is refused.
    if walk or content.count(b"[") + content.count(b"{") > MAX_DEPTH and not _shallow(value) \
            or b"\\u" in content and _ODD_ESCAPE.search(content) and not _plain_text(value):
        _walk(value, ("body",))
    return value


def _shallow(value: Any) -> bool:
    """Whether no container lies MAX_DEPTH deep: level by level over containers only, which
    costs a few milliseconds for 10,000 records where the walk takes a tenth of a second."""
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(MAX_DEPTH):
        if not level:
            return True
        below: list[Any] = []
        for container in level:
            children = container.values() if type(container) is dict else container
            below += [child for child in children if type(child) in _CONTAINERS]
        level = below
    return not level


def _plain_text(value: Any) -> bool:
    """Whether every key and text is UTF-8 without NUL: all of them joined, checked at once."""
    texts, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            texts.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            texts.append(item)
    joined = "\x01".join(texts)
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in joined


def _walk(root: Any, root_location: tuple[Any, ...]) -> None:
    """Raises at the first refused part, depth first; iterative, as the value may be deep."""
    stack = [(root, root_location)]
    while stack:
        value, location = stack.pop()
        if isinstance(value, dict | list) and len(location) - len(root_location) >= MAX_DEPTH:
            raise _too_deep(location)
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, (*location, _printable(key)))
                stack.append((item, (*location, key)))
        elif isinstance(value, list):
            stack.extend((item, (*location, index)) for index, item in enumerate(value))
        elif isinstance(value, _Unusable):
            raise _invalid(location, "json_invalid", value.reason, None)
        elif isinstance(value, str):
            _check_text(value, location)


def _check_text(text: str, location: tuple[Any, ...]) -> None:
    if "\x00" in text:
        raise _invalid(tuple(_printable(part) for part in location), "string_nul",
                       "Text holds a NUL character (\\u0000)", None)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(tuple(_printable(part) for part in location), "string_unicode",
                       f"Text holds a lone surrogate ({text[exc.start]!r}): not Unicode text",
                       None) from None


def _printable(part: Any) -> Any:
    """A location part that can be written back in the error: surrogates escaped."""
    return part.encode("utf-8", "backslashreplace").decode() if isinstance(part, str) else part


def _too_deep(location: tuple[Any, ...]) -> RequestValidationError:
    return _invalid(location, "json_invalid", f"JSON nested deeper than {MAX_DEPTH} levels", None)


def _invalid(location: tuple[Any, ...], kind: str, message: str, given: Any,
             context: dict[str, Any] | None = None) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": location, "msg": message, "input": given,
                                    **({"ctx": context} if context else {})}])


async def body_json(request: Request) -> Any:
    """The request's JSON value: as `JsonBodies` parsed it, or parsed now when it did not
    (an empty body, or one sent as a form)."""
    if _PARSED in request.scope:
        return request.scope[_PARSED]
    return parse_json(await request.body())


async def validation_error_response(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, rendered so that no input echoed back can break it: text is written
    ASCII-escaped, bytes (a body that was not JSON) as text with their undecodable bytes
    escaped, and a non-finite number as text (JSON has no NaN): the standard rendering
    turns each of these into a 500."""
    errors = jsonable_encoder(exc.errors(), custom_encoder={
        bytes: lambda content: content.decode("utf-8", "backslashreplace")})
    content = json.dumps({"detail": _finite(errors)}, ensure_ascii=True, allow_nan=False,
                         separators=(",", ":"))
    return Response(content, status_code=422, media_type="application/json")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


class JsonBodies:
    """ASGI middleware: reads every request body a route would parse as JSON (anything but a
    form), parses it with `parse_json`, keeps the value for `body_json`, and hands the bytes
    on unchanged; a refused body is answered with the 422 here. It sits inside the app's
    body-size limit, so a body is never read past it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS") \
                or _content_type(scope).startswith(_FORMS):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        message: Message = {"more_body": True}
        while message.get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"".join(chunks), message, receive), send)
                return
            chunks.append(message.get("body", b""))
        content = b"".join(chunks)
        if content:
            try:
                scope[_PARSED] = parse_json(content)
            except RequestValidationError as exc:
                response = await validation_error_response(Request(scope), exc)
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(content, None, receive), send)


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.lower().lstrip()
    return b""


def _replay(content: bytes, last: Message | None, receive: Receive) -> Receive:
    """A receive that gives the body read so far as one message, then `last` (a disconnect)
    if there was one, then whatever the server sends next."""
    pending: list[Message] = [{"type": "http.request", "body": content, "more_body": False}]
    if last is not None:
        pending = [{**pending[0], "more_body": True}, last]

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
