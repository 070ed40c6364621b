"""Features: the feature builders (a view, its learned layer and their replays, one object
each), the feature view (offline table, online store) and the pipeline shared by training
and serving."""

from lifeboat.features.aggregates import CUTOFF, point_in_time
from lifeboat.features.builder import (
    FeatureBuilder,
    LayerReplay,
    LearnedLayer,
    UnsupportedModel,
    ViewReplay,
    feature_builder,
)
from lifeboat.features.frames import raw_frame
from lifeboat.features.offline import (
    ENTITY_ID,
    EVENT_TIME,
    MATERIALIZED_AT,
    VIEW_VERSION,
    MaterializeReport,
    ensure_feature_table,
    feature_table,
    materialize,
    offline_chunks,
    offline_rows,
    push_vectors,
    snapshot_rows,
)
from lifeboat.features.online import OnlineStore, OnlineStoreUnavailable, ViewKey, open_online_store
from lifeboat.features.pipeline import (
    build_feature_pipeline,
    feature_engineer,
    feature_view,
    preprocessor,
)
from lifeboat.features.replay import (
    Columns,
    Record,
    Row,
    as_number,
    as_text,
    distinct,
    is_missing,
    plain,
    unplain,
)
from lifeboat.features.snapshots import labelled_snapshots, labels_after, newest_event_loaded
from lifeboat.features.views import FeatureView

__all__ = [
    "CUTOFF",
    "ENTITY_ID",
    "EVENT_TIME",
    "MATERIALIZED_AT",
    "VIEW_VERSION",
    "Columns",
    "FeatureBuilder",
    "FeatureView",
    "LayerReplay",
    "LearnedLayer",
    "MaterializeReport",
    "OnlineStore",
    "OnlineStoreUnavailable",
    "Record",
    "Row",
    "UnsupportedModel",
    "ViewKey",
    "ViewReplay",
    "as_number",
    "as_text",
    "build_feature_pipeline",
    "distinct",
    "ensure_feature_table",
    "feature_builder",
    "feature_engineer",
    "feature_table",
    "feature_view",
    "is_missing",
    "labelled_snapshots",
    "labels_after",
    "materialize",
    "newest_event_loaded",
    "offline_chunks",
    "offline_rows",
    "open_online_store",
    "plain",
    "point_in_time",
    "preprocessor",
    "push_vectors",
    "raw_frame",
    "snapshot_rows",
    "unplain",
]
