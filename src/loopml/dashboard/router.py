"""The dashboard's routes, served by ``loopml serve`` beside the API.

``GET /`` (overview), ``GET /models`` (compare two versions, promote and roll back), ``GET /explain``
(why one prediction scored as it did) and ``GET /static/{name}`` (plotly.js and the page's script and
style sheet at versioned URLs, cached for a year). Pages are sent gzip-compressed when the browser
accepts it, with a Content-Security-Policy that lets only this server's scripts run: the pages carry
their figures as JSON data, never as inline script. The admin buttons send the admin token the user
pasted (kept in the tab's ``sessionStorage``) to the authenticated admin API; the pages never hold it.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from loopml.dashboard.assets import assets
from loopml.dashboard.page import render_dashboard, render_explain, render_models

if TYPE_CHECKING:
    from loopml.project import Project

__all__ = ["PAGE_HEADERS", "dashboard_router"]

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


async def _page(request: Request, render: Callable[[], str]) -> Response:
    """Render in the thread pool; the time it took goes out as ``Server-Timing: render;dur=MS``."""
    started = time.perf_counter()
    body = (await run_in_threadpool(render)).encode()
    headers = dict(PAGE_HEADERS)
    if _accepts_gzip(request) and len(body) > 1024:
        body = gzip.compress(body, compresslevel=6)
        headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return Response(body, media_type="text/html; charset=utf-8", headers=headers)


def dashboard_router(project: Project) -> APIRouter:
    """The dashboard's routes for ``project`` (composed into the app by ``loopml serve``)."""
    router = APIRouter(tags=["dashboard"])

    @router.get("/", response_class=HTMLResponse, summary="The monitoring dashboard")
    async def overview(
        request: Request,
        prediction: str | None = Query(None, max_length=64, description="A logged prediction to explain."),
    ) -> Response:
        """Status, alerts, volume by version, performance with label coverage and the label-free
        estimate, drift per window, actions and retraining (``prediction``: see ``/explain``)."""
        if prediction is not None:
            return RedirectResponse(request.url.replace(path="/explain"), status_code=307)
        query = dict(request.query_params)
        return await _page(request, lambda: render_dashboard(project, query=query, standalone=False))

    @router.get("/models", response_class=HTMLResponse, summary="Compare model versions, promote, roll back")
    async def models(
        request: Request,
        a: int | None = Query(None, ge=1, le=2**31 - 1, description="A version to compare."),
        b: int | None = Query(None, ge=1, le=2**31 - 1, description="The version to compare it with."),
    ) -> Response:
        """Two versions side by side (the champion and the newest other one by default); promote and
        roll back through the admin API; the alias history."""
        query = dict(request.query_params)
        return await _page(request, lambda: render_models(project, a, b, query=query))

    @router.get("/explain", response_class=HTMLResponse, summary="Why one logged prediction scored as it did")
    async def explain(
        request: Request,
        prediction: str | None = Query(None, max_length=64, description="A logged prediction to explain."),
    ) -> Response:
        """One logged prediction's feature contributions (``prediction``, else the newest), scored
        by the served model when it made the prediction, else by its version loaded again."""

        def render() -> str:
            served = project.predictions.served_model(request.app)
            return render_explain(project, prediction, served=served)

        return await _page(request, render)

    @router.get("/static/{name}", summary="The dashboard's scripts and style sheet (cached)")
    async def static(request: Request, name: str) -> Response:
        """plotly.js, ``dashboard.js`` and ``dashboard.css`` at versioned names, cached for a year."""
        asset = assets().by_path.get(f"/static/{name}")
        if asset is None:
            return Response("no such asset", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": _IMMUTABLE, "ETag": asset.etag, "X-Content-Type-Options": "nosniff"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        if _accepts_gzip(request):
            gzipped = await run_in_threadpool(lambda: asset.gzipped)
            headers.update({"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
            return Response(gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return router
