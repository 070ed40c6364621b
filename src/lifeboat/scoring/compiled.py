"""The compiled scorer: a loaded model compiled once into plain Python, NumPy and ONNX Runtime.

Scoring one record through the pandas pipeline costs milliseconds of fixed overhead (frames
built, columns typed, estimators validating their input) for microseconds of arithmetic.
`compile_model` reads the fitted pipeline's learned attributes once, when the model is
loaded, and replays them without pandas:

- the feature view per record (a `ViewReplay`) and the learned layer between view and
  `preprocess` (a `LayerReplay`), both from the dataset's feature builder
  (`features.FeatureBuilder`), which owns them: this module knows no dataset;
- `preprocess` (imputers, scaler, one-hot encoder) as NumPy arithmetic on its fitted
  statistics, in float64 as scikit-learn computes it;
- the classifier in ONNX Runtime, converted by skl2onnx (one it cannot convert runs in
  scikit-learn itself, on the same encoded matrix: `compiled_classifier`).

Large batches (and data frames) run the view, the learned layer and `preprocess` column-wise
in NumPy and Arrow (`ViewReplay.columns`, `LayerReplay.columns`, `Encoder.frame`). Batch
scoring hands over its typed Arrow columns as they are (`view_columns`), and logs the view it
gets back. The pandas pipeline stays the reference: tests/scoring/test_compiled_scorer.py
(Titanic), tests/scoring/test_compiled_columns_view.py (`columns`) and
tests/features/test_feature_builders.py (a builder of one's own) hold every path to it.

A compiled scorer with an ONNX classifier can be saved (`save_scorer`: what it learned as
JSON, the classifier as ONNX) and loaded without the pipeline or scikit-learn's model
classes (`load_scorer`); training saves one beside each model, and batch scoring loads it.
"""

from __future__ import annotations

import json
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifeboat.datasets import DatasetSpec
from lifeboat.features import (
    Columns,
    FeatureView,
    LayerReplay,
    Record,
    Row,
    UnsupportedModel,
    ViewReplay,
    as_number,
    as_text,
    distinct,
    feature_builder,
    is_missing,
    plain,
    raw_frame,
    unplain,
)

log = logging.getLogger(__name__)

# From this many records on, pandas' per-column work beats a Python loop per record.
VECTORISED_FROM = 4000
_ONNX_TYPES = {"tensor(double)": np.float64, "tensor(float)": np.float32}
# A saved scorer: what the model learned, as JSON, and its classifier in ONNX.
SCORER_FILE, CLASSIFIER_FILE = "scorer.json", "classifier.onnx"


@dataclass(frozen=True)
class Encoder:
    """The fitted `preprocess` step without scikit-learn: median imputation and scaling of the
    numeric columns, most-frequent imputation and one-hot encoding of the categorical ones.

    A few rows are encoded in plain Python floats (IEEE doubles, so bit for bit what NumPy
    computes), since NumPy's per-call overhead would dominate; frames in NumPy, column-wise.
    """

    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    categorical: tuple[str, ...]
    fills: tuple[str, ...]
    positions: tuple[dict[object, int], ...]  # category → its output column
    width: int

    @classmethod
    def of(cls, preprocess: ColumnTransformer) -> Encoder:
        numeric, categorical = _checked_parts(preprocess)
        (columns, impute, scale), (text_columns, text_impute, encode) = numeric, categorical
        offset, positions = len(columns), []
        for categories in encode.categories_:
            positions.append({value: offset + i for i, value in enumerate(categories)})
            offset += len(categories)
        means = scale.mean_ if scale.with_mean else np.zeros(len(columns))
        scales = scale.scale_ if scale.with_std else np.ones(len(columns))
        return cls(tuple(columns), tuple(impute.statistics_.astype(float).tolist()),
                   tuple(means.tolist()), tuple(scales.tolist()), tuple(text_columns),
                   tuple(text_impute.statistics_), tuple(positions), offset)

    def learned(self) -> dict[str, Any]:
        return {"numeric": self.numeric, "medians": self.medians, "means": self.means,
                "scales": self.scales, "categorical": self.categorical, "fills": self.fills,
                "positions": [plain(positions) for positions in self.positions],
                "width": self.width}

    @classmethod
    def from_learned(cls, learned: Mapping[str, Any]) -> Encoder:
        return cls(tuple(learned["numeric"]), tuple(learned["medians"]), tuple(learned["means"]),
                   tuple(learned["scales"]), tuple(learned["categorical"]),
                   tuple(learned["fills"]),
                   tuple(unplain(positions) for positions in learned["positions"]),
                   learned["width"])

    def rows(self, rows: Sequence[Row]) -> np.ndarray:
        return np.array([self._row(row) for row in rows], dtype=np.float64).reshape(-1, self.width)

    def _row(self, row: Row) -> list[float]:
        encoded = [0.0] * self.width
        for i, (column, median, mean, scale) in enumerate(
                zip(self.numeric, self.medians, self.means, self.scales, strict=True)):
            value = row[column]
            encoded[i] = ((median if math.isnan(value) else value) - mean) / scale
        for column, fill, positions in zip(self.categorical, self.fills, self.positions,
                                           strict=True):
            value = row[column]
            position = positions.get(fill if is_missing(value) else value)
            if position is not None:  # an unseen category is all zeros, as "ignore" has it
                encoded[position] = 1.0
        return encoded

    def frame(self, frame: Mapping[str, Any]) -> np.ndarray:
        """Columns (arrays, or a frame) in, column-wise; a category is looked up once."""
        matrix = np.zeros((len(frame[self.numeric[0]]), self.width))
        for i, (column, median, mean, scale) in enumerate(
                zip(self.numeric, self.medians, self.means, self.scales, strict=True)):
            numbers = np.asarray(frame[column], dtype=np.float64)
            numbers = np.where(np.isnan(numbers), median, numbers)  # a copy, so in place below
            numbers -= mean
            numbers /= scale
            matrix[:, i] = numbers
        for column, fill, positions in zip(self.categorical, self.fills, self.positions,
                                           strict=True):
            codes, uniques = distinct(frame[column])
            found = np.array([positions.get(value, -1) for value in uniques]
                             + [positions.get(fill, -1)], dtype=np.int64)  # -1: missing
            columns = found[codes]
            hits = np.flatnonzero(columns >= 0)
            matrix[hits, columns[hits]] = 1.0
        return matrix


def _checked_parts(preprocess: ColumnTransformer) -> tuple[tuple, tuple]:
    """The preprocess step's numeric and categorical parts, if they are the ones
    `features.pipeline.preprocessor` builds; anything else is not replayed."""
    parts = {name: (columns, step) for name, step, columns in preprocess.transformers_
             if name != "remainder"}
    remainder = [step for name, step, _ in preprocess.transformers_ if name == "remainder"]
    try:
        (numeric_columns, numeric), (text_columns, text) = parts["numeric"], parts["categorical"]
        impute, scale = numeric.named_steps["impute"], numeric.named_steps["scale"]
        text_impute, encode = text.named_steps["impute"], text.named_steps["encode"]
    except (KeyError, AttributeError, ValueError):
        raise UnsupportedModel(f"preprocess has parts {sorted(parts)}") from None
    if not len(numeric_columns) or not len(text_columns):  # an empty part is never fitted
        raise UnsupportedModel("preprocess has a part without columns")
    expected = (isinstance(impute, SimpleImputer) and isinstance(scale, StandardScaler)
                and isinstance(text_impute, SimpleImputer) and isinstance(encode, OneHotEncoder)
                and len(numeric.steps) == len(text.steps) == 2 and len(parts) == 2
                and all(step == "drop" for step in remainder)
                and impute.strategy == "median" and text_impute.strategy == "most_frequent"
                and not np.isnan(impute.statistics_.astype(float)).any()
                and encode.drop is None and encode.handle_unknown == "ignore"
                and getattr(encode, "infrequent_categories_", None) is None)
    if not expected:
        raise UnsupportedModel("preprocess is not the imputer/scaler/one-hot step it replays")
    return (numeric_columns, impute, scale), (text_columns, text_impute, encode)


class OnnxClassifier:
    """The fitted classifier in ONNX Runtime, on the preprocess step's float64 matrix.

    Double precision where the runtime has the kernels (the linear model scores as
    scikit-learn does, to the last bits); tree ensembles only have float kernels in
    onnxruntime, so their input is float32, as scikit-learn's trees also read it, and
    their probabilities carry float32 rounding (about 1e-7).
    """

    def __init__(self, onnx: bytes) -> None:
        self.onnx = onnx
        self.session = ort.InferenceSession(onnx, _session_options(),
                                            providers=["CPUExecutionProvider"])
        given = self.session.get_inputs()[0]
        self.input, self.dtype = given.name, _ONNX_TYPES[given.type]
        self.output = self.session.get_outputs()[1].name

    @classmethod
    def of(cls, classifier: Any, width: int) -> OnnxClassifier:
        """Converted by skl2onnx, on a float64 input where ONNX Runtime has the kernels for
        the model, else float32."""
        from skl2onnx import convert_sklearn  # compiling alone needs it, not a saved scorer
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

        for tensor in (DoubleTensorType, FloatTensorType):
            try:
                return cls(convert_sklearn(
                    classifier, initial_types=[("X", tensor([None, width]))],
                    options={id(classifier): {"zipmap": False}}).SerializeToString())
            except Exception as exc:  # skl2onnx or onnxruntime lacks this type for the model
                failure = exc
        reason = textwrap.shorten(str(failure), 100) or type(failure).__name__  # may dump a graph
        raise UnsupportedModel(f"{type(classifier).__name__} does not convert to ONNX: {reason}")

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        inputs = {self.input: matrix.astype(self.dtype, copy=False)}
        scores = self.session.run([self.output], inputs)
        return np.asarray(scores[0][:, 1], dtype=np.float64)


class SklearnClassifier:
    """The fitted classifier itself, on the encoded matrix: for one ONNX cannot take. Exact,
    as the pipeline hands it the very same float64 matrix, and still no pandas; but each call
    pays scikit-learn's input checks and its loop over trees (about 1 ms for 100 histogram
    trees, against tens of µs in ONNX Runtime)."""

    dtype = np.float64

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(matrix)[:, 1]


def compiled_classifier(classifier: Any, width: int) -> OnnxClassifier | SklearnClassifier:
    """ONNX Runtime where skl2onnx converts the classifier, else scikit-learn's own. The
    histogram boosting candidate lands on the latter: skl2onnx 1.20 cannot build its tree
    node from NumPy 2 scalars (and float32 kernels would not split its float64 bins alike)."""
    try:
        return OnnxClassifier.of(classifier, width)
    except UnsupportedModel as exc:
        log.info("%s; scored by scikit-learn on the encoded matrix", exc)
        return SklearnClassifier(classifier)


def _session_options() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one request is µs of work: no thread pool to wake
    options.inter_op_num_threads = 1
    return options


class Calibration:
    """The model's calibration map (`training.calibration.Calibration`), replayed from its
    plain numbers: beta or Platt scaling (logit p' = a ln p - b ln(1 - p) + c), a step
    function through points, or none."""

    _EDGE = 1e-7  # as training clips probabilities before taking logarithms

    def __init__(self, learned: Mapping[str, Any]) -> None:
        self.learned = dict(learned)
        self.method = learned["method"]
        self.a, self.b, self.c = (float(learned[name]) for name in ("a", "b", "c"))
        self.points = (np.asarray(learned["points"][0], dtype=np.float64),
                       np.asarray(learned["points"][1], dtype=np.float64))

    @classmethod
    def of(cls, model: Any) -> Calibration | None:
        fitted = getattr(model, "calibration_", None)
        return None if fitted is None else cls(fitted.to_dict())

    def apply(self, probability: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.interp(probability, *self.points)
        if self.method == "none":
            return probability
        clipped = np.clip(probability, self._EDGE, 1 - self._EDGE)
        odds = self.a * np.log(clipped) - self.b * np.log1p(-clipped) + self.c
        return 1.0 / (1.0 + np.exp(-odds))


class CompiledScorer:
    """A model compiled for serving: raw records, stored view vectors or frames in,
    the positive class's probability out, as `model.predict_proba(...)[:, 1]` gives it."""

    def __init__(self, view: FeatureView, replay: ViewReplay, layer: LayerReplay, encoder: Encoder,
                 classifier: OnnxClassifier | SklearnClassifier,
                 calibration: Calibration | None = None) -> None:
        self.view, self.replay, self.layer = view, replay, layer
        self.encoder, self.classifier = encoder, classifier
        self.calibration = calibration

    def probabilities(self, records: Sequence[Record] | pd.DataFrame) -> np.ndarray:
        if isinstance(records, pd.DataFrame) or len(records) >= VECTORISED_FROM:
            return self.view_probabilities(self._view_of(records))
        row = self.replay.row
        return self._scored([row(record) for record in records])

    def scored(self, records: Sequence[Record]) -> tuple[np.ndarray, list[Row]]:
        """`probabilities`, and the view row each record was scored on: what the prediction
        log keeps, taken from the scoring rather than computed again."""
        if len(records) >= VECTORISED_FROM:
            view = self._view_of(records)
            return self.view_probabilities(view), _rows(view, list(self.view.columns))
        row = self.replay.row
        rows = [row(record) for record in records]
        return self._scored(rows), rows

    def _view_of(self, records: Sequence[Record] | pd.DataFrame) -> Columns:
        return self.view_columns(raw_frame(self.view.spec, records))

    def vector_probabilities(self, vectors: Sequence[Sequence[object]]) -> np.ndarray:
        """Stored view vectors (in the view's column order), as the online store returns them."""
        if len(vectors) >= VECTORISED_FROM:
            return self.view_probabilities(self.view.from_rows(vectors))
        return self._scored([self._profile(vector) for vector in vectors])

    def _profile(self, vector: Sequence[object]) -> Row:
        return {name: as_number(value) if kind == "float" else as_text(value)
                for (name, kind), value in zip(self.view.columns.items(), vector, strict=True)}

    def _scored(self, profiles: list[Row]) -> np.ndarray:
        rows = [self.layer.transform(profile) for profile in profiles]
        return self._calibrated(self.classifier.probabilities(self.encoder.rows(rows)))

    def _calibrated(self, probability: np.ndarray) -> np.ndarray:
        return probability if self.calibration is None else self.calibration.apply(probability)

    def view_columns(self, columns: Mapping[str, Any]) -> Columns:
        """The view of typed input columns: a `raw_frame`, or columns as batch scoring reads
        a file (float64 numbers, Arrow strings with null for missing), no records, no frame."""
        return self.replay.columns(columns)

    def view_probabilities(self, view_rows: Mapping[str, Any]) -> np.ndarray:
        """View columns (arrays, or a typed view frame) → probabilities, column-wise."""
        matrix = self.encoder.frame(self.layer.columns(view_rows))
        return self._calibrated(self.classifier.probabilities(matrix))


def _rows(columns: Columns, names: Sequence[str]) -> list[Row]:
    """View columns (NumPy or Arrow) as one row per record; a missing value is NaN or None."""
    values = [_as_list(columns[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]


def _as_list(column: Any) -> list:
    return column.to_pylist() if isinstance(column, pa.Array) else np.asarray(column).tolist()


def compile_model(spec: DatasetSpec, view: FeatureView, model: Any) -> CompiledScorer:
    """The fast scorer for `model`, or UnsupportedModel when it has a step this module
    cannot replay exactly (a view its builder cannot replay, another pipeline shape). A
    calibrated model (`training.CalibratedModel`) is its fitted pipeline, then its map."""
    builder = feature_builder(spec)
    pipeline = getattr(model, "pipeline_", model)
    steps = getattr(pipeline, "named_steps", {})
    # A resampler (`balance`, SMOTE) may sit anywhere: imbalanced-learn skips it to predict.
    replayed = [name for name, step in steps.items() if not hasattr(step, "fit_resample")]
    if replayed != [*builder.steps, "preprocess", "classifier"]:
        raise UnsupportedModel(f"pipeline steps {list(steps)}")
    replay, layer = builder.replay(view), builder.fitted_layer(steps)
    encoder = Encoder.of(steps["preprocess"])
    return CompiledScorer(view, replay, layer, encoder,
                          compiled_classifier(steps["classifier"], encoder.width),
                          Calibration.of(model))


def save_scorer(scorer: CompiledScorer, folder: Path) -> bool:
    """Writes the scorer into `folder`, to be loaded without the pipeline (`load_scorer`):
    no scikit-learn model to unpickle, no skops, no conversion. False, and nothing written,
    when its classifier has no ONNX form (one scikit-learn scores)."""
    if not isinstance(scorer.classifier, OnnxClassifier):
        return False
    calibration = scorer.calibration.learned if scorer.calibration else None
    (folder / SCORER_FILE).write_text(json.dumps({
        "feature_view": scorer.view.label, "columns": dict(scorer.view.columns),
        "encoder": scorer.encoder.learned(), "layer": scorer.layer.learned(),
        "calibration": calibration}))
    (folder / CLASSIFIER_FILE).write_bytes(scorer.classifier.onnx)
    return True


def load_scorer(view: FeatureView, folder: Path) -> CompiledScorer:
    """A scorer `save_scorer` wrote, for `view`: it scores as the one it saved did. One
    saved for an earlier version of the view with the same columns serves on this one, as
    its model does (`registry.view_mismatch`)."""
    saved = json.loads((folder / SCORER_FILE).read_text())
    same_columns = saved.get("columns") == dict(view.columns)
    if saved["feature_view"] != view.label and not same_columns:
        raise UnsupportedModel(f"saved for features {saved['feature_view']}, not {view.label}")
    builder = feature_builder(view.spec)
    calibration = saved.get("calibration")
    return CompiledScorer(view, builder.replay(view), builder.saved_layer(saved["layer"]),
                          Encoder.from_learned(saved["encoder"]),
                          OnnxClassifier((folder / CLASSIFIER_FILE).read_bytes()),
                          Calibration(calibration) if calibration else None)
