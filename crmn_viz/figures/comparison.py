"""Figures of two classifiers compared on the same images (the CRMN beside its own ResNet).

Pure functions of a :class:`~crmn_viz.analysis.comparison.ModelComparison`; none runs a model.

* :func:`plot_per_class_accuracy`: grouped bars per class, A beside B, with Wilson intervals.
* :func:`plot_agreement_matrix`: counts of A's prediction x B's prediction (diagonal = agree).
* :func:`plot_correctness`: the 2 x 2 right/wrong table behind the McNemar test.
* :func:`plot_stepwise_accuracy`: the step-wise read-out's accuracy after every block, beside
  both models' final accuracies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import plotly.graph_objects as go

from crmn_viz.figures.layout import add_meta, finish_figure
from crmn_viz.figures.memory import style_block_axis
from crmn_viz.figures.theme import OKABE_ITO, SEQUENTIAL_COLORSCALE

if TYPE_CHECKING:
    from crmn_viz.analysis.comparison import ModelComparison

__all__ = [
    "COLOUR_A",
    "COLOUR_B",
    "plot_agreement_matrix",
    "plot_correctness",
    "plot_per_class_accuracy",
    "plot_stepwise_accuracy",
]

COLOUR_A = OKABE_ITO["blue"]
"""Model A (the model with the memory): the CRMN's colour of :data:`~crmn_viz.figures.theme.MODEL_COLOURS`."""
COLOUR_B = OKABE_ITO["reddish_purple"]
"""Model B (the plain ResNet): the ResNet's colour."""


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _headline(fig: go.Figure, text: str) -> None:
    """A line of text over the plot's top-left corner (paper figures drop titles; this stays)."""
    fig.add_annotation(
        text=text,
        x=0.0,
        xref="paper",
        xanchor="left",
        y=1.0,
        yref="paper",
        yanchor="bottom",
        showarrow=False,
        align="left",
        font={"size": 10},
    )


def _provenance(cmp: ModelComparison) -> dict[str, object]:
    """What every comparison figure records: both models, the data set, the number of images."""
    return {"name_a": cmp.name_a, "name_b": cmp.name_b, "dataset": cmp.dataset, "count": int(cmp.count)}


def plot_per_class_accuracy(
    cmp: ModelComparison, *, columns: Literal[1, 2] = 2, height_in: float | None = None
) -> go.Figure:
    """Accuracy per class, model A's bar beside model B's, with Wilson 95% intervals.

    The legend gives each model's overall accuracy.

    Returns:
        Two bar traces (A, B), x the class names, y the accuracy in percent (NaN for a class with no
        image). ``layout.meta`` holds ``name_a``, ``name_b``, ``dataset``, ``count``,
        ``class_names``, ``per_class_n``, ``accuracy_a`` and ``accuracy_b`` (overall) and
        ``per_class_accuracy_a`` / ``_b`` (fractions).
    """
    names = [row["class"] for row in cmp.per_class]
    fig = go.Figure()
    for which, name, overall, colour in (
        ("a", cmp.name_a, cmp.accuracy_a, COLOUR_A),
        ("b", cmp.name_b, cmp.accuracy_b, COLOUR_B),
    ):
        accuracy = np.array([row[f"accuracy_{which}"] for row in cmp.per_class], dtype=np.float64)
        low, high = (np.array([row[f"interval_{which}"][k] for row in cmp.per_class]) for k in (0, 1))
        fig.add_trace(
            go.Bar(
                x=names,
                y=100 * accuracy,
                name=f"{name} ({_percent(overall)})",
                marker={"color": colour},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": 100 * (high - accuracy),
                    "arrayminus": 100 * (accuracy - low),
                    "thickness": 0.75,
                    "width": 2,
                    "color": "#444444",
                },
                customdata=np.array([row["n"] for row in cmp.per_class]),
                hovertemplate=f"{name}<br>%{{x}}: %{{y:.1f}}% of %{{customdata}} images<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", bargap=0.25, bargroupgap=0.05)
    fig.update_xaxes(title_text="true class", type="category")
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100])
    add_meta(
        fig,
        **_provenance(cmp),
        class_names=names,
        per_class_n=[int(row["n"]) for row in cmp.per_class],
        accuracy_a=float(cmp.accuracy_a),
        accuracy_b=float(cmp.accuracy_b),
        per_class_accuracy_a=[float(row["accuracy_a"]) for row in cmp.per_class],
        per_class_accuracy_b=[float(row["accuracy_b"]) for row in cmp.per_class],
    )
    return finish_figure(fig, columns, height_in, 2.6, legend_lines=1)


def plot_agreement_matrix(
    cmp: ModelComparison, *, columns: Literal[1, 2] = 1, height_in: float | None = None
) -> go.Figure:
    """How often A predicts class i while B predicts class j, on the same images.

    The diagonal is where the two agree; its sum over the number of images is the agreement,
    written over the plot. Cells show the counts; the colours span the off-diagonal counts (the
    disagreements), so the larger diagonal saturates.

    Returns:
        One heatmap, z = counts [C, C] (row: A's prediction, column: B's prediction).
        ``layout.meta`` holds ``name_a``, ``name_b``, ``dataset``, ``count``, ``class_names``,
        ``agreement`` and ``agreement_matrix``.
    """
    names = list(cmp.class_names)
    counts = np.asarray(cmp.agreement_matrix, dtype=np.int64)
    off_diagonal = counts[~np.eye(len(names), dtype=bool)]
    # the colours span the disagreements; the (larger) diagonal saturates, its counts stay written
    top = max(1, int(off_diagonal.max()) if off_diagonal.size else 1)
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=names,
            y=names,
            colorscale=SEQUENTIAL_COLORSCALE,
            zmin=0,
            zmax=top,
            text=counts,
            texttemplate="%{text}",
            textfont={"size": 7},
            colorbar={"title": {"text": "images (off the diagonal)"}, "thickness": 8},
            hovertemplate=(f"{cmp.name_a}: %{{y}}<br>{cmp.name_b}: %{{x}}<br>%{{z}} images<extra></extra>"),
        )
    )
    _headline(fig, f"agreement {_percent(cmp.agreement)} of {cmp.count} images (the diagonal)")
    fig.update_xaxes(title_text=f"{cmp.name_b} predicts", type="category", tickangle=-45, constrain="domain")
    fig.update_yaxes(
        title_text=f"{cmp.name_a} predicts",
        type="category",
        autorange="reversed",
        scaleanchor="x",
        constrain="domain",
    )
    add_meta(
        fig,
        **_provenance(cmp),
        class_names=names,
        agreement=float(cmp.agreement),
        agreement_matrix=counts.tolist(),
    )
    return finish_figure(fig, columns, height_in, 3.3)


def plot_correctness(
    cmp: ModelComparison, *, columns: Literal[1, 2] = 1, height_in: float | None = None
) -> go.Figure:
    """The 2 x 2 table of right and wrong answers, with the difference's interval and the exact
    McNemar p-value written over it.

    The off-diagonal cells (only A right, only B right) are the discordant images the McNemar
    test weighs (:func:`~crmn_viz.analysis.comparison.exact_mcnemar_p`).

    Returns:
        One heatmap, z = counts [2, 2] (rows: A right / wrong; columns: B right / wrong).
        ``layout.meta`` holds ``name_a``, ``name_b``, ``dataset``, ``count``, ``correctness``,
        ``mcnemar_p``, ``accuracy_difference`` and ``accuracy_difference_ci``.
    """
    counts = np.asarray(cmp.correctness, dtype=np.int64)
    share = counts / max(1, int(cmp.count))
    text = [[f"{counts[i, j]}<br>({_percent(share[i, j])})" for j in range(2)] for i in range(2)]
    fig = go.Figure(
        go.Heatmap(
            z=counts,
            x=["right", "wrong"],
            y=["right", "wrong"],
            colorscale=SEQUENTIAL_COLORSCALE,
            zmin=0,
            text=text,
            texttemplate="%{text}",
            textfont={"size": 8},
            showscale=False,
            hovertemplate=f"{cmp.name_a} %{{y}}, {cmp.name_b} %{{x}}: %{{z}} images<extra></extra>",
        )
    )
    low, high = cmp.accuracy_difference_ci
    _headline(
        fig,
        f"accuracy difference {100 * cmp.accuracy_difference:+.1f} points "
        f"[{100 * low:+.1f}, {100 * high:+.1f}]<br>exact McNemar p = {cmp.mcnemar_p:.3g}",
    )
    fig.update_xaxes(type="category", title_text=cmp.name_b)
    fig.update_yaxes(type="category", autorange="reversed", title_text=cmp.name_a)
    add_meta(
        fig,
        **_provenance(cmp),
        correctness=counts.tolist(),
        mcnemar_p=float(cmp.mcnemar_p),
        accuracy_difference=float(cmp.accuracy_difference),
        accuracy_difference_ci=[float(low), float(high)],
    )
    styled = finish_figure(fig, columns, height_in, 2.2)
    styled.layout.margin.t = (styled.layout.margin.t or 0) + 14  # the headline's second line
    return styled


def plot_stepwise_accuracy(
    cmp: ModelComparison, *, columns: Literal[1, 2] = 1, height_in: float | None = None
) -> go.Figure:
    """Accuracy of the step-wise read-out after every block, beside both final accuracies.

    One line per model with a step-wise read-out (``stepwise_accuracy_a`` / ``_b``), and a
    dashed horizontal line per model at its own accuracy (the last step of a read-out is the
    model's output, so its line ends on its dashed line).

    Raises:
        ValueError: neither model has a step-wise read-out in ``cmp``.

    Returns:
        ``layout.meta`` holds ``name_a``, ``name_b``, ``dataset``, ``count``,
        ``stepwise_accuracy_a`` / ``_b`` (or None), ``accuracy_a`` and ``accuracy_b``, and the
        block axis's ``block_labels`` and ``stages``.
    """
    curves = [
        (name, steps, colour)
        for name, steps, colour in (
            (cmp.name_a, cmp.stepwise_accuracy_a, COLOUR_A),
            (cmp.name_b, cmp.stepwise_accuracy_b, COLOUR_B),
        )
        if steps is not None
    ]
    if not curves:
        raise ValueError("neither model of the comparison has a step-wise read-out")
    num_steps = max(len(steps) for _, steps, _ in curves)
    fig = go.Figure()
    for name, steps, colour in curves:
        fig.add_trace(
            go.Scatter(
                x=np.arange(len(steps)),
                y=100 * np.asarray(steps, dtype=np.float64),
                mode="lines+markers",
                name=f"{name}, read-out after each block",
                line={"color": colour},
                marker={"size": 4},
                hovertemplate=f"{name}<br>block %{{x}}: %{{y:.1f}}%<extra></extra>",
            )
        )
    for name, accuracy, colour in (
        (cmp.name_a, cmp.accuracy_a, COLOUR_A),
        (cmp.name_b, cmp.accuracy_b, COLOUR_B),
    ):
        fig.add_trace(
            go.Scatter(
                x=[-0.5, num_steps - 0.5],
                y=[100 * accuracy] * 2,
                mode="lines",
                name=f"{name} ({_percent(accuracy)})",
                line={"color": colour, "dash": "dash", "width": 1},
                hovertemplate=f"{name}: %{{y:.1f}}%<extra></extra>",
            )
        )
    style_block_axis(fig, num_steps)
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 100])
    add_meta(
        fig,
        **_provenance(cmp),
        stepwise_accuracy_a=None
        if cmp.stepwise_accuracy_a is None
        else [float(v) for v in cmp.stepwise_accuracy_a],
        stepwise_accuracy_b=None
        if cmp.stepwise_accuracy_b is None
        else [float(v) for v in cmp.stepwise_accuracy_b],
        accuracy_a=float(cmp.accuracy_a),
        accuracy_b=float(cmp.accuracy_b),
    )
    return finish_figure(fig, columns, height_in, 2.6, legend_lines=2)
