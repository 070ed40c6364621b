"""Running the stages together: the first-start bootstrap behind `lifeboat up`."""

from lifeboat.orchestration.bootstrap import BootstrapReport, bootstrap

__all__ = ["BootstrapReport", "bootstrap"]
