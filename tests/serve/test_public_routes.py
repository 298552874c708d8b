"""Public routes by choice: ``serve.public_routes`` decides which route groups need a token.

For each setting, every route of the OpenAPI document (and the docs pages, which it does not list) is
called without a token, with a wrong one, and with each token that exists: a route of a closed group
answers 401 unless the token opens it; a route of an open group, and health, never answer 401.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from pydantic import SecretStr

from contract_support import machines_project
from loopml.dashboard import dashboard_router
from loopml.errors import ConfigError
from loopml.project import Project
from loopml.serve import ADMIN_ROUTES, PREDICT_ROUTES, ROUTE_GROUPS
from loopml.serve.auth import Tokens

ADMIN, PREDICTOR, SCRAPER = (secrets.token_urlsafe(32) for _ in range(3))
# Routes the OpenAPI document does not list (include_in_schema=False), with a request each.
UNLISTED = ["/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/docs/assets/swagger-ui.css"]
SAMPLE = {"name": "machines", "version": "1", "alias": "champion"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    project = machines_project(tmp_path_factory.mktemp("public") / "proj")
    yield project
    project.store.engine.dispose()


def app_with(project: Project, **serve: Any) -> Any:
    """The app ``loopml serve`` composes (the dashboard included), under these serve settings."""
    secrets_ = {k: SecretStr(v) for k, v in serve.items() if k.endswith("_token")}
    changed = project.settings.serve.model_copy(update={**serve, **secrets_})
    settings = project.settings.model_copy(update={"serve": changed})
    return project.with_settings(settings).app([dashboard_router(project)])


def every_route(client: TestClient) -> list[tuple[str, str]]:
    """(method, path template) of every route in the OpenAPI document, and the unlisted docs pages."""
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    found = [(method.upper(), path) for path, item in paths.items() for method in item]
    return found + [("GET", path) for path in UNLISTED]


def group_of(path: str) -> str | None:
    if path.startswith("/docs/assets/"):
        return "docs"
    return next((group for group, paths in ROUTE_GROUPS.items() if path in paths), None)


def call(client: TestClient, method: str, path: str, token: str | None) -> int:
    url = path.format(**SAMPLE)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    kwargs: dict[str, Any] = {"json": {}} if method == "POST" else {}
    return client.request(method, url, headers=headers, **kwargs).status_code


TOKENS = {"admin_token": ADMIN, "predict_token": PREDICTOR}
SETTINGS = [
    pytest.param({}, set(ROUTE_GROUPS), id="no-token-everything-public"),
    pytest.param(TOKENS, {"health"}, id="tokens-default-health-only"),
    pytest.param({**TOKENS, "public_routes": []}, {"health"}, id="tokens-none-listed"),
    pytest.param({**TOKENS, "public_routes": ["metrics"]}, {"health", "metrics"}, id="metrics"),
    pytest.param({**TOKENS, "public_routes": ["docs"]}, {"health", "docs"}, id="docs"),
    pytest.param({**TOKENS, "public_routes": ["v2_metadata"]}, {"health", "v2_metadata"}, id="v2-metadata"),
    pytest.param({**TOKENS, "public_routes": ["dashboard"]}, {"health", "dashboard"}, id="dashboard"),
    pytest.param({**TOKENS, "public_routes": list(ROUTE_GROUPS)}, set(ROUTE_GROUPS), id="all"),
    pytest.param({"metrics_token": SCRAPER}, set(ROUTE_GROUPS) - {"metrics"}, id="metrics-token-only"),
    pytest.param(
        {"predict_token": PREDICTOR, "metrics_token": SCRAPER}, {"health"}, id="predict-and-metrics"
    ),
]


@pytest.mark.parametrize(("serve", "public"), SETTINGS)
def test_each_public_route_setting_over_every_route(
    project: Project, serve: dict[str, Any], public: set[str]
) -> None:
    # The dashboard's page may fail on its own; here only who may call it matters.
    with TestClient(app_with(project, **serve), raise_server_exceptions=False) as client:
        routes = every_route(client)
        assert len(routes) >= 20 and ("GET", "/metrics") in routes and ("GET", "/") in routes
        for method, path in routes:
            group = group_of(path)
            if path in ADMIN_ROUTES:
                openers, needed = {ADMIN}, ADMIN
            elif group is None:
                assert path in PREDICT_ROUTES, f"{path} is in no route group"
                needed = PREDICTOR if "predict_token" in serve else None
                openers = {PREDICTOR} if needed else set()
            elif group in public:
                openers, needed = set(), None
            else:
                openers = {t for k, t in serve.items() if k in ("admin_token", "predict_token")}
                openers |= {SCRAPER} if group == "metrics" and "metrics_token" in serve else set()
                needed = next(iter(openers))
                assert openers, f"{path}: a closed group no token opens"
            if needed is None:  # public: no token needed
                assert call(client, method, path, None) != 401, (method, path)
                continue
            assert call(client, method, path, None) == 401, (method, path, "without a token")
            assert call(client, method, path, "wrong-" + needed) == 401, (method, path, "a wrong token")
            for token in (ADMIN, PREDICTOR, SCRAPER):
                status = call(client, method, path, token)
                if token in openers:
                    assert status != 401, (method, path, "a token that opens it")
                else:
                    assert status == 401, (method, path, "a token that does not open it")


def test_the_401_of_a_closed_group_is_loopml_s_error_shape(project: Project) -> None:
    with TestClient(app_with(project, **TOKENS), raise_server_exceptions=False) as client:
        for path in ("/metrics", "/openapi.json", "/docs", "/"):
            response = client.get(path)
            assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized", path
        metrics = client.get("/metrics", headers={"authorization": f"Bearer {PREDICTOR}"})
        assert metrics.status_code == 200 and "loopml_" in metrics.text


def test_a_metrics_token_opens_metrics_only(project: Project) -> None:
    with TestClient(app_with(project, **TOKENS, metrics_token=SCRAPER)) as client:
        scraper = {"authorization": f"Bearer {SCRAPER}"}
        assert client.get("/metrics", headers=scraper).status_code == 200
        for method, path in [
            ("GET", "/openapi.json"),
            ("GET", "/v2"),
            ("POST", "/v1/models/machines/predict"),
        ]:
            assert client.request(method, path, headers=scraper).status_code == 401, path


def test_a_closed_group_that_no_token_opens_is_refused_at_start(project: Project) -> None:
    serve = project.settings.serve.model_copy(update={"public_routes": ["metrics"]})
    with pytest.raises(ConfigError, match=r"serve\.public_routes leaves 'docs' needing a token") as info:
        Tokens.from_config(serve)
    assert "\n" not in str(info.value)


def test_public_routes_is_read_from_loopml_yaml(project: Project, tmp_path: Path) -> None:
    config = yaml.safe_load((project.directory / "loopml.yaml").read_text(encoding="utf-8"))
    config["serve"] = {"public_routes": ["health", "metrics"], "metrics_token": SCRAPER}
    (tmp_path / "loopml.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    settings = Project.open(tmp_path, environ={"LOOPML_SERVE__PREDICT_TOKEN": PREDICTOR}).settings
    tokens = Tokens.from_config(settings.serve)
    assert tokens.public == {"health", "metrics"} and tokens.predict == PREDICTOR.encode()
    assert tokens.metrics == SCRAPER.encode()
