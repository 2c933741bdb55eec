"""Unit x class selectivity: which memory units respond to which classes, with bootstrap intervals.

For one quantity at one step (a gate, the cell candidate, the cell or the hidden state of every
memory unit, over N labelled test images) :func:`unit_selectivity` gives each unit's
class-conditional means, a selectivity index, the preferred class and stratified bootstrap 95%
intervals of both, and an order in which to show the units (hierarchical clustering of their
class profiles, or descending selectivity).

The selectivity index
---------------------
For unit ``u`` with class means ``mu_c`` over the C' classes that have images, preferred class
``k = argmax_c mu_c`` and pooled within-class standard deviation ``s``::

    d'_u = (mu_k - mean_{c != k} mu_c) / s,
    s^2  = sum_c sum_{i in c} (x_iu - mu_c)^2 / (N - C')

the sensitivity index d' of signal detection theory (Green & Swets 1966), i.e. Cohen's d (Cohen
1988) of the preferred class against the average of the other classes. It suits every quantity
the LSTM records: it is defined for signed values (the cell ``c`` and hidden state ``h`` are
signed; the gates lie in (0, 1)), it does not change when a unit's values are shifted or scaled
(so units of different range compare), and it is large only when the preferred class stands out
from the others by more than the image-to-image spread within a class. The class selectivity index
of Morcos et al. (2018, "On the importance of single directions for generalization", eq. 1),
``(mu_max - mu_-max) / (mu_max + mu_-max)``, needs non-negative activations (ReLU outputs) and
changes with an added constant, so it would mislead on ``c`` and ``h``.

The index is 0 for a unit whose class means are all equal, and never negative at the full sample
(``k`` is the argmax). A unit with no spread within any class (``s = 0``) has index 0 when its
class means are equal and ``+inf`` otherwise. It needs at least two classes with images and more
images than classes; otherwise it is NaN.

Bootstrap intervals
-------------------
Percentile intervals (Efron & Tibshirani 1993, as :mod:`crmn_viz.analysis.bootstrap`) from a
*stratified* bootstrap: each resample draws, within every class, as many images as the class has,
with replacement, so class sizes stay fixed. A resample is a matrix of counts; class sums are
one matrix product per class ``counts [B, n_c] @ values [n_c, U]`` (on values centred at the class
mean, for precision), so B = 1000 resamples of 10,000 images and 100 units take about a second
on two cores. The preferred class of each unit is fixed at its full-sample value inside the resamples,
so the interval of d' is that of "class k against the rest" and can reach below 0 for a unit
whose preference is noise. Choosing ``k`` as the argmax biases d' upward: a unit with no class
preference at all shows d' near ``E[max of C standard normals] C / ((C - 1) sqrt(n))`` for n
images per class (about 0.05 for 10 classes of 1000 images, 0.25 for 5 classes of 40), and its
interval can exclude 0, so read an index against that floor (or against the same model with
shuffled labels), not against 0 alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "INDEX_FORMULA",
    "INDEX_NAME",
    "UnitSelectivity",
    "selectivity_from_table",
    "selectivity_index",
    "unit_order",
    "unit_selectivity",
]

INDEX_NAME = "d′"
"""How figures and tables name the selectivity index (see the module docstring)."""

INDEX_FORMULA = "d′ = (mean of preferred class − mean of the other classes' means) / pooled within-class SD"
"""The formula in words, as figures and captions state it."""

Ordering = Literal["cluster", "selectivity"]

_WORK_BYTES = 256 * 2**20
"""About how many bytes of bootstrap class means [B, C, units] one chunk of units may hold."""


@dataclasses.dataclass(frozen=True)
class UnitSelectivity:
    """Class-conditional means and the selectivity index d' of every unit at one step.

    Attributes:
        quantity: what was measured, e.g. ``"lstm.hidden"`` (a label, not interpreted).
        step: the step index as the trace counts it (0 = first step; people read ``step + 1``).
        class_names: [C] names, in label order.
        class_counts: [C] images per class (after dropping images of label -1).
        class_means: [U, C] class-conditional mean of each unit (NaN for a class with no images).
        class_mean_ci: [U, C, 2] stratified bootstrap 95% percentile interval of each mean.
        selectivity: [U] the index d' (module docstring): preferred class against the others,
            over the pooled within-class standard deviation.
        selectivity_ci: [U, 2] its bootstrap 95% interval, the preferred class held fixed.
        preferred_class: [U] ``argmax_c class_means[u, c]`` over the classes with images.
        order: [U] the units in display order (a permutation of ``range(U)``).
        ordering: ``"cluster"`` (leaf order of the average-linkage tree of the class profiles) or
            ``"selectivity"`` (descending d').
        count: N, the images used.
        bootstrap: B, the bootstrap resamples (0: every interval is the estimate itself).
        seed: the seed of the resamples.
    """

    quantity: str
    step: int
    class_names: list[str]
    class_counts: np.ndarray
    class_means: np.ndarray
    class_mean_ci: np.ndarray
    selectivity: np.ndarray
    selectivity_ci: np.ndarray
    preferred_class: np.ndarray
    order: np.ndarray
    ordering: str
    count: int
    bootstrap: int
    seed: int

    @property
    def units(self) -> int:
        """U, the number of units."""
        return int(self.class_means.shape[0])

    @property
    def empty_classes(self) -> list[str]:
        """Names of the classes without images (their means and intervals are NaN)."""
        return [name for name, n in zip(self.class_names, self.class_counts) if n == 0]

    def most_selective(self, k: int = 10) -> list[tuple[int, str, float]]:
        """The ``k`` units of highest d' as ``(unit, preferred class name, d')``, descending.

        Units with a NaN index are left out; ties go to the lower unit number.
        """
        index = np.where(np.isnan(self.selectivity), -np.inf, self.selectivity)
        ranked = [int(u) for u in np.argsort(-index, kind="stable") if not np.isnan(self.selectivity[u])]
        return [
            (unit, self.class_names[int(self.preferred_class[unit])], float(self.selectivity[unit]))
            for unit in ranked[: max(0, k)]
        ]


def selectivity_index(
    class_means: np.ndarray,
    within_sd: np.ndarray,
    preferred: np.ndarray,
    resolution: np.ndarray | float = 0.0,
) -> np.ndarray:
    """d' of each unit for a given preferred class (module docstring).

    Args:
        class_means: [..., U, C] class means; NaN marks a class without images (left out).
        within_sd: [..., U] pooled within-class standard deviations.
        preferred: [U] the preferred class of each unit.
        resolution: [U] (or a number): mean differences and standard deviations at or below it
            count as 0 (rounding of a constant unit's means, e.g. 1e-9 of the values' magnitude).

    Returns:
        [..., U] ``(mu_k - mean_{c != k} mu_c) / s``; 0 where ``s = 0`` and the difference is 0,
        ``+-inf`` where ``s = 0`` and it is not, NaN where fewer than two classes have images.
    """
    means = np.asarray(class_means, dtype=np.float64)
    preferred = np.asarray(preferred, dtype=np.int64)
    present = ~np.isnan(means)
    others = present.sum(axis=-1) - 1
    chosen = np.broadcast_to(preferred[:, None], (*means.shape[:-1], 1))
    preferred_mean = np.take_along_axis(means, chosen, -1)
    # mean over the other classes of (mu_k - mu_c): exactly 0 when the means are equal
    gaps = np.where(present, preferred_mean - means, 0.0).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        difference = gaps / others
        difference = np.where(np.abs(difference) <= resolution, 0.0, difference)
        spread = np.where(within_sd <= resolution, 0.0, within_sd)
        index = difference / spread
    index = np.where((spread == 0) & (difference == 0), 0.0, index)
    return np.where(others >= 1, index, np.nan)


def unit_order(
    class_means: np.ndarray, selectivity: np.ndarray, ordering: Ordering = "cluster"
) -> np.ndarray:
    """The units' display order.

    ``"cluster"``: each unit's profile over the classes with images is z-scored (a constant
    profile becomes all zeros); units are joined by average linkage (UPGMA) on the correlation
    distance ``1 - r`` of their profiles (a constant profile is at distance 1 from every other),
    and the order is the tree's leaf order (``scipy.cluster.hierarchy.leaves_list``, with optimal
    leaf ordering, Bar-Joseph et al. 2001, for up to 1000 units), so units of similar class
    preference sit together. ``"selectivity"``: descending d', NaN last, ties by unit number.

    Args:
        class_means: [U, C] class means (NaN columns: classes without images).
        selectivity: [U] the index.
        ordering: ``"cluster"`` or ``"selectivity"``.

    Returns:
        [U] int64, a permutation of ``range(U)``.
    """
    units = class_means.shape[0]
    if ordering == "selectivity":
        index = np.where(np.isnan(selectivity), -np.inf, selectivity)
        return np.argsort(-index, kind="stable").astype(np.int64)
    if ordering != "cluster":
        raise ValueError(f"ordering must be 'cluster' or 'selectivity', got {ordering!r}")
    if units < 3:
        return np.arange(units, dtype=np.int64)
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    profiles = class_means[:, ~np.isnan(class_means).any(axis=0)]
    centred = profiles - profiles.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    unit_vectors = np.divide(
        centred, norms, out=np.zeros_like(centred), where=norms > 1e-12 * (1 + np.abs(profiles).max())
    )
    distance = np.clip(1.0 - unit_vectors @ unit_vectors.T, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    distance = (distance + distance.T) / 2
    tree = linkage(squareform(distance, checks=False), method="average", optimal_ordering=units <= 1000)
    return leaves_list(tree).astype(np.int64)


def _resample_counts(size: int, resamples: int, generator: np.random.Generator) -> np.ndarray:
    """[B, size] counts of each image in B draws of ``size`` images with replacement."""
    draws = generator.integers(0, size, size=(resamples, size))
    draws += (np.arange(resamples) * size)[:, None]
    return np.bincount(draws.ravel(), minlength=resamples * size).reshape(resamples, size)


def unit_selectivity(
    values: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    quantity: str = "",
    step: int = 0,
    bootstrap: int = 1000,
    seed: int = 0,
    ordering: Ordering = "cluster",
) -> UnitSelectivity:
    """Class means, d' and stratified bootstrap intervals of every unit (module docstring).

    Args:
        values: [N, U] one quantity of every unit at one step for N images (finite).
        labels: [N] class of each image in ``range(C)``; images of label -1 (unknown) are dropped.
        class_names: [C] names; classes without images are kept, with NaN means, and listed by
            :attr:`UnitSelectivity.empty_classes`.
        quantity, step: what ``values`` are (recorded, not interpreted; ``step`` counts from 0).
        bootstrap: B, stratified resamples (0: intervals collapse to the estimates).
        seed: seed of the resamples (same seed, same intervals).
        ordering: ``"cluster"`` or ``"selectivity"`` (see :func:`unit_order`).

    Returns:
        The :class:`UnitSelectivity`.

    Raises:
        ValueError: shapes disagree, a label is outside ``-1 .. C-1``, a value is not finite, or
            ``bootstrap`` is negative.
    """
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    names = [str(name) for name in class_names]
    if values.ndim != 2 or values.shape[0] != labels.shape[0]:
        raise ValueError(
            f"values must be [N, U] with N = len(labels) = {labels.shape[0]}, got {values.shape}"
        )
    if labels.size and (labels.min() < -1 or labels.max() >= len(names)):
        raise ValueError(f"labels must lie in -1 .. {len(names) - 1} (-1: unknown)")
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if ordering not in ("cluster", "selectivity"):
        raise ValueError(f"ordering must be 'cluster' or 'selectivity', got {ordering!r}")
    known = labels >= 0
    values, labels = values[known], labels[known]
    if not np.isfinite(values).all():
        raise ValueError("values must be finite (slice away steps or units a table marks NaN)")
    classes, units = len(names), values.shape[1]
    counts = np.bincount(labels, minlength=classes)
    present = np.flatnonzero(counts)
    members = [np.flatnonzero(labels == c) for c in range(classes)]

    means = np.full((units, classes), np.nan)
    within = np.zeros(units)
    for c in present:
        block = values[members[c]]
        means[:, c] = block.mean(axis=0)
        within += ((block - means[:, c]) ** 2).sum(axis=0)
    dof = len(values) - len(present)
    within_sd = np.sqrt(within / dof) if dof > 0 else np.full(units, np.nan)
    if len(present):
        preferred = np.argmax(np.where(np.isnan(means), -np.inf, means), axis=1)
    else:
        preferred = np.zeros(units, dtype=np.int64)
    resolution = 1e-9 * np.abs(values).max(axis=0) if len(values) else np.zeros(units)
    index = selectivity_index(means, within_sd, preferred, resolution)

    mean_ci = np.repeat(means[:, :, None], 2, axis=2)
    index_ci = np.repeat(index[:, None], 2, axis=1)
    if bootstrap and len(present) and dof > 0:
        generator = np.random.default_rng(seed)
        draws = {
            int(c): _resample_counts(int(counts[c]), bootstrap, generator).astype(np.float32) for c in present
        }
        chunk = max(1, _WORK_BYTES // (8 * bootstrap * max(1, classes)))
        for start in range(0, units, chunk):
            cols = slice(start, min(units, start + chunk))
            width = cols.stop - cols.start
            resampled = np.full((bootstrap, width, classes), np.nan)
            within_b = np.zeros((bootstrap, width))
            for c in present:
                # float32 products: counts are exact, and centred values lose ~1e-7 of themselves,
                # far below what a percentile of B resamples resolves; half the memory of float64
                centred = (values[members[c], cols] - means[cols, c]).astype(np.float32)
                weights = draws[int(c)]
                shift = (weights @ centred).astype(np.float64) / counts[c]  # resample - class mean
                resampled[:, :, c] = means[cols, c] + shift
                within_b += (weights @ (centred**2)).astype(np.float64) - counts[c] * shift**2
            sd_b = np.sqrt(np.maximum(within_b, 0.0) / dof)
            index_b = selectivity_index(resampled, sd_b, preferred[cols], resolution[cols])
            bounds = np.percentile(resampled[:, :, present], [2.5, 97.5], axis=0)  # [2, width, C']
            mean_ci[cols.start : cols.stop, present] = np.moveaxis(bounds, 0, -1)
            percentile = np.nanpercentile if np.isnan(index_b).any() else np.percentile
            with np.errstate(invalid="ignore"):  # inf - inf between two infinite resamples
                index_ci[cols] = percentile(index_b, [2.5, 97.5], axis=0).T
    return UnitSelectivity(
        quantity=quantity,
        step=int(step),
        class_names=names,
        class_counts=counts,
        class_means=means,
        class_mean_ci=mean_ci,
        selectivity=index,
        selectivity_ci=index_ci,
        preferred_class=preferred.astype(np.int64),
        order=unit_order(means, index, ordering),
        ordering=ordering,
        count=len(values),
        bootstrap=int(bootstrap),
        seed=int(seed),
    )


def selectivity_from_table(table: Any, quantity: str, step: int, **options: Any) -> UnitSelectivity:
    """:func:`unit_selectivity` of one quantity at one step of a population table.

    ``table`` is read duck-typed: ``table.values(quantity)`` [N, T, U_max] (NaN where a step has
    fewer units), ``table.quantities[quantity].units[step]`` (the units at that step: a count or
    a sequence), ``table.labels`` [N] (-1 unknown) and ``table.class_names``.

    Args:
        table: a :class:`crmn_viz.analysis.population.PopulationTable` (or anything like it).
        quantity: a quantity the table holds, e.g. ``"hidden"`` or ``"forget_gate"``.
        step: the step, counted from 0.
        **options: ``bootstrap``, ``seed``, ``ordering`` for :func:`unit_selectivity`.
    """
    units = table.quantities[quantity].units[step]
    width = units if isinstance(units, (int, np.integer)) else len(units)
    values = np.asarray(table.values(quantity))[:, step, : int(width)]
    return unit_selectivity(
        values, np.asarray(table.labels), list(table.class_names), quantity=quantity, step=step, **options
    )
