"""Scoring with the loaded champion: raw records, or entities whose features are stored online."""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.db import Prediction, utcnow
from lifeboat.features import FeatureView, OnlineStore
from lifeboat.registry import SCORER_ARTIFACT, DriftReference, ModelRegistry, ModelVersion
from lifeboat.scoring.compiled import CompiledScorer, UnsupportedModel, compile_model, load_scorer

log = logging.getLogger(__name__)

_RAND_B = (1 << 62) - 1
# The longest entity id a prediction can be logged with: the log's entity_id column.
MAX_ENTITY_ID: int = Prediction.__table__.c["entity_id"].type.length


@dataclass(frozen=True, slots=True)
class ServedPrediction:
    """One served prediction, as the prediction log stores it (the `predictions` table's
    columns). A plain object, not an ORM row: building one of those costs more than scoring."""

    id: str
    created_at: datetime
    dataset: str
    source: str
    input: dict[str, Any]
    prediction: int
    label: str
    probability: float
    model_name: str
    model_version: str
    latency_ms: float
    entity_id: str | None = None  # the id asked for, or the key the record carried
    # The view row the model scored, as computed (NaN for a missing number): the prediction
    # log's writer makes it JSON, off the request's thread.
    features: dict[str, Any] | None = None
    outliers: tuple[str, ...] = ()  # fields outside what training saw; not a table column


def prediction_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562): 48 bits of Unix milliseconds, then random.

    The prediction log's primary key then grows at its right edge, as batch ids do. Random
    (version 4) ids put each row on a random page of a key index larger than the database's
    cache, which the writer thread paid for under load: single-record /predict at 16 clients
    had a p99 of 10.0-11.7 ms with them, 8.8-9.5 ms with these (SQLite log, six 8-s runs each).
    """
    random = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = random >> 68, random & _RAND_B  # 12 and 62 of its 80 bits
    milliseconds = time.time_ns() // 1_000_000
    return str(uuid.UUID(int=milliseconds << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b))


def load_predictor(registry: ModelRegistry, spec: DatasetSpec, version: ModelVersion,
                   view: FeatureView, reference: DriftReference | None = None) -> Predictor:
    """The version ready to score. Its compiled scorer, where training saved one, is all that
    is loaded: the pipeline's skops file costs `lifeboat predict` about a second more (skops'
    import, its type audit, the unpickling, the ONNX conversion), and the service 0.2-0.5 s
    of the GIL that requests share at each reload, for a model the compiled scorer never calls."""
    saved = saved_scorer_files(registry, version)
    if saved is not None:
        try:
            return scorer_predictor(spec, version, view, saved, reference)
        except UnsupportedModel as exc:
            log.warning("%s v%s: its saved scorer is not used (%s); loading the pipeline",
                        version.name, version.version, exc)
    return Predictor(spec, registry.load(version.version), version, view, reference)


def saved_scorer_files(registry: ModelRegistry, version: ModelVersion) -> dict[str, bytes] | None:
    """The compiled scorer training saved for the version, file by file (None: it saved none,
    its classifier having no ONNX form): a few hundred kilobytes that a job ships to the
    machines that score, which then need neither MLflow nor scikit-learn's model classes."""
    with tempfile.TemporaryDirectory(prefix="lifeboat-scorer-") as scratch:
        saved = registry.download_folder(version, SCORER_ARTIFACT, Path(scratch))
        if saved is None:
            return None
        return {path.name: path.read_bytes() for path in saved.iterdir() if path.is_file()}


def scorer_predictor(spec: DatasetSpec, version: ModelVersion, view: FeatureView,
                     files: Mapping[str, bytes],
                     reference: DriftReference | None = None) -> Predictor:
    """The version from its saved scorer's files alone (`saved_scorer_files`)."""
    with tempfile.TemporaryDirectory(prefix="lifeboat-scorer-") as scratch:
        for name, content in files.items():
            (Path(scratch) / name).write_bytes(content)
        return Predictor(spec, None, version, view, reference,
                         fast=load_scorer(view, Path(scratch)))


@dataclass(frozen=True)
class EntityScores:
    predictions: list[ServedPrediction]
    unknown: list[str]  # ids the online store holds no vector for


@dataclass(frozen=True)
class Predictor:
    spec: DatasetSpec
    model: Any  # the fitted pipeline; None when given its saved `fast` scorer alone
    version: ModelVersion
    view: FeatureView
    reference: DriftReference | None = None  # training ranges and categories: outlier flags
    fast: CompiledScorer | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Compiles the model once, as it is loaded: requests then pay microseconds, not the
        pandas pipeline's milliseconds. A model the compiled scorer cannot replay is still served."""
        if self.fast is not None:
            return
        try:
            fast = compile_model(self.spec, self.view, self.model)
        except UnsupportedModel as exc:
            log.warning("%s v%s is scored with the pandas pipeline: %s", self.version.name,
                        self.version.version, exc)
            fast = None
        object.__setattr__(self, "fast", fast)

    def predict(self, records: list[dict[str, Any]], source: str,
                entity_ids: Sequence[str | None] | None = None) -> list[ServedPrediction]:
        """Scores records in one call to the model; every result is ready to be logged, with
        the view row it was scored on and the entity key each record carried (`entity_ids`)."""
        started = time.perf_counter()
        probabilities, rows = self.scored(records)
        keys = entity_ids if entity_ids is not None else [None] * len(records)
        return self._predictions(probabilities, records, rows, keys, source, started)

    def scored(self, records: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The positive class's probability per raw record, and the view row it scored."""
        if self.fast is None:
            rows = self.view.from_records(records)
            return self.model.predict_proba(rows)[:, 1], rows.to_dict("records")
        return self.fast.scored(records)

    def probabilities(self, records: list[dict[str, Any]] | pd.DataFrame) -> np.ndarray:
        """The positive class's probability per raw record: the one scoring path of every
        route and of batch scoring."""
        if self.fast is None:
            return self.reference_probabilities(records)
        return self.fast.probabilities(records)

    def reference_probabilities(self, records: list[dict[str, Any]] | pd.DataFrame) -> np.ndarray:
        """The fitted pipeline run on pandas frames: what the compiled scorer must always equal."""
        return self.model.predict_proba(self.view.from_records(records))[:, 1]

    def predict_entities(self, store: OnlineStore, entity_ids: Sequence[str],
                         source: str) -> EntityScores:
        """Looks the ids up in one read; an id the store lacks is reported, not fatal."""
        started = time.perf_counter()
        vectors = store.read(self.view.key, entity_ids)
        ids = [entity_id for entity_id, vector in zip(entity_ids, vectors, strict=True)
               if vector is not None]
        unknown = [entity_id for entity_id, vector in zip(entity_ids, vectors, strict=True)
                   if vector is None]
        if not ids:
            return EntityScores([], unknown)
        found = [vector for vector in vectors if vector is not None]
        columns = list(self.view.columns)
        rows = [dict(zip(columns, vector, strict=True)) for vector in found]
        inputs = [{"entity_id": entity_id} for entity_id in ids]
        return EntityScores(self._predictions(self.vector_probabilities(found), inputs, rows, ids,
                                              source, started), unknown)

    def vector_probabilities(self, vectors: Sequence[Sequence[object]]) -> np.ndarray:
        """View vectors (in the view's column order, as the online store holds them) scored:
        the path of entity ids, and of whatever rescores logged view rows."""
        if self.fast is None:
            return self.model.predict_proba(self.view.from_rows(vectors))[:, 1]
        return self.fast.vector_probabilities(vectors)

    def view_probabilities(self, rows: Mapping[str, Any]) -> np.ndarray:
        """View columns (arrays, or a typed view frame) scored column-wise: batch scoring."""
        if self.fast is None:
            return self.model.predict_proba(pd.DataFrame(rows))[:, 1]
        return self.fast.view_probabilities(rows)

    def _predictions(self, probabilities: np.ndarray, inputs: list[dict[str, Any]],
                     rows: list[dict[str, Any]], entity_ids: Sequence[str | None], source: str,
                     started: float) -> list[ServedPrediction]:
        created_at = utcnow()
        # Each prediction's share: a row of a 500-record request did not take its whole time.
        latency_ms = (time.perf_counter() - started) * 1000 / max(len(inputs), 1)
        return [
            self._prediction(given, row, entity_id, float(probability), source, created_at,
                             latency_ms)
            for given, row, entity_id, probability
            in zip(inputs, rows, entity_ids, probabilities, strict=True)
        ]

    def _prediction(self, given: dict[str, Any], row: dict[str, Any], entity_id: str | None,
                    probability: float, source: str, created_at: datetime,
                    latency_ms: float) -> ServedPrediction:
        predicted = int(probability >= self.version.threshold)
        return ServedPrediction(
            id=prediction_id(),
            created_at=created_at,
            dataset=self.spec.name,
            source=source,
            entity_id=entity_id,
            input=given,
            features=row,
            prediction=predicted,
            label=self.spec.label_for(predicted),
            probability=probability,
            model_name=self.version.name,
            model_version=self.version.version,
            latency_ms=latency_ms,
            outliers=tuple(self.reference.outliers(given)) if self.reference else (),
        )
