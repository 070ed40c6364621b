"""Feature engineering shared by training and serving."""

from lifeboat.features.frames import raw_frame
from lifeboat.features.pipeline import build_feature_pipeline, feature_engineer, preprocessor

__all__ = ["build_feature_pipeline", "feature_engineer", "preprocessor", "raw_frame"]
