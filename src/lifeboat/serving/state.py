"""What the running service holds: settings, the database, the spec and the loaded champion."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.errors import NoChampionError
from lifeboat.registry import ModelRegistry
from lifeboat.serving.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class ServiceState:
    settings: Settings
    database: Database
    spec: DatasetSpec
    registry: ModelRegistry
    predictor: Predictor | None = None
    model_error: str | None = None

    def load_champion(self) -> None:
        """Loads the champion; without one the service still starts and says so in /ready."""
        try:
            version, model = self.registry.load_champion()
        except NoChampionError as exc:
            self.predictor, self.model_error = None, str(exc)
            log.warning("%s", exc)
            return
        self.predictor, self.model_error = Predictor(self.spec, model, version), None
        log.info("serving %s version %s", version.name, version.version)
