"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) served with their assets, so they work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, blank on a machine without internet. The
assets here come from the ``fastapi-offline`` package (Swagger UI 5 and ReDoc 2 as released, under
their own licences: Apache-2.0 and MIT), served by this app under ``/docs/assets/``: nothing leaves
the server (ReDoc's bundle names one remote image, its maker's logo: it is pointed at a local one).
Swagger UI 5 reads the OpenAPI 3.1 documents FastAPI writes.
"""

from __future__ import annotations

import functools
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

from loopml.errors import NotFoundError

__all__ = ["ASSETS", "docs_router"]

docs_router = APIRouter(include_in_schema=False)

_ASSETS_URL = "/docs/assets"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
# The files served, by name (nothing else under the package folder is reachable).
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _folder() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _urls(request: Request) -> tuple[str, str]:
    root = request.scope.get("root_path", "")
    return f"{root}{request.app.openapi_url}", f"{root}{_ASSETS_URL}"


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    openapi, assets = _urls(request)
    return get_swagger_ui_html(
        openapi_url=openapi,
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )


@docs_router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@docs_router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    openapi, assets = _urls(request)
    return get_redoc_html(
        openapi_url=openapi,
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{assets}/redoc.standalone.js",
        redoc_favicon_url=f"{assets}/favicon.png",
        with_google_fonts=False,
    )


@functools.cache
def _redoc_script() -> bytes:
    """ReDoc's bundle with its one remote image (the Redocly logo, from a CDN) pointed at ours."""
    script = (_folder() / "redoc.standalone.js").read_bytes()
    return script.replace(_REDOC_LOGO, f"{_ASSETS_URL}/favicon.png".encode())


@docs_router.get(_ASSETS_URL + "/{name}")
async def asset(name: str) -> Response:
    """One of :data:`ASSETS`, cached by the browser for a day."""
    if name not in ASSETS:
        raise NotFoundError(f"no documentation asset '{name}'; the assets are {', '.join(sorted(ASSETS))}.")
    headers = {"Cache-Control": "public, max-age=86400"}
    if name == "redoc.standalone.js":
        return Response(_redoc_script(), media_type=ASSETS[name], headers=headers)
    return FileResponse(_folder() / name, media_type=ASSETS[name], headers=headers)
