"""Admin routes (bearer token): list versions, move an alias (recorded with who, when and why)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from loopml.config import ServeConfig
from loopml.registry import list_versions, set_alias
from loopml.serve.deps import get_holder, get_serve_config, get_store
from loopml.serve.routes import check_served, read_json, validation_error
from loopml.serve.state import ModelHolder
from loopml.store import Store

__all__ = ["admin_router"]

admin_router = APIRouter(tags=["admin"])

_ALIAS = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"


class AliasMove(BaseModel):
    """Where to point the alias, and why (kept in the alias history)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=2**31 - 1)
    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field("api", min_length=1, max_length=100)


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body, option=orjson.OPT_NAIVE_UTC), media_type="application/json")


@admin_router.post(
    "/v1/models/{name}/aliases/{alias}",
    summary="Point an alias at a version (admin)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": AliasMove.model_json_schema()}},
        }
    },
)
async def move_alias(
    request: Request,
    name: str,
    alias: str = Path(pattern=_ALIAS),
    holder: ModelHolder = Depends(get_holder),
    config: ServeConfig = Depends(get_serve_config),
    store: Store = Depends(get_store),
) -> Response:
    """Move ``alias`` to ``version``; the server takes up a move of its own alias at once.

    The version's artifact is checked first (SHA-256, safe load): a 409 ``promotion_refused`` naming
    the model and version otherwise, and the alias stays."""
    check_served(name, holder)
    payload = await read_json(request, config.max_body_bytes)
    try:
        move = AliasMove.model_validate(payload)
    except ValidationError as exc:
        raise validation_error(exc, lambda loc: ".".join(map(str, loc)) or "body") from None
    change = await run_in_threadpool(
        set_alias, store, name, alias, move.version, reason=move.reason, actor=move.actor
    )
    if alias == holder.alias:
        holder.invalidate()
    return _json(
        {
            "name": change.name,
            "alias": change.alias,
            "version": change.version,
            "previous_version": change.previous_version,
            "reason": change.reason,
            "actor": change.actor,
            "created_at": change.created_at,
        }
    )


@admin_router.get("/v1/models/{name}/versions", summary="Every version of the model, newest first (admin)")
async def versions(
    name: str, holder: ModelHolder = Depends(get_holder), store: Store = Depends(get_store)
) -> Response:
    check_served(name, holder)
    found = await run_in_threadpool(list_versions, store.engine, name)
    return _json(
        {
            "model": name,
            "versions": [
                {
                    "version": v.version,
                    "aliases": list(v.aliases),
                    "sha256": v.sha256,
                    "created_at": v.created_at,
                    "metrics": v.metrics,
                }
                for v in found
            ],
        }
    )
