"""The OpenAPI document as integrators need it: every error documented as problem+json.

FastAPI documents only the errors a route names, and its own 422 as ``application/json``. Here
every operation under ``/v1`` also documents the answers any request can get (401, 403, 404 for
paths with ids, 422, 429, 500, and for bodies 400, 413, 415, and 409 for idempotency conflicts),
all with the ``ProblemDetail`` schema under ``application/problem+json``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.intake.problems import PROBLEM_JSON, TITLES, ProblemDetail

COMMON = ("401", "403", "422", "429", "500")
WITH_BODY = ("400", "409", "413", "415")
WRITE_METHODS = frozenset({"post", "put", "patch"})
API_KEY = "ApiKey"


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            app.openapi_schema = with_problems(with_api_key(schema))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_api_key(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation under ``/v1`` takes an API key as a bearer token (read by
    :func:`services.intake.deps.require`, not by a FastAPI security dependency: one dependency
    less on every request)."""
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes[API_KEY] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `escalation keys create`: `Authorization: Bearer csp_…`.",
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/v1/"):
            for operation in operations.values():
                operation["security"] = [{API_KEY: []}]
    return schema


def with_problems(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetail"] = ProblemDetail.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/ProblemDetail"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                wanted = list(COMMON)
                if "{" in path:
                    wanted.append("404")
                if method in WRITE_METHODS:
                    wanted.extend(WITH_BODY)
                for code in wanted:
                    responses.setdefault(code, {})
            for code, response in responses.items():
                if code[0] in "45":
                    response["content"] = problem
                    if not response.get("description") or response["description"] in (
                        "Validation Error",
                        "Successful Response",
                    ):
                        response["description"] = TITLES.get(int(code), "Error")
            if "429" in responses:
                responses["429"]["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait.",
                        "schema": {"type": "integer"},
                    }
                }
    return schema
