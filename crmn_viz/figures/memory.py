"""Figures of the CRMN memory: the peephole LSTM that reads one residual block per step.

The CRMN (Moniz & Pal 2016) feeds the mean-pooled output of residual block ``l`` to a
peephole LSTM at step ``l`` (eqs. 2-7): input gate ``i_l``, forget gate ``f_l``, output
gate ``o_l`` (all logistic, in [0, 1]), cell candidate ``s_l = tanh(...)``, cell state
``c_l = f_l * c_{l-1} + i_l * s_l`` and hidden state ``h_l = o_l * tanh(c_l)``. A trace
holds each as ``lstm.<name>`` with shape [B, T, H] (T = 3n steps, one per block; H units).

Steps are labelled ``block k`` with the same 0-based ``k`` as the trace names
``blocks.{k}.out``; the CRMN's three stages (n blocks each, the feature-map size halves
between them) are marked with dotted lines. Gates use a fixed 0..1 sequential scale
(viridis), so two figures are always comparable; signed quantities use the diverging
scale centred on 0 (blue negative, red positive).

Every builder only reads recorded tensors: none runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.arrays import check_index, rgba, to_numpy
from crmn_viz.figures.layout import add_meta, finish_figure, legend_rows, line_style
from crmn_viz.figures.theme import (
    DIVERGING_COLORSCALE,
    OKABE_ITO,
    SEQUENTIAL_COLORSCALE,
    FontSizes,
    pt_to_px,
    symmetric_range,
)
from crmn_viz.memory_quantities import GATE_NAMES, MEMORY_QUANTITIES, MEMORY_QUANTITY_LABELS

if TYPE_CHECKING:
    import torch

__all__ = [
    "LSTM_QUANTITY_LABELS",
    "QUANTITY_COLOURS",
    "crmn_stages",
    "lstm_quantity",
    "plot_cell_state",
    "plot_gate_comparison",
    "plot_gate_heatmap",
    "plot_gate_statistics",
    "plot_gate_trajectories",
    "plot_memory_animation",
    "style_block_axis",
]

LSTM_QUANTITY_LABELS: Mapping[str, str] = MEMORY_QUANTITY_LABELS
"""Axis and legend label of every per-step LSTM quantity recorded as ``lstm.<name>``
(:data:`crmn_viz.memory_quantities.MEMORY_QUANTITY_LABELS`)."""

QUANTITY_COLOURS: dict[str, str] = {
    "input_gate": OKABE_ITO["blue"],
    "forget_gate": OKABE_ITO["vermillion"],
    "output_gate": OKABE_ITO["bluish_green"],
    "cell_candidate": OKABE_ITO["reddish_purple"],
    "cell": OKABE_ITO["orange"],
    "hidden": OKABE_ITO["sky_blue"],
}
"""One fixed Okabe-Ito colour per LSTM quantity, the same in every figure."""

_LOGISTIC_GATES = GATE_NAMES
_TANH_BOUNDED = tuple(name for name, q in MEMORY_QUANTITIES.items() if q.kind in ("candidate", "hidden"))
_ANIMATION_UNITS = 16
_BOUNDARY_COLOUR = "#000000"

TraceLike = Mapping[str, Any]


# --------------------------------------------------------------------------- reading traces


def _quantity(name: str) -> str:
    short = name.removeprefix("lstm.")
    if short not in LSTM_QUANTITY_LABELS:
        raise ValueError(f"unknown LSTM quantity {name!r}; choose from {sorted(LSTM_QUANTITY_LABELS)}")
    return short


def lstm_quantity(trace: TraceLike, quantity: str, image_index: int = 0) -> np.ndarray:
    """Return one image's recorded LSTM quantity as a float array [T, H].

    Args:
        trace: A CRMN trace (any mapping with ``lstm.<quantity>`` of shape [B, T, H]).
        quantity: ``input_gate``, ``forget_gate``, ``output_gate``, ``cell_candidate``,
            ``cell`` or ``hidden`` (the ``lstm.`` prefix is optional).
        image_index: Which image of the batch (negative counts from the end).

    Returns:
        The values, steps along axis 0 and memory units along axis 1.

    Raises:
        ValueError: Unknown quantity, image index out of range or a wrongly shaped tensor.
        KeyError: The trace does not hold the quantity (not a CRMN trace, or not recorded).
    """
    short = _quantity(quantity)
    values = to_numpy(trace[f"lstm.{short}"])
    if values.ndim != 3:
        raise ValueError(f"lstm.{short} should be [B, T, H], got shape {values.shape}")
    return values[check_index(image_index, values.shape[0], "image_index")]


def _image_position(trace: TraceLike, quantity: str, image_index: int) -> int:
    """The non-negative batch position of ``image_index`` (for the figure's meta)."""
    return check_index(image_index, len(trace[f"lstm.{_quantity(quantity)}"]), "image_index")


def _select_units(units: Sequence[int] | np.ndarray | None, hidden: int) -> np.ndarray:
    if units is None:
        return np.arange(hidden)
    chosen = np.asarray(units, dtype=int).reshape(-1)
    if chosen.size == 0:
        raise ValueError("units must name at least one memory unit")
    if chosen.min() < 0 or chosen.max() >= hidden:
        raise ValueError(f"units must be in 0..{hidden - 1}, got {chosen.tolist()}")
    return chosen


def _boundary_colour_for(quantity: str, values: np.ndarray) -> str:
    """White stage boundaries on the dark viridis scale, black on the (white-centred) diverging one."""
    return "#FFFFFF" if _colour_range(quantity, values)["colorscale"] is SEQUENTIAL_COLORSCALE else "#000000"


def _colour_range(quantity: str, values: np.ndarray) -> dict[str, Any]:
    """Colour scale settings: fixed 0..1 for logistic gates, symmetric diverging otherwise."""
    if quantity in _LOGISTIC_GATES and float(np.nanmin(values)) >= 0.0:
        return {"colorscale": SEQUENTIAL_COLORSCALE, "zmin": 0.0, "zmax": 1.0}
    if quantity in _TANH_BOUNDED or quantity == "output_gate":  # tanh output gate: in [-1, 1]
        return {"colorscale": DIVERGING_COLORSCALE, "zmin": -1.0, "zmax": 1.0}
    low, high = symmetric_range(values)
    return {"colorscale": DIVERGING_COLORSCALE, "zmin": low, "zmax": high}


# --------------------------------------------------------------------------- block axis


def crmn_stages(num_steps: int) -> list[int]:
    """Stage (0, 1, 2) of every LSTM step of a CRMN.

    A CRMN of depth 6n+2 has T = 3n steps, n per stage, so step ``l`` is in stage
    ``l // n``. Other step counts are treated as one stage.

    Args:
        num_steps: T, the number of LSTM steps.

    Returns:
        A list of T stage indices.
    """
    if num_steps >= 3 and num_steps % 3 == 0:
        per_stage = num_steps // 3
        return [step // per_stage for step in range(num_steps)]
    return [0] * num_steps


def style_block_axis(
    fig: go.Figure,
    num_steps: int,
    stages: Sequence[int] | None = None,
    *,
    row: int | None = None,
    col: int | None = None,
    label_stages: bool = True,
    title: str | None = "residual block (LSTM step)",
    boundary_colour: str = _BOUNDARY_COLOUR,
) -> None:
    """Label an x axis of LSTM steps ``block k`` and mark the stage boundaries.

    Steps must be drawn at x = 0 .. T-1. Boundaries are dotted vertical lines half
    way between the last block of a stage and the first of the next; with
    ``label_stages`` each stage is named above the plot ("stage 1" ...). The label of
    every step (``"block k"``, also where a tick is skipped) and its 0-based stage are
    kept in ``fig.layout.meta["block_labels"]`` and ``["stages"]``, so the figure's data
    file names every column.

    Args:
        fig: The figure to change in place.
        num_steps: T.
        stages: Stage index per step (default :func:`crmn_stages`).
        row: Subplot row (with ``col``), for figures made with ``make_subplots``.
        col: Subplot column.
        label_stages: Write the stage names above the plotting area.
        title: Axis title (``None`` leaves it alone).
        boundary_colour: Colour of the stage boundaries (white reads best on viridis).
    """
    stages = [int(stage) for stage in (crmn_stages(num_steps) if stages is None else stages)]
    if len(stages) != num_steps:
        raise ValueError(f"stages needs one entry per step ({num_steps}), got {len(stages)}")
    add_meta(fig, block_labels=[f"block {k}" for k in range(num_steps)], stages=stages)
    stride = max(1, int(np.ceil(num_steps / 12)))
    ticks = list(range(0, num_steps, stride))
    where = {} if row is None else {"row": row, "col": col}
    fig.update_xaxes(
        tickmode="array",
        tickvals=ticks,
        ticktext=[f"block {k}" for k in ticks],
        range=[-0.5, num_steps - 0.5],
        **({"title_text": title} if title is not None else {}),
        **where,
    )
    boundaries = [k for k in range(1, num_steps) if stages[k] != stages[k - 1]]
    for boundary in boundaries:
        fig.add_vline(
            x=boundary - 0.5,
            line={"color": boundary_colour, "width": 1, "dash": "dot"},
            layer="above",
            opacity=1,
            **where,
        )
    if label_stages and boundaries:
        starts = [0, *boundaries]
        ends = [*boundaries, num_steps]
        for start, end in zip(starts, ends):
            fig.add_annotation(
                x=(start + end - 1) / 2,
                y=1.0,
                yref="y domain",
                text=f"stage {stages[start] + 1}",
                showarrow=False,
                yanchor="bottom",
                font={"size": pt_to_px(FontSizes.tick)},
                **where,
            )


def _band(
    x: np.ndarray, low: np.ndarray, high: np.ndarray, colour: str, group: str, **extra: Any
) -> go.Scatter:
    """A filled polygon between ``low`` and ``high`` (no legend entry, no hover)."""
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]),
        y=np.concatenate([high, low[::-1]]),
        fill="toself",
        fillcolor=rgba(colour, 0.2),
        line={"width": 0},
        mode="lines",
        hoverinfo="skip",
        showlegend=False,
        legendgroup=group,
        name=f"{group} ±1 std",
        **extra,
    )


# --------------------------------------------------------------------------- figures


def plot_gate_heatmap(
    trace: TraceLike,
    gate: str = "forget_gate",
    image_index: int = 0,
    units: Sequence[int] | np.ndarray | None = None,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Heatmap of one LSTM quantity for one image: memory units x residual blocks.

    Each column is an LSTM step (the block it read), each row a memory unit. Gates in
    [0, 1] use a fixed 0..1 viridis scale; the cell and hidden states and the cell
    candidate use a diverging scale symmetric about 0. Dotted lines mark the stage
    boundaries.

    Args:
        trace: A CRMN trace.
        gate: ``input_gate``, ``forget_gate``, ``output_gate``, ``cell_candidate``,
            ``cell`` or ``hidden``.
        image_index: Which image of the batch.
        units: Memory units to show, in this order (default: all).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.5).

    Returns:
        A figure with one ``go.Heatmap`` whose ``z`` is ``trace["lstm.<gate>"][image,
        :, units].T`` ([units, steps]) and whose ``y`` are the unit ids as categories.
        ``fig.layout.meta`` holds ``quantity``, ``image_index``, ``units`` (the row
        labels as ints), ``block_labels`` and ``stages`` (one per column).
    """
    quantity = _quantity(gate)
    values = lstm_quantity(trace, quantity, image_index)
    steps, hidden = values.shape
    unit_ids = _select_units(units, hidden)
    label = LSTM_QUANTITY_LABELS[quantity]
    fig = go.Figure(
        go.Heatmap(
            z=values[:, unit_ids].T,
            x=np.arange(steps),
            y=[str(unit) for unit in unit_ids],
            name=label,
            colorbar={"title": {"text": label}},
            hovertemplate="block %{x}<br>unit %{y}<br>" + label + " = %{z:.3f}<extra></extra>",
            **_colour_range(quantity, values[:, unit_ids]),
        )
    )
    fig.update_yaxes(type="category", title_text="memory unit", showline=False, ticks="outside")
    fig.update_xaxes(showline=False)
    style_block_axis(fig, steps, boundary_colour=_boundary_colour_for(quantity, values))
    add_meta(
        fig,
        quantity=quantity,
        image_index=_image_position(trace, quantity, image_index),
        units=[int(unit) for unit in unit_ids],
    )
    return finish_figure(fig, columns, height_in, 2.5)


def plot_gate_trajectories(
    trace: TraceLike,
    gates: Sequence[str] = GATE_NAMES,
    image_index: int = 0,
    units: Sequence[int] | np.ndarray | None = None,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """How each gate opens and closes across the blocks, for one image.

    For every quantity a thick line with markers gives the mean over *all* memory
    units at each step, inside a band of ±1 standard deviation over the units. The
    ``units`` given are added as thin lines of the same colour, to show single units
    against the population.

    Args:
        trace: A CRMN trace.
        gates: LSTM quantities to draw (gates, ``cell_candidate``, ``cell``, ``hidden``).
        image_index: Which image of the batch.
        units: Memory units to draw individually (default: none).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.5).

    Returns:
        A figure with, per quantity, a band trace (``"<label> ±1 std"``), a mean line
        (named after the quantity, y = mean over units per step) and one thin line
        per selected unit. The y axis is fixed to 0..1 when only [0, 1] gates are shown.
        ``fig.layout.meta`` holds ``quantities``, ``image_index``, ``units`` (when given),
        ``block_labels`` and ``stages``.
    """
    if not gates:
        raise ValueError("gates must name at least one LSTM quantity")
    fig = go.Figure()
    all_in_unit_interval = True
    steps = 0
    for quantity in (_quantity(gate) for gate in gates):
        values = lstm_quantity(trace, quantity, image_index)
        steps, hidden = values.shape
        x = np.arange(steps)
        mean, std = values.mean(axis=1), values.std(axis=1)
        colour, label = QUANTITY_COLOURS[quantity], LSTM_QUANTITY_LABELS[quantity]
        all_in_unit_interval &= quantity in _LOGISTIC_GATES and float(values.min()) >= 0.0
        fig.add_trace(_band(x, mean - std, mean + std, colour, label))
        if units is not None:
            for unit in _select_units(units, hidden):
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=values[:, unit],
                        mode="lines",
                        line={"color": colour, "width": 0.6},
                        opacity=0.7,
                        name=f"{label}, unit {unit}",
                        legendgroup=label,
                        showlegend=False,
                        hovertemplate=f"unit {unit}<br>block %{{x}}: %{{y:.3f}}<extra>{label}</extra>",
                    )
                )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                mode="lines+markers",
                line={"color": colour, "width": 1.5},
                marker={"color": colour, "size": 5},
                name=label,
                legendgroup=label,
                hovertemplate="block %{x}: mean %{y:.3f}<extra>" + label + "</extra>",
            )
        )
    y_title = (
        "gate value (mean ± std over units)" if all_in_unit_interval else "value (mean ± std over units)"
    )
    fig.update_yaxes(title_text=y_title, **({"range": [0, 1]} if all_in_unit_interval else {}))
    labels = [LSTM_QUANTITY_LABELS[_quantity(gate)] for gate in gates]
    style_block_axis(fig, steps)
    add_meta(
        fig,
        quantities=[_quantity(gate) for gate in gates],
        image_index=_image_position(trace, gates[0], image_index),
        units=None if units is None else [int(unit) for unit in np.asarray(units).reshape(-1)],
    )
    return finish_figure(fig, columns, height_in, 2.5, legend_lines=legend_rows(labels, columns))


def plot_cell_state(
    trace: TraceLike,
    image_index: int = 0,
    units: Sequence[int] | np.ndarray | None = None,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """The cell state c_l of the memory units across the blocks, for one image.

    Without ``units`` every unit is a thin grey line and the black line is their mean;
    with ``units`` those units get one coloured, labelled line each (the mean over all
    units stays as a dashed black line). A dotted line marks c = 0.

    Args:
        trace: A CRMN trace.
        image_index: Which image of the batch.
        units: Memory units to highlight (default: draw all, unlabelled).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.5).

    Returns:
        A figure of line traces (one per unit drawn, then ``"mean over units"``);
        ``fig.layout.meta`` holds ``image_index``, ``units`` (when given),
        ``block_labels`` and ``stages``.
    """
    values = lstm_quantity(trace, "cell", image_index)
    steps, hidden = values.shape
    x = np.arange(steps)
    fig = go.Figure()
    if units is None:
        for unit in range(hidden):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values[:, unit],
                    mode="lines",
                    line={"color": "#9E9E9E", "width": 0.6},
                    name=f"unit {unit}",
                    showlegend=False,
                    hovertemplate=f"unit {unit}<br>block %{{x}}: c = %{{y:.3f}}<extra></extra>",
                )
            )
        mean_line = {"color": "#000000", "width": 1.5}
    else:
        for index, unit in enumerate(_select_units(units, hidden)):
            colour, dash = line_style(index)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values[:, unit],
                    mode="lines+markers",
                    line={"color": colour, "width": 1.25, "dash": dash},
                    marker={"color": colour, "size": 4},
                    name=f"unit {unit}",
                    hovertemplate=f"unit {unit}<br>block %{{x}}: c = %{{y:.3f}}<extra></extra>",
                )
            )
        mean_line = {"color": "#000000", "width": 1.25, "dash": "dash"}
    fig.add_trace(
        go.Scatter(
            x=x,
            y=values.mean(axis=1),
            mode="lines",
            line=mean_line,
            name="mean over units",
            hovertemplate="block %{x}: mean c = %{y:.3f}<extra></extra>",
        )
    )
    fig.add_hline(y=0, line={"color": "#7F7F7F", "width": 0.75, "dash": "dot"}, layer="below", opacity=1)
    fig.update_yaxes(title_text="cell state c")
    names = [trace.name for trace in fig.data if trace.showlegend is not False]
    style_block_axis(fig, steps)
    add_meta(
        fig,
        image_index=_image_position(trace, "cell", image_index),
        units=None if units is None else [int(unit) for unit in np.asarray(units).reshape(-1)],
    )
    return finish_figure(fig, columns, height_in, 2.5, legend_lines=legend_rows(names, columns))


def _most_changing_units(cell: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` units whose cell state varies most over the steps, in unit order."""
    order = np.argsort(-cell.std(axis=0), kind="stable")[:count]
    return np.sort(order)


def plot_memory_animation(
    trace: TraceLike,
    image_index: int = 0,
    units: Sequence[int] | np.ndarray | None = None,
    *,
    frame_duration_ms: int = 700,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """ "Watch the memory": the LSTM gates and cell state block by block, as an animation.

    The top panel shows the input, forget and output gates (grouped bars, fixed 0..1
    axis) of the chosen units at one step; the bottom panel their cell state c (fixed
    symmetric axis over all steps, so heights compare between frames). One Plotly frame
    per block; a slider picks the block and a play button steps through them.

    Args:
        trace: A CRMN trace.
        image_index: Which image of the batch.
        units: Memory units to show (default: the up to 16 units whose cell state varies
            most across the blocks, in unit order).
        frame_duration_ms: Time per block when playing.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 3.2).

    Returns:
        A figure with four bar traces (i, f, o on the top axes, c on the bottom axes)
        showing block 0, ``T`` frames named ``"block k"``, a slider and play/pause buttons.
        ``fig.layout.meta`` holds ``stages``, ``units`` (the bars' unit ids),
        ``block_labels`` (the frame names) and ``image_index``.
    """
    values = {q: lstm_quantity(trace, q, image_index) for q in (*_LOGISTIC_GATES, "cell")}
    steps, hidden = values["cell"].shape
    unit_ids = (
        _most_changing_units(values["cell"], min(hidden, _ANIMATION_UNITS))
        if units is None
        else _select_units(units, hidden)
    )
    labels = [str(unit) for unit in unit_ids]
    stages = crmn_stages(steps)
    gates_signed = float(values["output_gate"].min()) < 0  # tanh output gate
    cell_low, cell_high = symmetric_range(values["cell"][:, unit_ids])

    def bars(step: int) -> list[go.Bar]:
        drawn = []
        for quantity in (*_LOGISTIC_GATES, "cell"):
            drawn.append(
                go.Bar(
                    x=labels,
                    y=values[quantity][step, unit_ids],
                    name=LSTM_QUANTITY_LABELS[quantity],
                    marker={"color": QUANTITY_COLOURS[quantity]},
                    xaxis="x2" if quantity == "cell" else "x",
                    yaxis="y2" if quantity == "cell" else "y",
                    hovertemplate="unit %{x}: %{y:.3f}<extra>" + LSTM_QUANTITY_LABELS[quantity] + "</extra>",
                )
            )
        return drawn

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.06)
    for bar in bars(0):
        fig.add_trace(bar, row=2 if bar.yaxis == "y2" else 1, col=1)
    frame_names = [f"block {step}" for step in range(steps)]
    fig.frames = [
        go.Frame(data=bars(step), traces=[0, 1, 2, 3], name=name) for step, name in enumerate(frame_names)
    ]
    fig.update_layout(
        barmode="group",
        bargap=0.25,
        bargroupgap=0.05,
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        sliders=[
            {
                "active": 0,
                "x": 0.12,
                "len": 0.88,
                "y": -0.12,
                "yanchor": "top",
                "pad": {"t": 0, "b": 0},
                "currentvalue": {"prefix": "showing ", "font": {"size": 10}},
                "font": {"size": 9},
                "steps": [
                    {
                        "label": name,
                        "method": "animate",
                        "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
                    }
                    for name in frame_names
                ],
            }
        ],
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.12,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": 18, "r": 4},
                "showactive": False,
                "font": {"size": 9},
                "buttons": [
                    {
                        "label": "▶",
                        "method": "animate",
                        "args": [
                            None,
                            {
                                "frame": {"duration": frame_duration_ms, "redraw": True},
                                "fromcurrent": True,
                                "transition": {"duration": 0},
                            },
                        ],
                    },
                    {
                        "label": "❚❚",
                        "method": "animate",
                        "args": [[None], {"mode": "immediate", "frame": {"duration": 0, "redraw": False}}],
                    },
                ],
            }
        ],
        meta={
            "stages": stages,
            "units": unit_ids.tolist(),
            "block_labels": frame_names,
            "image_index": _image_position(trace, "cell", image_index),
        },
    )
    fig.update_yaxes(title_text="gate value", range=[-1, 1] if gates_signed else [0, 1], row=1, col=1)
    pad = 0.05 * (cell_high - cell_low)
    fig.update_yaxes(title_text="cell state c", range=[cell_low - pad, cell_high + pad], row=2, col=1)
    fig.update_xaxes(type="category", row=1, col=1, showticklabels=False)
    fig.update_xaxes(type="category", title_text="memory unit", row=2, col=1)
    fig.add_hline(y=0, line={"color": "#000000", "width": 0.75}, opacity=1, row=2, col=1)
    return finish_figure(fig, columns, height_in, 3.2)


def plot_gate_comparison(
    trace_a: TraceLike,
    trace_b: TraceLike,
    gate: str,
    labels: tuple[str, str] = ("image A", "image B"),
    *,
    image_indices: tuple[int, int] = (0, 0),
    units: Sequence[int] | np.ndarray | None = None,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """One LSTM quantity for two images (or two models) side by side, on one colour scale.

    Both panels are memory units x blocks heatmaps as in :func:`plot_gate_heatmap`,
    sharing the y axis and a single colour bar (0..1 for gates, symmetric over both
    panels otherwise), so equal colours mean equal values.

    Args:
        trace_a: Trace of the left image.
        trace_b: Trace of the right image (same number of units).
        gate: The LSTM quantity.
        labels: Panel titles.
        image_indices: Image of each trace's batch to show.
        units: Memory units to show (default: all).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.6).

    Returns:
        A figure with two heatmaps (named after ``labels``) on one shared colour axis;
        ``fig.layout.meta`` holds ``quantity``, ``labels``, ``image_indices``, ``units``,
        ``block_labels`` and ``stages``.
    """
    quantity = _quantity(gate)
    left = lstm_quantity(trace_a, quantity, image_indices[0])
    right = lstm_quantity(trace_b, quantity, image_indices[1])
    if left.shape[1] != right.shape[1]:
        raise ValueError(f"the traces have different numbers of units: {left.shape[1]} and {right.shape[1]}")
    unit_ids = _select_units(units, left.shape[1])
    label = LSTM_QUANTITY_LABELS[quantity]
    scale = _colour_range(quantity, np.concatenate([left[:, unit_ids], right[:, unit_ids]], axis=0))
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=labels)
    for col, (values, name) in enumerate(((left, labels[0]), (right, labels[1])), start=1):
        fig.add_trace(
            go.Heatmap(
                z=values[:, unit_ids].T,
                x=np.arange(values.shape[0]),
                y=[str(unit) for unit in unit_ids],
                name=name,
                coloraxis="coloraxis",
                hovertemplate=f"{name}<br>block %{{x}}<br>unit %{{y}}<br>{label} = %{{z:.3f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        style_block_axis(
            fig,
            values.shape[0],
            row=1,
            col=col,
            label_stages=False,
            boundary_colour=_boundary_colour_for(quantity, left),
        )
    fig.update_layout(
        coloraxis={
            "colorscale": scale["colorscale"],
            "cmin": scale["zmin"],
            "cmax": scale["zmax"],
            "colorbar": {"title": {"text": label, "side": "right"}, "thickness": 8},
        }
    )
    fig.update_yaxes(type="category", showline=False)
    fig.update_yaxes(title_text="memory unit", row=1, col=1)
    fig.update_xaxes(showline=False)
    add_meta(
        fig,
        quantity=quantity,
        labels=[str(label) for label in labels],
        image_indices=[
            _image_position(trace_a, quantity, image_indices[0]),
            _image_position(trace_b, quantity, image_indices[1]),
        ],
        units=[int(unit) for unit in unit_ids],
    )
    return finish_figure(fig, columns, height_in, 2.6)


def plot_gate_statistics(
    stats_means: np.ndarray | torch.Tensor,
    stats_stds: np.ndarray | torch.Tensor | None,
    class_names: Sequence[str],
    gate: str,
    *,
    spread: bool | None = None,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Per-class behaviour of one LSTM quantity over a data set: one line per class.

    Each line is the class's mean of the quantity averaged over the memory units, per
    block; the legend sits above the plot. With ``spread`` a light band shows ± the
    units' average standard deviation over the class's images (the typical
    image-to-image spread of a unit).

    Args:
        stats_means: Per-class means [classes, steps, units] (e.g. stacked from
            :meth:`crmn_viz.analysis.statistics.GateStatistics.mean` per class).
        stats_stds: Per-class standard deviations of the same shape, or ``None``.
        class_names: One name per class (legend entries).
        gate: The LSTM quantity summarised (sets the axis label and the 0..1 range).
        spread: Draw the ± std bands (needs ``stats_stds``); default: only for up to
            4 classes, where the bands stay readable.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.6).

    Returns:
        A figure with, per class, an optional band and a line named after the class
        whose y is ``stats_means[class].mean(axis=-1)``; ``fig.layout.meta`` holds
        ``quantity``, ``class_names``, ``block_labels`` and ``stages``.
    """
    quantity = _quantity(gate)
    means = to_numpy(stats_means)
    if means.ndim != 3:
        raise ValueError(f"stats_means must be [classes, steps, units], got shape {means.shape}")
    stds = None if stats_stds is None else to_numpy(stats_stds)
    if stds is not None and stds.shape != means.shape:
        raise ValueError(f"stats_stds has shape {stds.shape}, stats_means {means.shape}")
    if len(class_names) != means.shape[0]:
        raise ValueError(f"{means.shape[0]} classes but {len(class_names)} class names")
    steps = means.shape[1]
    x = np.arange(steps)
    fig = go.Figure()
    for index, name in enumerate(class_names):
        colour, dash = line_style(index)
        line = means[index].mean(axis=-1)
        if stds is not None and (spread if spread is not None else len(class_names) <= 4):
            width = stds[index].mean(axis=-1)
            band = _band(x, line - width, line + width, colour, str(name))
            band.fillcolor = rgba(colour, 0.1)
            fig.add_trace(band)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=line,
                mode="lines+markers",
                line={"color": colour, "width": 1.25, "dash": dash},
                marker={"color": colour, "size": 4},
                name=str(name),
                legendgroup=str(name),
                hovertemplate="block %{x}: %{y:.3f}<extra>" + str(name) + "</extra>",
            )
        )
    label = LSTM_QUANTITY_LABELS[quantity]
    # the output gate may be a tanh (``output_gate_activation``): in [0, 1] only if its values are
    bounded = quantity in _LOGISTIC_GATES and (quantity != "output_gate" or float(means.min()) >= 0.0)
    fig.update_yaxes(title_text=f"{label} (mean over units)", **({"range": [0, 1]} if bounded else {}))
    style_block_axis(fig, steps)
    add_meta(fig, quantity=quantity, class_names=[str(name) for name in class_names])
    rows = legend_rows([str(name) for name in class_names], columns)
    return finish_figure(fig, columns, height_in, 2.6, legend_lines=rows)
