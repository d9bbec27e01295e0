"""``POST /v1/issues`` without FastAPI's handling of a request, for the accepts that need none
of it: the intake's hot path.

A FastAPI endpoint validating an issue and answering 202 served about a quarter as many
requests a second as the same validation in plain ASGI (6,400-6,500 against 22,000-25,700 under
``wrk`` on the benchmark machine): routing, dependency solving and the exception middleware
cost more than the accept's own work. This middleware answers a plain accept itself, through
what the route calls (:func:`services.intake.routes_issues.file_issue` and its ``filer``
dependency), so the answer, the checks and their order are the route's:

- it takes ``POST /v1/issues`` without an ``Idempotency-Key`` whose body is a valid issue;
  any other request, and any body that is not JSON or does not validate, goes on to the app
  unchanged (its body replayed), and the route answers it as it always has;
- an error is answered by the handler the app has for it (a problem document; 401, 403, 422,
  429 and 503 as from the route), or, with none, raised to the server's error middleware, as
  the route's would be.

It sits inside the request guard, so the body it reads is checked and within its limit, and
inside the request metrics (labelled with the route's template) and the request's trace. The
app leaves it out while it exports spans (``OTEL_EXPORTER_OTLP_ENDPOINT``): FastAPI names its
server span after the route, and fills it, as it routes the request.
"""

from __future__ import annotations

import inspect
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.intake import idempotency, routes_issues
from services.intake.guard import read_body, replay
from services.intake.schemas import IssueCreate

ACCEPT_PATH = "/v1/issues"
_KEY_HEADER = b"idempotency-key"


class FastAccept:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        # The route this stands in for: its template labels the request's metrics.
        self._route = next(
            route
            for route in routes_issues.router.routes
            if isinstance(route, APIRoute) and route.endpoint is routes_issues.create_issue
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A test's dependency overrides are FastAPI's to apply: such an app is routed.
        if not _plain_accept(scope) or scope["app"].dependency_overrides:
            await self._app(scope, receive, send)
            return
        # The request guard has read it (within its limit) and hands it on as one message.
        body = await read_body(receive)
        issue = _issue(body)
        if issue is None:
            await self._app(scope, replay(body, receive), send)
            return
        app: FastAPI = scope["app"]
        scope["route"] = self._route
        request = Request(scope, receive)
        response: Response
        try:
            principal = await routes_issues.filer(request)
            kept = idempotency.of_request(request, None)
            response = await routes_issues.file_issue(app.state, principal, issue, kept)
        except Exception as exc:
            handled = await _handled(app, request, exc)
            if handled is None:
                raise
            response = handled
        await response(scope, receive, send)


def _plain_accept(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    if scope["path"] != scope.get("root_path", "") + ACCEPT_PATH:
        return False
    return all(name != _KEY_HEADER for name, _ in scope["headers"])


def _issue(body: bytes) -> IssueCreate | None:
    """The issue ``body`` holds; None for anything the route should answer (it then parses
    the body as FastAPI does and says what is wrong)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    try:
        return IssueCreate.model_validate(data)
    except ValidationError:
        return None


async def _handled(app: FastAPI, request: Request, exc: Exception) -> Response | None:
    """The answer of the app's handler for ``exc``, looked up as Starlette's exception
    middleware does; None for an exception only the server's error middleware handles."""
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        handler: Any = app.exception_handlers.get(kind)
        if handler is not None:
            answer = handler(request, exc)
            response: Response = await answer if inspect.isawaitable(answer) else answer
            return response
    return None
