"""Which URLs a webhook may target: no private, loopback or link-local hosts unless allowed."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        address.is_private
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
            raise TargetRefused(f"the host {parts.hostname!r} does not resolve") from exc
        addresses = {ipaddress.ip_address(info[4][0]) for info in infos}
    if any(_forbidden(address) for address in addresses):
        raise TargetRefused("the host is a private, loopback or link-local address")
