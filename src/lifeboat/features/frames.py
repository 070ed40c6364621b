"""Raw records → the typed frame every model takes, built the same way for training and serving."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec


def raw_frame(spec: DatasetSpec, records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Input columns only (never the key, target or a leak), typed so that missing is NaN."""
    frame = pd.DataFrame(records) if not isinstance(records, pd.DataFrame) else records
    frame = frame.reindex(columns=spec.input_columns)
    for name in spec.input_columns:
        if spec.input_fields[name].type == "string":
            # NaN, not None, marks a missing text value: scikit-learn's imputers only see NaN.
            frame[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
        else:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame
