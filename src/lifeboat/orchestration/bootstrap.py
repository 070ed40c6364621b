"""First start: everything `lifeboat up` needs before it can serve, each step skipped when done."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, upgrade
from lifeboat.errors import DatasetSpecError
from lifeboat.features import MaterializeReport, feature_view, materialize, open_online_store
from lifeboat.ingest import IngestReport, LandingZone, ingest_file, row_count
from lifeboat.registry import ModelRegistry, ModelVersion, view_mismatch
from lifeboat.synthetic import GENERATORS
from lifeboat.training import TrainingResult, train

log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BootstrapReport:
    ingested: list[IngestReport]
    materialized: MaterializeReport
    trained: TrainingResult | None
    champion: ModelVersion


def bootstrap(settings: Settings, database: Database, spec: DatasetSpec,
              progress: Progress = lambda _step: None) -> BootstrapReport:
    """Schema → bundled data (if the table is empty) → features (what is missing) → a champion
    (if there is none, or it was trained on feature columns this code no longer computes)."""
    settings.ensure_home()
    progress("upgrading the database schema")
    upgrade(database)
    ingested = []
    if row_count(database, spec) == 0:
        progress(f"loading the bundled {spec.name} data")
        zone = LandingZone(settings.landing_url)
        ingested = [ingest_file(database, spec, str(path), zone)
                    for path in first_data(settings, spec)]
    progress("materializing features")
    store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
    try:
        materialized = materialize(database, spec, store)
    finally:
        store.close()
    registry = ModelRegistry(settings, spec.model_name)
    trained, champion = None, registry.champion()
    if champion is None or view_mismatch(champion, feature_view(spec)):
        trained = train(settings, database, spec, promote=True, progress=progress)
        champion = registry.champion()
    assert champion is not None, "training with promote=True always leaves a champion"
    return BootstrapReport(ingested, materialized, trained, champion)


def first_data(settings: Settings, spec: DatasetSpec) -> list[Path]:
    """The file a dataset ships with, or, for one with no public data, its generator's
    seeded files (written once under LIFEBOAT_HOME, entities before their events)."""
    if spec.generated_by is None:
        return [spec.bundled_path()]
    generate = GENERATORS.get(spec.generated_by)
    if generate is None:
        raise DatasetSpecError(f"dataset {spec.name!r} names generator {spec.generated_by!r}; "
                               f"known: {', '.join(sorted(GENERATORS))}")
    return generate(settings.ensure_home() / "generated" / spec.name, spec.training.seed)
