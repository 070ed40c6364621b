"""Scoring: everything that turns rows into logged predictions, with no web framework in
it. The compiled scorer (a fitted model replayed in NumPy and ONNX Runtime), the
predictor around it, batch scoring of files, the prediction log and its journal, shadow
scoring of the challenger, and explanations. The HTTP service, the CLI, training (which
saves a compiled scorer beside each model) and orchestration's scoring job all score here.
"""

from lifeboat.scoring.batch import (
    BatchProgress,
    BatchReport,
    PartScored,
    RowProblem,
    champion_predictor,
    checked_records,
    default_output,
    logged_from_file,
    score_file,
    score_part,
)
from lifeboat.scoring.compiled import (
    CompiledScorer,
    UnsupportedModel,
    compile_model,
    load_scorer,
    save_scorer,
)
from lifeboat.scoring.explain import (
    MAX_EXPLAINED,
    Contribution,
    contributions,
    vector_contributions,
)
from lifeboat.scoring.prediction_history import (
    PredictionFilter,
    exported_predictions,
    logged_prediction,
    past_predictions,
    save_feedback,
)
from lifeboat.scoring.prediction_log import PredictionLog
from lifeboat.scoring.predictor import (
    MAX_ENTITY_ID,
    EntityScores,
    Predictor,
    ServedPrediction,
    load_predictor,
    prediction_id,
    saved_scorer_files,
    scorer_predictor,
)
from lifeboat.scoring.shadow import ShadowScoring

__all__ = [
    "MAX_ENTITY_ID",
    "MAX_EXPLAINED",
    "BatchProgress",
    "BatchReport",
    "PartScored",
    "RowProblem",
    "CompiledScorer",
    "Contribution",
    "EntityScores",
    "PredictionFilter",
    "PredictionLog",
    "Predictor",
    "ServedPrediction",
    "ShadowScoring",
    "UnsupportedModel",
    "champion_predictor",
    "checked_records",
    "compile_model",
    "contributions",
    "default_output",
    "exported_predictions",
    "load_predictor",
    "logged_from_file",
    "load_scorer",
    "logged_prediction",
    "past_predictions",
    "prediction_id",
    "save_feedback",
    "save_scorer",
    "saved_scorer_files",
    "score_file",
    "score_part",
    "scorer_predictor",
    "vector_contributions",
]
