"""The prediction service (FastAPI): scores raw records with the champion and logs each one.

The app is imported on first use, not with the package: batch scoring
(`lifeboat.serving.batch`, which the orchestration's scoring job imports) needs none of the
routes, and the routes import the orchestration, so an eager import here would be circular.
"""

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from lifeboat.serving.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
