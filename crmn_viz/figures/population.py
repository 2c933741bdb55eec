"""Figures of a memory population over many images: which units respond to which classes.

Pure functions of results (:mod:`crmn_viz.analysis.selectivity`); none runs a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.analysis.selectivity import INDEX_FORMULA, INDEX_NAME
from crmn_viz.figures.layout import add_meta
from crmn_viz.figures.theme import DIVERGING_COLORSCALE, OKABE_ITO, apply_paper_style
from crmn_viz.memory_quantities import MEMORY_QUANTITY_LABELS

if TYPE_CHECKING:
    from crmn_viz.analysis.selectivity import UnitSelectivity

__all__ = ["plot_exemplar_grid", "plot_unit_selectivity", "quantity_label", "shown_units"]

INDEX_LABEL = INDEX_NAME
"""The selectivity index as the axis names it (see :mod:`crmn_viz.analysis.selectivity`)."""


def quantity_label(quantity: str) -> str:
    """What a person reads for a quantity: ``"lstm.hidden"`` -> ``"hidden state h"``; others as given."""
    return MEMORY_QUANTITY_LABELS.get(quantity.removeprefix("lstm."), quantity or "value")


def shown_units(result: UnitSelectivity, max_units: int | None = None) -> np.ndarray:
    """The units a figure shows, in display order: all of ``result.order``, or the ``max_units``
    most selective of them (highest d', NaN last) kept in ``result.order``'s order."""
    order = np.asarray(result.order, dtype=np.int64)
    if max_units is None or max_units >= len(order):
        return order
    if max_units < 1:
        raise ValueError(f"max_units must be at least 1, got {max_units}")
    index = np.where(np.isnan(result.selectivity), -np.inf, result.selectivity)
    keep = set(np.argsort(-index, kind="stable")[:max_units].tolist())
    return np.array([unit for unit in order if int(unit) in keep], dtype=np.int64)


def _json_numbers(values: np.ndarray) -> list[Any]:
    """Nested lists of floats with NaN and infinities as None (JSON has neither)."""
    array = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(array), array, None).tolist()


def _colour_centre(means: np.ndarray) -> float:
    """0 for a signed quantity (class means on both sides of 0), else the mean of the class means
    (a gate in (0, 1): cells read as above or below the population's typical value)."""
    finite = means[np.isfinite(means)]
    if not finite.size or (finite.min() < 0 < finite.max()):
        return 0.0
    return float(finite.mean())


def plot_unit_selectivity(
    result: UnitSelectivity,
    max_units: int | None = None,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Units x classes heatmap of class means, with each unit's selectivity d' beside it.

    Left: one row per unit (``"unit 37"``, in ``result.order``, first at the top), one column per
    class, the class-conditional mean on a diverging scale centred at 0 for signed quantities
    (cell, hidden state) and at the mean of the class means otherwise (gates); an open circle
    marks each unit's preferred class. Right, on the same rows: d' with its stratified bootstrap
    95% interval. The title names the quantity and the step, counted from 1 (step index 0 is
    "step 1").

    Args:
        result: the :class:`~crmn_viz.analysis.selectivity.UnitSelectivity`.
        max_units: show only the most selective units, in display order (see :func:`shown_units`).
        columns: printed width: 1 or 2 columns.
        height_in: printed height (default: grows with the rows, 2 to 9 in).

    Returns:
        The figure: trace 0 the heatmap (``z = class_means[units]``), trace 1 the preferred-class
        markers, trace 2 the d' points (``x = selectivity[units]``, infinities drawn as gaps).
        ``layout.meta`` holds ``quantity``, ``step`` (from 0), ``step_number`` (from 1),
        ``images``, ``bootstrap``, ``seed``, ``ordering``, ``units``, ``class_names``,
        ``class_counts``, ``empty_classes``, ``preferred_class``, ``selectivity``,
        ``selectivity_ci``, ``colour_centre`` and ``index``.
    """
    units = shown_units(result, max_units)
    label = quantity_label(result.quantity)
    rows = [f"unit {unit}" for unit in units]
    names = list(result.class_names)
    means = np.asarray(result.class_means, dtype=np.float64)[units]
    mean_ci = np.asarray(result.class_mean_ci, dtype=np.float64)[units]
    index = np.asarray(result.selectivity, dtype=np.float64)[units]
    index_ci = np.asarray(result.selectivity_ci, dtype=np.float64)[units]
    preferred = [names[int(c)] for c in np.asarray(result.preferred_class)[units]]
    centre = _colour_centre(means)
    finite = means[np.isfinite(means)]
    half = float(np.abs(finite - centre).max()) if finite.size else 1.0
    half = half if half > 0 else 1.0

    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.16 if columns == 2 else 0.26,
    )
    fig.add_trace(
        go.Heatmap(
            z=means,
            x=names,
            y=rows,
            customdata=mean_ci,
            name="class mean",
            colorscale=DIVERGING_COLORSCALE,
            zmid=centre,
            zmin=centre - half,
            zmax=centre + half,
            colorbar={
                "title": {"text": "class mean", "side": "right"},
                "x": fig.layout.xaxis.domain[1] + 0.012,  # in the gap between the panels
                "xanchor": "left",
                "len": 0.8,
                "thickness": 6,
            },
            hovertemplate=(
                "%{y}, %{x}<br>mean %{z:.3f}"
                " (95% %{customdata[0]:.3f} to %{customdata[1]:.3f})<extra></extra>"
            ),
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=preferred,
            y=rows,
            mode="markers",
            name="preferred class",
            marker={"symbol": "circle-open", "color": OKABE_ITO["black"], "size": 6, "line": {"width": 1}},
            hovertemplate="%{y} prefers %{x}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    drawn = np.where(np.isfinite(index), index, np.nan)
    fig.add_trace(
        go.Scatter(
            x=drawn,
            y=rows,
            mode="markers",
            name=INDEX_LABEL,
            text=preferred,
            marker={"color": OKABE_ITO["blue"], "size": 5},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": np.where(np.isfinite(index_ci[:, 1]), index_ci[:, 1] - drawn, np.nan),
                "arrayminus": np.where(np.isfinite(index_ci[:, 0]), drawn - index_ci[:, 0], np.nan),
                "thickness": 1,
                "width": 0,
                "color": OKABE_ITO["blue"],
            },
            hovertemplate="%{y} (%{text})<br>" + INDEX_LABEL + " %{x:.2f}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.add_vline(x=0, line={"color": "#8c8c8c", "width": 1, "dash": "dot"}, row=1, col=2)
    fig.update_yaxes(type="category", autorange="reversed", ticks="", showline=False, row=1, col=1)
    fig.update_yaxes(type="category", autorange="reversed", row=1, col=2)
    fig.update_xaxes(type="category", showline=False, tickangle=-45 if len(names) > 5 else 0, row=1, col=1)
    fig.update_xaxes(title_text=f"selectivity {INDEX_LABEL} (95% CI)", row=1, col=2)
    fig.update_layout(
        title_text=f"{label}, step {result.step + 1} (steps from 1): {result.count} images",
        showlegend=False,
    )
    add_meta(
        fig,
        quantity=result.quantity,
        step=int(result.step),
        step_number=int(result.step) + 1,
        images=int(result.count),
        bootstrap=int(result.bootstrap),
        seed=int(result.seed),
        ordering=result.ordering,
        units=[int(unit) for unit in units],
        class_names=names,
        class_counts=[int(n) for n in result.class_counts],
        **({"empty_classes": list(result.empty_classes)} if result.empty_classes else {}),
        preferred_class=preferred,
        selectivity=_json_numbers(index),
        selectivity_ci=_json_numbers(index_ci),
        colour_centre=centre,
        index=INDEX_FORMULA,
    )
    default = min(9.0, max(2.0, 1.3 + 0.11 * len(rows)))
    height = height_in or default
    if height * 96 * 0.75 / max(1, len(rows)) >= 10:  # room for every row's label at 7 pt
        fig.update_yaxes(dtick=1, row=1, col=1)
    styled = apply_paper_style(fig, columns=columns, height_in=height, keep_title=True)
    styled.layout.margin.r = 16  # the d' axis title, centred under a narrow panel
    return styled


def plot_exemplar_grid(
    pictures: Sequence[np.ndarray],
    names: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    columns: int = 6,
    value_label: str = "value",
) -> go.Figure:
    """The images that drive one unit most (or least), in rank order, each titled with its value.

    Args:
        pictures: RGB uint8 pictures [H, W, 3] (any sizes), best first.
        names: their file names in the data set (e.g. ``test/cat/0001.jpg``).
        values: the unit's value for each (what ranks them).
        title: e.g. ``"hidden state h, unit 37, step 9: highest"``.
        columns: pictures per row.
        value_label: what the value is, for the hover text.

    Returns:
        A grid of ``go.Image`` panels; ``layout.meta`` holds the names, values and ranks.
    """
    if not (len(pictures) == len(names) == len(values)) or not pictures:
        raise ValueError("plot_exemplar_grid needs as many names and values as pictures, at least one")
    count = len(pictures)
    columns = max(1, min(columns, count))
    rows = -(-count // columns)
    fig = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[f"{rank + 1}. {value:.3g}" for rank, value in enumerate(values)],
        horizontal_spacing=0.02,
        vertical_spacing=0.12 / max(rows, 1),
    )
    for rank, (picture, name, value) in enumerate(zip(pictures, names, values)):
        rgb = np.asarray(picture, dtype=np.uint8)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        fig.add_trace(
            go.Image(
                z=rgb,
                name=f"{rank + 1}. {name}",
                hovertemplate=f"{name}<br>{value_label} = {value:.4g}<extra></extra>",
            ),
            row=rank // columns + 1,
            col=rank % columns + 1,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title={"text": title})
    add_meta(
        fig,
        images=[str(name) for name in names],
        values=[float(value) for value in values],
        ranks=list(range(1, count + 1)),
        value_label=value_label,
    )
    height = 0.55 + 1.15 * rows
    return apply_paper_style(fig, columns=2, height_in=height, keep_title=True)
