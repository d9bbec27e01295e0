"""Loopback ports come from below the kernel's ephemeral range, each handed out once."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import shared.ports
from shared.ports import (
    PortRange,
    default_range,
    ephemeral_start,
    free_port,
    port_or_free,
    use_port_range,
    worker_slice,
)

HOST = "127.0.0.1"


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A socket listening on a port of the default range."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, free_port()))
        sock.listen()
        yield sock


def test_the_ephemeral_range_is_read_from_the_kernel_setting(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t60999\n")
    assert ephemeral_start(setting) == 40000
    assert ephemeral_start(tmp_path / "missing") == 32768
    setting.write_text("")
    assert ephemeral_start(setting) == 32768


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port < ephemeral_start() for port in ports)
    low, high = default_range()
    assert all(low <= port < high for port in ports)


def test_a_bound_port_is_skipped(held: socket.socket) -> None:
    taken = held.getsockname()[1]
    ports = PortRange(taken, taken + 2, next=taken)
    assert ports.take(HOST) == taken + 1


def test_a_range_whose_ports_are_all_handed_out_says_so() -> None:
    low = free_port()
    ports = PortRange(low, low + 1, next=low)
    ports.handed_out.add(low)
    with pytest.raises(RuntimeError, match="no free port left"):
        ports.take(HOST)


def test_taking_wraps_round_to_the_start_of_the_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.ports.bindable", lambda host, port: True)
    ports = PortRange(20000, 20003, next=20002)
    assert [ports.take(HOST) for _ in range(3)] == [20002, 20000, 20001]


def test_worker_slices_are_disjoint_and_inside_the_default_range() -> None:
    low, high = default_range()
    slices = [worker_slice(index, 3) for index in range(3)]
    assert slices[0][0] == low
    assert slices[-1][1] <= high
    for (_, end), (start, _) in itertools.pairwise(slices):
        assert end <= start


def test_two_runs_at_once_begin_at_different_places_in_a_workers_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.ports._ranges", [])
    use_port_range(20000, 23000, seed="run-one")
    first = shared.ports._ranges[0].next
    use_port_range(20000, 23000, seed="run-two")
    second = shared.ports._ranges[0].next
    assert 20000 <= first < 23000
    assert 20000 <= second < 23000
    assert first != second
    use_port_range(20000, 23000)
    assert shared.ports._ranges[0].next == 20000


def test_a_preferred_port_is_kept_unless_something_listens_there(held: socket.socket) -> None:
    taken = held.getsockname()[1]
    assert port_or_free(taken) != taken
    unused = free_port()
    assert port_or_free(unused) == unused


@pytest.mark.parametrize(("low", "high"), [(80, 2000), (3000, 3000), (60000, 70000)])
def test_an_unusable_range_is_refused(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="not a usable port range"):
        PortRange(low, high)
