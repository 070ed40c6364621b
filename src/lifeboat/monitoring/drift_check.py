"""A drift check: the latest window of served predictions against the training reference
of the model that served them, stored as a report (a row, with its page)."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, DriftReport, Prediction, as_utc, utcnow
from lifeboat.errors import LifeboatError
from lifeboat.features import feature_view
from lifeboat.monitoring.drift import detect_drift, distributions, render_report
from lifeboat.monitoring.live_accuracy import estimated_accuracy
from lifeboat.registry import DriftReference, ModelRegistry

log = logging.getLogger(__name__)

PLOTLY_SRC = "/ui/vendor/plotly.min.js"  # served by the service itself


class DriftCheckUnavailable(LifeboatError):
    """Nothing to check yet: no champion, no reference, or too few predictions."""


def check_drift(settings: Settings, database: Database, spec: DatasetSpec) -> DriftReport:
    """Tests the champion's latest `drift_window_size` predictions (any source) and stores
    the report. Only the champion's own predictions are windowed: inputs are compared with
    the data the serving model learnt from. The window's inputs are the view rows logged
    with each prediction, as the reference holds training's view rows: a prediction by
    entity id is tested on the vector it was scored on. The report also estimates the
    window's accuracy from its probabilities at the champion's threshold, labels or not."""
    registry = ModelRegistry(settings, spec.model_name)
    champion = registry.champion()
    if champion is None:
        raise DriftCheckUnavailable(f"{spec.model_name} has no champion: nothing serves yet")
    stored = registry.drift_reference(champion.version)
    if stored is None:
        raise DriftCheckUnavailable(f"{spec.model_name} v{champion.version} was trained "
                                    "without a drift reference: retrain it")
    window = recent_window(database, spec.name, champion.version, settings.drift_window_size)
    if len(window) < settings.drift_window_size:
        raise DriftCheckUnavailable(
            f"{len(window)} predictions by {spec.model_name} v{champion.version} so far; a "
            f"drift check needs {settings.drift_window_size} (LIFEBOAT_DRIFT_WINDOW_SIZE)")
    reference = DriftReference.from_dict(stored)
    inputs = feature_view(spec).logged_rows(window["features"].tolist(), window["input"].tolist())
    probabilities = window["probability"].to_numpy(dtype=np.float64)
    result = detect_drift(reference, inputs, probabilities, p_value=settings.drift_p_value,
                          correction=settings.drift_correction)
    verdict, shares = result.to_dict(), distributions(result, reference, inputs, probabilities)
    title = (f"Drift: {spec.name}, {spec.model_name} v{champion.version}, "
             f"{len(window)} predictions up to {window['created_at'].max():%Y-%m-%d %H:%M} UTC")
    report = DriftReport(
        dataset=spec.name, model_name=champion.name, model_version=champion.version,
        window_start=window["created_at"].min(), window_end=window["created_at"].max(),
        window_size=len(window), drifted=result.drifted, drift_share=result.drift_share,
        p_value=result.p_value, correction=result.correction,
        features=verdict["features"],
        prediction_drift={test["feature"]: test for test in verdict["prediction"]},
        estimated_accuracy=estimated_accuracy(probabilities, champion.threshold),
        distributions=shares,
        html=render_report(result, shares, plotly_src=PLOTLY_SRC, title=title),
    )
    with database.session() as session:
        session.add(report)
    log.info("drift check of %s v%s over %d predictions: %s (drift share %.2f, estimated "
             "accuracy %.3f)", champion.name, champion.version, len(window),
             "DRIFT" if result.drifted else "no drift", result.drift_share,
             report.estimated_accuracy)
    return report


def recent_window(database: Database, dataset: str, model_version: str,
                  size: int) -> pd.DataFrame:
    """The newest `size` predictions of a model version: created_at, input, features (the
    view row scored, null if logged before the log kept it), probability."""
    columns = ["created_at", "input", "features", "probability"]
    query = (select(*(Prediction.__table__.c[name] for name in columns))
             .where(Prediction.dataset == dataset, Prediction.model_version == model_version)
             .order_by(Prediction.created_at.desc()).limit(size))
    with database.session() as session:
        rows = session.execute(query).all()
    frame = pd.DataFrame(rows, columns=columns)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def latest_report(database: Database, dataset: str) -> DriftReport | None:
    with database.session() as session:
        return session.scalars(
            select(DriftReport).where(DriftReport.dataset == dataset)
            .order_by(DriftReport.created_at.desc(), DriftReport.id.desc()).limit(1)).first()


def drift_report(database: Database, dataset: str, report_id: int) -> DriftReport | None:
    """One stored report of the dataset (another dataset's id is no report of this one)."""
    with database.session() as session:
        return session.scalars(select(DriftReport).where(
            DriftReport.dataset == dataset, DriftReport.id == report_id)).first()


def drift_reports(database: Database, dataset: str, *, limit: int,
                  offset: int = 0) -> tuple[int, list[DriftReport]]:
    """How many reports the dataset has, and a page of them, newest first, without their
    pages and plots (a list shows none of them)."""
    where = DriftReport.dataset == dataset
    with database.session() as session:
        total = session.scalar(select(func.count()).select_from(DriftReport).where(where))
        reports = session.scalars(
            select(DriftReport).where(where)
            .options(defer(DriftReport.html), defer(DriftReport.distributions))
            .order_by(DriftReport.created_at.desc(), DriftReport.id.desc())
            .limit(limit).offset(offset)).all()
    return total, list(reports)


def checked_recently(database: Database, dataset: str, seconds: float) -> bool:
    """Whether any process stored a report in the last `seconds`: workers of one service
    share a cadence instead of each running its own check."""
    with database.session() as session:
        latest = session.scalar(select(func.max(DriftReport.created_at))
                                .where(DriftReport.dataset == dataset))
    return latest is not None and utcnow() - as_utc(latest) < timedelta(seconds=seconds)
