"""The HTTP service (FastAPI): routes, request and response models, and the web UI over
the scoring engine (`lifeboat.scoring`), one app for every served dataset."""

from lifeboat.serving.app import create_app, served_specs

__all__ = ["create_app", "served_specs"]
