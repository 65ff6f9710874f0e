"""Intervals and tests of bot/domain/stats.py, and the labels of bot/domain/labels.py.

Reference values: Wilson intervals as printed by R's `binom::binom.wilson` / epitools
(0 of 10: 0-27.8 %; 45 of 60: 62.8-84.2 %), the two-proportion z-test as R's
`prop.test(correct = FALSE)` (40/100 vs 25/100: chi-squared 5.128, p = 0.0235).
"""

from __future__ import annotations

import pytest

from bot.domain import labels, stats


@pytest.mark.parametrize(
    ("successes", "n", "expected"),
    [
        (2, 4, (15.0, 85.0)),
        (0, 10, (0.0, 27.8)),
        (10, 10, (72.2, 100.0)),
        (1, 1, (20.7, 100.0)),
        (45, 60, (62.8, 84.2)),
        (0, 0, None),
    ],
)
def test_wilson_interval(successes: int, n: int, expected: tuple[float, float] | None) -> None:
    assert stats.wilson_interval(successes, n) == expected


@pytest.mark.parametrize(
    ("promoters", "detractors", "n", "expected"),
    [
        # mean 1/6, variance 5/6 - 1/36, half width 1.96 x sqrt(variance / 6) = 0.718
        (3, 2, 6, (-55.1, 88.5)),
        # mean 0.3, variance 0.7 - 0.09 = 0.61, half width 1.96 x 0.0781 = 0.153
        (50, 20, 100, (14.7, 45.3)),
        # every answer the same: no spread, the interval is the point (flagged too few
        # below DASHBOARD_MIN_ANSWERS anyway)
        (1, 0, 1, (100.0, 100.0)),
        (0, 0, 0, None),
    ],
)
def test_nps_interval(
    promoters: int, detractors: int, n: int, expected: tuple[float, float] | None
) -> None:
    assert stats.nps_interval(promoters, detractors, n) == expected


def test_two_proportion_test() -> None:
    found = stats.two_proportion_test(40, 100, 25, 100)
    assert (found.z, found.p_value, found.significant()) == (-2.265, 0.0235, True)
    assert (
        found.z is not None and round(found.z**2, 2) == 5.13
    )  # prop.test's chi-squared (5.128), from z to 3 places
    small = stats.two_proportion_test(4, 4, 1, 4)
    assert (small.z, small.p_value) == (-2.191, 0.0285)
    assert stats.two_proportion_test(3, 10, 3, 10).p_value == 1.0
    assert stats.two_proportion_test(4, 4, 4, 4) == stats.ProportionTest(None, None)
    assert stats.two_proportion_test(0, 0, 1, 4) == stats.ProportionTest(None, None)


def test_every_key_has_a_label() -> None:
    assert labels.check_complete() == []
    assert labels.label("channel", "website_chat") == "Website chat"
    assert labels.label("trigger", "in_chat:order_status") == (
        "In the chat, after an order status question"
    )
    assert labels.label("trigger", "in_chat:new_flow") == "In the chat, after new flow"
    assert labels.label("trigger", "unsolicited") == "No survey (unprompted)"
    assert labels.label("acquisition", "unknown") == "Not known"
    assert labels.label("theme", "brand_new_theme") == "Brand new theme"
