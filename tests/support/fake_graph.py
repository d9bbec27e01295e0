"""A local stand-in for Entra ID's token endpoint and Graph's service-health issues, over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
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


@dataclass
class FakeGraph:
    """``issues[tenant]`` is served two per page; tokens are per tenant and can be revoked."""

    port: int = field(default_factory=free_port)
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 2
    delay_s: float = 0.0
    throttle_next: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def _token(self, request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials" or form.get("client_secret") != "s3cret":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self.calls["token"] += 1
        token = secrets.token_hex(8)
        self.tokens[token] = tenant
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _issues(self, request: Request) -> Response:
        self.calls["issues"] += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        tenant = self.tokens.get(token)
        if tenant is None:
            return JSONResponse({"error": {"code": "InvalidAuthenticationToken"}}, status_code=401)
        if self.throttle_next:
            self.throttle_next -= 1
            return JSONResponse(
                {"error": {"code": "TooManyRequests"}},
                status_code=429,
                headers={"Retry-After": "0"},
            )
        start = int(request.query_params.get("$skiptoken", "0"))
        items = self.issues.get(tenant, [])
        page = items[start : start + self.page_size]
        body: dict[str, Any] = {"value": page}
        if start + self.page_size < len(items):
            body["@odata.nextLink"] = (
                f"{self.url}/v1.0/admin/serviceAnnouncement/issues"
                f"?$skiptoken={start + self.page_size}"
            )
        return JSONResponse(body)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeGraph]:
        app = Starlette(
            routes=[
                Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
                Route("/v1.0/admin/serviceAnnouncement/issues", self._issues),
            ]
        )
        async with serving(app, self.port):
            yield self


def graph_issue(issue_id: str, service: str, **overrides: Any) -> dict[str, Any]:
    issue = {
        "id": issue_id,
        "title": f"{service} degraded",
        "service": service,
        "feature": "Sign-in",
        "classification": "Incident",
        "status": "serviceDegradation",
        "isResolved": False,
        "startDateTime": "2026-11-21T07:00:00Z",
        "impactDescription": "Users may be unable to sign in.",
    }
    issue.update(overrides)
    return issue
