"""Batches spaced by the light linger at a moderate rate, by the loaded one under load."""

from __future__ import annotations

import pytest

from shared.spacing import Spacing


def spacing() -> Spacing:
    return Spacing(light_s=0.025, loaded_s=0.05, loaded_per_s=500)


def test_the_first_batch_and_one_after_a_quiet_spell_are_light() -> None:
    spaced = spacing()
    assert spaced.next_start(10.0, 400) == pytest.approx(10.025)  # no rate known yet
    assert spaced.next_start(70.0, 400) == pytest.approx(70.025)  # 400 events in a minute


def test_a_batch_that_came_in_at_the_loaded_rate_or_faster_spaces_the_next_further() -> None:
    spaced = spacing()
    spaced.next_start(1.0, 5)
    assert spaced.next_start(1.125, 63) == pytest.approx(1.175)  # 504 a second
    assert spaced.next_start(1.25, 100) == pytest.approx(1.3)  # 800 a second
    assert spaced.next_start(1.5, 100) == pytest.approx(1.525)  # 400 a second: light again


def test_an_empty_pass_is_light() -> None:
    spaced = spacing()
    spaced.next_start(1.0, 0)
    assert spaced.next_start(1.0, 0) == pytest.approx(1.025)


@pytest.mark.parametrize(
    ("light", "loaded", "rate"), [(-0.01, 0.05, 500), (0.025, -1, 500), (0.025, 0.05, 0)]
)
def test_a_negative_linger_or_a_rate_not_above_zero_is_refused(
    light: float, loaded: float, rate: float
) -> None:
    with pytest.raises(ValueError, match="lingers"):
        Spacing(light, loaded, rate)
