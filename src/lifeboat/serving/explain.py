"""Which of a record's fields pushed its probability up or down.

Each given field is left out in turn and the record scored again: the model then falls
back on what it learned (imputed age, the usual port, ...), so the difference is what
that value, as given, did to the probability. It needs no model-specific explainer and
works for every model the registry can hold, in one batched call per record.
"""

from __future__ import annotations

from typing import Any

from lifeboat.serving.predictor import Predictor
from lifeboat.serving.schemas import Contribution

MAX_EXPLAINED = 100  # records per request: each costs one extra row per given field


def contributions(predictor: Predictor, record: dict[str, Any]) -> list[Contribution]:
    given = [name for name, value in record.items() if value is not None]
    variants = [record, *({**record, name: None} for name in given)]
    probabilities = predictor.probabilities(variants)
    effects = [Contribution(feature=name, value=record[name],
                            effect=float(probabilities[0] - without))
               for name, without in zip(given, probabilities[1:], strict=True)]
    return sorted(effects, key=lambda contribution: -abs(contribution.effect))
