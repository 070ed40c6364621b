"""Dataset specs: what a dataset's files hold and how Lifeboat learns from them."""

from lifeboat.datasets.spec import (
    ColumnSpec,
    DatasetSpec,
    EventsSpec,
    TableSpec,
    ThresholdSpec,
    TrainingSpec,
    load_spec,
)

__all__ = ["ColumnSpec", "DatasetSpec", "EventsSpec", "TableSpec", "ThresholdSpec",
           "TrainingSpec", "load_spec"]
