"""The promotion gate: a challenger replaces the champion only when it is really better.

Both models are scored on the same rows, and only on rows neither was trained on: the
evaluation rows training hands over (held-out rows of the frozen evaluation set, and recent
labelled predictions) less any row the champion's own training used, checked by key. A
challenger must beat the champion on the primary metric by at least the minimum
improvement, and the paired bootstrap interval of its gain must exclude zero: a gain of
0.0001 on 262 rows is noise, and the gate says so. The decision and its evidence (rows,
metric, both scores, gain, interval) are stored with the challenger's version, and a
promotion is a row in the champion history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.features import FeatureView
from lifeboat.registry.evaluation import metric, model_threshold, positive_probability
from lifeboat.registry.model_registry import ModelRegistry, PromotionDecision, view_mismatch

log = logging.getLogger(__name__)

CONFIDENCE = 0.95
BOOTSTRAP_SAMPLES = 1000
MIN_ROWS = 30  # fewer evaluation rows than this decide nothing


@dataclass(frozen=True)
class EvaluationRows:
    """Labelled view rows to judge models on, each with its key (an entity id, a snapshot
    `id@date`, or `prediction:<id>` for a labelled prediction) and weight."""

    features: pd.DataFrame
    labels: np.ndarray
    keys: np.ndarray
    weights: np.ndarray
    recent: np.ndarray  # True for a labelled prediction, False for a held-out row

    def without(self, keys: set[str]) -> EvaluationRows:
        kept = ~np.isin(self.keys, list(keys))
        return EvaluationRows(self.features[kept], self.labels[kept], self.keys[kept],
                              self.weights[kept], self.recent[kept])

    def only(self, keys: set[str]) -> EvaluationRows:
        """The held-out rows among `keys`, and every recent row."""
        return self.without(set(self.keys[~self.recent & ~np.isin(self.keys, list(keys))]))


@dataclass(frozen=True)
class Gate:
    registry: ModelRegistry
    view: FeatureView
    metric: str
    min_improvement: float
    seed: int = 0

    def decide(self, version: str, rows: EvaluationRows, changed_by: str) -> PromotionDecision:
        """Compares the challenger `version` with the champion, promotes it if it wins,
        and records the decision either way."""
        decision, judged = self._compare(version, rows)
        if decision.promoted:
            self.registry.promote(version, by=changed_by, reason=decision.reason,
                                  evidence=decision.evidence)
        self.registry.record_decision(decision, judged.keys.tolist())
        log.info("%s v%s %s: %s", self.registry.name, version,
                 "promoted" if decision.promoted else "not promoted", decision.reason)
        return decision

    def _compare(self, version: str,
                 rows: EvaluationRows) -> tuple[PromotionDecision, EvaluationRows]:
        """The decision, and the rows it was judged on."""
        challenger = self.registry.load(version)
        champion = self.registry.champion()
        if champion is None:
            return PromotionDecision(version, True, "first model",
                                     self._alone(challenger, rows)), rows
        if mismatch := view_mismatch(champion, self.view):
            return PromotionDecision(version, True, f"the champion cannot serve: {mismatch}",
                                     self._alone(challenger, rows), champion.version), rows
        fair = self._unseen_by(champion.version, rows)
        if len(fair.labels) < MIN_ROWS or len(np.unique(fair.labels)) < 2:
            evidence = {"metric": self.metric, "rows": len(fair.labels),
                        "champion_version": champion.version}
            return PromotionDecision(
                version, False, f"only {len(fair.labels)} evaluation rows that neither model "
                f"trained on, of both classes: the champion stays", evidence,
                champion.version), fair
        evidence = self._paired(challenger, self.registry.load(champion.version), fair)
        evidence.update(champion_version=champion.version,
                        excluded_rows=len(rows.labels) - len(fair.labels))
        return PromotionDecision(version, self._wins(evidence), self._reason(evidence),
                                 evidence, champion.version), fair

    def _unseen_by(self, champion: str, rows: EvaluationRows) -> EvaluationRows:
        """The rows the champion never trained on. A champion trained before training keys
        were logged keeps only its own held-out rows (and the recent ones)."""
        trained = self.registry.training_keys(champion)
        if trained is not None:
            return rows.without(trained)
        return rows.only(self.registry.heldout_keys(champion) or set())

    def _alone(self, model: Any, rows: EvaluationRows) -> dict[str, Any]:
        probability = positive_probability(model, rows.features)
        return {"metric": self.metric, "rows": len(rows.labels), **_counts(rows),
                "challenger_score": metric(self.metric, rows.labels, probability,
                                           model_threshold(model), rows.weights)}

    def _paired(self, challenger: Any, champion: Any, rows: EvaluationRows) -> dict[str, Any]:
        """Both models' scores, the gain, and its bootstrap interval: rows are redrawn
        with replacement within each class (so every draw has both), and both models are
        scored on the same draw."""
        scored = [(positive_probability(model, rows.features), model_threshold(model))
                  for model in (challenger, champion)]
        scores = [metric(self.metric, rows.labels, p, t, rows.weights) for p, t in scored]
        rng = np.random.default_rng(self.seed)
        classes = [np.flatnonzero(rows.labels == label) for label in (0, 1)]
        gains = np.empty(BOOTSTRAP_SAMPLES)
        for i in range(BOOTSTRAP_SAMPLES):
            draw = np.concatenate([rng.choice(members, len(members)) for members in classes])
            labels, weights = rows.labels[draw], rows.weights[draw]
            gains[i] = (metric(self.metric, labels, scored[0][0][draw], scored[0][1], weights)
                        - metric(self.metric, labels, scored[1][0][draw], scored[1][1], weights))
        tail = (1 - CONFIDENCE) / 2
        low, high = np.quantile(gains, [tail, 1 - tail])
        return {"metric": self.metric, "rows": len(rows.labels), **_counts(rows),
                "challenger_score": scores[0], "champion_score": scores[1],
                "delta": scores[0] - scores[1], "interval": [float(low), float(high)],
                "confidence": CONFIDENCE, "bootstrap_samples": BOOTSTRAP_SAMPLES,
                "min_improvement": self.min_improvement}

    def _wins(self, evidence: dict[str, Any]) -> bool:
        return evidence["delta"] >= self.min_improvement and evidence["interval"][0] > 0

    def _reason(self, evidence: dict[str, Any]) -> str:
        low, high = evidence["interval"]
        verdict = ("promoted" if self._wins(evidence) else
                   "gain below the minimum improvement" if evidence["delta"] < self.min_improvement
                   else "interval includes zero")
        return (f"{evidence['metric']} {evidence['challenger_score']:.4f} vs champion "
                f"v{evidence['champion_version']}'s {evidence['champion_score']:.4f} "
                f"({evidence['delta']:+.4f}, {evidence['confidence']:.0%} interval "
                f"[{low:+.4f}, {high:+.4f}], minimum {evidence['min_improvement']:+.4f}) on "
                f"{evidence['heldout_rows']} held-out rows and {evidence['recent_rows']} "
                f"labelled predictions neither model trained on: {verdict}")


def _counts(rows: EvaluationRows) -> dict[str, int]:
    return {"heldout_rows": int((~rows.recent).sum()), "recent_rows": int(rows.recent.sum())}
