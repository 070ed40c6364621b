"""The prediction service (FastAPI): scores raw records with the champion and logs each one."""

from lifeboat.serving.app import create_app

__all__ = ["create_app"]
