"""Retraining requested over HTTP: one at a time, in the background, its outcome kept for
`GET /retrain`. The service picks up a promoted model through its champion watcher."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from lifeboat.db.models import utcnow
from lifeboat.training import TrainingResult

log = logging.getLogger(__name__)


class RetrainStatus(BaseModel):
    state: Literal["idle", "running", "succeeded", "failed"] = "idle"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    version: str | None = None
    promoted: bool | None = None
    reason: str | None = None
    error: str | None = None


class RetrainJob:
    def __init__(self, run: Callable[[], TrainingResult], on_done: Callable[[], object]) -> None:
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
            result = self._run()
            self._on_done()  # serving the new champion before the status says done
        except Exception as exc:  # reported on GET /retrain, not lost in a thread
            log.exception("retraining failed")
            self._finish(state="failed", error=f"{type(exc).__name__}: {exc}")
            return
        decision = result.promotion
        self._finish(state="succeeded", version=result.version,
                     promoted=bool(decision and decision.promoted),
                     reason=decision.reason if decision else None)

    def _finish(self, **outcome: object) -> None:
        with self._lock:
            self.status = self.status.model_copy(update={**outcome, "finished_at": utcnow()})
