"""Self-healing: drift, or live accuracy falling below the held-out accuracy, starts a
retrain; its challenger replaces the champion only if the promotion gate finds it better on
rows neither trained on. A retrain with no labelled data newer than the champion's has
nothing to learn from: it is recorded as skipped ("no new labels") and trains nothing,
since a model fit to the same data again could only tie. Every retrain, whatever started
it, is a row in `retrains` from claim to outcome (and so a metric)."""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, DriftReport, Retrain, as_utc, utcnow
from lifeboat.errors import LifeboatError
from lifeboat.logs import configure_logging
from lifeboat.monitoring import LiveAccuracy
from lifeboat.orchestration.engines import materialize_features
from lifeboat.registry import ModelRegistry, ModelVersion
from lifeboat.training import DataSeen, TrainingResult, new_labels_since, train

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


def heal(settings: Settings, database: Database, spec: DatasetSpec, reason: str | None,
         report: DriftReport | None) -> Retrain | None:
    """Retrains for `reason` (what `retrain_reason` found, None: nothing calls for one) when
    the policy allows it and no retrain ran within the cooldown; returns the finished
    retrain, or None when none was started."""
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
            changed_by: str) -> TrainingResult:
    """Features for rows loaded since the last run, then a challenger, promoted only if the
    gate finds it better."""
    materialize_features(settings, database, spec)
    return train(settings, database, spec, promote=True, changed_by=changed_by)


def nothing_new(database: Database, spec: DatasetSpec, champion: ModelVersion | None) -> str | None:
    """Why a retrain would have nothing to learn from, or None: no row loaded and no outcome
    received since the data the champion was trained on. A champion trained before that was
    recorded is taken to have seen what was loaded when it was registered."""
    if champion is None:
        return None
    seen = DataSeen.from_tags(champion.training_data) or DataSeen(
        loaded_until=datetime.fromtimestamp(champion.created_at / 1000, UTC))
    if new_labels_since(database, spec, seen):
        return None
    return (f"no new labels: nothing loaded since {seen.loaded_until:%Y-%m-%d %H:%M:%S} UTC "
            f"and no outcome received since champion v{champion.version} was trained")


def recorded_retrain(settings: Settings, database: Database, spec: DatasetSpec, reason: str,
                     drift_report_id: int | None = None) -> Retrain:
    """Claims the dataset's retrain slot, retrains with gated promotion, records the outcome.
    A failure is recorded, then raised."""
    champion = ModelRegistry(settings, spec.model_name).champion()
    claim = _claim(database, spec.name, reason, drift_report_id,
                   champion.version if champion else None)
    try:
        if skipped := nothing_new(database, spec, champion):
            log.info("%s retrain skipped: %s", spec.name, skipped)
            return _finish(database, claim, status="skipped", detail={"decision": skipped})
        result = retrain(settings, database, spec, changed_by="retrain")
    except Exception as exc:
        _finish(database, claim, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    decision = result.promotion
    promoted = bool(decision and decision.promoted)
    return _finish(database, claim, status="promoted" if promoted else "kept_champion",
                   challenger_version=result.version,
                   detail={"decision": decision.reason if decision else None,
                           "evidence": decision.evidence if decision else None,
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
