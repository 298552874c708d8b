"""Security by default: bearer tokens (strength, constant-time checks), classified routes, admin routes."""

from __future__ import annotations

import pickle
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from loopml.config import Settings, parse_settings
from loopml.dashboard import dashboard_router
from loopml.errors import ConfigError
from loopml.project import Project
from loopml.registry import alias_history, get_alias
from loopml.serve import (
    ADMIN_ROUTES,
    OPTIONAL_ROUTES,
    PREDICT_ROUTES,
    PROTECTED_ROUTES,
    PUBLIC_ROUTES,
    create_app,
)
from loopml.serve.auth import token_weakness
from loopml.serve.deps import server_state

ADMIN = secrets.token_urlsafe(32)
PREDICTOR = secrets.token_urlsafe(32)
RECORD: dict[str, Any] = {
    "transaction_id": 7_999_999,
    "customer_id": 7_999_999,
    "terminal_id": 7_999_999,
    "tx_datetime": "2026-01-20T14:30:00",
    "tx_amount": 42.5,
}
SAMPLE_PATH = {"name": "fraud", "alias": "champion", "version": "1"}


def with_serve(settings: Settings, **changes: Any) -> Settings:
    serve = settings.serve.model_copy(update=changes)
    return settings.model_copy(update={"serve": serve})


def secured(project: Project, **extra: Any) -> FastAPI:
    settings = with_serve(
        project.settings, admin_token=SecretStr(ADMIN), predict_token=SecretStr(PREDICTOR), **extra
    )
    return project.with_settings(settings).app([dashboard_router(project)])  # as `loopml serve` composes it


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    found = list(iter_contexts(app.routes)) if iter_contexts else app.routes
    out = []
    for r in found:
        path = getattr(r, "path", None)
        methods = set(getattr(r, "methods", None) or getattr(getattr(r, "route", None), "methods", set()))
        out.append((path, methods))
    return out


@pytest.fixture
def client(api_project: Project) -> Iterator[TestClient]:
    with TestClient(secured(api_project)) as test_client:
        yield test_client


# --- token strength ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "short",
        "a" * 40,
        "passwordpasswordpassword",
        "abcdefghijklmnopqrstuvwxyz",
        "0123456789012345678901234",
    ],
)
def test_weak_tokens_are_named_weak(token: str) -> None:
    assert token_weakness(token) is not None


def test_generated_tokens_are_strong() -> None:
    for _ in range(50):
        assert token_weakness(secrets.token_urlsafe(32)) is None
        assert token_weakness(secrets.token_hex(16)) is None


@pytest.mark.parametrize("token", ["", "   ", "changeme", "x" * 64, "admin-admin-admin-admin-admin"])
def test_server_refuses_to_start_with_an_empty_or_weak_admin_token(api_project: Project, token: str) -> None:
    with pytest.raises(ConfigError) as info:
        create_app(with_serve(api_project.settings, admin_token=SecretStr(token)), api_project.store)
    message = str(info.value)
    assert "serve.admin_token" in message and "secrets.token_urlsafe(32)" in message
    assert "\n" not in message
    if token.strip():
        assert token not in message  # the secret is never echoed


def test_admin_routes_on_without_a_token_is_refused(api_project: Project) -> None:
    with pytest.raises(ConfigError, match=r"admin_token is empty"):
        create_app(with_serve(api_project.settings, admin_routes=True), api_project.store)


def test_a_weak_predict_token_is_refused_too(api_project: Project) -> None:
    with pytest.raises(ConfigError, match=r"serve\.predict_token is too weak"):
        create_app(with_serve(api_project.settings, predict_token=SecretStr("hunter2")), api_project.store)


def test_token_from_the_environment(tmp_path: Path, api_project: Project) -> None:
    text = (api_project.settings.project_dir / "loopml.yaml").read_text(encoding="utf-8")
    settings = parse_settings(text, project_dir=tmp_path, environ={"LOOPML_SERVE__ADMIN_TOKEN": ADMIN})
    assert settings.serve.admin_token is not None
    assert settings.serve.admin_token.get_secret_value() == ADMIN
    assert ADMIN not in repr(settings)  # never printed by accident
    weak = parse_settings(text, project_dir=tmp_path, environ={"LOOPML_SERVE__ADMIN_TOKEN": "123456"})
    with pytest.raises(ConfigError):
        create_app(weak, api_project.store)


def test_by_default_there_are_no_admin_routes(api_project: Project) -> None:
    with TestClient(api_project.app()) as client:
        assert client.get("/v1/models/fraud/versions").status_code == 404
        assert client.post(PREDICT_PATH, json=RECORD).status_code == 200  # no predict token: open


PREDICT_PATH = "/v1/models/fraud/predict"


# --- every route and method -------------------------------------------------------------------------------


def test_routes_are_classified_and_the_sets_are_consistent(api_project: Project) -> None:
    app = secured(api_project)
    paths = {p for p, _ in routes(app)}
    assert paths >= ADMIN_ROUTES and paths >= PREDICT_ROUTES
    assert not paths - (PUBLIC_ROUTES | OPTIONAL_ROUTES | PROTECTED_ROUTES)
    assert PROTECTED_ROUTES == ADMIN_ROUTES | PREDICT_ROUTES
    assert not (PUBLIC_ROUTES | OPTIONAL_ROUTES) & PROTECTED_ROUTES and not PUBLIC_ROUTES & OPTIONAL_ROUTES


def test_auth_over_every_route_and_method(client: TestClient) -> None:
    app: FastAPI = client.app  # type: ignore[assignment]
    checked = 0
    for path, methods in routes(app):
        url = path.format(**SAMPLE_PATH)
        for method in sorted(methods - {"HEAD"}):
            kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
            if path in OPTIONAL_ROUTES:  # with a token set, only health is public by default
                for headers in ({}, bearer("wrong-" + ADMIN)):
                    assert client.request(method, url, headers=headers, **kwargs).status_code == 401, path
                for token in (PREDICTOR, ADMIN):
                    allowed = client.request(method, url, headers=bearer(token), **kwargs)
                    assert allowed.status_code not in (401, 500), (method, path, allowed.text)
            elif path in PROTECTED_ROUTES:
                token = ADMIN if path in ADMIN_ROUTES else PREDICTOR
                for headers in ({}, bearer("wrong-" + token), bearer(PREDICTOR if token == ADMIN else ADMIN)):
                    response = client.request(method, url, headers=headers, **kwargs)
                    assert response.status_code == 401, (method, path, headers, response.text)
                    assert response.headers["www-authenticate"] == "Bearer"
                    error = response.json()["error"]  # v2 routes answer in the protocol's shape
                    assert error["code"] == "unauthorized" if isinstance(error, dict) else "token" in error
                allowed = client.request(method, url, headers=bearer(token), **kwargs)
                assert allowed.status_code not in (401, 500), (method, path, allowed.text)
            else:
                response = client.request(method, url, **kwargs)
                assert response.status_code not in (401, 500), (method, path, response.text)
            checked += 1
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH"} - methods:
            # A method a route does not have is 405, with or without a token: never served.
            assert client.request(method, url, headers=bearer(ADMIN)).status_code == 405, (method, path)
    assert checked >= len(PUBLIC_ROUTES | OPTIONAL_ROUTES | PROTECTED_ROUTES) - 1


@pytest.mark.parametrize(
    "header",
    [
        f"Basic {ADMIN}",
        "Bearer",
        "Bearer ",
        ADMIN,
        f"Bearer {ADMIN[:-1]}",
        f"Bearer {ADMIN}x",
        f"bearer  {ADMIN} x",
    ],
    ids=["basic", "no-token", "empty-token", "no-scheme", "one-short", "one-long", "lowercase-extra"],
)
def test_malformed_or_near_miss_tokens_are_401(client: TestClient, header: str) -> None:
    response = client.get("/v1/models/fraud/versions", headers={"authorization": header})
    assert response.status_code == 401


def test_predict_needs_its_token_when_one_is_set(client: TestClient) -> None:
    assert client.post(PREDICT_PATH, json=RECORD).status_code == 401
    response = client.post(PREDICT_PATH, json=RECORD, headers=bearer(PREDICTOR))
    assert response.status_code == 200 and response.json()["model_version"] == 1
    assert client.get("/health/ready").status_code == 200  # public routes stay public


# --- payloads ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/python-pickle", "application/octet-stream", "application/json"]
)
def test_pickled_payloads_are_refused(client: TestClient, content_type: str) -> None:
    body = pickle.dumps(RECORD)
    for url, token in [(PREDICT_PATH, PREDICTOR), ("/v1/models/fraud/aliases/champion", ADMIN)]:
        headers = {"content-type": content_type, **bearer(token)}
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert "not valid JSON" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "name",
    ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "file:%2F%2F%2Fetc%2Fpasswd", "http:%2F%2F127.0.0.1"],
)
def test_client_supplied_paths_are_only_names(client: TestClient, name: str) -> None:
    for url in (f"/v1/models/{name}/predict", f"/v2/models/{name}", f"/v1/models/{name}/versions"):
        token = PREDICTOR if url.endswith("predict") else ADMIN
        response = client.request(
            "POST" if url.endswith("predict") else "GET", url, json=RECORD, headers=bearer(token)
        )
        assert response.status_code == 404, (url, response.text)


# --- admin routes -----------------------------------------------------------------------------------------


def test_admin_moves_the_alias_and_the_server_follows_at_once(
    two_version_dir: Path, copy_project: Callable[[Path], Project]
) -> None:
    project = copy_project(two_version_dir)
    with TestClient(secured(project)) as client:
        versions = client.get("/v1/models/fraud/versions", headers=bearer(ADMIN))
        assert versions.status_code == 200
        listed = versions.json()["versions"]
        assert [v["version"] for v in listed] == [2, 1]
        assert listed[1]["aliases"] == ["champion"] and len(listed[0]["sha256"]) == 64
        assert client.post(PREDICT_PATH, json=RECORD, headers=bearer(PREDICTOR)).json()["model_version"] == 1

        move = {"version": 2, "reason": "challenger won the gate", "actor": "ops"}
        response = client.post("/v1/models/fraud/aliases/champion", json=move, headers=bearer(ADMIN))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["version"], body["previous_version"], body["reason"]) == (
            2,
            1,
            "challenger won the gate",
        )
        # The move is recorded in the alias history, with who and why.
        last = alias_history(project.store.engine, "fraud", "champion")[-1]
        assert (last.version, last.previous_version, last.actor) == (2, 1, "ops")
        # This server took up its own move without waiting for the refresh interval.
        after = client.post(
            PREDICT_PATH, json=RECORD | {"transaction_id": 7_999_998}, headers=bearer(PREDICTOR)
        )
        assert after.json()["model_version"] == 2


@pytest.mark.parametrize(
    ("url", "body", "status", "field"),
    [
        ("/v1/models/fraud/aliases/champion", {"version": 9, "reason": "x"}, 404, None),
        ("/v1/models/fraud/aliases/champion", {"version": 0, "reason": "x"}, 422, "version"),
        ("/v1/models/fraud/aliases/champion", {"version": 1}, 422, "reason"),
        ("/v1/models/fraud/aliases/champion", {"version": 1, "reason": "x", "exec": "rm"}, 422, "exec"),
        ("/v1/models/fraud/aliases/champion", [1], 422, None),
        ("/v1/models/other/aliases/champion", {"version": 1, "reason": "x"}, 404, None),
        ("/v1/models/fraud/aliases/bad%20alias", {"version": 1, "reason": "x"}, 422, "path.alias"),
    ],
)
def test_bad_alias_moves(client: TestClient, url: str, body: Any, status: int, field: str | None) -> None:
    response = client.post(url, json=body, headers=bearer(ADMIN))
    assert response.status_code == status, response.text
    if field:
        assert f"'{field}'" in response.json()["error"]["message"]
    assert get_alias(server_state(client.app).store.engine, "fraud", "champion") == 1
