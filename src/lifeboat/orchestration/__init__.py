"""Running the stages together: the first-start bootstrap behind `lifeboat up`, and retraining."""

from lifeboat.orchestration.bootstrap import BootstrapReport, bootstrap
from lifeboat.orchestration.healing import (
    RetrainRunning,
    heal,
    recorded_retrain,
    retrain_apart,
    retrain_reason,
)
from lifeboat.orchestration.jobs import retrain

__all__ = ["BootstrapReport", "RetrainRunning", "bootstrap", "heal", "recorded_retrain",
           "retrain", "retrain_apart", "retrain_reason"]
