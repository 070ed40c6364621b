"""A registered version as Lifeboat describes it, and the listing of a model's versions.

Listing is what `lifeboat models` does; through MLflow's client it cost 4 s (importing
MLflow, opening its store, checking its schema) for a table of a few rows. On the embedded
store (SQLite under the home) the same rows are read with `sqlite3`, in milliseconds; any
other store, or a store this reading does not recognize, goes through the client.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lifeboat.config import Settings, sqlite_file

CHAMPION = "champion"
# A version that lost to the champion, scored beside it on live traffic (shadow mode).
CHALLENGER = "challenger"
FEATURE_VIEW_TAG = "feature_view"  # `name@version` of the feature view a model was trained on
FEATURE_COLUMNS_TAG = "feature_columns"  # that view's columns and kinds, as JSON
THRESHOLD_TAG = "decision_threshold"  # the probability from which the model answers 1
PROMOTION_TAG, EVIDENCE_TAG = "promotion", "promotion_evidence"  # the gate's decision
DEFAULT_THRESHOLD = 0.5  # a version trained before thresholds were chosen
MODEL_TYPE_PARAM = "best_candidate"  # the run's parameter naming the candidate that won
HYPERPARAMETER_PREFIX = "best."  # the run's parameters holding the winner's search result
_PIPELINE_STEP = "classifier__"  # the search's prefix of the classifier's own parameters
_DELETED = "Deleted_Internal"  # MLflow's stage for a deleted version it still keeps a row of


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    created_at: int
    aliases: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    feature_view: str | None = None
    feature_columns: dict[str, str] | None = None
    threshold: float = DEFAULT_THRESHOLD
    promotion: dict[str, Any] | None = None  # the gate's decision and its evidence
    training_data: dict[str, str] = field(default_factory=dict)  # `data.*` tags of its run
    experiment_id: str | None = None  # its run's: the MLflow UI's run pages sit under it
    model_type: str | None = None  # the candidate that won its search (`training.CANDIDATES`)
    hyperparameters: dict[str, str] = field(default_factory=dict)  # what the search chose
    training_parameters: dict[str, str] = field(default_factory=dict)  # its run's other ones

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases

    @classmethod
    def described(cls, name: str, version: str, run_id: str, created_at: int,
                  aliases: list[str], tags: Mapping[str, str], run_metrics: Mapping[str, float],
                  run_tags: Mapping[str, str], run_params: Mapping[str, str],
                  experiment_id: str | None) -> ModelVersion:
        """From what the registry keeps of a version and of its run, however it was read."""
        return cls(
            name=name, version=str(version), run_id=run_id, created_at=int(created_at),
            aliases=list(aliases),
            metrics={k: v for k, v in run_metrics.items() if k.startswith("test_")},
            feature_view=tags.get(FEATURE_VIEW_TAG),
            feature_columns=_json(tags.get(FEATURE_COLUMNS_TAG)),
            threshold=float(tags.get(THRESHOLD_TAG, DEFAULT_THRESHOLD)),
            promotion=_json(tags.get(EVIDENCE_TAG)),
            training_data={k: v for k, v in run_tags.items() if k.startswith("data.")},
            experiment_id=experiment_id,
            model_type=run_params.get(MODEL_TYPE_PARAM),
            hyperparameters={_hyperparameter(k): v for k, v in run_params.items()
                             if k.startswith(HYPERPARAMETER_PREFIX)},
            training_parameters={k: v for k, v in run_params.items()
                                 if k != MODEL_TYPE_PARAM
                                 and not k.startswith(HYPERPARAMETER_PREFIX)},
        )


def registered_versions(tracking_uri: str, model_name: str,
                        through_client: Callable[[], list[ModelVersion]]) -> list[ModelVersion]:
    """The model's versions, newest first: read straight from an embedded SQLite store,
    else `through_client()` (MLflow's client, for a server or a store of another kind)."""
    path = sqlite_file(tracking_uri)
    if path is None:
        return through_client()
    if not path.exists():
        return []
    try:
        store = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return _read_versions(store, model_name)
        finally:
            store.close()
    except sqlite3.Error:  # a schema of another MLflow release: its client knows it
        return through_client()


def list_versions(settings: Settings, model_name: str) -> list[ModelVersion]:
    """The model's versions, newest first, with MLflow imported only when the store needs
    its client."""
    def through_client() -> list[ModelVersion]:
        from lifeboat.registry.model_registry import ModelRegistry

        return ModelRegistry(settings, model_name).versions()

    return registered_versions(settings.tracking_uri, model_name, through_client)


def _read_versions(store: sqlite3.Connection, name: str) -> list[ModelVersion]:
    rows = store.execute(
        "SELECT version, run_id, creation_time FROM model_versions WHERE workspace = 'default' "
        "AND name = ? AND (current_stage IS NULL OR current_stage != ?) ORDER BY version DESC",
        (name, _DELETED)).fetchall()
    aliases = _grouped(store, "SELECT version, alias FROM registered_model_aliases "
                              "WHERE workspace = 'default' AND name = ?", name)
    tags = _grouped(store, 'SELECT version, "key", value FROM model_version_tags '
                           "WHERE workspace = 'default' AND name = ?", name)
    runs = [run_id for _, run_id, _ in rows if run_id]
    marks = ", ".join("?" * len(runs))
    metrics = _grouped(store, 'SELECT run_uuid, "key", CASE WHEN is_nan THEN NULL ELSE value '
                              f"END FROM latest_metrics WHERE run_uuid IN ({marks})", *runs)
    run_tags = _grouped(store, f'SELECT run_uuid, "key", value FROM tags WHERE run_uuid IN ({marks})',
                        *runs)
    params = _grouped(store, f'SELECT run_uuid, "key", value FROM params WHERE run_uuid IN ({marks})',
                      *runs)
    experiments = dict(store.execute(
        f"SELECT run_uuid, experiment_id FROM runs WHERE run_uuid IN ({marks})", runs).fetchall())
    return [ModelVersion.described(
        name, str(version), run_id, created,
        aliases=[alias for (alias,) in aliases.get(version, [])],
        tags=dict(tags.get(version, [])),
        run_metrics={k: float("nan") if v is None else v for k, v in metrics.get(run_id, [])},
        run_tags=dict(run_tags.get(run_id, [])),
        run_params=dict(params.get(run_id, [])),
        experiment_id=None if run_id not in experiments else str(experiments[run_id]))
        for version, run_id, created in rows]


def _grouped(store: sqlite3.Connection, query: str, *parameters: Any) -> dict[Any, list[tuple]]:
    """The query's rows by their first column."""
    grouped: dict[Any, list[tuple]] = {}
    for key, *rest in store.execute(query, parameters):
        grouped.setdefault(key, []).append(tuple(rest))
    return grouped


def _hyperparameter(param: str) -> str:
    """`best.classifier__max_depth` as the classifier calls it: `max_depth`."""
    return param.removeprefix(HYPERPARAMETER_PREFIX).removeprefix(_PIPELINE_STEP)


def _json(text: str | None) -> Any:
    return None if text is None else json.loads(text)
