"""Figures of attribution checks: randomisation sanity checks, faithfulness curves, and each
method's faithfulness over many images.

Pure functions of results (:mod:`crmn_viz.analysis.sanity_checks`,
:mod:`crmn_viz.analysis.faithfulness`, :mod:`crmn_viz.analysis.attribution_trust`); none runs a
model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.layout import add_meta, finish_figure, line_style
from crmn_viz.figures.theme import OKABE_ITO, SEQUENTIAL_COLORSCALE

if TYPE_CHECKING:
    from crmn_viz.analysis.attribution_trust import TrustTable
    from crmn_viz.analysis.faithfulness import FaithfulnessCurve
    from crmn_viz.analysis.sanity_checks import SanityCheckResult

__all__ = ["plot_faithfulness_curves", "plot_sanity_check", "plot_trust_summary"]

RANDOM_COLOUR = "#8c8c8c"
"""The random attribution's curves and intervals: grey, dashed."""

CURVE_TITLES = {
    ("deletion", "most_relevant_first"): "deletion",
    ("deletion", "least_relevant_first"): "deletion (LeRF)",
    ("insertion", "most_relevant_first"): "insertion",
    ("insertion", "least_relevant_first"): "insertion (LeRF)",
    ("road", "most_relevant_first"): "ROAD MoRF",
    ("road", "least_relevant_first"): "ROAD LeRF",
}
"""Panel titles of faithfulness curves by ``(kind, order)``: MoRF / LeRF, most / least relevant
first (deletion and insertion are most relevant first unless marked)."""


def _unit_map(values: np.ndarray) -> np.ndarray:
    """|map| scaled to [0, 1] by its maximum (a zero map stays zero)."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0 else values


def plot_sanity_check(
    results: Sequence[SanityCheckResult],
    labels: Mapping[str, str] | None = None,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Similarity of each randomised model's map to the trained model's, with the maps beneath.

    The top panel draws, for every method (one colour each), the Spearman rank correlation of
    |map| (solid) and the SSIM of the [0, 1]-scaled |map| (dotted) against the randomisation
    stage; the first point, ``trained``, is the trained model's map (similarity 1). Beneath, one
    row per method: the trained map, then the map at every stage, each scaled to [0, 1].
    A map that keeps similarity near 1 while the model is randomised does not depend on what the
    model learned (Adebayo et al. 2018).

    Args:
        results: one :class:`SanityCheckResult` per method, all of the same model, image, target
            and mode (so of the same stages).
        labels: readable method names.

    Returns:
        The figure; ``layout.meta`` holds ``mode``, ``target``, ``stages``, ``methods`` and the
        ``spearman`` and ``ssim`` matrices [methods, stages].
    """
    if not results:
        raise ValueError("plot_sanity_check needs at least one result")
    stages = list(results[0].stages)
    if any(list(r.stages) != stages for r in results):
        raise ValueError("every sanity-check result must have the same stages")
    labels = dict(labels or {})
    x = ["trained", *stages]
    cols = len(x)
    rows = 1 + len(results)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        specs=[[{"colspan": cols}] + [None] * (cols - 1)] + [[{}] * cols for _ in results],
        row_heights=[0.46] + [0.54 / len(results)] * len(results),
        vertical_spacing=0.1 / rows + 0.04,
        horizontal_spacing=0.012,
    )
    for index, result in enumerate(results):
        name = labels.get(result.method, result.method)
        colour, _ = line_style(index)
        spearman = [1.0, *map(float, result.spearman)]
        ssim = [1.0, *map(float, result.ssim)]
        for values, metric, dash in ((spearman, "Spearman", "solid"), (ssim, "SSIM", "dot")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values,
                    mode="lines+markers",
                    name=f"{name}, {metric}",
                    line={"color": colour, "dash": dash},
                    marker={"size": 4},
                    hovertemplate=f"{name}<br>%{{x}}<br>{metric} = %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=1,
            )
        for col, values in enumerate([result.trained_map, *result.maps], start=1):
            fig.add_trace(
                go.Heatmap(
                    z=_unit_map(values),
                    zmin=0.0,
                    zmax=1.0,
                    colorscale=SEQUENTIAL_COLORSCALE,
                    showscale=False,
                    name=f"{name}: {x[col - 1]}",
                    hovertemplate=(
                        f"{name}, {x[col - 1]}<br>x %{{x}}, y %{{y}}<br>|map| %{{z:.2f}}<extra></extra>"
                    ),
                ),
                row=index + 2,
                col=col,
            )
            axis = fig.get_subplot(index + 2, col)
            fig.update_xaxes(
                showticklabels=False, ticks="", showgrid=False, showline=False, row=index + 2, col=col
            )
            fig.update_yaxes(
                showticklabels=False,
                ticks="",
                showgrid=False,
                showline=False,
                autorange="reversed",
                scaleanchor=axis.xaxis.plotly_name.replace("axis", ""),
                row=index + 2,
                col=col,
            )
            if col == 1:
                fig.update_yaxes(title_text=name, title_standoff=2, row=index + 2, col=col)
    fig.update_yaxes(title_text="similarity to trained", range=[-0.3, 1.05], row=1, col=1)
    fig.update_xaxes(type="category", row=1, col=1)  # the stages, output first; the caption says so
    add_meta(
        fig,
        mode=results[0].mode,
        target=results[0].target,
        stages=stages,
        methods=[result.method for result in results],
        spearman=[[float(v) for v in result.spearman] for result in results],
        ssim=[[float(v) for v in result.ssim] for result in results],
    )
    default = 2.4 + 0.75 * len(results)
    styled = finish_figure(fig, columns, height_in, default, legend_lines=max(1, len(results)))
    styled.layout.margin.b = max(styled.layout.margin.b or 0, 12)  # room under the last row of maps
    return styled


def plot_faithfulness_curves(
    curves: Sequence[FaithfulnessCurve],
    references: Sequence[FaithfulnessCurve] | None = None,
    label: str = "map",
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Faithfulness curves of one map, one panel per curve, a random map's curve on the same axes.

    Deletion (and ROAD, most relevant first): a faithful map's score falls fastest, so a lower
    area under the curve (AUC) is better; insertion (and ROAD, least relevant first): it rises
    fastest, a higher AUC is better. Each panel's title gives both AUCs.

    Args:
        curves: the map's curves (e.g. deletion and insertion).
        references: a random attribution's curves, in the same order (or None).
        label: the map's legend name, e.g. the method.

    Returns:
        The figure; ``layout.meta`` holds ``score``, ``target``, the panels' ``curves`` and their
        ``aucs`` (and ``random_aucs``).
    """
    if not curves:
        raise ValueError("plot_faithfulness_curves needs at least one curve")
    references = list(references or [])
    if references and len(references) != len(curves):
        raise ValueError("give one reference curve per curve (or none)")
    titles = []
    aucs = []
    for index, curve in enumerate(curves):
        title = CURVE_TITLES.get((curve.kind, curve.order), f"{curve.kind} ({curve.order})")
        entry = {"curve": title, "auc": float(curve.auc)}
        text = f"{title}: AUC {curve.auc:.2f}"
        if references:
            entry["random_auc"] = float(references[index].auc)
            text += f", random {references[index].auc:.2f}"
        titles.append(text)
        aucs.append(entry)
    cols = min(2, len(curves))
    rows = -(-len(curves) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.14,
        vertical_spacing=0.5 / rows if rows > 1 else 0.0,
    )
    colour = OKABE_ITO["blue"]
    for index, curve in enumerate(curves):
        row, col = index // cols + 1, index % cols + 1
        first = index == 0
        fig.add_trace(
            go.Scatter(
                x=100 * np.asarray(curve.fractions),
                y=np.asarray(curve.scores),
                mode="lines",
                name=label,
                legendgroup=label,
                showlegend=first,
                line={"color": colour},
                hovertemplate=f"{label}<br>%{{x:.0f}}% of pixels<br>score %{{y:.3f}}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        if references:
            reference = references[index]
            fig.add_trace(
                go.Scatter(
                    x=100 * np.asarray(reference.fractions),
                    y=np.asarray(reference.scores),
                    mode="lines",
                    name="random map",
                    legendgroup="random",
                    showlegend=first,
                    line={"color": RANDOM_COLOUR, "dash": "dash"},
                    hovertemplate="random map<br>%{x:.0f}% of pixels<br>score %{y:.3f}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        verb = "inserted" if curve.kind == "insertion" else "removed"
        fig.update_xaxes(title_text=f"pixels {verb} (%)", title_standoff=2, range=[0, 100], row=row, col=col)
        if col == 1:
            fig.update_yaxes(title_text=str(curve.options.get("score", "score")), row=row, col=col)
    fig.update_annotations(font={"size": 8})  # the panel titles
    add_meta(
        fig,
        score=curves[0].score_name,
        target=curves[0].target,
        curves=[entry["curve"] for entry in aucs],
        aucs=[entry["auc"] for entry in aucs],
        random_aucs=[entry["random_auc"] for entry in aucs] if references else None,
    )
    return finish_figure(fig, columns, height_in, 0.6 + 1.6 * rows, legend_lines=1)


def plot_trust_summary(
    table: TrustTable,
    labels: Mapping[str, str] | None = None,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Each method's deletion and insertion AUC over many images, beside a random map's.

    Two panels (deletion: lower is better; insertion: higher is better); one row per method,
    its mean with the bootstrap 95% interval (colour) and the random attribution's on the same
    images (grey).

    Returns:
        The figure; ``layout.meta`` holds ``images``, ``resamples``, ``most_faithful`` and
        ``verdict``.
    """
    labels = dict(labels or {})
    names = [labels.get(s.method, s.method) for s in table.summaries]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        horizontal_spacing=0.05,
        subplot_titles=("deletion AUC (lower is better)", "insertion AUC (higher is better)"),
    )
    for col, (own, random) in enumerate(
        (("deletion_auc", "random_deletion_auc"), ("insertion_auc", "random_insertion_auc")), start=1
    ):
        for field, colour, name, symbol in (
            (own, OKABE_ITO["blue"], "method", "circle"),
            (random, RANDOM_COLOUR, "random map", "x"),
        ):
            values = np.array([getattr(s, field) for s in table.summaries])
            fig.add_trace(
                go.Scatter(
                    x=values[:, 0],
                    y=names,
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    marker={"color": colour, "symbol": symbol, "size": 7},
                    error_x={
                        "type": "data",
                        "symmetric": False,
                        "array": values[:, 2] - values[:, 0],
                        "arrayminus": values[:, 0] - values[:, 1],
                        "thickness": 1,
                        "color": colour,
                    },
                    hovertemplate=f"%{{y}} ({name})<br>AUC %{{x:.3f}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text="mean, 95% bootstrap interval", row=1, col=col)
    fig.update_yaxes(autorange="reversed", type="category")
    images = table.summaries[0].images
    add_meta(
        fig,
        images=images,
        resamples=table.resamples,
        steps=table.steps,
        most_faithful=table.most_faithful,
        verdict=table.verdict,
    )
    return finish_figure(fig, columns, height_in or max(1.8, 1.0 + 0.22 * len(names)), 2.2, legend_lines=1)
