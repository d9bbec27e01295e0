"""Service health from Microsoft Graph: ``GET /admin/serviceAnnouncement/issues`` per tenant.

A client-credentials token per customer tenant (the partner's multi-tenant app), pages followed
through ``@odata.nextLink``, enums read case-insensitively, requests kept under Graph's limit,
answers cached for a while, and every look-up bounded by a timeout. Failures are reported as an
unavailable answer, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from services.classifier.facts import HealthView, IncidentFacts
from services.classifier.inference import fold
from services.classifier.ratelimit import SlidingWindowLimiter
from shared.settings import GraphSettings

log = logging.getLogger(__name__)
SCOPE = "https://graph.microsoft.com/.default"
RESOLVED_STATUSES = frozenset(
    {
        "serviceRestored",
        "resolved",
        "resolvedExternal",
        "falsePositive",
        "postIncidentReviewPublished",
    }
)


class GraphError(Exception):
    """Graph or the token endpoint did not give a usable answer."""


@dataclass
class _Token:
    value: str
    expires_at: float


@dataclass
class _Cached:
    fetched_at: float
    incidents: tuple[IncidentFacts, ...]


class GraphHealthProvider:
    def __init__(
        self,
        settings: GraphSettings,
        client: httpx.AsyncClient,
        *,
        timeout_s: float,
        cache_ttl_s: float,
    ) -> None:
        self._settings = settings
        self._client = client
        self._timeout = timeout_s
        self._ttl = cache_ttl_s
        self._tokens: dict[str, _Token] = {}
        self._cache: dict[str, _Cached] = {}
        self._limiter = SlidingWindowLimiter(settings.requests_per_window, settings.window_s)

    async def lookup(
        self, *, partner_id: uuid.UUID, tenant_id: uuid.UUID | None, service: str
    ) -> HealthView:
        if tenant_id is None:
            return HealthView(available=False, note="no customer tenant id, Graph not asked")
        try:
            async with asyncio.timeout(self._timeout):
                incidents = await self._incidents(str(tenant_id))
        except TimeoutError:
            return HealthView(available=False, note=f"Graph gave no answer in {self._timeout:g}s")
        except (GraphError, httpx.HTTPError) as exc:
            log.warning("Graph service health failed for tenant %s: %s", tenant_id, exc)
            return HealthView(available=False, note=f"Graph failed: {type(exc).__name__}")
        wanted = fold(service)
        return HealthView(tuple(i for i in incidents if fold(i.service) == wanted))

    async def _incidents(self, tenant: str) -> tuple[IncidentFacts, ...]:
        cached = self._cache.get(tenant)
        if cached is not None and time.monotonic() - cached.fetched_at < self._ttl:
            return cached.incidents
        items: list[dict[str, Any]] = []
        url: str | None = f"{self._settings.base_url}/admin/serviceAnnouncement/issues"
        pages = 0
        while url and pages < self._settings.max_pages:
            page = await self._get(tenant, url)
            items.extend(page.get("value", []))
            url = page.get("@odata.nextLink")
            pages += 1
        incidents = tuple(i for i in (_incident(item, tenant) for item in items) if i is not None)
        self._cache[tenant] = _Cached(time.monotonic(), incidents)
        return incidents

    async def _get(self, tenant: str, url: str) -> dict[str, Any]:
        for attempt in range(2):
            await self._limiter.acquire(tenant)
            token = await self._token(tenant)
            response = await self._client.get(url, headers={"Authorization": f"Bearer {token}"})
            if response.status_code == 401 and attempt == 0:
                self._tokens.pop(tenant, None)  # expired or revoked: fetch a new one once
                continue
            if response.status_code == 429:
                retry_after = float(response.headers.get("Retry-After", "1"))
                await asyncio.sleep(retry_after)  # bounded by the look-up timeout
                continue
            if response.status_code != 200:
                raise GraphError(f"Graph answered {response.status_code}")
            body: dict[str, Any] = response.json()
            return body
        raise GraphError("Graph refused the request twice")

    async def _token(self, tenant: str) -> str:
        cached = self._tokens.get(tenant)
        if cached is not None and cached.expires_at > time.monotonic() + 60:
            return cached.value
        response = await self._client.post(
            f"{self._settings.authority_url}/{tenant}/oauth2/v2.0/token",
            data={
                "client_id": self._settings.client_id,
                "client_secret": self._settings.client_secret.get_secret_value(),
                "scope": SCOPE,
                "grant_type": "client_credentials",
            },
        )
        if response.status_code != 200:
            raise GraphError(f"token endpoint answered {response.status_code}")
        body = response.json()
        token = _Token(body["access_token"], time.monotonic() + float(body.get("expires_in", 3599)))
        self._tokens[tenant] = token
        return token.value


def _incident(item: dict[str, Any], tenant: str) -> IncidentFacts | None:
    """A ``serviceHealthIssue`` as facts; resolved ones are dropped. Enums in any case."""
    status = str(item.get("status", ""))
    resolved = bool(item.get("isResolved")) or status.casefold() in {
        s.casefold() for s in RESOLVED_STATUSES
    }
    if resolved or not item.get("id") or not item.get("service"):
        return None
    return IncidentFacts(
        id=str(item["id"]),
        service=str(item["service"]),
        classification=str(item.get("classification", "incident")).casefold(),
        is_resolved=False,
        title=str(item.get("title", "")),
        feature=item.get("feature"),
        tenant_ids=(uuid.UUID(tenant),),
    )
