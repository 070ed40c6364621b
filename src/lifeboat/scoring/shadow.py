"""Shadow mode: while a challenger exists, it scores the champion's live traffic too, off
the request path, and how often the two agree becomes a metric. A challenger that lost on
held-out data may still be the better model for today's traffic: agreement shows how
different its answers would be before anyone promotes it."""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque

from lifeboat.metrics import SHADOW_PREDICTIONS
from lifeboat.scoring.predictor import Predictor, ServedPrediction

log = logging.getLogger(__name__)


class ShadowScoring:
    """Queues served predictions (bounded: under overload, shadow scoring drops, never the
    service) and scores them with the challenger in batches on its own thread.

    The challenger scores the view rows the champion scored (the vector path that entity
    ids take): predictions by record and by entity id alike, with no view computed twice.
    Both were trained on the one view this code computes (`ServiceState.load_challenger`)."""

    def __init__(self, capacity: int = 10_000, batch_size: int = 500) -> None:
        self.challenger: Predictor | None = None
        self._queue: deque[ServedPrediction] = deque(maxlen=capacity)
        self._batch_size = batch_size
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lifeboat-shadow", daemon=True)
        self._thread.start()

    def submit(self, predictions: list[ServedPrediction]) -> None:
        if self.challenger is not None and predictions:
            self._queue.extend(predictions)
            self._ready.set()

    def stop(self) -> None:
        self._stopping.set()
        self._ready.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._ready.wait()
            self._ready.clear()
            while self._queue and not self._stopping.is_set():
                batch = [self._queue.popleft()
                         for _ in range(min(self._batch_size, len(self._queue)))]
                try:
                    self._score(batch)
                except Exception:  # a challenger that cannot score is reported, not fatal
                    log.exception("the challenger could not score %d predictions", len(batch))

    def _score(self, served: list[ServedPrediction]) -> None:
        challenger = self.challenger
        if challenger is None:
            return
        columns = list(challenger.view.columns)
        probabilities = challenger.vector_probabilities(
            [[prediction.features[name] for name in columns] for prediction in served])
        threshold = challenger.version.threshold
        outcomes = Counter(
            (prediction.model_version, int(probability >= threshold) == prediction.prediction)
            for prediction, probability in zip(served, probabilities, strict=True))
        for (champion, agreed), count in outcomes.items():
            SHADOW_PREDICTIONS.labels(challenger.spec.name, champion,
                                      challenger.version.version,
                                      "agree" if agreed else "disagree").inc(count)
