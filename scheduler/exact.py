"""P(arm is best) by numerical integration instead of sampling. numpy only.

P(k best) = integral of f_k(x) * prod_{j != k} F_j(x) dx. The grid is the union of one
dense grid per arm over the range where that arm's posterior has mass: a single grid
over [0, 1] would step right over a posterior concentrated by a million impressions.
"""

import math

import numpy as np

from scheduler.posterior import mass_range

POINTS_PER_ARM = 4001


def merged_grid(alpha, beta, points: int = POINTS_PER_ARM) -> np.ndarray:
    pieces = [np.linspace(*mass_range(a, b), points) for a, b in zip(alpha, beta, strict=True)]
    return np.unique(np.concatenate(pieces))


def beta_pdf(x: np.ndarray, a: float, b: float) -> np.ndarray:
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_norm)


def cumulative(pdf: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid CDF on the grid, scaled to end at 1 (the tails outside hold no mass)."""
    steps = np.diff(x) * (pdf[1:] + pdf[:-1]) / 2
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    return cdf / cdf[-1]


def exact_prob_best(alpha, beta, points: int = POINTS_PER_ARM) -> np.ndarray:
    """P(best) per arm by integration; sums to 1."""
    x = merged_grid(alpha, beta, points)
    pdfs = np.array([beta_pdf(x, a, b) for a, b in zip(alpha, beta, strict=True)])
    cdfs = np.array([cumulative(pdf, x) for pdf in pdfs])
    dx = np.diff(x)
    result = np.empty(len(pdfs))
    for k in range(len(pdfs)):
        integrand = pdfs[k] * np.prod(np.delete(cdfs, k, axis=0), axis=0)
        result[k] = np.sum(dx * (integrand[1:] + integrand[:-1]) / 2)
    return result / result.sum()
