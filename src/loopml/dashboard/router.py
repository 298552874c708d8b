"""``GET /``: the dashboard, served by ``loopml serve`` beside the API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
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
    async def dashboard() -> HTMLResponse:
        """Models, alias history, volume, performance with label coverage, drift and alerts."""
        return HTMLResponse(await run_in_threadpool(render_dashboard, project))

    return router
