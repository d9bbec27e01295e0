"""A small Partner Center REST client for partner-level service requests.

``POST /v1/servicerequests/{agent-locale}`` files a request, ``GET /v1/servicerequests/{id}``
reads it back. Calls carry App+User tokens (refresh-token grant against Entra ID), an
``MS-RequestId`` that stays the same across retries of one logical call (Partner Center uses it
to make a retried create idempotent) and a fresh ``MS-CorrelationId`` per HTTP request.
Throttling, server errors, timeouts and an expired token are retried here; anything else is
raised as :class:`PartnerCenterRejected`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from shared.observability import metrics
from shared.settings import PartnerCenterSettings

log = logging.getLogger(__name__)
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class PartnerCenterError(Exception):
    """Partner Center gave no usable answer."""


class PartnerCenterRejected(PartnerCenterError):
    """A definite refusal (business failure or refused credentials): retrying will not help."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class PartnerCenterUnavailable(PartnerCenterError):
    """Throttled, failing or unreachable; worth another try later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ServiceRequest:
    id: str
    status: str
    raw: dict[str, Any]


@dataclass
class _Token:
    value: str
    expires_at: float


class PartnerCenterClient:
    def __init__(self, settings: PartnerCenterSettings, client: httpx.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._token: _Token | None = None
        # Entra ID may hand back a new refresh token; the newest one is used from then on.
        self._refresh_token = settings.refresh_token.get_secret_value()
        self._wait_backoff = wait_random_exponential(
            multiplier=settings.retry_base_s, max=settings.retry_cap_s
        )

    async def create(
        self, *, agent_locale: str, body: dict[str, Any], request_id: uuid.UUID
    ) -> ServiceRequest:
        """File a request; ``request_id`` must be the same for every retry of this record."""
        answer = await self._call(
            "create", "POST", f"/v1/servicerequests/{agent_locale}", body, request_id
        )
        return _service_request(answer)

    async def get(self, service_request_id: str) -> ServiceRequest:
        answer = await self._call(
            "get", "GET", f"/v1/servicerequests/{service_request_id}", None, uuid.uuid4()
        )
        return _service_request(answer)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        request_id: uuid.UUID,
    ) -> dict[str, Any]:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.call_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(PartnerCenterUnavailable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    answer = await self._once(method, path, body, request_id)
        except PartnerCenterRejected:
            metrics.PARTNER_CENTER_CALLS.labels(operation=operation, outcome="rejected").inc()
            raise
        except PartnerCenterUnavailable:
            metrics.PARTNER_CENTER_CALLS.labels(operation=operation, outcome="unavailable").inc()
            raise
        metrics.PARTNER_CENTER_CALLS.labels(operation=operation, outcome="ok").inc()
        return answer

    def _wait(self, state: RetryCallState) -> float:
        """Exponential with jitter, and never sooner than the server's ``Retry-After``."""
        delay: float = self._wait_backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, PartnerCenterUnavailable) and error.retry_after_s is not None:
            delay = max(delay, min(error.retry_after_s, self._settings.retry_cap_s))
        return delay

    async def _once(
        self, method: str, path: str, body: dict[str, Any] | None, request_id: uuid.UUID
    ) -> dict[str, Any]:
        token = await self._access_token()
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "MS-Contract-Version": "v1",
            "MS-RequestId": str(request_id),
            "MS-CorrelationId": str(uuid.uuid4()),
            "MS-PartnerCenter-Application": "csp-escalation",
        }
        try:
            response = await self._client.request(
                method,
                self._settings.base_url.rstrip("/") + path,
                json=body,
                headers=headers,
                timeout=self._settings.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise PartnerCenterUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 401:
            # Expired or revoked: the next try fetches a new token.
            self._token = None
            raise PartnerCenterUnavailable("Partner Center refused the access token", 0.0)
        if response.status_code in RETRYABLE:
            raise PartnerCenterUnavailable(
                f"Partner Center answered {response.status_code}",
                _seconds(response.headers.get("Retry-After")),
            )
        if not response.is_success:
            raise PartnerCenterRejected(
                f"Partner Center answered {response.status_code}: {response.text[:300]}",
                response.status_code,
            )
        try:
            answer: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PartnerCenterUnavailable("Partner Center answered with invalid JSON") from exc
        return answer

    async def _access_token(self) -> str:
        if self._token is not None and self._token.expires_at > time.monotonic():
            return self._token.value
        settings = self._settings
        url = f"{settings.authority_url.rstrip('/')}/{settings.tenant_id}/oauth2/v2.0/token"
        try:
            response = await self._client.post(
                url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": settings.client_id,
                    "client_secret": settings.client_secret.get_secret_value(),
                    "refresh_token": self._refresh_token,
                    "scope": settings.scope,
                },
                timeout=settings.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise PartnerCenterUnavailable(f"token endpoint: {type(exc).__name__}") from exc
        if response.status_code in RETRYABLE:
            raise PartnerCenterUnavailable(
                f"token endpoint answered {response.status_code}",
                _seconds(response.headers.get("Retry-After")),
            )
        if not response.is_success:
            error = _error_code(response)
            log.error("Partner Center sign-in refused (%s); renew the refresh token", error)
            raise PartnerCenterRejected(f"sign-in refused: {error}", response.status_code)
        grant = response.json()
        self._refresh_token = grant.get("refresh_token") or self._refresh_token
        lifetime = float(grant.get("expires_in", 3600))
        self._token = _Token(grant["access_token"], time.monotonic() + max(0.0, lifetime - 60))
        return self._token.value


def _service_request(answer: dict[str, Any]) -> ServiceRequest:
    """Partner Center spells properties in PascalCase; accept camelCase too."""
    fields = {key.casefold(): value for key, value in answer.items()}
    request_id = fields.get("id")
    if not request_id:
        raise PartnerCenterUnavailable("Partner Center's answer has no request id")
    return ServiceRequest(
        id=str(request_id), status=str(fields.get("status") or "none"), raw=answer
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.status_code))
    except ValueError:
        return str(response.status_code)
