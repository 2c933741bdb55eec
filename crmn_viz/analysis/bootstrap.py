"""Percentile bootstrap intervals of a mean (Efron & Tibshirani 1993), shared by every table
that reports a mean over images with its 95% interval."""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_mean"]


def bootstrap_mean(
    scores: np.ndarray, resamples: int, generator: np.random.Generator
) -> tuple[float, float, float]:
    """Mean of ``scores`` [N] and its percentile bootstrap 95% interval.

    ``resamples`` sets of N images are drawn with replacement by ``generator``; the interval is
    the 2.5th and 97.5th percentile of their means. Two calls with generators of the same seed
    draw the same image sets, so ``bootstrap_mean(a - b, ...)`` is a paired comparison.
    Fewer than 2 scores (or no resamples): the interval is the mean itself.

    Returns:
        ``(mean, low, high)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    mean = float(scores.mean())
    if len(scores) < 2 or resamples < 1:
        return mean, mean, mean
    draws = generator.integers(0, len(scores), size=(resamples, len(scores)))
    means = scores[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return mean, float(low), float(high)
