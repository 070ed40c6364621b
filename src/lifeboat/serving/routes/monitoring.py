"""Monitoring for people and for the web UI's charts (Grafana reads Prometheus and the DB
directly): the summary the Monitoring tab plots, and the drift reports, as JSON and as
pages (the latest, any earlier one, and their history)."""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations at run
# time, and `Service` is local to the factory.
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from lifeboat.db import STORED_INTEGER_MAX, DriftReport, UtcDatetime, as_utc
from lifeboat.monitoring import (
    MonitoringSummary,
    corrected_threshold,
    drift_report,
    drift_reports,
    latest_report,
    monitoring_summary,
)
from lifeboat.serving.deps import DatasetService
from lifeboat.serving.state import ServiceState

# The UI's templates, found by path: importing `lifeboat.serving.ui` here would import it
# while it imports these routes.
_templates = Jinja2Templates(directory=Path(__file__).parents[1] / "ui" / "templates")
_templates.env.trim_blocks = _templates.env.lstrip_blocks = True
HISTORY_ON_PAGE = 50  # earlier ones: GET /drift/reports
TESTS = {"ks": "Kolmogorov-Smirnov", "chi2": "chi-squared"}
CORRECTIONS = {"bonferroni": "Bonferroni", "fdr": "Benjamini-Hochberg (false discovery rate)"}
# A page's errors are JSON like every route's, and a route of HTMLResponse's class would
# document them as text/html: the pages are JSON routes whose success is documented as a page.
_PAGE = {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}


class _DriftReportVerdict(BaseModel):
    """What every view of a report shows: which check, on which window, and its verdict."""

    id: int
    created_at: UtcDatetime
    model_version: str
    window_start: UtcDatetime
    window_end: UtcDatetime
    window_size: int
    drifted: bool
    drift_share: float
    estimated_accuracy: float | None  # from the window's probabilities (CBPE)


class DriftReportOut(_DriftReportVerdict):
    model_name: str
    p_value: float
    correction: str
    features: list[dict[str, Any]]
    prediction_drift: dict[str, Any]


class DriftReportSummary(_DriftReportVerdict):
    """One report in the history: its verdict, without its tests."""

    features_drifted: int
    features_tested: int


class DriftReportsPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[DriftReportSummary]  # newest first


def monitoring_router(dataset: DatasetService) -> APIRouter:
    Service = dataset.annotated()
    router = APIRouter(tags=["monitoring"])

    @router.get("/monitoring/summary", response_model=MonitoringSummary,
                summary="Every prediction by class over time and by probability, ingestion "
                        "quality, drift, live and estimated accuracy, live ROC AUC, retrains")
    def summary(service: Service) -> MonitoringSummary:
        service.prediction_log.flush(timeout=1.0)  # the charts include the latest predictions
        return monitoring_summary(service.database, service.spec.name, service.live_accuracy())

    @router.get("/drift", response_model=DriftReportOut,
                responses={404: {"description": "No drift check has run yet"}},
                summary="The latest drift report: per-feature tests of recent inputs vs "
                        "training")
    def drift(service: Service) -> DriftReportOut:
        return DriftReportOut.model_validate(_latest(service), from_attributes=True)

    @router.get("/drift/report", response_model=None,
                responses={200: _PAGE, 404: {"description": "No drift check has run yet"}},
                summary="The latest drift report as a page: summary, features by severity, "
                        "reference vs recent plots, earlier reports")
    def latest_page(request: Request, service: Service) -> HTMLResponse:
        return _page(request, service, _latest(service), up="../")

    @router.get("/drift/reports", response_model=DriftReportsPage,
                summary="Every drift report's verdict, newest first, a page at a time")
    def history(service: Service, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> DriftReportsPage:
        total, reports = drift_reports(service.database, service.spec.name, limit=limit,
                                       offset=offset)
        return DriftReportsPage(total=total, limit=limit, offset=offset,
                                items=[_summary(report) for report in reports])

    @router.get("/drift/reports/{report_id}", response_model=None,
                responses={200: _PAGE, 404: {"description": "No drift report has this id"}},
                summary="One drift report as a page")
    def report_page(request: Request, service: Service, report_id: Annotated[
            int, PathParameter(ge=1, le=STORED_INTEGER_MAX)]) -> HTMLResponse:
        report = drift_report(service.database, service.spec.name, report_id)
        if report is None:
            raise HTTPException(404, detail=f"no drift report {report_id} of "
                                f"{service.spec.name}: GET /drift/reports lists them")
        return _page(request, service, report, up="../../")

    return router


def _latest(service: ServiceState) -> Any:
    report = latest_report(service.database, service.spec.name)
    if report is None:
        raise HTTPException(404, detail="no drift check has run yet: the service runs one "
                            "every LIFEBOAT_DRIFT_CHECK_SECONDS once enough predictions are "
                            "logged, or run `lifeboat drift`")
    return report


def _summary(report: DriftReport) -> DriftReportSummary:
    return DriftReportSummary(
        id=report.id, created_at=as_utc(report.created_at), model_version=report.model_version,
        window_start=as_utc(report.window_start), window_end=as_utc(report.window_end),
        window_size=report.window_size, drifted=report.drifted, drift_share=report.drift_share,
        features_drifted=sum(test["drifted"] for test in report.features),
        features_tested=len(report.features), estimated_accuracy=report.estimated_accuracy)


def _page(request: Request, service: ServiceState, report: DriftReport, up: str) -> HTMLResponse:
    """The report's page. `up` leads from the page to the dataset's routes; every URL in it
    is relative, as in the app's page, so it works behind a proxy that adds a prefix."""
    _, earlier = drift_reports(service.database, service.spec.name, limit=HISTORY_ON_PAGE)
    prediction_tests = list(report.prediction_drift.values())
    return _templates.TemplateResponse(request, "drift_report.html", {
        "report": report, "summary": _summary(report), "dataset": service.spec.name,
        "root": "../" * (request.url.path.count("/") - 1), "up": up,
        "features": _by_severity(report.features), "outputs": _by_severity(prediction_tests),
        "threshold": _threshold(report, report.features),
        "output_threshold": _threshold(report, prediction_tests),
        "tests": TESTS, "correction": CORRECTIONS.get(report.correction, report.correction),
        "history": [_summary(item) for item in earlier],
        "distributions": report.distributions,
    })


def _by_severity(tests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Smallest p-value first; a test with no value in the window last."""
    return sorted(tests, key=lambda test: (test["p_value"] is None, test["p_value"] or 0.0,
                                           test["feature"]))


def _threshold(report: DriftReport, tests: list[dict[str, Any]]) -> float:
    return corrected_threshold([test["p_value"] for test in tests], report.p_value,
                               report.correction)
