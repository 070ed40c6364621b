"""Every change of champion, kept in the database: the registry's aliases only say what
serves now, not what served before, who changed it, or why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lifeboat.db import ChampionChange, Database, as_utc

CHANGED_BY = ("training", "retrain", "pipeline", "cli", "api")


class ChampionHistory:
    def __init__(self, database: Database, dataset: str) -> None:
        self.database, self.dataset = database, dataset

    def record(self, from_version: str | None, to_version: str, changed_by: str, reason: str,
               evidence: dict[str, Any] | None = None) -> None:
        if changed_by not in CHANGED_BY:
            raise ValueError(f"changed_by must be one of {', '.join(CHANGED_BY)}, "
                             f"not {changed_by!r}")
        with self.database.session() as session:
            session.add(ChampionChange(dataset=self.dataset, from_version=from_version,
                                       to_version=to_version, changed_by=changed_by,
                                       reason=reason, evidence=evidence))

    def changes(self, limit: int = 100) -> list[ChampionChange]:
        """Newest first."""
        with self.database.session() as session:
            rows = session.scalars(select(ChampionChange)
                                   .where(ChampionChange.dataset == self.dataset)
                                   .order_by(ChampionChange.id.desc()).limit(limit)).all()
        for row in rows:
            row.changed_at = as_utc(row.changed_at)
        return list(rows)

    def latest_to(self, version: str) -> ChampionChange | None:
        """The change that made `version` the champion most recently."""
        with self.database.session() as session:
            return session.scalars(select(ChampionChange)
                                   .where(ChampionChange.dataset == self.dataset,
                                          ChampionChange.to_version == version)
                                   .order_by(ChampionChange.id.desc()).limit(1)).first()
