"""Running the stages together: the first-start bootstrap behind `lifeboat up`, and retraining."""

from lifeboat.orchestration.bootstrap import BootstrapReport, bootstrap
from lifeboat.orchestration.jobs import retrain

__all__ = ["BootstrapReport", "bootstrap", "retrain"]
