"""Figures of predictions, including the CRMN's prediction after every residual block.

The CRMN's output layer can decode every intermediate memory state ``h_l`` (see
:mod:`crmn_viz.analysis.readouts`), which shows how the prediction forms as the memory
reads deeper blocks; the last step is the model's actual output.

* :func:`plot_stepwise_probabilities`: class probabilities across the blocks.
* :func:`plot_stepwise_keypoints`: keypoints decoded after chosen blocks.
* :func:`plot_prediction_bar`: a ranked bar chart of class probabilities.

The builders take plain arrays (numpy or torch); none runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.arrays import to_numpy
from crmn_viz.figures.layout import add_meta, finish_figure, legend_rows, line_style
from crmn_viz.figures.memory import style_block_axis
from crmn_viz.figures.overlays import (
    GROUND_TRUTH_COLOUR,
    PREDICTION_COLOUR,
    keypoint_axes,
    keypoint_image,
    keypoint_nme,
    legend_entry,
)
from crmn_viz.figures.theme import OKABE_ITO, apply_paper_style

__all__ = ["plot_prediction_bar", "plot_stepwise_keypoints", "plot_stepwise_probabilities"]

_OTHER_BAR_COLOUR = "#BDBDBD"
_SLIDER_INSET = 0.06  # of the figure width, each side of the block slider
_FULL_SLIDER_LABELS = 10  # at most this many steps are labelled "block k"; more, by k alone
_DEFAULT_PANELS = 6


def plot_stepwise_probabilities(
    probabilities: Any,
    class_names: Sequence[str],
    top_k: int = 5,
    *,
    stages: Sequence[int] | None = None,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Probability of the final top-k classes after every residual block.

    One line per class among the ``top_k`` most probable at the *last* step (the
    model's prediction), ordered by that final probability; x is the block whose
    memory state was decoded. Dotted lines mark the stages.

    Args:
        probabilities: [T, C] softmax probabilities per step (one image; e.g.
            ``StepwiseReadout.probabilities[i]``).
        class_names: C class names.
        top_k: How many classes to draw.
        stages: Stage index per step (default: three equal CRMN stages, see
            :func:`crmn_viz.figures.memory.crmn_stages`).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.6).

    Returns:
        A figure with ``top_k`` line traces named after the classes (y = probability
        per step), most probable first. ``fig.layout.meta`` holds the whole matrix
        ``probabilities`` ([T][C], every class, so each row sums to 1), ``class_names``
        ([C]), ``shown_classes`` (the column of each line), ``block_labels`` and ``stages``.
    """
    values = to_numpy(probabilities)
    if values.ndim != 2:
        raise ValueError(f"probabilities must be [steps, classes], got shape {values.shape}")
    steps, classes = values.shape
    if len(class_names) != classes:
        raise ValueError(f"{classes} classes but {len(class_names)} class names")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    order = np.argsort(-values[-1], kind="stable")[: min(top_k, classes)]
    x = np.arange(steps)
    fig = go.Figure()
    for rank, index in enumerate(order):
        colour, dash = line_style(rank)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values[:, index],
                mode="lines+markers",
                name=str(class_names[index]),
                line={"color": colour, "width": 1.5, "dash": dash},
                marker={"color": colour, "size": 5},
                hovertemplate="block %{x}: p = %{y:.3f}<extra>" + str(class_names[index]) + "</extra>",
            )
        )
    fig.update_yaxes(title_text="probability (decoded after block)", range=[0, 1.02])
    style_block_axis(fig, steps, stages)
    add_meta(
        fig,
        probabilities=values.tolist(),
        class_names=[str(name) for name in class_names],
        shown_classes=[int(index) for index in order],
    )
    names = [str(class_names[index]) for index in order]
    return finish_figure(fig, columns, height_in, 2.6, legend_lines=legend_rows(names, columns))


def _default_steps(count: int) -> list[int]:
    """Up to 6 evenly spaced steps, always the first and the last."""
    return sorted({int(v) for v in np.rint(np.linspace(0, count - 1, min(count, _DEFAULT_PANELS)))})


def plot_stepwise_keypoints(
    image: Any,
    keypoints_per_step: Any,
    steps: Sequence[int] | None = None,
    *,
    ground_truth: Any = None,
    layout: Literal["grid", "slider"] = "grid",
    upscale: int | None = None,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Keypoints decoded after several residual blocks, drawn on the face.

    ``layout="grid"``: small multiples, one panel per chosen block (titled "block k"),
    three per row. ``layout="slider"``: one panel and a slider over the blocks (one
    Plotly frame per step, all steps unless ``steps`` is given), starting at the last step
    shown (the network's answer), inset from the figure's sides so that its end labels are
    whole; beyond 10 steps the ticks read the block number alone. Predictions are orange,
    the ground truth (if given) sky blue, as in :func:`crmn_viz.figures.overlays.plot_keypoints`.

    Args:
        image: The face crop the model saw.
        keypoints_per_step: [T, K, 2] points (x, y) in image pixels after every step.
        steps: Which steps to show (default: up to 6 evenly spaced ones for the grid,
            including the first and last; all for the slider).
        ground_truth: True points [K, 2] in image pixels, or ``None``.
        layout: ``"grid"`` or ``"slider"``.
        upscale: Enlargement before drawing (see :func:`crmn_viz.figures.overlays.keypoint_image`).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: fit to the panels).

    Returns:
        A figure with one ``go.Image`` per panel, named ``"block k"`` (grid), or one
        image and frames named ``"block k"`` (slider), plus legend entries.
        ``fig.layout.meta`` holds ``steps`` (the blocks shown, in order), ``prediction``
        ([S][K][2]: the points drawn for each of them, image pixels), with ground truth
        ``ground_truth`` ([K][2]) and, for 68 points, ``nme`` ([S]: the 300-W NME of each
        step's points, see :func:`crmn_viz.figures.overlays.keypoint_nme`), and ``upscale``.
    """
    points = to_numpy(keypoints_per_step)
    if points.ndim != 3 or points.shape[-1] != 2:
        raise ValueError(f"keypoints_per_step must be [T, K, 2], got shape {points.shape}")
    count = points.shape[0]
    if steps is None:
        chosen = _default_steps(count) if layout == "grid" else list(range(count))
    else:
        chosen = [int(step) % count if -count <= int(step) < count else -1 for step in steps]
        if not chosen or min(chosen) < 0:
            raise ValueError(f"steps must be in 0..{count - 1}, got {list(steps)}")
    drawings = [keypoint_image(image, points[step], ground_truth, upscale=upscale) for step in chosen]
    factor = drawings[0][1]
    truth = None if ground_truth is None else to_numpy(ground_truth)
    if truth is not None and truth.ndim == 3 and truth.shape[0] == 1:
        truth = truth[0]
    scored = truth is not None and truth.shape == (68, 2) and points.shape[1] == 68
    numbers: dict[str, Any] = {
        "steps": chosen,
        "prediction": points[chosen].tolist(),
        "ground_truth": None if truth is None else truth.tolist(),
        "nme": [keypoint_nme(points[step], truth) for step in chosen] if scored else None,
        "upscale": int(factor),
    }
    height, width = drawings[0][0].shape[0] // factor, drawings[0][0].shape[1] // factor
    placement = {"x0": -0.5 + 0.5 / factor, "dx": 1 / factor, "y0": -0.5 + 0.5 / factor, "dy": 1 / factor}
    hover = "x %{x:.1f}, y %{y:.1f}<extra></extra>"
    legend = [legend_entry("prediction", PREDICTION_COLOUR)]
    if ground_truth is not None:
        legend.append(legend_entry("ground truth", GROUND_TRUTH_COLOUR))

    if layout == "grid":
        panels = len(chosen)
        per_row = min(panels, 3)
        rows = math.ceil(panels / per_row)
        fig = make_subplots(
            rows=rows,
            cols=per_row,
            subplot_titles=[f"block {step}" for step in chosen],
            horizontal_spacing=0.02,
            vertical_spacing=0.08 / rows,
        )
        for index, ((drawn, _), step) in enumerate(zip(drawings, chosen)):
            where = {"row": index // per_row + 1, "col": index % per_row + 1}
            fig.add_trace(go.Image(z=drawn, name=f"block {step}", hovertemplate=hover, **placement), **where)
        for trace in legend:
            fig.add_trace(trace, row=1, col=1)
        for index in range(1, rows * per_row + 1):
            suffix = "" if index == 1 else str(index)
            fig.layout[f"yaxis{suffix}"].update(scaleanchor=f"x{suffix}", scaleratio=1)
        keypoint_axes(fig, height, width)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(legend={"orientation": "h", "x": 0, "y": -0.02, "yanchor": "top"}, showlegend=True)
        add_meta(fig, **numbers)
        page_width = 3.5 if columns == 1 else 7.16
        default_height = rows * (page_width / per_row) * height / width + 0.35 * rows + 0.3
        return apply_paper_style(fig, columns=columns, height_in=height_in or default_height)
    if layout != "slider":
        raise ValueError(f"layout must be 'grid' or 'slider', got {layout!r}")

    names = [f"block {step}" for step in chosen]
    last = len(chosen) - 1  # the slider starts at the network's answer, the last step shown
    fig = go.Figure(go.Image(z=drawings[last][0], name=names[last], hovertemplate=hover, **placement))
    for trace in legend:
        fig.add_trace(trace)
    fig.frames = [
        go.Frame(data=[go.Image(z=drawn, name=name, **placement)], traces=[0], name=name)
        for (drawn, _), name in zip(drawings, names)
    ]
    # Many steps: the ticks show the block number only (the current value names the block).
    labels = names if len(chosen) <= _FULL_SLIDER_LABELS else [str(step) for step in chosen]
    fig.update_layout(
        sliders=[
            {
                "active": last,
                # Inset from both sides, so the end labels (centred under the end ticks) stay inside.
                "x": _SLIDER_INSET,
                "len": 1 - 2 * _SLIDER_INSET,
                "y": 0,
                "yanchor": "top",
                "pad": {"t": 8},
                "currentvalue": {
                    "prefix": "decoded after " if labels is names else "decoded after block ",
                    "font": {"size": 10},
                },
                "font": {"size": 9},
                "steps": [
                    {
                        "label": label,
                        "value": name,
                        "method": "animate",
                        "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
                    }
                    for label, name in zip(labels, names)
                ],
            }
        ],
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        showlegend=True,
    )
    add_meta(fig, **numbers)
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    keypoint_axes(fig, height, width)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return apply_paper_style(fig, columns=columns, height_in=height_in or 3.6)


_INSIDE_LABEL_MIN_PROBABILITY = 0.25  # a bar this wide holds "100.0%" at one-column width


def _percent_label(probability: float) -> str:
    """``"98.7%"``; ``"<0.1%"`` for a positive probability that would round to 0.0%."""
    if 0 < probability < 0.0005:
        return "<0.1%"
    return f"{100 * probability:.1f}%"


def plot_prediction_bar(
    labels: Sequence[str],
    probabilities: Any,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Class probabilities as horizontal bars, most probable at the top.

    The top class is blue, the others grey; each bar is labelled with its percentage, inside
    the bar when the bar is wide enough, else just after it as a layout annotation (Plotly
    draws no text for a bar narrower than a pixel, so a bar's own outside text would vanish for
    the least likely classes). Probabilities below 0.05% read ``<0.1%`` rather than ``0.0%``.

    Args:
        labels: Class names, one per probability (e.g. the top-k of
            :func:`crmn_viz.analysis.predictions.classify`).
        probabilities: Probabilities in [0, 1], same length.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 0.22 in per bar + 0.5).

    Returns:
        A figure with one ``go.Bar`` named ``"probability"`` (x = probabilities sorted
        descending, y = their labels).
    """
    values = to_numpy(probabilities).reshape(-1)
    if len(labels) != values.size or values.size == 0:
        raise ValueError(f"need one label per probability, got {len(labels)} labels and {values.size} values")
    order = np.argsort(-values, kind="stable")
    names = [str(labels[i]) for i in order]
    sorted_values = values[order]
    colours = [OKABE_ITO["blue"]] + [_OTHER_BAR_COLOUR] * (values.size - 1)
    inside_text = ["#FFFFFF"] + ["#000000"] * (values.size - 1)
    labels_text = [_percent_label(v) for v in sorted_values]
    inside = sorted_values >= _INSIDE_LABEL_MIN_PROBABILITY
    fig = go.Figure(
        go.Bar(
            x=sorted_values,
            y=names,
            orientation="h",
            name="probability",
            marker={"color": colours},
            text=labels_text,
            textposition=["inside" if fits else "none" for fits in inside],
            insidetextanchor="end",
            insidetextfont={"color": inside_text},
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.4g}<extra></extra>",
        )
    )
    for name, value, text, fits in zip(names, sorted_values, labels_text, inside):
        if not fits:
            fig.add_annotation(
                x=max(float(value), 0.0), y=name, text=text, showarrow=False, xanchor="left", xshift=3
            )
    fig.update_xaxes(title_text="probability", range=[0, 1], tickvals=[0, 0.25, 0.5, 0.75, 1.0])
    fig.update_yaxes(autorange="reversed", type="category", ticks="")
    fig.update_layout(bargap=0.25, showlegend=False)
    return apply_paper_style(fig, columns=columns, height_in=height_in or 0.22 * values.size + 0.5)
