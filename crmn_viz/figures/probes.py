"""Figure of linear probes: test accuracy of a linear classifier at every residual block.

A pure function of a :class:`~crmn_viz.analysis.probes.ProbeResult` (and, optionally, a per-step
read-out accuracy); it runs no model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go

from crmn_viz.figures.arrays import rgba, to_numpy
from crmn_viz.figures.layout import add_meta, finish_figure, legend_rows
from crmn_viz.figures.theme import OKABE_ITO, FontSizes, pt_to_px

if TYPE_CHECKING:
    from crmn_viz.analysis.probes import ProbeResult

__all__ = ["FEATURE_LABELS", "plot_probes"]

FEATURE_LABELS = {
    "block": "probe on pooled block output",
    "hidden": "probe on LSTM hidden state h_l",
}
"""Legend text of each probe feature."""

FEATURE_COLOURS = {"block": OKABE_ITO["reddish_purple"], "hidden": OKABE_ITO["blue"]}
READOUT_COLOUR = OKABE_ITO["orange"]
CHANCE_COLOUR = "#7F7F7F"
_STAGE_LINE = {"color": "#BDBDBD", "width": 0.75, "dash": "dot"}


def plot_probes(
    result: ProbeResult,
    readout_accuracy: Any = None,
    readout_label: str = "CRMN readout",
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Test accuracy of the linear probe of every step, with 95% intervals and the chance level.

    The x axis numbers the residual blocks from 1 (block ``l`` is LSTM step ``l``; the traces'
    ``blocks.<k>.out`` is block ``k + 1``). One line per probe feature (the pooled block output
    and, for a model with a memory, the hidden state ``h_l``) with a band for its percentile
    bootstrap 95% interval over the test images; a dashed line at the chance level (always the
    training subset's majority class); dotted lines between stages.

    Args:
        result: the probes (:func:`crmn_viz.analysis.probes.linear_probes`).
        readout_accuracy: optional [T] accuracy per step of another read-out on the same test
            images, e.g. the CRMN's step-wise read-out beside a ResNet's block probes.
        readout_label: legend text of that line.
        columns: printed width: 1 or 2 columns.
        height_in: printed height in inches (default 2.6).

    Returns:
        The figure: per feature a band trace (named ``"<feature> 95% interval"``) and a line whose
        ``y`` is ``result.accuracy[feature]``; the chance line (``y`` = ``result.chance``); the
        read-out line when given. ``layout.meta`` holds the accuracies, intervals, training
        accuracies, chance, train/test counts, the chosen L2 strengths, feature sizes and pool.

    Raises:
        ValueError: ``readout_accuracy`` is not one value per step.
    """
    steps = int(result.steps)
    x = np.arange(1, steps + 1)
    readout = None
    if readout_accuracy is not None:
        readout = to_numpy(readout_accuracy).astype(np.float64).reshape(-1)
        if readout.shape != (steps,):
            raise ValueError(f"readout_accuracy needs one value per step ({steps}), got {readout.shape[0]}")
    fig = go.Figure()
    labels = []
    for name in result.feature_names:
        colour = FEATURE_COLOURS.get(name, OKABE_ITO["bluish_green"])
        label = FEATURE_LABELS.get(name, f"probe on {name}")
        interval = np.asarray(result.accuracy_ci[name], dtype=np.float64)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([interval[:, 1], interval[::-1, 0]]),
                fill="toself",
                fillcolor=rgba(colour, 0.2),
                line={"width": 0},
                mode="lines",
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
                name=f"{name} 95% interval",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=np.asarray(result.accuracy[name], dtype=np.float64),
                mode="lines+markers",
                name=label,
                legendgroup=name,
                line={"color": colour, "width": 1.5},
                marker={"color": colour, "size": 5},
                customdata=interval,
                hovertemplate=(
                    f"{label}<br>block %{{x}}: %{{y:.3f}} "
                    "(95%: %{customdata[0]:.3f}-%{customdata[1]:.3f})<extra></extra>"
                ),
            )
        )
        labels.append(label)
    if readout is not None:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=readout,
                mode="lines+markers",
                name=readout_label,
                line={"color": READOUT_COLOUR, "width": 1.5, "dash": "dashdot"},
                marker={"color": READOUT_COLOUR, "size": 5, "symbol": "square"},
                hovertemplate=f"{readout_label}<br>block %{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
        labels.append(readout_label)
    chance_label = f"chance ({result.chance:.2f}, majority class)"
    fig.add_trace(
        go.Scatter(
            x=[0.5, steps + 0.5],
            y=[result.chance, result.chance],
            mode="lines",
            name=chance_label,
            line={"color": CHANCE_COLOUR, "width": 1, "dash": "dash"},
            hovertemplate=f"chance: %{{y:.3f}} ({result.chance_rule})<extra></extra>",
        )
    )
    labels.append(chance_label)
    _stage_boundaries(fig, result.stages)
    fig.update_xaxes(
        title_text="residual block (1 = first; LSTM step)",
        tickmode="array",
        tickvals=list(x) if steps <= 12 else list(x[:: int(np.ceil(steps / 12))]),
        range=[0.5, steps + 0.5],
    )
    fig.update_yaxes(title_text="test accuracy", range=[0, 1])
    names = list(result.feature_names)
    add_meta(
        fig,
        block_numbers=[int(v) for v in x],
        features=names,
        accuracy={name: [float(v) for v in result.accuracy[name]] for name in result.feature_names},
        accuracy_ci={name: np.asarray(result.accuracy_ci[name]).tolist() for name in result.feature_names},
        train_accuracy={
            name: [float(v) for v in result.train_accuracy[name]] for name in result.feature_names
        },
        chance=float(result.chance),
        chance_rule=result.chance_rule,
        train_images=int(result.train_images),
        test_images=int(result.test_images),
        regularisation={name: float(value) for name, value in result.regularisation.items()},
        regularisation_grid=[float(v) for v in result.regularisation_grid],
        feature_dims={name: [int(d) for d in dims] for name, dims in result.feature_dims.items()},
        pool=int(result.pool),
        seed=int(result.seed),
        stages=[int(s) for s in result.stages] or None,
        readout_label=readout_label if readout is not None else None,
        readout_accuracy=None if readout is None else [float(v) for v in readout],
    )
    return finish_figure(fig, columns, height_in, 2.6, legend_lines=legend_rows(labels, columns))


def _stage_boundaries(fig: go.Figure, stages: Any) -> None:
    """Dotted lines between stages and "stage s" above each (1-based block axis)."""
    stages = [int(stage) for stage in stages]
    if len(set(stages)) < 2:
        return
    starts = [0] + [k for k in range(1, len(stages)) if stages[k] != stages[k - 1]]
    ends = [*starts[1:], len(stages)]
    for start in starts[1:]:
        fig.add_vline(x=start + 0.5, line=_STAGE_LINE, layer="below", opacity=1)
    for start, end in zip(starts, ends):
        fig.add_annotation(
            x=(start + end + 1) / 2,
            y=1.0,
            yref="y domain",
            text=f"stage {stages[start] + 1}",
            showarrow=False,
            yanchor="bottom",
            font={"size": pt_to_px(FontSizes.tick)},
        )
