"""The model registry: versions, the `champion` alias, and promotion only when better."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.sklearn
import pandas as pd
from mlflow.exceptions import MlflowException

from lifeboat.config import Settings
from lifeboat.errors import ModelVersionNotFound, NoChampionError
from lifeboat.registry.metrics import CURVES_ARTIFACT, DRIFT_REFERENCE_ARTIFACT, score
from lifeboat.registry.tracking import configure_tracking

CHAMPION = "champion"
# A version that lost to the champion, scored beside it on live traffic (shadow mode).
CHALLENGER = "challenger"
FEATURE_VIEW_TAG = "feature_view"  # `name@version` of the feature view a model was trained on
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    created_at: int
    aliases: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    feature_view: str | None = None

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases


@dataclass(frozen=True)
class PromotionDecision:
    version: str
    promoted: bool
    reason: str
    challenger_score: float
    champion_score: float | None = None
    previous_champion: str | None = None


class ModelRegistry:
    """One registered model per dataset (`lifeboat-<dataset>`), versions tracked in MLflow."""

    def __init__(self, settings: Settings, model_name: str) -> None:
        self.client = configure_tracking(settings)
        self.name = model_name

    def versions(self) -> list[ModelVersion]:
        try:
            found = self.client.search_model_versions(f"name='{self.name}'")
        except MlflowException:
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
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in model.aliases.items()}

    def _aliased(self, alias: str) -> ModelVersion | None:
        try:
            return self._describe(self.client.get_model_version_by_alias(self.name, alias))
        except MlflowException:
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
        except MlflowException:
            raise ModelVersionNotFound(f"{self.name} has no version {version}") from None

    def load(self, version: str) -> Any:
        # The artifact URI, not `models:/…`, so loading never depends on MLflow's global registry.
        return mlflow.sklearn.load_model(
            self.client.get_model_version_download_uri(self.name, str(version))
        )

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
        try:
            return Path(mlflow.artifacts.download_artifacts(
                self.client.get_run(version.run_id).info.artifact_uri + "/" + folder,
                dst_path=str(into)))
        except (MlflowException, OSError):
            return None

    def curves(self, version: str) -> dict[str, Any] | None:
        """The version's held-out ROC and calibration curves; None for a version trained
        before they were logged."""
        return self._logged_dict(version, CURVES_ARTIFACT)

    def drift_reference(self, version: str) -> dict[str, Any] | None:
        """What the version's training data looked like, for drift checks and outlier
        flags (`monitoring.DriftReference.from_dict`); None for a version trained before
        it was logged."""
        return self._logged_dict(version, DRIFT_REFERENCE_ARTIFACT)

    def _logged_dict(self, version: str, artifact: str) -> dict[str, Any] | None:
        run_id = self.get(version).run_id
        try:
            return mlflow.artifacts.load_dict(
                self.client.get_run(run_id).info.artifact_uri + "/" + artifact)
        except (MlflowException, OSError):
            return None

    def promote(self, version: str) -> ModelVersion:
        """Makes a version the champion, unconditionally: the admin's call."""
        self.get(version)
        self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        challenger = self.challenger()
        if challenger is not None and challenger.version == str(version):
            self.set_challenger(None)
        log.info("%s version %s is now the champion", self.name, version)
        return self.get(version)

    def tag_feature_view(self, version: str, view_label: str) -> None:
        self.client.set_model_version_tag(self.name, str(version), FEATURE_VIEW_TAG, view_label)

    def promote_if_better(self, version: str, heldout_x: pd.DataFrame, heldout_y: pd.Series,
                          metric: str, rows: str = "the same held-out rows") -> PromotionDecision:
        """Both models are scored on the challenger's held-out rows (`rows` names them in
        the decision); only a strictly better one wins.

        A champion trained on another feature view version cannot score these rows, and the
        code no longer computes its features: the challenger replaces it.
        """
        challenger = score(self.load(version), heldout_x, heldout_y)[metric]
        current, features = self.champion(), self.get(version).feature_view
        if current is None:
            decision = PromotionDecision(version, True, "first model", challenger)
        elif current.feature_view != features:
            decision = PromotionDecision(
                version, True, f"champion v{current.version} was trained on features "
                f"{current.feature_view}, which this code no longer computes ({features})",
                challenger, previous_champion=current.version)
        else:
            incumbent = score(self.load(current.version), heldout_x, heldout_y)[metric]
            better = challenger > incumbent
            reason = (f"{metric} {challenger:.4f} {'>' if better else '<='} champion "
                      f"v{current.version}'s {incumbent:.4f} on {rows}")
            decision = PromotionDecision(version, better, reason, challenger, incumbent,
                                         current.version)
        if decision.promoted:
            self.client.set_registered_model_alias(self.name, CHAMPION, str(version))
        # A new champion makes any challenger moot; one that lost is watched in shadow.
        self.set_challenger(None if decision.promoted else version)
        self.client.set_model_version_tag(self.name, str(version), "promotion", decision.reason)
        log.info("%s v%s %s: %s", self.name, version,
                 "promoted" if decision.promoted else "not promoted", decision.reason)
        return decision

    def _describe(self, version: Any) -> ModelVersion:
        metrics = self.client.get_run(version.run_id).data.metrics if version.run_id else {}
        return ModelVersion(
            name=version.name,
            version=str(version.version),
            run_id=version.run_id,
            created_at=int(version.creation_timestamp),
            aliases=list(version.aliases or []),
            metrics={k: v for k, v in metrics.items() if k.startswith("test_")},
            feature_view=(version.tags or {}).get(FEATURE_VIEW_TAG),
        )
