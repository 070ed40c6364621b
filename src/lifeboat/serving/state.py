"""What the running service holds: settings, the database, the spec, the online store and
the loaded champion."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.errors import NoChampionError
from lifeboat.features import FeatureView, OnlineStore, OnlineStoreUnavailable, feature_view
from lifeboat.registry import ModelRegistry
from lifeboat.serving.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: Settings
    database: Database
    spec: DatasetSpec
    registry: ModelRegistry
    store: OnlineStore
    predictor: Predictor | None = None
    model_error: str | None = None
    view: FeatureView = field(init=False)

    def __post_init__(self) -> None:
        self.view = feature_view(self.spec)  # what this code computes, fixed for the process

    def load_champion(self) -> None:
        """Loads the champion; without a usable one the service still starts and says why in /ready."""
        view = self.view
        try:
            version, model = self.registry.load_champion()
        except NoChampionError as exc:
            self.predictor, self.model_error = None, str(exc)
            log.warning("%s", exc)
            return
        if version.feature_view != view.label:
            self.predictor = None
            self.model_error = (f"{version.name} v{version.version} was trained on features "
                                f"{version.feature_view}, but this code computes {view.label}: "
                                "run `lifeboat train --promote`")
            log.warning("%s", self.model_error)
            return
        self.predictor, self.model_error = Predictor(self.spec, model, version, view), None
        log.info("serving %s version %s on features %s", version.name, version.version, view.label)

    def feature_check(self) -> tuple[str, bool]:
        """The online store's state, and whether it keeps the service from being ready.

        A store that lacks the served view version is a setup error (not ready). A store
        that is down only stops entity-id requests: records still score, so still ready.
        """
        view = self.view
        try:
            held = self.store.columns(view.key)
        except OnlineStoreUnavailable as exc:
            return f"degraded: {exc}", True
        if held is None:
            return (f"the online store {self.store.url} holds no features {view.label}: run "
                    "`lifeboat features materialize`"), False
        return "ok", True
