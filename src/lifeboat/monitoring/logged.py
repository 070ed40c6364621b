"""Logged predictions read back as the feature-view rows they were scored on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lifeboat.features import FeatureView


def view_rows(view: FeatureView, features: Sequence[Mapping[str, Any] | None],
              inputs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Each prediction's logged view row, typed as `FeatureView.typed` types them.

    A prediction logged before the log kept its features (null) gets the view of its raw
    input, which is what a record was scored on; one by entity id logged then has only the
    id as input, so its row is all missing, as those readers always saw it."""
    rows = list(features)
    earlier = [position for position, row in enumerate(rows) if row is None]
    if earlier:
        computed = view.from_records(pd.DataFrame.from_records([inputs[i] for i in earlier]))
        for position, row in zip(earlier, computed.to_dict("records"), strict=True):
            rows[position] = row
    return view.typed(pd.DataFrame.from_records(rows, columns=list(view.columns)))
