"""schemathesis over ``/openapi.json``: generated requests to every route give no server error."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr

from loopml.project import Project
from loopml.serve import create_app

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

ADMIN = secrets.token_urlsafe(32)


def test_no_generated_request_is_a_server_error(api_project: Project) -> None:
    """Every operation, 15 generated requests each (admin routes on, so that they are fuzzed too)."""
    serve = api_project.settings.serve.model_copy(update={"admin_token": SecretStr(ADMIN)})
    app = create_app(api_project.settings.model_copy(update={"serve": serve}), api_project.store)
    auth = {"authorization": f"Bearer {ADMIN}"}  # with a token set, the document needs one too
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=[not_a_server_error])

        call()
