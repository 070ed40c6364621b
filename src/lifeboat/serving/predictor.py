"""Scoring raw records with the loaded champion."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifeboat.datasets import DatasetSpec
from lifeboat.db.models import Prediction, utcnow
from lifeboat.features import raw_frame
from lifeboat.registry import ModelVersion


@dataclass(frozen=True)
class Predictor:
    spec: DatasetSpec
    model: Any
    version: ModelVersion

    def predict(self, records: list[dict[str, Any]], source: str) -> list[Prediction]:
        """Scores records in one call to the model; every result is ready to be logged."""
        started, created_at = time.perf_counter(), utcnow()
        probabilities = self.model.predict_proba(raw_frame(self.spec, records))[:, 1]
        latency_ms = (time.perf_counter() - started) * 1000
        return [
            self._prediction(record, float(probability), source, created_at, latency_ms)
            for record, probability in zip(records, probabilities, strict=True)
        ]

    def _prediction(self, record: dict[str, Any], probability: float, source: str,
                    created_at: datetime, latency_ms: float) -> Prediction:
        predicted = int(probability >= 0.5)
        return Prediction(
            id=str(uuid.uuid4()),
            created_at=created_at,
            dataset=self.spec.name,
            source=source,
            input=record,
            prediction=predicted,
            label=self.spec.label_for(predicted),
            probability=probability,
            model_name=self.version.name,
            model_version=self.version.version,
            latency_ms=latency_ms,
        )
