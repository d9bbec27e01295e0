"""The API key is read from ``Authorization: Bearer …`` by the intake's own dependency, and the
OpenAPI document still names the scheme on every operation that needs it."""

from __future__ import annotations

import pytest

from services.intake.app import create_app
from services.intake.deps import bearer_token
from services.settings import ServiceSettings


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer csp_abc.def", "csp_abc.def"),
        ("bearer csp_abc.def", "csp_abc.def"),
        ("BEARER   csp_abc.def  ", "csp_abc.def"),
        ("Basic dXNlcjpwYXNz", ""),
        ("csp_abc.def", ""),
        ("Bearer", ""),
        ("", ""),
    ],
)
def test_the_token_is_what_follows_the_bearer_scheme(header: str, token: str) -> None:
    assert bearer_token(header) == token


def test_every_v1_operation_and_nothing_else_is_documented_as_taking_an_api_key() -> None:
    schema = create_app(ServiceSettings()).openapi()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `escalation keys create`: `Authorization: Bearer csp_…`.",
    }
    secured = {
        (method, path): operation.get("security")
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    }
    assert any(path.startswith("/v1/") for _, path in secured)
    for (method, path), security in secured.items():
        expected: list[dict[str, list[str]]] | None = (
            [{"ApiKey": []}] if path.startswith("/v1/") else None
        )
        assert security == expected, (method, path)
