"""p95 is "95 photos out of 100" (docs): the nearest-rank percentile, checked on exact numbers."""

from __future__ import annotations

from boothgate.records.stats import percentile


def test_p95_of_a_hundred_is_the_95th_smallest() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 … 1, unsorted on purpose
    assert percentile(values, 0.95) == 95.0


def test_p95_of_twenty_is_the_19th_smallest_and_of_one_is_itself() -> None:
    assert percentile([float(v) for v in range(1, 21)], 0.95) == 19.0
    assert percentile([7.5], 0.95) == 7.5
    assert percentile([], 0.95) is None
