"""The registry seen from the service: the champion, every version, and the admin actions
that change which model serves (promote, retrain)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse

from lifeboat.errors import ModelVersionNotFound, NoChampionError
from lifeboat.registry import ModelVersion, NoEarlierChampion, run_url
from lifeboat.serving.admin import Admin, Read
from lifeboat.serving.deps import DatasetService, serving_predictor
from lifeboat.serving.retraining import RetrainStatus
from lifeboat.serving.schemas import (
    ChampionChangeOut,
    ChampionHistoryPage,
    ModelInfo,
    ModelReport,
    ModelsPage,
    ModelVersionOut,
)
from lifeboat.serving.state import ServiceState


def models_router(dataset: DatasetService) -> APIRouter:
    Service = dataset.annotated()
    router = APIRouter(tags=["models"])

    @router.get("/model", response_model=ModelInfo, dependencies=[Read],
                summary="The model serving right now")
    def model(service: Service) -> ModelInfo:
        version = serving_predictor(service).version
        return ModelInfo(dataset=service.spec.name, name=version.name, version=version.version,
                         run_id=version.run_id, aliases=version.aliases, metrics=version.metrics,
                         threshold=version.threshold)

    @router.get("/models", response_model=ModelsPage, dependencies=[Read],
                summary="Registered versions with metrics")
    def models(service: Service) -> ModelsPage:
        serving = service.predictor.version.version if service.predictor else None
        versions = [_version_out(service, v, serving) for v in service.registry.versions()]
        champion = next((v.version for v in versions if v.is_champion), None)
        return ModelsPage(champion=champion, serving=serving, versions=versions)

    @router.get("/models/history", response_model=ChampionHistoryPage, dependencies=[Read],
                summary="Every change of champion: when, from, to, by whom, why, with evidence")
    def history(service: Service) -> ChampionHistoryPage:
        return ChampionHistoryPage(items=[ChampionChangeOut.model_validate(change)
                                          for change in service.registry.changes()])

    @router.get("/models/{version}/report", response_model=ModelReport, dependencies=[Read],
                summary="One version's classification report: metrics, curves, confusion "
                        "matrix at its threshold, feature importance, model type, parameters",
                responses={404: {"description": "No such version"}})
    def model_report(version: str, service: Service) -> ModelReport:
        try:
            found = service.registry.get(version)
        except ModelVersionNotFound as exc:
            raise HTTPException(404, detail=str(exc)) from None
        serving = service.predictor.version.version if service.predictor else None
        return ModelReport(**_version_out(service, found, serving).model_dump(),
                           training_parameters=found.training_parameters,
                           curves=service.registry.curves(version),
                           feature_importance=service.registry.feature_importance(version))

    @router.get("/models/{version}/curves", dependencies=[Read],
                summary="Held-out ROC and calibration curves",
                responses={404: {"description": "No such version, or it has no curves"}})
    def model_curves(version: str, service: Service) -> dict[str, Any]:
        try:
            found = service.registry.curves(version)
        except ModelVersionNotFound as exc:
            raise HTTPException(404, detail=str(exc)) from None
        if found is None:
            raise HTTPException(404, detail=f"version {version} was trained before curves "
                                            "were logged")
        return found

    @router.post("/models/{version}/promote", response_model=ModelVersionOut,
                 dependencies=[Admin],
                 summary="Make a version the champion (admin; no comparison is made)")
    def promote(version: str, service: Service) -> ModelVersionOut:
        try:
            promoted = service.registry.promote(version, by="api",
                                                reason="promoted by an admin")
        except ModelVersionNotFound as exc:
            raise HTTPException(404, detail=str(exc)) from None
        return _serving_now(service, promoted)

    @router.post("/models/rollback", response_model=ModelVersionOut, dependencies=[Admin],
                 responses={409: {"description": "The champion replaced no earlier one"}},
                 summary="Make the previous champion the champion again (admin)")
    def rollback(service: Service) -> ModelVersionOut:
        try:
            restored = service.registry.rollback(by="api")
        except (NoEarlierChampion, NoChampionError) as exc:
            raise HTTPException(409, detail=str(exc)) from None
        return _serving_now(service, restored)

    @router.post("/retrain", response_model=RetrainStatus, status_code=202,
                 dependencies=[Admin],
                 responses={409: {"description": "A retrain is already running"}},
                 summary="Retrain on the latest good data; promoted only if better (admin)")
    def retrain(service: Service) -> RetrainStatus | JSONResponse:
        if not service.retraining.start():
            return JSONResponse(service.retraining.status.model_dump(mode="json"),
                                status_code=409)
        return service.retraining.status

    @router.get("/retrain", response_model=RetrainStatus, dependencies=[Read],
                summary="The latest retrain's status")
    def retrain_status(service: Service) -> RetrainStatus:
        return service.retraining.status

    return router


def _serving_now(service: ServiceState, version: ModelVersion) -> ModelVersionOut:
    """This process switches at once; others within their poll interval."""
    service.refresh_models()
    serving = service.predictor.version.version if service.predictor else None
    return _version_out(service, version, serving)


def _version_out(service: ServiceState, version: ModelVersion,
                 serving: str | None) -> ModelVersionOut:
    return ModelVersionOut(
        name=version.name, version=version.version,
        created_at=datetime.fromtimestamp(version.created_at / 1000, UTC),
        aliases=version.aliases, metrics=version.metrics, feature_view=version.feature_view,
        threshold=version.threshold, promotion=version.promotion,
        training_data=version.training_data, is_champion=version.is_champion,
        serving=version.version == serving, run_id=version.run_id,
        run_url=run_url(service.settings, version.experiment_id, version.run_id),
        model_type=version.model_type, hyperparameters=version.hyperparameters)
