"""The benchmark's CPU account: each process's share per item, the rest, and the ceiling."""

from __future__ import annotations

from bench.measure import Machine, cpu_per, speed_probe
from bench.report import catch_up_lines


def test_the_cpu_account_names_each_share_and_the_rate_every_cpu_busy_would_carry() -> None:
    machine = Machine(cpus=2, busy_s=3.0, by_role={"server": 1.5, "database": 0.5})
    figures = cpu_per(machine, seconds=2.0, count=1000, rest="wrk and rest")
    assert figures == {
        "busy_pct": 75.0,
        "stolen_pct": 0.0,
        "busy_ms_per_item": 3.0,
        "ms_per_item": {"server": 1.5, "database": 0.5, "wrk and rest": 1.0},
        "ceiling_per_s": 667,
    }


def test_a_window_with_nothing_done_reports_only_how_busy_the_machine_was() -> None:
    figures = cpu_per(Machine(cpus=2, busy_s=1.0), seconds=1.0, count=0, rest="rest")
    assert figures == {"busy_pct": 50.0, "stolen_pct": 0.0}


def test_time_the_host_took_from_the_cpus_is_its_share_of_them_and_not_busy_time() -> None:
    # A virtual machine's CPU that had work but was not run: the run's rate fell short of the
    # ceiling for a reason the CPU cost per item does not show.
    machine = Machine(cpus=2, busy_s=2.0, stolen_s=1.0, by_role={"server": 2.0})
    figures = cpu_per(machine, seconds=2.0, count=1000, rest="rest")
    assert figures["busy_pct"] == 50.0
    assert figures["stolen_pct"] == 25.0
    assert figures["busy_ms_per_item"] == 2.0
    assert figures["ceiling_per_s"] == 1000


def test_named_processes_that_outran_the_machine_total_leave_no_negative_rest() -> None:
    # Per-process and machine-wide counters tick separately; the rest is never below zero.
    machine = Machine(cpus=1, busy_s=1.0, by_role={"server": 1.01})
    assert cpu_per(machine, seconds=1.0, count=100, rest="rest")["ms_per_item"]["rest"] == 0.0


def test_the_table_shows_each_consumer_working_off_the_backlog_alone() -> None:
    machine = {
        "busy_pct": 55.0,
        "busy_ms_per_item": 0.6,
        "ms_per_item": {"classifier": 0.41, "database": 0.13, "rest": 0.06},
        "ceiling_per_s": 3333,
    }
    catch_up = {
        "backlog": 10000,
        "classifier": {"events": 10000, "events_per_s": 1957.1, "machine": machine},
        "notifier": {"events": 10000, "events_per_s": 2051.9, "machine": machine},
    }
    lines = catch_up_lines(catch_up)
    assert [line.split()[0] for line in lines] == ["classifier", "notifier"]
    assert "0.6 ms (classifier 0.41, database 0.13, rest 0.06) -> 3333/s" in lines[0]
    assert "(1957.1/s, backlog 10000)" in lines[0]
    assert catch_up_lines(None) == []


def test_the_speed_probe_times_its_fastest_loop() -> None:
    assert 0 < speed_probe(steps=200_000, tries=2) < 5
