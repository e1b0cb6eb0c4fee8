"""Summaries of a Beta posterior on a grid: mean and credible interval. numpy only."""

import math

import numpy as np

GRID_POINTS = 4001


def beta_mean(alpha: float, beta: float) -> float:
    return alpha / (alpha + beta)


def beta_sd(alpha: float, beta: float) -> float:
    total = alpha + beta
    return math.sqrt(alpha * beta / (total * total * (total + 1)))


def mass_range(alpha: float, beta: float, sds: float = 12.0) -> tuple[float, float]:
    """An interval outside which the density is negligible (clipped to the open unit interval)."""
    mean, sd = beta_mean(alpha, beta), beta_sd(alpha, beta)
    return max(mean - sds * sd, 1e-12), min(mean + sds * sd, 1 - 1e-12)


def beta_grid_cdf(alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = mass_range(alpha, beta)
    x = np.linspace(lo, hi, GRID_POINTS)
    log_norm = math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)
    pdf = np.exp((alpha - 1) * np.log(x) + (beta - 1) * np.log1p(-x) - log_norm)
    steps = np.diff(x) * (pdf[1:] + pdf[:-1]) / 2
    cdf = np.concatenate([[0.0], np.cumsum(steps)])
    return x, cdf / cdf[-1]


def credible_interval(alpha: float, beta: float, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed interval holding `level` of the posterior mass."""
    x, cdf = beta_grid_cdf(alpha, beta)
    tail = (1 - level) / 2
    low, high = np.interp([tail, 1 - tail], cdf, x)
    return float(low), float(high)
