"""Free loopback ports for the embedded broker, the test stack and the benchmark.

Ports are handed out from just below the kernel's ephemeral range. A port got by binding port 0
comes from inside that range, and the kernel may then give the same port to any outgoing
connection as its local end before the service told to listen there has started: the service
fails with "address already in use". Outgoing connections never take a port below the range.
"""

from __future__ import annotations

import os
import socket
import zlib
from dataclasses import dataclass, field
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_EPHEMERAL_START = 32768
SPAN = 12_000
LOWEST = 1024


def ephemeral_start(source: Path = EPHEMERAL_RANGE) -> int:
    """The first port of the kernel's ephemeral range (Linux's default where it cannot be read)."""
    try:
        return int(source.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LINUX_EPHEMERAL_START


def default_range() -> tuple[int, int]:
    """Up to ``SPAN`` ports ending just below the ephemeral range: ``[low, high)``."""
    high = ephemeral_start()
    return max(LOWEST, high - SPAN), high


@dataclass
class PortRange:
    """Hands out each port of ``[low, high)`` at most once, skipping ports already bound."""

    low: int
    high: int
    next: int = 0
    handed_out: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not LOWEST <= self.low < self.high <= 65536:
            raise ValueError(f"not a usable port range: [{self.low}, {self.high})")
        if not self.low <= self.next < self.high:
            # Unrelated processes on one machine start at different places in the range.
            self.next = self.low + os.getpid() % (self.high - self.low)

    def take(self, host: str) -> int:
        size = self.high - self.low
        for _ in range(size):
            port = self.next
            self.next = self.low + (port + 1 - self.low) % size
            if port not in self.handed_out and bindable(host, port):
                self.handed_out.add(port)
                return port
        raise RuntimeError(f"no free port left in [{self.low}, {self.high}) on {host}")


def bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


_ranges: list[PortRange] = []


def use_port_range(low: int, high: int, *, seed: str = "") -> None:
    """Hand out ports from ``[low, high)`` from now on: parallel test workers each take their own
    slice, so no two of them give one port to two services. Where in the slice to begin follows
    from ``seed``, so two runs of the suite at once do not walk the same ports in step."""
    start = low + zlib.crc32(seed.encode()) % (high - low) if seed else low
    _ranges[:] = [PortRange(low, high, next=start)]


def worker_slice(index: int, count: int) -> tuple[int, int]:
    """The ``index``-th of ``count`` equal slices of the default range."""
    low, high = default_range()
    size = (high - low) // count
    return low + index * size, low + (index + 1) * size


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to now that this process has not handed out before."""
    if not _ranges:
        _ranges.append(PortRange(*default_range()))
    return _ranges[0].take(host)


def listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def port_or_free(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` when nothing listens there, otherwise a free port."""
    return free_port(host) if listening(host, preferred) else preferred
