"""An exact reference for P(best), independent of the package's own (core/beta.py)."""

import math

import numpy as np


def beta_pdf(x, a, b):
    log_norm = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_norm)


def reference_prob_best(alpha, beta, points=200_001):
    """P(k best) = integral of f_k(x) * prod_{j != k} F_j(x) dx, integrated only where the
    posteriors have mass: over [0, 1] a concentrated posterior falls between grid points."""
    means = alpha / (alpha + beta)
    sds = np.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
    lo = max(float(np.min(means - 15 * sds)), 1e-15)
    hi = min(float(np.max(means + 15 * sds)), 1 - 1e-15)
    x = np.linspace(lo, hi, points)
    dx = x[1] - x[0]
    pdfs = np.array([beta_pdf(x, a, b) for a, b in zip(alpha, beta, strict=True)])
    cdfs = np.cumsum((pdfs[:, 1:] + pdfs[:, :-1]) / 2 * dx, axis=1)
    cdfs = np.concatenate([np.zeros((len(alpha), 1)), cdfs], axis=1)
    result = []
    for k in range(len(alpha)):
        others = np.prod(np.delete(cdfs, k, axis=0), axis=0)
        integrand = pdfs[k] * others
        result.append(float(np.sum((integrand[1:] + integrand[:-1]) / 2) * dx))
    return np.array(result)
