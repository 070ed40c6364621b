"""Who may call what: every route outside health, metrics and the UI's page needs a bearer
key of its scope once keys are configured for that scope.

- `admin`: what changes which model serves (promote, rollback, retrain). Without an admin
  key configured these stay shut (403), so a fresh install never exposes them.
- `read`: what was predicted and on whose data (past predictions), models, jobs, drift and
  monitoring; `feedback`: POST /feedback; `predict`: every scoring route. Without a key
  configured for one of these it stays open, for local use, and the service says so at
  start (`open_scopes`).

An admin key is also a key of every other scope. A key is compared in constant time.
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations at
# run time, and its bearer scheme is local to `_gate`.
import logging
import secrets
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from lifeboat.config import Settings

log = logging.getLogger(__name__)


class Scope(StrEnum):
    ADMIN = "admin"
    FEEDBACK = "feedback"
    READ = "read"
    PREDICT = "predict"


def key_setting(scope: Scope) -> str:
    """The setting naming the keys of `scope`."""
    return f"LIFEBOAT_{scope.upper()}_KEYS"


def authorize(settings: Settings, scope: Scope, given: str | None) -> None:
    """Returns if `given` may use `scope`; raises the 401 or 403 otherwise."""
    keys = settings.keys_for(scope)
    if not keys:
        if scope is Scope.ADMIN:
            raise HTTPException(403, detail="admin routes are disabled: set LIFEBOAT_ADMIN_KEYS "
                                            "on the server")
        return
    offered = (given or "").encode()
    # Every key is compared, so the time taken does not tell which one came close.
    if not sum(secrets.compare_digest(offered, key) for key in keys):
        challenge = f'Bearer realm="lifeboat", scope="{scope}"'
        raise HTTPException(401, detail=f"{scope} routes need `Authorization: Bearer <key>` with "
                                        f"{_accepted_keys(scope)}",
                            headers={"WWW-Authenticate": challenge})


def _accepted_keys(scope: Scope) -> str:
    """The settings whose keys open `scope`: an admin key opens every scope."""
    if scope is Scope.ADMIN:
        return "a key of LIFEBOAT_ADMIN_KEYS"
    return f"a key of {key_setting(scope)} or LIFEBOAT_ADMIN_KEYS"


def authorize_request(request: Request, scope: Scope) -> None:
    """`authorize` for a route outside FastAPI's dependency injection (the scoring route)."""
    kind, token = get_authorization_scheme_param(request.headers.get("authorization"))
    authorize(request.app.state.settings, scope, token if kind.lower() == "bearer" else None)


def open_scopes(settings: Settings) -> list[Scope]:
    """The scopes anyone may use: no key is configured for them (admin is shut instead)."""
    return [scope for scope in Scope if scope is not Scope.ADMIN and not settings.keys_for(scope)]


def warn_open_scopes(settings: Settings) -> None:
    opened = open_scopes(settings)
    if opened:
        names = ", ".join(scope.value for scope in opened)
        variables = ", ".join(key_setting(scope) for scope in opened)
        log.warning("the %s routes are open to anyone who can reach this service: set %s (or "
                    "LIFEBOAT_ADMIN_KEYS) before exposing it beyond this machine", names,
                    variables)


def document_open_scopes(document: dict[str, Any], settings: Settings) -> None:
    """Takes the key requirement off the operations of open scopes in an OpenAPI document:
    they ask for no key, and the document (and any client made from it) should say so."""
    opened = {f"{scope.value}_key" for scope in open_scopes(settings)}
    for item in document.get("paths", {}).values():
        for operation in item.values():
            required = [r for r in operation.get("security", []) if not opened & set(r)]
            if "security" in operation and not required:
                del operation["security"]
    schemes = document.get("components", {}).get("securitySchemes", {})
    for name in opened:
        schemes.pop(name, None)


def _gate(scope: Scope) -> Any:
    """A FastAPI dependency requiring a key of `scope`, shown as its own bearer scheme in the
    OpenAPI page."""
    bearer = HTTPBearer(auto_error=False, scheme_name=f"{scope.value}_key",
                        description=f"Bearer token: {_accepted_keys(scope)}, needed once the "
                                    "server sets such keys")

    async def check(request: Request,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Depends(bearer)]) -> None:
        """Async on purpose: FastAPI runs a sync dependency in the thread pool."""
        given = credentials.credentials if credentials else None
        authorize(request.app.state.settings, scope, given)

    return Security(check)


Admin = _gate(Scope.ADMIN)
Feedback = _gate(Scope.FEEDBACK)
Read = _gate(Scope.READ)
Predict = _gate(Scope.PREDICT)
