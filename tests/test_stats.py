from __future__ import annotations

import pytest

from charter.stats import Rate, percentile, wilson


def test_wilson_matches_known_values() -> None:
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 20)[0] == 0.0
    assert wilson(20, 20)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)


def test_rate_renders_count_and_interval() -> None:
    assert str(Rate(5, 10)) == "5/10 = 50.0% [23.7%, 76.3%]"
    assert Rate(1, 4).to_dict()["k"] == 1


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([3.0], 99) == 3.0
