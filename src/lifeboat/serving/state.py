"""What the running service holds: settings, the database, the spec, the online store and
the loaded champion, which a background watcher swaps when the registry's alias moves."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database
from lifeboat.errors import NoChampionError
from lifeboat.features import (
    FeatureView,
    OnlineStore,
    OnlineStoreUnavailable,
    feature_view,
    materialize,
)
from lifeboat.metrics import (
    MODEL_INFO,
    ONLINE_STORE_REFILLS,
    OUTLIERS,
    PREDICTION_LATENCY,
    PREDICTION_PROBABILITY,
    PREDICTIONS,
)
from lifeboat.monitoring import LiveAccuracy, MonitoringCollector, version_live_accuracy
from lifeboat.orchestration import retrain_apart
from lifeboat.registry import (
    DriftReference,
    ModelRegistry,
    TrackingServerUnavailable,
    view_mismatch,
)
from lifeboat.scoring import (
    PredictionLog,
    Predictor,
    ServedPrediction,
    ShadowScoring,
    load_predictor,
)
from lifeboat.serving.retraining import RetrainJob

log = logging.getLogger(__name__)
REFILL_CLAIM_SECONDS = 300  # longer than a refill takes; a refiller that died frees it then


@dataclass
class ServiceState:
    settings: Settings
    database: Database
    spec: DatasetSpec
    registry: ModelRegistry
    store: OnlineStore
    prediction_log: PredictionLog
    predictor: Predictor | None = None
    model_error: str | None = None
    view: FeatureView = field(init=False)
    retraining: RetrainJob = field(init=False)
    monitoring: MonitoringCollector = field(init=False)
    shadow: ShadowScoring = field(init=False, default_factory=ShadowScoring)
    _counts: PredictionCounts = field(init=False)
    _aliases_served: dict[str, str] | None = field(init=False, default=None)
    _loading: threading.Lock = field(init=False, default_factory=threading.Lock)
    _stopping: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.view = feature_view(self.spec)  # what this code computes, fixed for the process
        self.monitoring = MonitoringCollector(self.database, self.spec.name, self.live_accuracy)
        self._counts = PredictionCounts(self.spec.name)
        self.retraining = RetrainJob(
            lambda: retrain_apart(self.settings, self.database, self.spec, "manual"),
            self.refresh_models)

    def live_accuracy(self) -> LiveAccuracy | None:
        """The serving model's accuracy on its recent labelled predictions."""
        predictor = self.predictor
        if predictor is None:
            return None
        return version_live_accuracy(self.database, self.spec.name, predictor.version,
                                     self.settings.live_accuracy_window)

    def record(self, predictions: list[ServedPrediction]) -> None:
        """Logs and counts served predictions: every route goes through here."""
        self.prediction_log.submit(predictions)
        self.shadow.submit(predictions)
        self._counts.add(predictions)

    def load_champion(self) -> bool:
        """Loads the champion if it is not the one serving; True when the model changed.

        Requests keep the predictor they started with: the new one replaces it in a single
        assignment once fully loaded, so no request fails or waits on a load. Without a
        usable champion the service keeps what it has (or nothing) and says why in /ready.
        """
        with self._loading:
            try:
                champion = self.registry.require_champion()
                if self.predictor and self.predictor.version.version == champion.version:
                    return False
                if mismatch := view_mismatch(champion, self.view):
                    self._unusable(mismatch)
                    return False
                reference = self.registry.drift_reference(champion.version)
                predictor = load_predictor(
                    self.registry, self.spec, champion, self.view,
                    DriftReference.from_dict(reference) if reference else None)
            except (NoChampionError, TrackingServerUnavailable) as exc:
                self._unusable(str(exc))
                return False
            if self.predictor:
                MODEL_INFO.labels(self.spec.name, self.predictor.version.name,
                                  self.predictor.version.version).set(0)
            self.predictor = predictor
            self.model_error = None
            MODEL_INFO.labels(self.spec.name, champion.name, champion.version).set(1)
        log.info("serving %s version %s on features %s", champion.name, champion.version,
                 self.view.label)
        return True

    def refresh_models(self) -> None:
        """Serves the registry's champion and shadows its challenger, whatever moved.

        The aliases are read first, and the rest only when one of them moved: describing a
        version takes milliseconds of the GIL that requests share (measured: 12 ms a poll
        with the embedded registry, against about 4 ms for the aliases alone). A tracking
        server that does not answer leaves what serves in place, and /ready says why when
        nothing does yet."""
        try:
            aliases = self.registry.aliases()
        except TrackingServerUnavailable as exc:
            self._unusable(str(exc))
            return
        if aliases == self._aliases_served:
            return
        self.load_champion()
        self.load_challenger()
        self._aliases_served = aliases

    def load_challenger(self) -> None:
        """Loads the registry's challenger for shadow scoring, or drops it once it is gone,
        is the champion itself, or was trained on features this code no longer computes."""
        challenger = self.registry.challenger()
        serving = self.predictor.version.version if self.predictor else None
        if (challenger is None or challenger.version == serving
                or view_mismatch(challenger, self.view)):
            self.shadow.challenger = None
            return
        current = self.shadow.challenger
        if current is None or current.version.version != challenger.version:
            self.shadow.challenger = load_predictor(self.registry, self.spec, challenger, self.view)
            log.info("shadow-scoring %s version %s beside the champion", challenger.name,
                     challenger.version)

    def _unusable(self, reason: str) -> None:
        if reason != self.model_error:
            log.warning("%s", reason)
        self.model_error = reason

    def start_watchers(self) -> None:
        """The background turns: the registry every `model_poll_seconds` (a promotion made
        anywhere, the monitoring loop's among them, reaches this process) and the online
        store every `online_check_seconds` (refilled if it lost the view). The monitoring
        loop itself is no turn of the service: it runs in the jobs process (the `drift`
        job), so serving processes hold request state only and more workers mean no more
        drift checks."""
        self._every("champion-watch", self.settings.model_poll_seconds, self.refresh_models,
                    "checking the registry for a new champion failed")
        self._every("online-refill", self.settings.online_check_seconds,
                    self.refill_online_store, "refilling the online store failed")

    def _every(self, name: str, seconds: float, turn: Callable[[], object], failed: str) -> None:
        def loop() -> None:
            while not self._stopping.wait(seconds):
                try:
                    turn()
                except Exception:  # a dependency may be briefly down; the next turn retries
                    log.exception("%s", failed)

        threading.Thread(target=loop, name=f"lifeboat-{name}", daemon=True).start()

    def refill_online_store(self) -> bool:
        """Materializes the served view into the online store when the store lacks it: a
        Redis that restarted empty or was flushed is refilled without anyone running
        `lifeboat features materialize`. The view's metadata, written after its vectors,
        is the marker. One process of those sharing the store refills it (a claim held
        for `REFILL_CLAIM_SECONDS`). True when this process refilled it."""
        key = self.view.key
        try:
            if self.store.columns(key) is not None or not self.store.claim(
                    f"refill:{key.prefix}", REFILL_CLAIM_SECONDS):
                return False
        except OnlineStoreUnavailable:
            return False  # down, not empty: nothing to refill until it answers
        log.warning("the online store %s holds no features %s: refilling it from the "
                    "offline store", self.store.url, self.view.label)
        report = materialize(self.database, self.spec, self.store)
        ONLINE_STORE_REFILLS.labels(self.spec.name).inc()
        log.warning("refilled the online store %s: %d vectors %s", self.store.url,
                    report.pushed, self.view.label)
        return True

    def stop(self) -> None:
        self._stopping.set()
        self.shadow.stop()

    def feature_check(self) -> tuple[str, bool]:
        """The online store's state, and whether it keeps the service from being ready.

        A store that lacks the served view version is a setup error (not ready). A store
        that is down only stops entity-id requests: records still score, so still ready.
        """
        view = self.view
        try:
            held = self.store.columns(view.key)
        except OnlineStoreUnavailable as exc:
            return f"degraded: {exc}", True
        if held is None:
            return (f"the online store {self.store.url} holds no features {view.label}: it "
                    f"is refilled within {self.settings.online_check_seconds:g} s, or run "
                    "`lifeboat features materialize`"), False
        return "ok", True


class PredictionCounts:
    """One dataset's Prometheus counts: one increment per (version, source, class) seen, so
    a 10,000-row upload costs a few counter updates, plus one histogram observation per
    prediction. The series are looked up once, not per request: on a one-record request
    the lookups cost more than the counting."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.latency = PREDICTION_LATENCY.labels(dataset)
        self.probability = PREDICTION_PROBABILITY.labels(dataset)
        self._served: dict[tuple[str, str, str], Any] = {}

    def add(self, predictions: list[ServedPrediction]) -> None:
        counted: Counter[tuple[str, str, str]] = Counter()
        for prediction in predictions:
            counted[prediction.model_version, prediction.source, prediction.label] += 1
            self.latency.observe(prediction.latency_ms / 1000)
            self.probability.observe(prediction.probability)
            for feature in prediction.outliers:
                OUTLIERS.labels(self.dataset, feature).inc()
        for key, count in counted.items():
            self._series(key).inc(count)

    def _series(self, key: tuple[str, str, str]) -> Any:
        series = self._served.get(key)
        if series is None:
            series = self._served[key] = PREDICTIONS.labels(self.dataset, *key)
        return series
