"""Scheduled scoring: each good/ file that ingestion finished is scored exactly once, logged
as source `scheduled`, however many schedulers run and whatever kills them.

A file is claimed first: a `scored_files` row, unique per file, so a second scheduler's
claim is refused by the database. The predictions' ids derive from the file's content and
the model version, and the claim keeps that version: a scheduler that takes over the claim
of a killed one scores with the same model, so its rerun logs only the rows the dead one
had not committed. A file that fails is retried a few times, then left failed with its
error, never retried forever.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, ScoredFile, holder_is_gone, this_process, utcnow
from lifeboat.ingest import GOOD, LandingZone
from lifeboat.orchestration.engines import score_source
from lifeboat.registry import ModelRegistry

log = logging.getLogger(__name__)

SCORED = "scored"
MARKER = "._SUCCESS"  # `<file>._SUCCESS`: the stage that wrote <file> finished
MAX_ATTEMPTS = 3
SOURCE = "scheduled"


@dataclass(frozen=True)
class Claim:
    id: int
    model_version: str


def mark_done(zone: LandingZone, folder: str, name: str) -> None:
    """The completion marker the next stage waits for."""
    zone.write_bytes(folder, name + MARKER, b"")


def ready_files(zone: LandingZone) -> list[str]:
    """good/ files whose ingestion finished (marked), in name order."""
    fs, folder = zone.fs, zone.path(GOOD)
    if not fs.exists(folder):
        return []
    names = {posixpath.basename(path) for path in fs.ls(folder, detail=False)}
    return sorted(name for name in names
                  if name.endswith(".parquet") and name + MARKER in names)


def score_ready_files(settings: Settings, database: Database, spec: DatasetSpec) -> dict[str, int]:
    """Scores every marked good/ file not scored yet; counts what this call did."""
    zone = LandingZone(settings.landing_url)
    counts = {"files": 0, "predictions": 0, "failed": 0}
    champion = ModelRegistry(settings, spec.model_name).champion()
    if champion is None:
        return counts
    scored = _scored(database, spec.name)
    for name in ready_files(zone):
        if name in scored:
            continue
        claim = claim_file(database, spec.name, name, champion.version)
        if claim is None:
            continue
        try:
            predictions = _score(settings, database, spec, zone, name, claim)
        except Exception as exc:  # the next file still gets its turn
            log.exception("scoring %s failed", name)
            _finish(database, claim, status="failed", error=f"{type(exc).__name__}: {exc}")
            counts["failed"] += 1
            continue
        counts["files"] += 1
        counts["predictions"] += predictions
    return counts


def claim_file(database: Database, dataset: str, name: str, model_version: str) -> Claim | None:
    """This process's claim on the file, or None when it is scored, being scored by a live
    process, or failed too often."""
    host, pid = this_process()
    try:
        with database.session() as session:
            row = ScoredFile(dataset=dataset, file=name, status="running", host=host, pid=pid,
                             model_version=model_version)
            session.add(row)
            session.flush()
            return Claim(row.id, model_version)
    except IntegrityError:
        return _take_over(database, dataset, name)


def _scored(database: Database, dataset: str) -> set[str]:
    """Files scored for good: one read per run, rather than a refused claim per file."""
    with database.session() as session:
        return set(session.scalars(select(ScoredFile.file).where(
            ScoredFile.dataset == dataset, ScoredFile.status == "succeeded")))


def _take_over(database: Database, dataset: str, name: str) -> Claim | None:
    """Claims a file whose holder died or whose last attempt failed, if it is still so when
    the update lands: the update names the holder it replaces, so two takers cannot both win."""
    host, pid = this_process()
    with database.session() as session:
        row = session.scalar(select(ScoredFile).where(ScoredFile.dataset == dataset,
                                                      ScoredFile.file == name))
        if row is None or row.status == "succeeded":
            return None
        abandoned = row.status == "running" and holder_is_gone(row.host, row.pid)
        retry = row.status == "failed" and row.attempts < MAX_ATTEMPTS
        if not (abandoned or retry):
            return None
        taken = session.execute(
            update(ScoredFile)
            .where(ScoredFile.id == row.id, ScoredFile.status == row.status,
                   ScoredFile.attempts == row.attempts)
            .values(status="running", host=host, pid=pid, claimed_at=utcnow(),
                    attempts=row.attempts + 1, error=None))
        return Claim(row.id, row.model_version) if taken.rowcount == 1 else None


def _score(settings: Settings, database: Database, spec: DatasetSpec, zone: LandingZone,
           name: str, claim: Claim) -> int:
    output = zone.path(SCORED, name.removesuffix(".parquet") + ".predictions.parquet")
    source = zone.path(GOOD, name)
    if not zone.fs.exists(posixpath.dirname(output)):
        zone.fs.makedirs(posixpath.dirname(output), exist_ok=True)
    report = score_source(settings, database, spec, zone.url_of(source), zone.url_of(output),
                          logged_as=SOURCE, version=claim.model_version)
    _finish(database, claim, status="succeeded", predictions=report.logged + report.already_logged,
            output=output)
    mark_done(zone, SCORED, posixpath.basename(output))
    log.info("%s: %d predictions logged (%s)", name, report.logged, SOURCE)
    return report.logged


def _finish(database: Database, claim: Claim, **outcome: object) -> None:
    with database.session() as session:
        row = session.get(ScoredFile, claim.id)
        for field, value in {**outcome, "finished_at": utcnow()}.items():
            setattr(row, field, value)
