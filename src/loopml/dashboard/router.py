"""``GET /``: the dashboard, served by ``loopml serve`` beside the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from loopml.dashboard.page import render_dashboard

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["dashboard_router"]


def dashboard_router(project: Project) -> APIRouter:
    """The dashboard's routes for ``project`` (composed into the app by ``loopml serve``)."""
    router = APIRouter(tags=["dashboard"])

    @router.get("/", response_class=HTMLResponse, summary="The monitoring dashboard")
    async def dashboard(
        prediction: str | None = Query(None, max_length=64, description="A logged prediction to explain."),
    ) -> HTMLResponse:
        """Models, alias history, volume, performance with label coverage, drift and alerts, and one
        logged prediction's feature contributions (``prediction``, else the newest)."""
        return HTMLResponse(await run_in_threadpool(render_dashboard, project, prediction))

    return router
