"""First start: everything `lifeboat up` needs before it can serve, each step skipped when done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.ingest import IngestReport, LandingZone, ingest_file, row_count
from lifeboat.registry import ModelRegistry, ModelVersion
from lifeboat.training import TrainingResult, train

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapReport:
    ingested: IngestReport | None
    trained: TrainingResult | None
    champion: ModelVersion


def bootstrap(settings: Settings, database: Database, spec: DatasetSpec,
              progress: Progress = lambda _step: None) -> BootstrapReport:
    """Schema → bundled data (if the table is empty) → first champion (if none)."""
    settings.ensure_home()
    progress("upgrading the database schema")
    upgrade(database)
    ingested = None
    if row_count(database, spec) == 0:
        progress(f"loading the bundled {spec.name} data")
        ingested = ingest_file(database, spec, str(spec.bundled_path()),
                               LandingZone(settings.landing_url))
    registry = ModelRegistry(settings, spec.model_name)
    trained = None
    if registry.champion() is None:
        trained = train(settings, database, spec, promote=True, progress=progress)
    champion = registry.champion()
    assert champion is not None, "training with promote=True always leaves a champion"
    return BootstrapReport(ingested, trained, champion)
