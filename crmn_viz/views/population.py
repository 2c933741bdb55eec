"""Views of a memory population over many test images: which units respond to which classes.

Each function takes a population table already computed (one pass over the test set, see
:mod:`crmn_viz.analysis.population`) and never runs the network, so the Streamlit page, the Gradio
demo and the CLI show the same figure from the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from crmn_viz.analysis.selectivity import INDEX_FORMULA, INDEX_NAME, UnitSelectivity, selectivity_from_table
from crmn_viz.figures.population import plot_exemplar_grid, plot_unit_selectivity, quantity_label
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.memory_quantities import MEMORY_QUANTITIES
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown

__all__ = [
    "exemplars_view",
    "nearest_view",
    "population_selectivity_view",
    "selectivity_markdown",
    "selectivity_shown",
    "selectivity_view",
]


def selectivity_view(
    model: TracedModel,
    table: Any,
    quantity: str,
    step: int,
    *,
    ordering: str = "cluster",
    bootstrap: int = 1000,
) -> tuple[UnitSelectivity, Shown]:
    """Units x classes heatmap of one quantity at one step, with each unit's selectivity d'.

    Args:
        model: the model the table was made with (not run; the table holds its values).
        table: a :class:`crmn_viz.analysis.population.PopulationTable` (read as
            :func:`~crmn_viz.analysis.selectivity.selectivity_from_table` says).
        quantity: a quantity of the table, e.g. ``"hidden"``, ``"forget_gate"`` or ``"block"``.
        step: the step, counted from 0 (the figure, caption and file name count from 1).
        ordering: ``"cluster"`` or ``"selectivity"``.
        bootstrap: stratified bootstrap resamples.

    Returns:
        The :class:`~crmn_viz.analysis.selectivity.UnitSelectivity` and the figure, named
        ``unit_selectivity_<quantity>_step<step + 1>``; its settings record ``quantity``, ``step``
        (from 0), ``step_number`` (from 1), ``images``, ``bootstrap``, ``seed``, ``ordering`` and
        ``dataset``.
    """
    result = selectivity_from_table(table, quantity, step, ordering=ordering, bootstrap=bootstrap)
    return result, selectivity_shown(result, getattr(table, "dataset", None))


def population_selectivity_view(
    model: TracedModel,
    dataset: str,
    count: int,
    quantity: str,
    step: int,
    compute: Compute,
    *,
    ordering: str = "cluster",
    bootstrap: int = 1000,
) -> tuple[UnitSelectivity, Shown]:
    """:func:`selectivity_view` over the population pass of ``count`` test images of ``dataset``,
    asked of a :class:`~crmn_viz.views.compute.Compute` (so a front end that caches computes the
    bootstrap once per setting)."""
    result = compute.selectivity(model, dataset, count, quantity, step, ordering, bootstrap)
    return result, selectivity_shown(result, dataset)


def selectivity_shown(result: UnitSelectivity, dataset: str | None) -> Shown:
    """The :class:`Shown` selectivity figure of a computed :class:`UnitSelectivity`."""
    quantity, step, ordering = result.quantity, int(result.step), result.ordering
    label = quantity_label(quantity)
    member = "memory unit" if quantity.removeprefix("lstm.") in MEMORY_QUANTITIES else "channel"
    source = f"{result.count} {dataset} test images" if dataset else f"{result.count} images"
    order = "clustered by class profile" if ordering == "cluster" else "in descending selectivity"
    caption = (
        f"Class-conditional mean of {label} at step {step + 1} (steps counted from 1) for each {member} "
        f"over {source}, units {order}; circles mark each unit's preferred class. Right: "
        f"selectivity {INDEX_FORMULA}, with stratified bootstrap 95% intervals "
        f"({result.bootstrap} resamples, the preferred class held fixed)."
    )
    top = result.most_selective(3)
    if top:
        caption += " Most selective: " + ", ".join(
            f"unit {unit} ({name}, {INDEX_NAME} {value:.2f})" for unit, name, value in top
        )
        caption += "."
    if result.empty_classes:
        caption += f" No images of: {', '.join(result.empty_classes)} (left blank)."
    short = quantity.removeprefix("lstm.").replace(".", "_")
    settings = {
        "quantity": quantity,
        "step": int(step),
        "step_number": int(step) + 1,
        "images": result.count,  # a count: ``shown(images=...)`` is the list of images shown
        "bootstrap": result.bootstrap,
        "seed": result.seed,
        "ordering": ordering,
        "dataset": dataset,
    }
    name = f"unit_selectivity_{short}_step{step + 1}"
    return Shown(name, plot_unit_selectivity(result), (), settings, caption)


def selectivity_markdown(result: UnitSelectivity, k: int = 10) -> str:
    """The ``k`` most selective units as Markdown: unit, preferred class, d' with its interval,
    the preferred class's mean and the mean of the other classes' means."""
    lines = [
        f"| unit | preferred class | {INDEX_NAME} (95% interval) | mean, preferred class | "
        "mean, other classes |",
        "|---|---|---|---|---|",
    ]
    for unit, name, value in result.most_selective(k):
        low, high = result.selectivity_ci[unit]
        preferred = int(result.preferred_class[unit])
        others = np.delete(result.class_means[unit], preferred)
        rest = float(np.nanmean(others)) if np.isfinite(others).any() else float("nan")
        lines.append(
            f"| {unit} | {name} | {value:.2f} ({low:.2f} to {high:.2f}) "
            f"| {result.class_means[unit, preferred]:.3f} | {rest:.3f} |"
        )
    return "\n".join(lines)


def _picture_grid(
    pictures: Sequence[SelectedImage], values: Sequence[float], title: str, value_label: str
) -> Any:
    """:func:`~crmn_viz.figures.population.plot_exemplar_grid` of test images (named by their file
    names in the data set) with the value that ranks each."""
    rgb = [np.asarray(picture.image().convert("RGB")) for picture in pictures]
    names = [picture.name for picture in pictures]
    return plot_exemplar_grid(rgb, names, values, title=title, value_label=value_label)


def exemplars_view(
    model: TracedModel,
    dataset: str,
    count: int,
    quantity: str,
    step: int,
    unit: int,
    k: int,
    compute: Compute,
    *,
    lowest: bool = False,
) -> tuple[list[Any], list[SelectedImage], Shown]:
    """The ``k`` test images that drive one unit most (or least) at one step, from the population
    pass of ``count`` test images of ``dataset``.

    Args:
        quantity, step, unit: the unit (``step`` counted from 0; people read ``step + 1``).
        lowest: the images with the lowest values instead of the highest.

    Returns:
        ``(exemplars, images, shown)``: the :class:`~crmn_viz.analysis.population.Exemplar` rows
        (image name, value, label) in rank order, the pictures as :class:`SelectedImage` objects (a
        front end can send one to every page), and the grid figure.
    """
    rows = compute.exemplars(model, dataset, count, quantity, step, unit, k, lowest)
    pictures = compute.test_images(model, dataset, [row.image for row in rows])
    label = quantity_label(quantity)
    end = "lowest" if lowest else "highest"
    title = f"{label}, unit {unit}, step {step + 1}: {end} of {count} test images"
    figure = _picture_grid(pictures, [row.value for row in rows], title, label)
    settings = {
        "quantity": quantity,
        "step": int(step),
        "step_number": int(step) + 1,
        "unit": int(unit),
        "k": int(k),
        "lowest": bool(lowest),
        "pass_images": int(count),
        "dataset": dataset,
    }
    caption = (
        f"The {len(rows)} test images (of {count} of {dataset}, spread over the test split) with the "
        f"{end} {label} of unit {unit} at step {step + 1} (steps counted from 1), best first; the number "
        "above each is its value as the traced forward pass records it."
    )
    name = f"exemplars_{quantity.replace('.', '_')}_unit{unit}_step{step + 1}_{end}"
    return rows, pictures, Shown(name, figure, tuple(pictures), settings, caption)


def nearest_view(
    model: TracedModel,
    dataset: str,
    count: int,
    quantity: str,
    image: SelectedImage,
    k: int,
    compute: Compute,
) -> tuple[list[tuple[int, str, float]], list[SelectedImage], Shown]:
    """The ``k`` test images whose trajectory of ``quantity`` (every step and unit) lies nearest to
    ``image``'s, as LSTMVis's match view does for text (Strobelt et al. 2018).

    Returns:
        ``(matches, images, shown)``: ``(index, name, distance)`` rows nearest first, the pictures,
        and the grid figure (each titled with its Euclidean distance).
    """
    matches = compute.nearest_trajectories(model, dataset, count, quantity, image, k)
    pictures = compute.test_images(model, dataset, [name for _, name, _ in matches])
    label = quantity_label(quantity)
    title = f"nearest {label} trajectories to {image.name}"
    figure = _picture_grid(pictures, [distance for _, _, distance in matches], title, "Euclidean distance")
    settings = {"quantity": quantity, "k": int(k), "pass_images": int(count), "dataset": dataset}
    caption = (
        f"The {len(matches)} of {count} {dataset} test images whose {label} over every step and unit "
        f"lies nearest to {image.name}'s (Euclidean distance, nearest first)."
    )
    name = f"nearest_{quantity.replace('.', '_')}_{image.stem}"
    return matches, pictures, Shown(name, figure, (image, *pictures), settings, caption)
