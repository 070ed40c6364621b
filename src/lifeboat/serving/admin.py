"""The admin gate: routes that change which model serves need the operator's bearer key.

Without a configured key the gate stays shut (403), so a fresh install never exposes
promotion or retraining to anyone who can reach the port.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="LIFEBOAT_API_KEY")


def require_admin(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        raise HTTPException(403, detail="admin routes are disabled: set LIFEBOAT_API_KEY on the server")
    given = credentials.credentials if credentials else ""
    if not secrets.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise HTTPException(401, detail="a valid `Authorization: Bearer <LIFEBOAT_API_KEY>` header is required",
                            headers={"WWW-Authenticate": "Bearer"})


Admin = Depends(require_admin)
