"""Which of a prediction's inputs pushed its probability up or down.

Each given field is left out in turn and the record scored again: the model then falls
back on what it learned (imputed age, the usual port, ...), so the difference is what
that value, as given, did to the probability. It needs no model-specific explainer and
works for every model the registry can hold, in one batched call per record.

A prediction by entity id has no raw record, only its stored view vector: each stored
field is left out of the vector in turn, the same contract on the view's fields.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lifeboat.scoring.predictor import Predictor

MAX_EXPLAINED = 100  # records per request: each costs one extra row per given field


@dataclass(frozen=True)
class Contribution:
    """One given field's effect: the probability with it minus with it left out (the
    model's learned default); > 0 pushed it up."""

    feature: str
    value: Any
    effect: float


def contributions(predictor: Predictor, record: dict[str, Any]) -> list[Contribution]:
    return _left_out(record, predictor.probabilities)


def vector_contributions(predictor: Predictor, features: dict[str, Any]) -> list[Contribution]:
    """`contributions` of a view row (as an entity's stored vector gives it)."""
    columns = list(predictor.view.columns)

    def scored(variants: Sequence[dict[str, Any]]) -> np.ndarray:
        return predictor.vector_probabilities([[row[name] for name in columns]
                                               for row in variants])

    return _left_out(features, scored)


def _left_out(given: dict[str, Any],
              score: Callable[[list[dict[str, Any]]], np.ndarray]) -> list[Contribution]:
    """Each given field's effect: the probability with it minus with it missing."""
    present = [name for name, value in given.items() if not _missing(value)]
    probabilities = score([given, *({**given, name: None} for name in present)])
    effects = [Contribution(feature=name, value=given[name],
                            effect=float(probabilities[0] - without))
               for name, without in zip(present, probabilities[1:], strict=True)]
    return sorted(effects, key=lambda contribution: -abs(contribution.effect))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
