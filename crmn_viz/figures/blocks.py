"""Figures of residual blocks: what every channel of every block output holds for one image.

:func:`plot_block_channels` draws a :class:`~crmn_viz.analysis.block_channels.BlockChannelSummary`
(channel means, channel L2 norms and overall norms of the block outputs ``x_l`` of He et al. 2015,
the CRMN paper's eq. 1): channels x blocks heatmaps of the means and of the norms, and the overall
norm per block beneath them, one column per stream (RiR's residual and transient streams). Blocks
are labelled ``block k`` as the trace names ``blocks.{k}.out`` are, and the stages (where the
channel count doubles and the map halves) are marked with dotted lines, as on the LSTM figures.

A pure function of the summary: it runs no model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.layout import add_meta, finish_figure, line_style
from crmn_viz.figures.memory import style_block_axis
from crmn_viz.figures.theme import DIVERGING_COLORSCALE, SEQUENTIAL_COLORSCALE, symmetric_range

if TYPE_CHECKING:
    from crmn_viz.analysis.block_channels import BlockChannelSummary

__all__ = ["plot_block_channels"]

_STREAM_TITLE_SHIFT_PX = 14


def _means_scale(matrix: np.ndarray) -> dict[str, Any]:
    """Viridis from 0 for non-negative means (post-activation blocks end in a ReLU), else the
    diverging scale symmetric about 0."""
    finite = matrix[np.isfinite(matrix)]
    if finite.size and float(finite.min()) < 0:
        low, high = symmetric_range(finite)
        return {"colorscale": DIVERGING_COLORSCALE, "cmin": low, "cmax": high, "boundary": "#000000"}
    high = float(finite.max()) if finite.size else 1.0
    return {"colorscale": SEQUENTIAL_COLORSCALE, "cmin": 0.0, "cmax": high or 1.0, "boundary": "#FFFFFF"}


def _colour_bar(fig: go.Figure, row_axis: str, title: str) -> dict[str, Any]:
    """A colour bar beside one row of panels (``row_axis``: that row's first y axis)."""
    low, high = fig.layout[row_axis].domain
    return {
        "title": {"text": title, "side": "right"},
        "thickness": 8,
        "len": high - low,
        "y": (low + high) / 2,
        "yanchor": "middle",
    }


def plot_block_channels(
    summary: BlockChannelSummary,
    *,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Channel means and channel L2 norms of every block output, and each block's overall norm.

    Rows: (1) a channels x blocks heatmap of the channel means (mean over positions), (2) the same
    of the channel L2 norms over positions, (3) the overall L2 norm of each block output; one
    column per stream. A block narrower than the widest leaves its upper channels empty. The means
    use viridis from 0 when none is negative, else a diverging scale symmetric about 0; the norms
    use viridis from 0. Dotted lines mark the stage boundaries (``summary.stages``).

    Args:
        summary: from :func:`crmn_viz.analysis.block_channels.block_channel_summary`.
        columns: printed width, 1 or 2 columns.
        height_in: printed height in inches (default 4.2).

    Returns:
        The figure: per stream, heatmaps named ``"<stream> channel means"`` and ``"<stream>
        channel norms"`` (``"channel means"``... for one-stream models) whose ``z`` is
        [max C, blocks] (``z[c, k]``: channel c of block k; NaN beyond the block's width), and a
        ``go.Scatter`` ``"<stream> norm"`` of the overall norms. ``layout.meta`` holds
        ``names``, ``streams``, ``shapes``, ``block_labels``, ``stages``, ``total_norms`` and
        ``rms`` (per row of the summary) and ``image_index``.
    """
    streams = summary.stream_names
    blocks = sorted(dict.fromkeys(summary.blocks))
    count = len(blocks)
    prefix = {stream: "" if stream is None else f"{stream} " for stream in streams}
    fig = make_subplots(
        rows=3,
        cols=len(streams),
        shared_xaxes=True,
        row_heights=[0.4, 0.4, 0.2],
        vertical_spacing=0.06,
        horizontal_spacing=0.08,
        column_titles=None if streams == (None,) else [f"{stream} stream" for stream in streams],
    )
    means = {stream: summary.matrix("means", stream) for stream in streams}
    norms = {stream: summary.matrix("norms", stream) for stream in streams}
    mean_scale = _means_scale(np.concatenate([m.ravel() for m in means.values()]))
    norm_high = max(float(np.nanmax(n)) if np.isfinite(n).any() else 0.0 for n in norms.values()) or 1.0
    for col, stream in enumerate(streams, start=1):
        rows = summary.rows_of(stream)
        stages = [summary.stages[row] for row in rows]
        panels = (
            ("channel means", "mean", means[stream], "coloraxis"),
            ("channel norms", "L2 norm", norms[stream], "coloraxis2"),
        )
        for row, (kind, value_label, matrix, axis) in enumerate(panels, start=1):
            fig.add_trace(
                go.Heatmap(
                    z=matrix.T,
                    x=np.arange(count),
                    y=np.arange(matrix.shape[1]),
                    name=f"{prefix[stream]}{kind}",
                    coloraxis=axis,
                    hovertemplate=f"{prefix[stream]}block %{{x}}, channel %{{y}}<br>{value_label} %{{z:.4g}}"
                    "<extra></extra>",
                ),
                row=row,
                col=col,
            )
            style_block_axis(
                fig,
                count,
                stages,
                row=row,
                col=col,
                label_stages=row == 1,
                title=None,
                boundary_colour=mean_scale["boundary"] if row == 1 else "#FFFFFF",
            )
        colour, _ = line_style(col - 1)
        fig.add_trace(
            go.Scatter(
                x=np.arange(count),
                y=summary.total_norms[rows],
                customdata=summary.rms[rows],
                mode="lines+markers",
                name=f"{prefix[stream]}norm",
                line={"color": colour, "width": 1.2},
                marker={"size": 4, "color": colour},
                showlegend=False,
                hovertemplate=f"{prefix[stream]}block %{{x}}<br>L2 norm %{{y:.4g}}<br>RMS %{{customdata:.4g}}"
                "<extra></extra>",
            ),
            row=3,
            col=col,
        )
        style_block_axis(fig, count, stages, row=3, col=col, label_stages=False, title="block")
    fig.update_yaxes(title_text="channel", row=1, col=1)
    fig.update_yaxes(title_text="channel", row=2, col=1)
    fig.update_yaxes(rangemode="tozero", row=3)
    fig.update_yaxes(title_text="‖x_l‖ (L2)", row=3, col=1)
    fig.update_yaxes(showline=False, row=1)
    fig.update_yaxes(showline=False, row=2)
    fig.update_xaxes(showline=False, row=1)
    fig.update_xaxes(showline=False, row=2)
    fig.update_layout(
        coloraxis={
            "colorscale": mean_scale["colorscale"],
            "cmin": mean_scale["cmin"],
            "cmax": mean_scale["cmax"],
            "colorbar": _colour_bar(fig, "yaxis", "channel mean"),
        },
        coloraxis2={
            "colorscale": SEQUENTIAL_COLORSCALE,
            "cmin": 0.0,
            "cmax": norm_high,
            "colorbar": _colour_bar(fig, f"yaxis{len(streams) + 1}", "channel L2 norm"),
        },
    )
    add_meta(
        fig,
        names=list(summary.names),
        streams=list(summary.streams) if streams != (None,) else None,
        shapes=[list(shape) for shape in summary.shapes],
        total_norms=[float(value) for value in summary.total_norms],
        rms=[float(value) for value in summary.rms],
        image_index=summary.image_index,
    )
    if streams != (None,):  # the stream titles go above the stage labels
        fig.for_each_annotation(
            lambda note: note.update(yshift=_STREAM_TITLE_SHIFT_PX),
            selector=lambda note: note.text in {f"{stream} stream" for stream in streams},
        )
    styled = finish_figure(fig, columns, height_in, 4.2)
    if streams != (None,):
        styled.layout.margin.t = (styled.layout.margin.t or 0) + _STREAM_TITLE_SHIFT_PX
    return styled
