"""Retraining requested over HTTP: one at a time, in the background, its outcome kept for
`GET /retrain` (and, like every retrain, a row in `retrains`). The service serves a
promoted model as soon as the retrain ends; its other workers pick it up through their
champion watchers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from lifeboat.db import Retrain, UtcDatetime, utcnow

log = logging.getLogger(__name__)


class RetrainStatus(BaseModel):
    state: Literal["idle", "running", "succeeded", "failed"] = "idle"
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    version: str | None = None
    promoted: bool | None = None
    reason: str | None = None
    error: str | None = None


class RetrainJob:
    def __init__(self, run: Callable[[], Retrain], on_done: Callable[[], object]) -> None:
        self._run, self._on_done = run, on_done
        self._lock = threading.Lock()
        self.status = RetrainStatus()

    def start(self) -> bool:
        """Starts a retrain unless one is running; False when one already is."""
        with self._lock:
            if self.status.state == "running":
                return False
            self.status = RetrainStatus(state="running", started_at=utcnow())
        threading.Thread(target=self._retrain, name="lifeboat-retrain", daemon=True).start()
        return True

    def _retrain(self) -> None:
        try:
            retrained = self._run()
            self._on_done()  # serving the new champion before the status says done
        except Exception as exc:  # reported on GET /retrain, not lost in a thread
            log.exception("retraining failed")
            self._finish(state="failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._finish(state="succeeded", version=retrained.challenger_version,
                     promoted=retrained.status == "promoted",
                     reason=(retrained.detail or {}).get("decision"))

    def _finish(self, **outcome: object) -> None:
        with self._lock:
            self.status = self.status.model_copy(update={**outcome, "finished_at": utcnow()})
