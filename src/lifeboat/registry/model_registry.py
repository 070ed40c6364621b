"""The model registry: versions, the `champion` alias, and every change of champion."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lifeboat.config import Settings
from lifeboat.errors import LifeboatError, ModelVersionNotFound, NoChampionError
from lifeboat.registry.champion_history import ChampionChange, ChampionHistory
from lifeboat.registry.evaluation import (
    CURVES_ARTIFACT,
    DRIFT_REFERENCE_ARTIFACT,
    FEATURE_IMPORTANCE_ARTIFACT,
    PROMOTION_ROWS_ARTIFACT,
    TRAINING_ROWS_ARTIFACT,
)
from lifeboat.registry.tracking import configure_tracking, server_answering
from lifeboat.registry.versions import (
    CHALLENGER,
    CHAMPION,
    EVIDENCE_TAG,
    FEATURE_COLUMNS_TAG,
    FEATURE_VIEW_TAG,
    PROMOTION_TAG,
    THRESHOLD_TAG,
    ModelVersion,
    registered_versions,
)

if TYPE_CHECKING:
    from lifeboat.features import FeatureView

log = logging.getLogger(__name__)


def view_mismatch(version: ModelVersion, view: FeatureView) -> str | None:
    """Why this code cannot serve the version, or None.

    A version serves on the view this code computes when it was trained on that version of
    the view, or on an earlier version with the same columns of the same kinds: a changed
    definition (a fixed title rule) then feeds it the values it would be given today, which
    is how the promotion gate compares it too. Columns added, removed or retyped cannot be
    fed to it."""
    if version.feature_view == view.label:
        return None
    trained_name = (version.feature_view or "").split("@")[0]
    if trained_name == view.name and version.feature_columns == dict(view.columns):
        return None
    return (f"{version.name} v{version.version} was trained on features {version.feature_view}, "
            f"whose columns this code no longer computes ({view.label}): run "
            "`lifeboat train --promote`")


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    promoted: bool
    reason: str
    evidence: dict[str, Any]
    previous_champion: str | None = None


class NoEarlierChampion(LifeboatError):
    """A rollback was asked for, but the champion never replaced another version."""


class ModelRegistry:
    """One registered model per dataset (`lifeboat-<dataset>`), versions tracked in MLflow.

    Every change of champion made through it is a row in `history` when one is given; the
    commands, routes and jobs that change the champion all give it.
    """

    def __init__(self, settings: Settings, model_name: str,
                 history: ChampionHistory | None = None) -> None:
        self.client = configure_tracking(settings)
        self._tracking_uri = settings.tracking_uri
        from mlflow.exceptions import MlflowException  # MLflow is imported on first use

        self._mlflow_error = MlflowException
        self.name = model_name
        self.history = history

    def versions(self) -> list[ModelVersion]:
        return registered_versions(self._tracking_uri, self.name, self._searched_versions)

    def _searched_versions(self) -> list[ModelVersion]:
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
        except self._mlflow_error:
            return []
        # Search results leave out aliases, so each version is read on its own.
        numbers = sorted((int(v.version) for v in found), reverse=True)
        return [self.get(str(number)) for number in numbers]

    def champion(self) -> ModelVersion | None:
        return self._aliased(CHAMPION)

    def challenger(self) -> ModelVersion | None:
        return self._aliased(CHALLENGER)

    def aliases(self) -> dict[str, str]:
        """The version each alias names, in one read: a tenth of what describing the
        champion and the challenger costs, so it is what a serving process polls."""
        try:
            model = self.client.get_registered_model(self.name)
        except self._mlflow_error:
            return {}
        return {alias: str(version) for alias, version in model.aliases.items()}

    def _aliased(self, alias: str) -> ModelVersion | None:
        try:
            return self._describe(self.client.get_model_version_by_alias(self.name, alias))
        except self._mlflow_error:
            return None

    def set_challenger(self, version: str | None) -> None:
        """Names the version to shadow the champion; None: no challenger any more."""
        if version is None:
            if self.challenger() is not None:
                self.client.delete_registered_model_alias(self.name, CHALLENGER)
            return
        self.client.set_registered_model_alias(self.name, CHALLENGER, str(version))

    def get(self, version: str) -> ModelVersion:
        try:
            return self._describe(self.client.get_model_version(self.name, str(version)))
        except self._mlflow_error:
            raise ModelVersionNotFound(f"{self.name} has no version {version}") from None

    def load(self, version: str) -> Any:
        import mlflow.sklearn

        # The artifact URI, not `models:/…`, so loading never depends on MLflow's global registry.
        uri = self.client.get_model_version_download_uri(self.name, str(version))
        with server_answering(self._tracking_uri):
            return mlflow.sklearn.load_model(uri)

    def load_champion(self) -> tuple[ModelVersion, Any]:
        champion = self.require_champion()
        return champion, self.load(champion.version)

    def require_champion(self) -> ModelVersion:
        champion = self.champion()
        if champion is None:
            raise NoChampionError(
                f"{self.name} has no champion yet: run `lifeboat train --promote` or `lifeboat up`"
            )
        return champion

    def download_folder(self, version: ModelVersion, folder: str, into: Path) -> Path | None:
        """A folder the version's training run logged, copied under `into`; None when the
        run has none."""
        import mlflow.artifacts

        try:
            return Path(mlflow.artifacts.download_artifacts(
                self.client.get_run(version.run_id).info.artifact_uri + "/" + folder,
                dst_path=str(into)))
        except (self._mlflow_error, OSError):
            return None

    def curves(self, version: str) -> dict[str, Any] | None:
        """The version's held-out ROC and calibration curves; None for a version trained
        before they were logged."""
        return self._logged_dict(version, CURVES_ARTIFACT)

    def feature_importance(self, version: str) -> dict[str, Any] | None:
        """How much each input mattered to the version on its held-out rows
        (`registry.feature_importance`); None for a version trained before it was logged."""
        return self._logged_dict(version, FEATURE_IMPORTANCE_ARTIFACT)

    def drift_reference(self, version: str) -> dict[str, Any] | None:
        """What the version's training data looked like, for drift checks and outlier
        flags (`registry.DriftReference.from_dict`); None for a version trained before
        it was logged."""
        return self._logged_dict(version, DRIFT_REFERENCE_ARTIFACT)

    def _logged_dict(self, version: str, artifact: str) -> dict[str, Any] | None:
        import mlflow.artifacts

        run_id = self.get(version).run_id
        try:
            return mlflow.artifacts.load_dict(
                self.client.get_run(run_id).info.artifact_uri + "/" + artifact)
        except (self._mlflow_error, OSError):
            return None

    def promotion_keys(self, version: str) -> set[str] | None:
        """The keys of the rows the gate judged the version on."""
        logged = self._logged_dict(version, PROMOTION_ROWS_ARTIFACT)
        return None if logged is None else set(logged["keys"])

    def training_keys(self, version: str) -> set[str] | None:
        """The keys of the rows the version was trained on; None for a version trained
        before they were logged."""
        logged = self._logged_dict(version, TRAINING_ROWS_ARTIFACT)
        return None if logged is None else set(logged["keys"])

    def heldout_keys(self, version: str) -> set[str] | None:
        logged = self._logged_dict(version, "heldout_split.json")
        return None if logged is None else set(logged["entity_ids"])

    def promote(self, version: str, *, by: str, reason: str,
                evidence: dict[str, Any] | None = None) -> ModelVersion:
        """Makes a version the champion, unconditionally (an admin's call, or the gate's
        after it decided), and records the change."""
        self.get(version)
        previous = self.champion()
        self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        challenger = self.challenger()
        if challenger is not None and challenger.version == str(version):
            self.set_challenger(None)
        if self.history is not None and (previous is None or previous.version != str(version)):
            self.history.record(previous.version if previous else None, str(version), by, reason,
                                evidence)
        log.info("%s version %s is now the champion (%s: %s)", self.name, version, by, reason)
        return self.get(version)

    def rollback(self, *, by: str) -> ModelVersion:
        """Back to the champion before the current one, as the history recorded it."""
        current = self.require_champion()
        change = self.history.latest_to(current.version) if self.history else None
        if change is None or change.from_version is None:
            raise NoEarlierChampion(f"{self.name} v{current.version} did not replace another "
                                    "champion: there is nothing to roll back to")
        return self.promote(change.from_version, by=by,
                            reason=f"rollback from v{current.version}")

    def changes(self) -> list[ChampionChange]:
        return self.history.changes() if self.history else []

    def tag_trained(self, version: str, view: FeatureView, threshold: float) -> None:
        """What serving needs to know of a version besides its model: the view it was
        trained on (name, version and columns) and its decision threshold."""
        tags = {FEATURE_VIEW_TAG: view.label, FEATURE_COLUMNS_TAG: json.dumps(dict(view.columns)),
                THRESHOLD_TAG: repr(threshold)}
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, value)

    def record_decision(self, decision: PromotionDecision, keys: list[str]) -> None:
        """Keeps the gate's decision on the challenger's version, for /models and the
        Models tab, and the keys of the rows that decided it in its run
        (`promotion_rows.json`); names it the challenger (shadow-scored) when it lost."""
        self.client.log_dict(self.get(decision.version).run_id, {"keys": keys},
                             PROMOTION_ROWS_ARTIFACT)
        self.set_challenger(None if decision.promoted else decision.version)
        self.client.set_model_version_tag(self.name, decision.version, PROMOTION_TAG,
                                          decision.reason)
        self.client.set_model_version_tag(self.name, decision.version, EVIDENCE_TAG,
                                          json.dumps({"promoted": decision.promoted,
                                                      "reason": decision.reason,
                                                      **decision.evidence}))

    def _describe(self, version: Any) -> ModelVersion:
        run = self.client.get_run(version.run_id) if version.run_id else None
        return ModelVersion.described(
            version.name, str(version.version), version.run_id, version.creation_timestamp,
            aliases=list(version.aliases or []), tags=version.tags or {},
            run_metrics=run.data.metrics if run else {}, run_tags=run.data.tags if run else {},
            run_params=run.data.params if run else {},
            experiment_id=run.info.experiment_id if run else None)
