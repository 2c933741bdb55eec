"""Reshape analysis results into what the figure builders take (no computation of their own)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crmn_viz.analysis.statistics import GateStatistics

__all__ = ["class_labels", "per_class_arrays"]


def per_class_arrays(stats: GateStatistics, quantity: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-class means and stds of one quantity, stacked for
    :func:`crmn_viz.figures.memory.plot_gate_statistics`.

    Returns:
        ``(means [classes, T, H], stds [classes, T, H], names)`` over the classes that occurred;
        when the statistics are not grouped by class, one row named ``"all images"``.
    """
    if not stats.per_class:
        return stats.mean(quantity)[None], stats.std(quantity)[None], ["all images"]
    classes = sorted(stats.per_class)
    names = [stats.class_names[k] if k < len(stats.class_names) else f"class {k}" for k in classes]
    means = np.stack([stats.mean(quantity, k) for k in classes])
    stds = np.stack([stats.std(quantity, k) for k in classes])
    return means, stds, names


def class_labels(labels: Sequence[str | None], class_names: Sequence[str]) -> tuple[int | None, ...]:
    """Class indices of label names (None where a label is unknown or not a class of the model)."""
    index = {name: k for k, name in enumerate(class_names)}
    return tuple(index.get(label) if label is not None else None for label in labels)
