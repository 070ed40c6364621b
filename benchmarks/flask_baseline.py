"""The seeds' prediction service, kept as the baseline `benchmarks.serving` measures against.

What the seeds served: Flask, a pickled 300-tree random forest, features built with pandas
per request, and a two-sample KS test of the request's one row against the training data
(the "drift check" a single record cannot really make). Served by gunicorn with 2 sync
workers. Not part of Lifeboat: it exists to be beaten.

    BASELINE_MODEL=model.pkl gunicorn -w 2 'benchmarks.flask_baseline:create_app()'
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pandas as pd
from flask import Flask, jsonify, request
from scipy.stats import ks_2samp
from sklearn.ensemble import RandomForestClassifier

from lifeboat.datasets import load_spec

NUMERIC = ["pclass", "age", "sibsp", "parch", "fare"]
DUMMIES = ["sex", "embarked"]


def features(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The seeds' pandas features: missing numbers as -1, text one-hot encoded."""
    frame = frame.reindex(columns=NUMERIC + DUMMIES)
    numbers = frame[NUMERIC].apply(pd.to_numeric, errors="coerce").fillna(-1.0)
    encoded = pd.concat([numbers, pd.get_dummies(frame[DUMMIES].astype(object))], axis=1)
    return encoded if columns is None else encoded.reindex(columns=columns, fill_value=0)


def train(path: Path) -> None:
    """Fits the forest on the bundled passengers and pickles it with its training frame."""
    spec = load_spec("titanic")
    passengers = pd.read_csv(spec.bundled_path(), na_values=spec.missing_values,
                             keep_default_na=False)
    frame = features(passengers)
    forest = RandomForestClassifier(n_estimators=300, random_state=0)
    forest.fit(frame, passengers["survived"])
    path.write_bytes(pickle.dumps({"model": forest, "reference": frame}))


def create_app(model_path: str | None = None) -> Flask:
    saved = pickle.loads(Path(model_path or os.environ["BASELINE_MODEL"]).read_bytes())
    model, reference = saved["model"], saved["reference"]
    app = Flask(__name__)

    @app.post("/predict")
    def predict():  # noqa: ANN202
        row = features(pd.DataFrame([request.get_json()]), list(reference.columns))
        probability = float(model.predict_proba(row)[0, 1])
        drift = {column: float(ks_2samp(row[column], reference[column]).pvalue)
                 for column in NUMERIC}
        return jsonify({"prediction": int(probability >= 0.5), "probability": probability,
                        "drift_p_values": drift})

    return app
