"""Dataset specs: what a dataset's files hold and how Lifeboat learns from them."""

from lifeboat.datasets.spec import (
    AggregateSpec,
    ColumnSpec,
    ColumnType,
    DatasetSpec,
    EventsSpec,
    LabelSpec,
    TableSpec,
    ThresholdSpec,
    TrainingSpec,
    load_spec,
)

__all__ = [
    "AggregateSpec",
    "ColumnSpec",
    "ColumnType",
    "DatasetSpec",
    "EventsSpec",
    "LabelSpec",
    "TableSpec",
    "ThresholdSpec",
    "TrainingSpec",
    "load_spec",
]
