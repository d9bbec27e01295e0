"""How far apart a loop's batches are: further apart under load.

A consumer's batches and a relay's passes are spaced by a linger so that, under load, one
transaction, one produce and one marking carry many events instead of a few. The linger is a
latency that every event pays at a moderate rate, where the machine has room and batches hold
a few events either way; near the machine's limit, a longer one frees CPU the pipeline needs
(each batch's fixed cost shared by more events). So the linger is short until events come in
at ``loaded_per_s`` or faster, and longer from then on; the rate is that of the batch just
taken: its events over the time since the batch before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class Spacing:
    light_s: float
    loaded_s: float
    loaded_per_s: float
    _previous: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if min(self.light_s, self.loaded_s) < 0 or self.loaded_per_s <= 0:
            raise ValueError("lingers must not be negative and the loaded rate must be positive")

    def next_start(self, started: float, items: int) -> float:
        """The earliest start of the batch after one of ``items`` taken at ``started``
        (monotonic seconds)."""
        elapsed = math.inf if self._previous is None else started - self._previous
        self._previous = started
        loaded = items > 0 and items >= self.loaded_per_s * elapsed
        return started + (self.loaded_s if loaded else self.light_s)
