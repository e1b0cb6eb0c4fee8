"""Sample-ratio check and value delivered: what the routers actually served. Pure functions.

The p-value is exact, never read from the chi-square distribution: with an arm expected to
get a handful of impressions (a lopsided split, exactly when a router that ignores it shows)
that approximation is invalid, and even at 5 expected it flags about twice as often as it
says. Each arm's count is, under a router that follows the split, Binomial(total, share);
its two-sided p-value is twice its smaller exact tail, and the day's p-value is the
smallest of them times the number of arms (Bonferroni), so P(flag) <= SRM_ALPHA whatever
the counts. With two arms both counts are one test, and no correction is needed.

Binomial tails are regularized incomplete beta functions, computed with the continued
fraction of Numerical Recipes (no scipy at runtime).
"""

import math
from dataclasses import dataclass

SRM_ALPHA = 0.001  # p below this: the router is not following the allocation
_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 100_000


@dataclass(frozen=True)
class SrmResult:
    chi_square: float  # Pearson's statistic, descriptive: the p-value does not come from it
    degrees_of_freedom: int
    p_value: float

    @property
    def flagged(self) -> bool:
        return self.p_value < SRM_ALPHA


def _lentz_step(aa: float, c: float, d: float) -> tuple[float, float]:
    d = 1 + aa * d
    c = 1 + aa / c
    return (c if abs(c) > _TINY else _TINY), 1 / (d if abs(d) > _TINY else _TINY)


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b); converges fast for x < (a + 1) / (a + b + 2)."""
    d = 1 - (a + b) * x / (a + 1)
    c, d = 1.0, 1 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS):
        c, d = _lentz_step(m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)), c, d)
        h *= d * c
        c, d = _lentz_step(-(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)), c, d)
        h *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return h


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the Beta(a, b) CDF at x."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    log_front += a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def binomial_tails(k: int, n: int, p: float) -> tuple[float, float]:
    """(P(X <= k), P(X >= k)) for X ~ Binomial(n, p), each computed directly (never as one
    minus the other, which would lose the small one)."""
    if p <= 0 or p >= 1:
        certain = 0 if p <= 0 else n
        return float(k >= certain), float(k <= certain)
    lower = 1.0 if k >= n else regularized_beta(n - k, k + 1, 1 - p)
    upper = 1.0 if k <= 0 else regularized_beta(k, n - k + 1, p)
    return lower, upper


def arm_p_value(k: int, n: int, p: float) -> float:
    """Two-sided exact binomial p-value: twice the smaller tail."""
    return min(1.0, 2 * min(binomial_tails(k, n, p)))


def pearson(observed: list[int], expected: list[float]) -> float:
    """Pearson's chi-square statistic over the arms expected to get any impressions."""
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True) if e > 0)


def sample_ratio(observed: list[int], shares: list[float]) -> SrmResult | None:
    """Do the observed impressions fit the served shares? None with fewer than two arms or
    no impressions, when there is nothing to test."""
    total, arms = sum(observed), len(observed)
    if arms < 2 or total == 0:
        return None
    whole = sum(shares)  # published percentages sum to 100.0, up to float rounding
    shares = [s / whole for s in shares]
    smallest = min(arm_p_value(o, total, s) for o, s in zip(observed, shares, strict=True))
    corrected = min(1.0, smallest * (1 if arms == 2 else arms))
    statistic = pearson(observed, [total * s for s in shares])
    return SrmResult(statistic, arms - 1, corrected)


def clicks_gained(served: list[int], means: list[float]) -> float:
    """One day's expected clicks over an equal split of the same impressions, from the
    impressions each arm was actually served."""
    even = sum(served) / len(served)
    return sum((n - even) * m for n, m in zip(served, means, strict=True))
