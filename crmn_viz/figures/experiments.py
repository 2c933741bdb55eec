"""Figures of causal experiments on the memory: intact against intervened, per step and over a data set.

Pure functions of results (:mod:`crmn_viz.analysis.experiments`,
:mod:`crmn_viz.analysis.step_attribution`); none runs a model. Steps are labelled ``block k``
with the stage boundaries of a CRMN of depth 6n+2 (Moniz & Pal 2016) as in
:mod:`crmn_viz.figures.memory`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.arrays import to_numpy
from crmn_viz.figures.layout import add_meta, finish_figure
from crmn_viz.figures.memory import LSTM_QUANTITY_LABELS, lstm_quantity, style_block_axis
from crmn_viz.figures.theme import DIVERGING_COLORSCALE, OKABE_ITO, SEQUENTIAL_COLORSCALE, symmetric_range
from crmn_viz.memory_quantities import memory_quantity

if TYPE_CHECKING:
    from crmn_viz.analysis.experiments import DatasetEffect
    from crmn_viz.analysis.step_attribution import StepAttribution

__all__ = [
    "plot_dataset_effect",
    "plot_experiment_heatmaps",
    "plot_experiment_readout",
    "plot_step_attribution",
]

INTACT_COLOUR = OKABE_ITO["blue"]
INTERVENED_COLOUR = OKABE_ITO["vermillion"]


def plot_experiment_heatmaps(
    intact: Mapping[str, Any],
    intervened: Mapping[str, Any],
    quantity: str,
    image_index: int = 0,
    units: Sequence[int] | None = None,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """One LSTM quantity intact, intervened and their difference: three units x blocks heatmaps.

    Args:
        intact, intervened: traces holding ``lstm.<quantity>`` [B, T, H].
        quantity: e.g. ``"cell"`` or ``"forget_gate"``.
        image_index: which image of the batches.
        units: memory units to show (default all).

    Returns:
        Heatmaps ``intact``, ``intervened`` (one colour scale: 0..1 for gates, symmetric
        otherwise) and ``intervened - intact`` (diverging, symmetric); ``layout.meta`` holds
        ``quantity``, ``image_index``, ``units``, ``max_abs_difference``.
    """
    kind = memory_quantity(quantity)
    left, right = (
        lstm_quantity(intact, kind.name, image_index),
        lstm_quantity(intervened, kind.name, image_index),
    )
    unit_ids = np.arange(left.shape[1]) if units is None else np.asarray(list(units), dtype=int)
    left, right = left[:, unit_ids], right[:, unit_ids]
    difference = right - left
    label = LSTM_QUANTITY_LABELS[kind.name]
    if kind.kind == "gate" and min(left.min(), right.min()) >= 0:
        low, high, scale = 0.0, 1.0, SEQUENTIAL_COLORSCALE
    else:
        low, high = symmetric_range(np.concatenate([left, right]))
        scale = DIVERGING_COLORSCALE
    d_low, d_high = symmetric_range(difference) if np.any(difference) else (-1.0, 1.0)
    fig = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.07,
        subplot_titles=("intact", "intervened", "intervened − intact"),
    )
    steps = left.shape[0]
    y = [str(unit) for unit in unit_ids]
    for col, (values, name, colours, bounds, bar_x) in enumerate(
        (
            (left, "intact", scale, (low, high), None),
            (right, "intervened", scale, (low, high), 0.64),
            (difference, "difference", DIVERGING_COLORSCALE, (d_low, d_high), 1.0),
        ),
        start=1,
    ):
        fig.add_trace(
            go.Heatmap(
                z=values.T,
                x=np.arange(steps),
                y=y,
                name=name,
                colorscale=colours,
                zmin=bounds[0],
                zmax=bounds[1],
                showscale=bar_x is not None,
                colorbar={"x": bar_x, "thickness": 8, "len": 0.9} if bar_x is not None else None,
                hovertemplate=f"{name}<br>block %{{x}}<br>unit %{{y}}<br>{label} = %{{z:.3f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        style_block_axis(fig, steps, row=1, col=col, label_stages=False, title="block")
    fig.update_yaxes(type="category", showline=False)
    fig.update_yaxes(title_text="memory unit", row=1, col=1)
    fig.update_xaxes(showline=False)
    add_meta(
        fig,
        quantity=kind.name,
        image_index=int(image_index),
        units=[int(unit) for unit in unit_ids],
        max_abs_difference=float(np.abs(difference).max()),
    )
    return finish_figure(fig, columns, height_in, 2.6)


def plot_experiment_readout(
    intact_steps: Any,
    intervened_steps: Any,
    class_names: Sequence[str],
    image_index: int = 0,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """The head read after every block, intact (solid) and intervened (dashed).

    Classifiers: probability of the intact final class and of the intervened final class
    after every step (softmax of the per-step logits ``[B, T, classes]``). Keypoint models
    (``[B, T, K, 2]``): the mean distance of the intervened keypoints from the intact ones
    after every step, in units of the crop side.

    Returns:
        A figure with one line per run and class; ``layout.meta`` holds ``classes`` and the
        final predictions (classifiers) or ``displacement`` (keypoints).
    """
    intact = to_numpy(intact_steps)[image_index]
    edited = to_numpy(intervened_steps)[image_index]
    steps = intact.shape[0]
    fig = go.Figure()
    if intact.ndim == 3:  # keypoints [T, K, 2]
        displacement = np.linalg.norm(edited - intact, axis=-1).mean(axis=-1)
        fig.add_trace(
            go.Scatter(
                x=np.arange(steps),
                y=displacement,
                mode="lines+markers",
                name="mean keypoint shift",
                line={"color": INTERVENED_COLOUR},
            )
        )
        fig.update_yaxes(title_text="shift (crop side)", rangemode="tozero")
        add_meta(fig, displacement=[float(v) for v in displacement])
    else:
        p_intact = _softmax(intact)
        p_edited = _softmax(edited)
        chosen = sorted({int(p_intact[-1].argmax()), int(p_edited[-1].argmax())})
        for index, k in enumerate(chosen):
            colour = (INTACT_COLOUR, INTERVENED_COLOUR)[index % 2]
            for values, run, dash in ((p_intact, "intact", "solid"), (p_edited, "intervened", "dash")):
                fig.add_trace(
                    go.Scatter(
                        x=np.arange(steps),
                        y=values[:, k],
                        mode="lines+markers",
                        name=f"{class_names[k]} ({run})",
                        line={"color": colour, "dash": dash},
                    )
                )
        fig.update_yaxes(title_text="probability", range=[0, 1])
        add_meta(
            fig,
            classes=[class_names[k] for k in chosen],
            intact_prediction=class_names[int(p_intact[-1].argmax())],
            intervened_prediction=class_names[int(p_edited[-1].argmax())],
        )
    style_block_axis(fig, steps)
    return finish_figure(fig, columns, height_in, 2.4, legend_lines=2)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def plot_dataset_effect(
    effect: DatasetEffect, *, columns: Literal[1, 2] = 2, height_in: float | None = None
) -> go.Figure:
    """Accuracy (or NME) intact and under each experiment, with bootstrap 95% intervals.

    One horizontal bar per row of ``effect`` (the intact row first, at the top), error bars
    from ``ci_low`` to ``ci_high`` and a dotted line at the intact value.

    Returns:
        A bar chart; ``layout.meta`` holds ``metric``, ``images`` and ``resamples``.
    """
    rows = list(effect.rows)
    scale = 100.0
    values = np.array([row.value for row in rows]) * scale
    low = values - np.array([row.ci_low for row in rows]) * scale
    high = np.array([row.ci_high for row in rows]) * scale - values
    labels = [row.title for row in rows]
    colours = [INTACT_COLOUR if row.experiment == "intact" else INTERVENED_COLOUR for row in rows]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker={"color": colours},
            error_x={"type": "data", "symmetric": False, "array": high, "arrayminus": low, "thickness": 1},
            name=effect.metric,
            hovertemplate="%{y}<br>%{x:.2f}%<extra></extra>",
        )
    )
    fig.add_vline(x=values[0], line={"color": "#000000", "width": 1, "dash": "dot"})
    axis = "accuracy (%)" if effect.metric == "accuracy" else "NME (% of inter-ocular distance)"
    fig.update_xaxes(title_text=f"{axis}, 95% bootstrap interval", rangemode="tozero")
    fig.update_yaxes(autorange="reversed", type="category")
    add_meta(fig, metric=effect.metric, images=rows[0].images, resamples=effect.resamples)
    return finish_figure(fig, columns, height_in or max(1.8, 0.8 + 0.16 * len(rows)), 2.4)


def plot_step_attribution(
    result: StepAttribution, *, columns: Literal[1, 2] = 2, height_in: float | None = None
) -> go.Figure:
    """Integrated gradients of one target per block: x_l (the LSTM's input) and the block's output.

    Returns:
        Grouped bars, one group per block; ``layout.meta`` holds ``target``, ``target_value``
        and the completeness gaps (``step_inputs_gap``, ``blocks_gap``).
    """
    blocks = len(result.blocks)
    fig = go.Figure()
    if result.step_inputs is not None:
        fig.add_trace(
            go.Bar(
                x=np.arange(len(result.step_inputs)),
                y=result.step_inputs,
                name="LSTM input x_l",
                marker={"color": INTACT_COLOUR},
            )
        )
    fig.add_trace(
        go.Bar(x=np.arange(blocks), y=result.blocks, name="block output", marker={"color": INTERVENED_COLOUR})
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=f"IG of {result.target}")
    style_block_axis(fig, blocks)
    add_meta(
        fig,
        target=result.target,
        target_value=result.target_value,
        step_inputs_gap=result.step_inputs_gap,
        blocks_gap=[float(v) for v in result.blocks_gap],
        block_names=list(result.block_names),
        n_steps=result.n_steps,
    )
    return finish_figure(fig, columns, height_in, 2.4, legend_lines=1)
