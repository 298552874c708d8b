"""``GET /``: the dashboard, served by ``loopml serve`` beside the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from loopml.dashboard.page import render_dashboard

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])


@router.get("/", response_class=HTMLResponse, summary="The monitoring dashboard")
async def dashboard(request: Request) -> HTMLResponse:
    """Models, alias history, volume, performance with label coverage, drift and alerts."""
    page = await run_in_threadpool(render_dashboard, request.app.state.settings, request.app.state.store)
    return HTMLResponse(page)
