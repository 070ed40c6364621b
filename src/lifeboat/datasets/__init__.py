"""Dataset specs: what a dataset's files hold and how Lifeboat learns from them."""

from collections.abc import Callable
from pathlib import Path

from lifeboat.datasets.customers import write_customers
from lifeboat.datasets.spec import (
    ColumnSpec,
    DatasetSpec,
    EventsSpec,
    TableSpec,
    ThresholdSpec,
    TrainingSpec,
    load_spec,
)

# Writers of seeded data for datasets no public source has (a spec's `generated_by`):
# (folder, seed) -> the files written, entities before their events.
GENERATORS: dict[str, Callable[[Path, int], list[Path]]] = {"customers": write_customers}

__all__ = ["GENERATORS", "ColumnSpec", "DatasetSpec", "EventsSpec", "TableSpec", "ThresholdSpec",
           "TrainingSpec", "load_spec"]
