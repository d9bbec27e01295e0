"""A local stand-in for Entra ID's refresh-token grant and Partner Center's service requests."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shared.ports import free_port
from tests.support.http_server import serving

CLIENT_SECRET = "pc-s3cret"
REFRESH_TOKEN = "rt-initial"
SEVERITIES = {"critical", "moderate", "minimal"}


@dataclass
class Call:
    method: str
    path: str
    status: int
    at: float
    request_id: str | None
    correlation_id: str | None


@dataclass
class FakePartnerCenter:
    """Service requests live in ``requests`` by id; ``fail_next`` scripts error answers
    (``(status, retry_after)``) for the next creates; ``hang_next`` makes the next create take
    ``hang_s`` before it answers, after it has already filed the request."""

    port: int = field(default_factory=free_port)
    tenant: str = "partner-tenant"
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_request_id: dict[str, str] = field(default_factory=dict)
    fail_next: list[tuple[int, str | None]] = field(default_factory=list)
    hang_next: int = 0
    hang_s: float = 0.0
    refuse_refresh: bool = False
    token_lifetime_s: int = 3600
    calls: list[Call] = field(default_factory=list)
    token_grants: int = 0
    _tokens: dict[str, float] = field(default_factory=dict)
    _refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH_TOKEN})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def expire_tokens(self) -> None:
        """Every access token handed out so far is now expired."""
        for token in self._tokens:
            self._tokens[token] = 0.0

    def set_status(self, request_id: str, status: str) -> None:
        self.requests[request_id]["Status"] = status

    def creates(self) -> list[Call]:
        return [c for c in self.calls if c.method == "POST"]

    async def _token(self, request: Request) -> Response:
        if request.path_params["tenant"] != self.tenant:
            return JSONResponse({"error": "invalid_tenant"}, status_code=400)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("client_secret") != CLIENT_SECRET
            or self.refresh_token_refused(form.get("refresh_token"))
        ):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        self.token_grants += 1
        token, rotated = secrets.token_hex(8), f"rt-{secrets.token_hex(6)}"
        self._tokens[token] = time.monotonic() + self.token_lifetime_s
        self._refresh_tokens.add(rotated)
        return JSONResponse(
            {
                "access_token": token,
                "refresh_token": rotated,
                "expires_in": self.token_lifetime_s,
                "token_type": "Bearer",
            }
        )

    def refresh_token_refused(self, token: str | None) -> bool:
        return self.refuse_refresh or token not in self._refresh_tokens

    def _authorized(self, request: Request) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return self._tokens.get(token, 0.0) > time.monotonic()

    def _log(self, request: Request, status: int) -> None:
        self.calls.append(
            Call(
                request.method,
                request.url.path,
                status,
                time.monotonic(),
                request.headers.get("ms-requestid"),
                request.headers.get("ms-correlationid"),
            )
        )

    async def _create(self, request: Request) -> Response:
        if not self._authorized(request):
            self._log(request, 401)
            return JSONResponse({"code": 401, "description": "token expired"}, status_code=401)
        if self.fail_next:
            status, retry_after = self.fail_next.pop(0)
            self._log(request, status)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return JSONResponse({"code": status}, status_code=status, headers=headers)
        body = await request.json()
        problem = _invalid(body)
        if problem:
            self._log(request, 400)
            return JSONResponse({"code": 400, "description": problem}, status_code=400)
        request_id = request.headers.get("ms-requestid", "")
        existing = self.by_request_id.get(request_id)
        if existing is None:
            existing = str(2611210000000000 + len(self.requests) + 1)
            self.requests[existing] = {
                **body,
                "Id": existing,
                "Status": "Open",
                "AgentLocale": request.path_params["locale"],
            }
            if request_id:
                self.by_request_id[request_id] = existing
        if self.hang_next:
            self.hang_next -= 1
            await asyncio.sleep(self.hang_s)
        self._log(request, 201)
        return JSONResponse(self.requests[existing], status_code=201)

    async def _get(self, request: Request) -> Response:
        if not self._authorized(request):
            self._log(request, 401)
            return JSONResponse({"code": 401}, status_code=401)
        found = self.requests.get(request.path_params["request_id"])
        self._log(request, 200 if found else 404)
        if found is None:
            return JSONResponse({"code": 404}, status_code=404)
        return JSONResponse(found)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakePartnerCenter]:
        app = Starlette(
            routes=[
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route("/v1/servicerequests/{request_id}", self._get, methods=["GET"]),
                Route("/v1/servicerequests/{locale}", self._create, methods=["POST"]),
            ]
        )
        async with serving(app, self.port):
            yield self


def _invalid(body: dict[str, Any]) -> str | None:
    """Partner Center's own checks on a new request, as far as this service relies on them."""
    title = body.get("Title")
    if not title or len(title) > 255:
        return "Title is required and at most 255 characters"
    if not body.get("Description"):
        return "Description is required"
    if str(body.get("Severity", "")).casefold() not in SEVERITIES:
        return "Severity must be critical, moderate or minimal"
    if not body.get("SupportTopicId"):
        return "SupportTopicId is required"
    return None
