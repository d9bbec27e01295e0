"""Which URLs a webhook may target: no private, loopback or link-local hosts unless allowed.

Checked twice: the URL when a subscription is made and again before each delivery
(:func:`check_target`), and the address each new connection actually reaches (:func:`guarded`).
The second closes the gap a name that resolves differently between the check and the connect
(DNS rebinding) would leave.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from httpx_secure import SSRFProtectionError, httpx_ssrf_protection

__all__ = ["SSRFProtectionError", "TargetRefused", "TargetUnresolved", "check_target", "guarded"]


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


class TargetUnresolved(TargetRefused):
    """The host name did not resolve. A subscription to it is refused; a delivery to it is
    tried again later, since the resolver may be what failed."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # Not globally reachable covers the carrier-grade NAT range (100.64.0.0/10) as well, which
    # the connection guard refuses too.
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


async def check_target(url: str, *, allow_private: bool, require_https: bool) -> None:
    """Raise :class:`TargetRefused` unless ``url`` is an acceptable webhook endpoint.

    Host names are resolved, so a public-looking name that points inside the network is refused
    as well.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("the URL must be http(s) with a host")
    if require_https and parts.scheme != "https":
        raise TargetRefused("webhook URLs must use https")
    if allow_private:
        return
    try:
        addresses = {ipaddress.ip_address(parts.hostname)}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise TargetUnresolved(f"the host {parts.hostname!r} does not resolve") from exc
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if any(_forbidden(address) for address in addresses):
        raise TargetRefused("the host is a private, loopback or link-local address")


def guarded(client: httpx.AsyncClient, *, allow_private: bool) -> httpx.AsyncClient:
    """``client`` with every new connection refused (:class:`SSRFProtectionError`) unless the
    address it reaches is globally routable, whatever the name resolved to when it was
    checked; unchanged when private targets are allowed. Call it before the client is used."""
    if allow_private:
        return client
    return httpx_ssrf_protection(client)
