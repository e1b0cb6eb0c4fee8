"""Sample-ratio check and value delivered: what the routers actually served. Pure functions.

The chi-square p-value is the regularized upper incomplete gamma Q(k/2, x/2), computed
with the series / continued fraction of Numerical Recipes (no scipy at runtime).
"""

import math
from dataclasses import dataclass

SRM_ALPHA = 0.001  # p below this: the router is not following the allocation
MIN_EXPECTED = 5  # the chi-square approximation needs every arm to expect this many
_EPS = 1e-15
_TINY = 1e-300
_MAX_TERMS = 10_000


@dataclass(frozen=True)
class SrmResult:
    chi_square: float
    degrees_of_freedom: int
    p_value: float

    @property
    def flagged(self) -> bool:
        return self.p_value < SRM_ALPHA


def _prefactor(s: float, x: float) -> float:
    return math.exp(-x + s * math.log(x) - math.lgamma(s))


def _lower_series(s: float, x: float) -> float:
    """Regularized lower gamma P(s, x); converges fast for x < s + 1."""
    term = total = 1.0 / s
    for n in range(1, _MAX_TERMS):
        term *= x / (s + n)
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * _prefactor(s, x)


def _upper_fraction(s: float, x: float) -> float:
    """Regularized upper gamma Q(s, x) by Lentz's continued fraction; for x >= s + 1."""
    b = x + 1 - s
    c, d = 1 / _TINY, 1 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - s)
        b += 2
        d = an * d + b
        d = 1 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        if abs(d * c - 1) < _EPS:
            break
    return h * _prefactor(s, x)


def upper_gamma_q(s: float, x: float) -> float:
    if x <= 0:
        return 1.0
    if x < s + 1:
        return max(0.0, 1.0 - _lower_series(s, x))
    return _upper_fraction(s, x)


def chi_square_sf(statistic: float, degrees_of_freedom: int) -> float:
    """P(X >= statistic) for X ~ chi-square(degrees_of_freedom)."""
    return upper_gamma_q(degrees_of_freedom / 2, statistic / 2)


def sample_ratio(observed: list[int], shares: list[float]) -> SrmResult | None:
    """Goodness of fit of observed impressions to the served shares; None when untestable
    (fewer than two arms, or an arm expects fewer than MIN_EXPECTED impressions)."""
    total = sum(observed)
    expected = [total * share for share in shares]
    if len(observed) < 2 or min(expected) < MIN_EXPECTED:
        return None
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    dof = len(observed) - 1
    return SrmResult(statistic, dof, chi_square_sf(statistic, dof))


def clicks_gained(impressions: int, shares: list[float], means: list[float]) -> float:
    """One day's expected clicks over an equal split of the same impressions."""
    even = 1 / len(shares)
    return impressions * sum((s - even) * m for s, m in zip(shares, means, strict=True))
