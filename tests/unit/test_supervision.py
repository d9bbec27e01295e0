"""How long a crashed background worker waits before it is restarted."""

from __future__ import annotations

from services.runtime import RESTART_PAUSE_MAX_S, RESTART_PAUSE_S, restart_pause


def test_a_worker_that_keeps_crashing_waits_twice_as_long_each_time_up_to_the_longest() -> None:
    pauses: list[float] = []
    pause = None
    for _ in range(8):
        pause = restart_pause(pause, ran_s=0.1)
        pauses.append(pause)
    assert pauses[:3] == [RESTART_PAUSE_S, RESTART_PAUSE_S * 2, RESTART_PAUSE_S * 4]
    assert pauses[-1] == RESTART_PAUSE_MAX_S


def test_a_crash_after_a_run_longer_than_the_longest_pause_starts_over_at_the_shortest() -> None:
    assert restart_pause(RESTART_PAUSE_MAX_S, ran_s=RESTART_PAUSE_MAX_S + 1) == RESTART_PAUSE_S
    assert restart_pause(RESTART_PAUSE_MAX_S, ran_s=RESTART_PAUSE_MAX_S - 1) == RESTART_PAUSE_MAX_S
