"""Figures of the two streams of a ResNet in ResNet (Targ, Almeida & Lyman 2016).

Every generalized residual block k carries a residual stream ``r`` (with identity
shortcuts) and a transient stream ``m`` (without), recorded after their ReLU as
``blocks.{k}.residual`` and ``blocks.{k}.transient`` [B, C_k, H_k, W_k].

* :func:`plot_stream_norms`: how strongly each stream is active, block by block.
* :func:`plot_stream_maps`: where in the image each stream is active, for one block.

None of these runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.arrays import check_index, to_numpy
from crmn_viz.figures.layout import image_figure_height_in
from crmn_viz.figures.theme import OKABE_ITO, SEQUENTIAL_COLORSCALE, apply_paper_style

__all__ = ["STREAM_COLOURS", "plot_stream_maps", "plot_stream_norms", "rir_block_count", "stream_rms"]

STREAM_COLOURS: dict[str, str] = {"residual": OKABE_ITO["blue"], "transient": OKABE_ITO["vermillion"]}
"""One colour per stream, the same in every figure."""

_STREAMS = ("residual", "transient")
_SYMBOLS = {"residual": "r", "transient": "m"}

TraceLike = Mapping[str, Any]


def rir_block_count(trace: TraceLike) -> int:
    """Number of generalized blocks whose two streams are both in ``trace``.

    Args:
        trace: An RiR trace.

    Returns:
        K such that ``blocks.{k}.residual`` and ``blocks.{k}.transient`` exist for k < K.

    Raises:
        KeyError: Block 0's streams are not in the trace.
    """
    count = 0
    while f"blocks.{count}.residual" in trace and f"blocks.{count}.transient" in trace:
        count += 1
    if count == 0:
        raise KeyError("the trace holds no RiR streams ('blocks.0.residual' and 'blocks.0.transient')")
    return count


def stream_rms(values: Any) -> np.ndarray:
    """Mean L2 norm per channel-position of stream tensors: the RMS activation.

    ``sqrt(mean over c, h, w of x[c, h, w] ** 2)`` = ``||x||_2 / sqrt(C * H * W)``, so
    blocks of different widths and resolutions compare directly.

    Args:
        values: A stream tensor [B, C, H, W] (or [C, H, W]).

    Returns:
        One value per image, [B] (or a 0-d array).
    """
    array = to_numpy(values)
    return np.sqrt(np.mean(array**2, axis=(-3, -2, -1)))


def plot_stream_norms(
    trace: TraceLike,
    image_index: int | None = None,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Activity of the residual and transient streams in every generalized block.

    For each block and stream the RMS activation (the L2 norm of the stream divided by
    sqrt(channels x positions), see :func:`stream_rms`) is drawn as a line with
    markers over the block index. With ``image_index=None`` it is averaged over the
    batch, with error bars of ±1 standard deviation over the images. Dotted lines mark
    where the resolution changes (a new stage).

    Args:
        trace: An RiR trace.
        image_index: One image of the batch, or ``None`` for the batch mean.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: 2.4).

    Returns:
        A figure with two line traces named ``"residual r"`` and ``"transient m"``
        (x = block index, y = RMS activation, ``error_y`` = the std over the batch);
        ``fig.layout.meta`` holds ``image_index`` (``None``: the batch mean, left out),
        ``batch_size`` and ``block_shapes`` ([K][2], each block's feature-map size).
    """
    count = rir_block_count(trace)
    per_image = {
        stream: np.stack([stream_rms(trace[f"blocks.{k}.{stream}"]) for k in range(count)], axis=1)
        for stream in _STREAMS
    }  # [B, K]
    batch = per_image["residual"].shape[0]
    x = np.arange(count)
    fig = go.Figure()
    for stream, symbol in zip(_STREAMS, ("circle", "square")):
        values = per_image[stream]
        if image_index is None:
            y = values.mean(axis=0)
            error = {
                "type": "data",
                "array": values.std(axis=0),
                "visible": batch > 1,
                "thickness": 1,
                "width": 3,
            }
        else:
            y = values[check_index(image_index, batch, "image_index")]
            error = None
        fig.add_trace(
            go.Scatter(
                x=x,
                y=y,
                mode="lines+markers",
                name=f"{stream} {_SYMBOLS[stream]}",
                line={"color": STREAM_COLOURS[stream], "width": 1.5},
                marker={"color": STREAM_COLOURS[stream], "size": 5, "symbol": symbol},
                error_y=error,
                hovertemplate="block %{x}: RMS %{y:.3f}<extra>" + stream + "</extra>",
            )
        )
    shapes = [tuple(trace[f"blocks.{k}.residual"].shape[-2:]) for k in range(count)]
    for k in range(1, count):
        if shapes[k] != shapes[k - 1]:
            fig.add_vline(x=k - 0.5, line={"color": "#000000", "width": 1, "dash": "dot"}, opacity=1)
    step = max(1, int(np.ceil(count / 12)))
    fig.update_xaxes(
        title_text="generalized residual block",
        tickmode="array",
        tickvals=list(range(0, count, step)),
        range=[-0.5, count - 0.5],
    )
    averaged = " (batch mean ± std)" if image_index is None and batch > 1 else ""
    fig.update_yaxes(title_text=f"RMS activation{averaged}", rangemode="tozero")
    fig.update_layout(
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        meta={
            "image_index": None if image_index is None else check_index(image_index, batch, "image_index"),
            "batch_size": int(batch),
            "block_shapes": [[int(size) for size in shape] for shape in shapes],
        },
    )
    return apply_paper_style(fig, columns=columns, height_in=height_in or 2.4)


def plot_stream_maps(
    trace: TraceLike,
    block: int,
    image_index: int = 0,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Channel-mean maps of the residual and transient streams of one block, side by side.

    Each panel is the mean over channels of one stream (after its ReLU, so >= 0) at
    every position of the block's feature map, on one shared sequential colour scale
    from 0 to the larger maximum of the two, so brightness compares across streams.

    Args:
        trace: An RiR trace.
        block: Generalized block index (negative counts from the end).
        image_index: Which image of the batch.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: fitted to the map's aspect).

    Returns:
        A figure with two heatmaps named ``"residual r"`` and ``"transient m"`` whose
        ``z`` is ``trace[f"blocks.{block}.<stream>"][image].mean(0)`` ([H, W], row 0 at
        the top); ``fig.layout.meta`` holds ``block``, ``size`` and ``image_index``.
    """
    block = check_index(block, rir_block_count(trace), "block")
    maps = {}
    for stream in _STREAMS:
        values = to_numpy(trace[f"blocks.{block}.{stream}"])
        image_position = check_index(image_index, values.shape[0], "image_index")
        maps[stream] = values[image_position].mean(axis=0)
    high = max(float(maps[s].max()) for s in _STREAMS)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["residual stream r", "transient stream m"],
        shared_yaxes=True,
        horizontal_spacing=0.05,
    )
    for col, stream in enumerate(_STREAMS, start=1):
        fig.add_trace(
            go.Heatmap(
                z=maps[stream],
                name=f"{stream} {_SYMBOLS[stream]}",
                coloraxis="coloraxis",
                hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra>" + stream + "</extra>",
            ),
            row=1,
            col=col,
        )
    height, width = maps["residual"].shape
    for index in (1, 2):
        suffix = "" if index == 1 else str(index)
        fig.layout[f"yaxis{suffix}"].update(
            scaleanchor=f"x{suffix}", scaleratio=1, constrain="domain", autorange="reversed"
        )
        fig.layout[f"xaxis{suffix}"].update(constrain="domain")
    fig.update_xaxes(title_text="x (feature-map cell)", showline=False)
    fig.update_yaxes(showline=False)
    fig.update_yaxes(title_text="y (feature-map cell)", col=1)
    fig.update_layout(
        coloraxis={
            "colorscale": SEQUENTIAL_COLORSCALE,
            "cmin": 0.0,
            "cmax": high if high > 0 else 1.0,
            "colorbar": {"title": {"text": f"channel mean, block {block}", "side": "right"}, "thickness": 8},
        },
        meta={"block": block, "size": [height, width], "image_index": image_position},
    )
    default = image_figure_height_in(
        columns, height, width, panel_cols=2, reserved_width_px=140, reserved_height_px=75
    )
    return apply_paper_style(fig, columns=columns, height_in=height_in or default)
