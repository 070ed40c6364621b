"""Self-healing: drift, or live accuracy falling below the held-out accuracy, starts a
retrain; its challenger replaces the champion only if it scores better on the same
held-out rows plus recent labelled predictions. Every retrain, whatever started it, is a
row in `retrains` from claim to outcome (and so a metric)."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta

import pandas as pd
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, DriftReport, Retrain
from lifeboat.db.models import as_utc, utcnow
from lifeboat.errors import LifeboatError
from lifeboat.features import feature_view, materialize, open_online_store
from lifeboat.logs import configure_logging
from lifeboat.monitoring.live_accuracy import LiveAccuracy, recent_outcomes
from lifeboat.registry import ModelRegistry
from lifeboat.training import TrainingResult, train

log = logging.getLogger(__name__)

# A claim this old belongs to a process that died mid-retrain: training takes minutes.
_ABANDONED_AFTER = timedelta(hours=6)


class RetrainRunning(LifeboatError):
    """Another process is retraining this dataset right now."""


def retrain_reason(settings: Settings, report: DriftReport | None,
                   accuracy: LiveAccuracy | None) -> str | None:
    """Why the model should be retrained now ("drift", "accuracy"), or None."""
    if report is not None and report.drifted:
        return "drift"
    if (accuracy is not None and accuracy.drop is not None
            and accuracy.samples >= settings.min_feedback_samples
            and accuracy.drop > settings.accuracy_drop_threshold):
        return "accuracy"
    return None


def heal(settings: Settings, database: Database, spec: DatasetSpec,
         report: DriftReport | None, accuracy: LiveAccuracy | None) -> Retrain | None:
    """Retrains when the monitoring says so, the policy allows it and no retrain ran
    within the cooldown; returns the finished retrain, or None when none was started."""
    reason = retrain_reason(settings, report, accuracy)
    if reason is None or not settings.auto_retrain:
        return None
    if _retrained_within(database, spec.name, settings.retrain_cooldown_seconds):
        log.info("%s calls for a retrain, but one ran within the last %.0f s (cooldown)",
                 reason, settings.retrain_cooldown_seconds)
        return None
    try:
        return retrain_apart(settings, database, spec, reason,
                             drift_report_id=report.id if report is not None else None)
    except RetrainRunning as exc:
        log.info("%s", exc)
        return None


def retrain(settings: Settings, database: Database, spec: DatasetSpec,
            recent: tuple[pd.DataFrame, pd.Series] | None = None) -> TrainingResult:
    """Features for rows loaded since the last run, then a challenger, promoted only if better
    (on the held-out rows, and on `recent` labelled view rows when given)."""
    store = open_online_store(settings.online_store_url, settings.online_ttl_seconds)
    try:
        materialize(database, spec, store)
    finally:
        store.close()
    return train(settings, database, spec, promote=True, recent=recent)


def recorded_retrain(settings: Settings, database: Database, spec: DatasetSpec, reason: str,
                     drift_report_id: int | None = None) -> Retrain:
    """Claims the dataset's retrain slot, retrains with gated promotion, records the outcome.
    A failure is recorded, then raised."""
    champion = ModelRegistry(settings, spec.model_name).champion()
    claim = _claim(database, spec.name, reason, drift_report_id,
                   champion.version if champion else None)
    try:
        result = retrain(settings, database, spec, recent=_recent_rows(settings, database, spec))
    except Exception as exc:
        _finish(database, claim, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    decision = result.promotion
    promoted = bool(decision and decision.promoted)
    return _finish(database, claim, status="promoted" if promoted else "kept_champion",
                   challenger_version=result.version,
                   detail={"decision": decision.reason if decision else None,
                           "challenger_score": decision.challenger_score if decision else None,
                           "champion_score": decision.champion_score if decision else None,
                           "metrics": result.metrics})


def retrain_apart(settings: Settings, database: Database, spec: DatasetSpec, reason: str,
                  drift_report_id: int | None = None) -> Retrain:
    """`recorded_retrain` in a process of its own. Training holds the GIL for long
    stretches: run in the service's process, it would stall every request for minutes; in
    its own, the service only waits for the outcome, and the memory comes back after."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        claim = child.submit(_retrain_in_child, settings, spec, reason, drift_report_id).result()
    with database.session() as session:
        return session.get(Retrain, claim)


def _retrain_in_child(settings: Settings, spec: DatasetSpec, reason: str,
                      drift_report_id: int | None) -> int:
    configure_logging(settings.log_level)
    database = Database(settings.db_url)
    try:
        return recorded_retrain(settings, database, spec, reason, drift_report_id).id
    finally:
        database.dispose()


def _recent_rows(settings: Settings, database: Database,
                 spec: DatasetSpec) -> tuple[pd.DataFrame, pd.Series] | None:
    """Recent labelled predictions as the view rows they were scored on, and their outcomes;
    None while there are too few."""
    rows, actual = recent_outcomes(database, feature_view(spec), settings.live_accuracy_window)
    if len(rows) < settings.min_feedback_samples:
        return None
    return rows, actual


def _claim(database: Database, dataset: str, reason: str, drift_report_id: int | None,
           champion_version: str | None) -> int:
    """Inserts the `running` row; the database refuses a second one for the dataset."""
    with database.session() as session:
        session.execute(update(Retrain)
                        .where(Retrain.dataset == dataset, Retrain.status == "running",
                               Retrain.started_at < utcnow() - _ABANDONED_AFTER)
                        .values(status="failed", finished_at=utcnow(),
                                error="abandoned: its process stopped before it finished"))
    try:
        with database.session() as session:
            claim = Retrain(dataset=dataset, reason=reason, status="running",
                            champion_version=champion_version, drift_report_id=drift_report_id)
            session.add(claim)
            session.flush()
            return claim.id
    except IntegrityError:
        raise RetrainRunning(f"a retrain of {dataset} is already running") from None


def _finish(database: Database, claim: int, **outcome: object) -> Retrain:
    with database.session() as session:
        row = session.get(Retrain, claim)
        for name, value in {**outcome, "finished_at": utcnow()}.items():
            setattr(row, name, value)
        return row


def _retrained_within(database: Database, dataset: str, seconds: float) -> bool:
    with database.session() as session:
        latest = session.scalar(select(func.max(Retrain.started_at))
                                .where(Retrain.dataset == dataset, Retrain.status != "failed"))
    return latest is not None and utcnow() - as_utc(latest) < timedelta(seconds=seconds)
