"""A feature builder: one object holding everything a way of making features owns.

A dataset spec names its builder (`features.builder`). The builder holds the feature view
(the compute function and its columns), the learned layer the model fits on the view (or
none), and the replays the compiled scorer runs instead of pandas: the view row-wise and
column-wise, the learned layer from the fitted step and from the JSON a saved scorer holds.
Training, the stores and the compiled scorer all ask the builder, so adding one is adding
one module, and no package outside `features/` needs to know a dataset by name.

The one registry is the module system: a bare name (`titanic`) is the module
`lifeboat.features.builders.<name>` and its `BUILDER`; `module:ATTRIBUTE`
(`mypackage.features:BUILDER`) is a builder of one's own, importable by that path.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sklearn.base import BaseEstimator

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.features.replay import Columns, Record, Row
from lifeboat.features.views import ColumnKind, Compute, FeatureView

BUILT_IN = "lifeboat.features.builders"
# The model pipeline's step holding a builder's learned layer, before `preprocess`.
ENGINEER = "engineer"


class UnsupportedModel(Exception):
    """The model has a step the compiled scorer cannot replay exactly; serve it with pandas."""


class ViewReplay(Protocol):
    """A feature view computed as `FeatureView.from_records` computes it, without pandas."""

    def row(self, record: Record) -> Row:
        """One raw record's view row: floats (NaN for missing), text (None for missing)."""

    def columns(self, raw: Mapping[str, Any]) -> Columns:
        """The view column-wise, from a `raw_frame` or from typed input columns as batch
        scoring reads a file (float64 numbers, Arrow strings with null for missing)."""


class LayerReplay(Protocol):
    """The model's learned step between the view and `preprocess`, replayed."""

    def transform(self, row: Row) -> Row:
        """One view row → the row `preprocess` reads."""

    def columns(self, profile: Mapping[str, Any]) -> Mapping[str, Any]:
        """`transform` column-wise: view columns (arrays, or a typed view frame) in."""

    def learned(self) -> dict[str, Any] | None:
        """What the fitted step learned, as JSON: a saved scorer keeps it as its `layer`."""


class LayerReplayType(Protocol):
    """How a learned layer's replay is made: from the fitted step, or from its saved JSON."""

    def __call__(self, fitted: Any) -> LayerReplay: ...

    def from_learned(self, learned: Mapping[str, Any]) -> LayerReplay: ...


@dataclass(frozen=True)
class LearnedLayer:
    """The transformer a model fits on the view's rows (its `engineer` step), and its replay."""

    estimator: type[BaseEstimator]
    replay: LayerReplayType


class IdentityLayer:
    """No learned layer: view rows go to `preprocess` as they are."""

    @staticmethod
    def transform(row: Row) -> Row:
        return row

    @staticmethod
    def columns(profile: Mapping[str, Any]) -> Mapping[str, Any]:
        return profile

    @staticmethod
    def learned() -> None:
        return None


@dataclass(frozen=True)
class FeatureBuilder:
    """One way of making features. `view` is the view's compute function (typed raw frame
    in, one row of view columns per row out): the source of the module defining it is part
    of the view's version, so a builder's view lives in a module of its own, or is its whole
    module. `columns` gives the view's columns, by name and kind, for a spec."""

    view: Compute
    columns: Callable[[DatasetSpec], Mapping[str, ColumnKind]]
    replay: Callable[[FeatureView], ViewReplay]  # may raise UnsupportedModel for a spec
    learned: LearnedLayer | None = None

    @property
    def steps(self) -> tuple[str, ...]:
        """The model pipeline's steps this builder puts before `preprocess`."""
        return () if self.learned is None else (ENGINEER,)

    def engineer(self) -> BaseEstimator | None:
        """The learned layer, unfitted, for a new model pipeline."""
        return None if self.learned is None else self.learned.estimator()

    def fitted_layer(self, steps: Mapping[str, Any]) -> LayerReplay:
        """The learned layer replayed from a fitted pipeline's named steps."""
        if self.learned is None:
            return IdentityLayer()
        fitted = steps[ENGINEER]
        if not isinstance(fitted, self.learned.estimator):
            raise UnsupportedModel(f"{ENGINEER} step {type(fitted).__name__}")
        return self.learned.replay(fitted)

    def saved_layer(self, learned: Mapping[str, Any] | None) -> LayerReplay:
        """The learned layer replayed from what `LayerReplay.learned` saved."""
        if self.learned is None:
            return IdentityLayer()
        if learned is None:
            raise UnsupportedModel("the saved scorer holds no learned layer")
        return self.learned.replay.from_learned(learned)


def feature_builder(spec: DatasetSpec) -> FeatureBuilder:
    """The builder the spec names (see the module's docstring for how names resolve)."""
    name = spec.features.builder
    module_name, attribute = (name.split(":", 1) if ":" in name
                              else (f"{BUILT_IN}.{name}", "BUILDER"))
    if not all(part.isidentifier() for part in (*module_name.split("."), attribute)):
        raise _unknown(spec)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not _is_parent_or_self(exc.name, module_name):
            raise  # the builder's module exists, and one of its own imports failed
        raise _unknown(spec) from None
    builder = getattr(module, attribute, None)
    if not isinstance(builder, FeatureBuilder):
        raise _unknown(spec)
    return builder


def _is_parent_or_self(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(f"{missing}.")


def _unknown(spec: DatasetSpec) -> DatasetSpecError:
    built_in = importlib.import_module(BUILT_IN)
    known = ", ".join(sorted(module.name for module in pkgutil.iter_modules(built_in.__path__)))
    return DatasetSpecError(
        f"dataset {spec.name!r} names feature builder {spec.features.builder!r}; built in: "
        f"{known}; a builder of your own is named module:ATTRIBUTE (a FeatureBuilder)"
    )
