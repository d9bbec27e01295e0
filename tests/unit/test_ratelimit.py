"""The sliding-window limiter, on a fake clock."""

from __future__ import annotations

from services.classifier.ratelimit import SlidingWindowLimiter


async def test_requests_beyond_the_limit_wait_for_the_window_to_slide() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = SlidingWindowLimiter(3, 60, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        await limiter.acquire("tenant-a")
    await limiter.acquire("tenant-b")
    assert slept == []
    now[0] = 10
    await limiter.acquire("tenant-a")
    assert slept == [50.0]
