"""Routes of the review page: one template per page, the static files, and `/` leading to it."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from schemas.vocabulary import DeploymentPolicy, PredictionOrder, ReferenceStatus, ReviewStatus, RunStatus

HERE = Path(__file__).parent
PREFIX = "/review"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix=PREFIX, include_in_schema=False, default_response_class=HTMLResponse)
# The words the pages compare and offer, rendered into every page from the one vocabulary.
VOCABULARY = {
    e.__name__: {m.name: m.value for m in e}
    for e in (ReviewStatus, PredictionOrder, ReferenceStatus, DeploymentPolicy, RunStatus)
}


def _page(request: Request, template: str, **ids: UUID) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"prefix": PREFIX, "vocabulary": VOCABULARY, **ids})


@router.get("")
async def deployments_page(request: Request) -> HTMLResponse:
    return _page(request, "deployments.html")


@router.get("/deployments/{deployment_id}")
async def predictions_page(request: Request, deployment_id: UUID) -> HTMLResponse:
    return _page(request, "predictions.html", deployment_id=deployment_id)


@router.get("/predictions/{prediction_id}")
async def prediction_page(request: Request, prediction_id: UUID) -> HTMLResponse:
    return _page(request, "prediction.html", prediction_id=prediction_id)


@router.get("/deployments/{deployment_id}/pipeline")
async def pipeline_page(request: Request, deployment_id: UUID) -> HTMLResponse:
    return _page(request, "pipeline.html", deployment_id=deployment_id)


@router.get("/deployments/{deployment_id}/dashboard")
async def dashboard_page(request: Request, deployment_id: UUID) -> HTMLResponse:
    return _page(request, "dashboard.html", deployment_id=deployment_id)


@router.get("/jobs")
async def jobs_page(request: Request) -> HTMLResponse:
    return _page(request, "jobs.html")


@router.get("/processings")
async def processings_page(request: Request) -> HTMLResponse:
    return _page(request, "processings.html")


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: UUID) -> HTMLResponse:
    return _page(request, "job.html", job_id=job_id)


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="review-static")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse(PREFIX)
