"""The generic feature view, `builder: columns`: the spec's feature columns, as given.

A dataset whose features are its own columns (or, with events, its aggregates) needs no
code: the view is the spec's numeric and categorical features, typed, and the learned
layer only imputes, scales and encodes them (the shared preprocessor). This module's
source is part of every such view's version, like any other view's.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.features.views import ColumnKind


def columns_of(spec: DatasetSpec) -> Mapping[str, ColumnKind]:
    numeric: dict[str, ColumnKind] = {name: "float" for name in spec.features.numeric}
    return numeric | {name: "string" for name in spec.features.categorical}


def spec_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """Typed raw fields in, the same fields out: `FeatureView.typed` picks and types them."""
    return raw
