"""Sampling uncertainty of the dashboard's figures (docs/dashboard.md, "Uncertainty").

* CSAT % and other proportions: the 95 % Wilson score interval, which stays inside
  0..100 and is honest for small samples and for 0 % or 100 % (the plain normal
  interval collapses to one point there).
* NPS: each answer is a score of +1 (promoter), 0 (passive) or -1 (detractor); NPS is
  100 x their mean. The interval is the normal approximation mean +- z x sqrt(var / n),
  var = (P + D) / n - mean^2 (the variance of those scores), clipped to -100..100.
* Two proportions (insight before/after): the pooled two-proportion z-test, two-sided.
* Two NPS (insight before/after): z = (mean2 - mean1) / sqrt(var1/n1 + var2/n2) over the
  +1/0/-1 scores (unpooled, normal approximation), two-sided.

Pure functions of counts: no database, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Two-sided 95 %: the 97.5th percentile of the standard normal distribution.
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95 % Wilson score interval of successes/n, in percent with one decimal; None if n=0."""
    if n <= 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return round(100 * max(0.0, centre - half), 1), round(100 * min(1.0, centre + half), 1)


def nps_interval(
    promoters: int, detractors: int, n: int, z: float = Z95
) -> tuple[float, float] | None:
    """95 % interval of NPS (normal approximation over the +1/0/-1 scores); None if n=0."""
    if n <= 0:
        return None
    mean = (promoters - detractors) / n
    variance = max(0.0, (promoters + detractors) / n - mean * mean)
    half = z * math.sqrt(variance / n)
    return round(100 * max(-1.0, mean - half), 1), round(100 * min(1.0, mean + half), 1)


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z."""
    return math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class ProportionTest:
    """Pooled two-proportion z-test of a1/n1 (before) against a2/n2 (after)."""

    z: float | None
    p_value: float | None

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value is not None and self.p_value < alpha


def two_proportion_test(a1: int, n1: int, a2: int, n2: int) -> ProportionTest:
    """z = (p2 - p1) / sqrt(p (1 - p) (1/n1 + 1/n2)), p = (a1 + a2) / (n1 + n2).

    None values when a side is empty or every answer is the same on both sides (no spread
    to test against)."""
    if n1 <= 0 or n2 <= 0:
        return ProportionTest(None, None)
    pooled = (a1 + a2) / (n1 + n2)
    spread = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if spread <= 0:
        return ProportionTest(None, None)
    z = (a2 / n2 - a1 / n1) / math.sqrt(spread)
    return ProportionTest(round(z, 3), round(normal_two_sided_p(z), 4))


def nps_difference_test(
    before: tuple[int, int, int], after: tuple[int, int, int]
) -> ProportionTest:
    """z-test of NPS after vs before; each side is (promoters, detractors, answers).

    None values when a side is empty or neither side has any spread."""
    (p1, d1, n1), (p2, d2, n2) = before, after
    if n1 <= 0 or n2 <= 0:
        return ProportionTest(None, None)
    mean1, mean2 = (p1 - d1) / n1, (p2 - d2) / n2
    var1 = max(0.0, (p1 + d1) / n1 - mean1 * mean1)
    var2 = max(0.0, (p2 + d2) / n2 - mean2 * mean2)
    spread = var1 / n1 + var2 / n2
    if spread <= 0:
        return ProportionTest(None, None)
    z = (mean2 - mean1) / math.sqrt(spread)
    return ProportionTest(round(z, 3), round(normal_two_sided_p(z), 4))
