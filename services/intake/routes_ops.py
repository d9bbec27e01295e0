"""``GET /v1/stats`` for dashboards, and ``/ops``: a page that shows the same figures live."""

from __future__ import annotations

import functools
import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.intake import stats
from services.intake.deps import Principal, UowDep, require
from services.intake.problems import PROBLEM, invalid_field
from shared.vocabulary import Role

router = APIRouter(tags=["operations"])
Readers = Annotated[Principal, Depends(require(Role.HELPDESK_AGENT, Role.READER))]
Window = Annotated[
    str,
    Query(
        pattern=stats.WINDOW_PATTERN,
        description="How far back to count: minutes, hours or days (at most 90 days).",
        examples=["15m", "24h", "7d"],
    ),
]
REFRESH_S = 5


@functools.cache
def _templates() -> Jinja2Templates:
    return Jinja2Templates(directory=Path(__file__).with_name("templates"))


async def _stats(principal: Principal, uow: UowDep, window: str) -> stats.Stats:
    try:
        span = stats.parse_window(window)
    except ValueError as exc:
        raise invalid_field("query.window", str(exc), "window") from exc
    async with uow:
        return await stats.gather(
            uow.session, partner_id=principal.partner_id, window=window, span=span
        )


@router.get(
    "/v1/stats",
    response_model=stats.Stats,
    summary="Routing figures over a window, the backlog and the latest routed issues",
    responses={401: PROBLEM, 403: PROBLEM, 422: PROBLEM},
)
async def get_stats(principal: Readers, uow: UowDep, window: Window = "24h") -> stats.Stats:
    return await _stats(principal, uow, window)


@router.get("/ops", response_class=HTMLResponse, include_in_schema=False)
async def ops_page(request: Request) -> HTMLResponse:
    """The page itself holds no data: it asks for a key and then polls ``/ops/panel``."""
    nonce = secrets.token_urlsafe(16)
    response = _templates().TemplateResponse(
        request, "ops.html", {"nonce": nonce, "refresh_s": REFRESH_S}
    )
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/ops/panel", response_class=HTMLResponse, include_in_schema=False)
async def ops_panel(
    request: Request, principal: Readers, uow: UowDep, window: Window = "24h"
) -> HTMLResponse:
    """The figures as an HTML fragment, rendered here (escaped), swapped in by the page."""
    figures = await _stats(principal, uow, window)
    response = _templates().TemplateResponse(request, "ops_panel.html", {"s": figures})
    response.headers["Cache-Control"] = "no-store"
    return response
