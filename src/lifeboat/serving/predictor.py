"""Scoring with the loaded champion: raw records, or entities whose features are stored online."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.db.models import Prediction, utcnow
from lifeboat.features import FeatureView, OnlineStore
from lifeboat.registry import ModelVersion


@dataclass(frozen=True)
class EntityScores:
    predictions: list[Prediction]
    unknown: list[str]  # ids the online store holds no vector for


@dataclass(frozen=True)
class Predictor:
    spec: DatasetSpec
    model: Any
    version: ModelVersion
    view: FeatureView

    def predict(self, records: list[dict[str, Any]], source: str) -> list[Prediction]:
        """Scores records in one call to the model; every result is ready to be logged."""
        started = time.perf_counter()
        return self._predictions(self.probabilities(records), records, source, started)

    def probabilities(self, records: list[dict[str, Any]] | pd.DataFrame) -> np.ndarray:
        """The positive class's probability per raw record: the one scoring path of every
        route and of batch scoring."""
        return self.model.predict_proba(self.view.from_records(records))[:, 1]

    def predict_entities(self, store: OnlineStore, entity_ids: Sequence[str],
                         source: str) -> EntityScores:
        """Looks the ids up in one read; an id the store lacks is reported, not fatal."""
        started = time.perf_counter()
        vectors = store.read(self.view.key, entity_ids)
        found = [(entity_id, vector) for entity_id, vector in zip(entity_ids, vectors, strict=True)
                 if vector is not None]
        unknown = [entity_id for entity_id, vector in zip(entity_ids, vectors, strict=True)
                   if vector is None]
        if not found:
            return EntityScores([], unknown)
        features = self.view.from_rows([vector for _, vector in found])
        inputs = [{"entity_id": entity_id} for entity_id, _ in found]
        probabilities = self.model.predict_proba(features)[:, 1]
        return EntityScores(self._predictions(probabilities, inputs, source, started), unknown)

    def _predictions(self, probabilities: np.ndarray, inputs: list[dict[str, Any]], source: str,
                started: float) -> list[Prediction]:
        created_at = utcnow()
        latency_ms = (time.perf_counter() - started) * 1000
        return [
            self._prediction(given, float(probability), source, created_at, latency_ms)
            for given, probability in zip(inputs, probabilities, strict=True)
        ]

    def _prediction(self, given: dict[str, Any], probability: float, source: str,
                    created_at: datetime, latency_ms: float) -> Prediction:
        predicted = int(probability >= 0.5)
        return Prediction(
            id=str(uuid.uuid4()),
            created_at=created_at,
            dataset=self.spec.name,
            source=source,
            input=given,
            prediction=predicted,
            label=self.spec.label_for(predicted),
            probability=probability,
            model_name=self.version.name,
            model_version=self.version.version,
            latency_ms=latency_ms,
        )
