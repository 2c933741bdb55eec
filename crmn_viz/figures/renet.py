"""Figures of ReNet's recurrent sweeps (Visin et al. 2015).

A ReNet layer cuts its input into non-overlapping patches and runs four RNNs over the
patch grid: ``vertical_fwd`` down every column (top to bottom), ``vertical_bwd`` up
every column, then, on their concatenation, ``horizontal_fwd`` along every row (left to
right) and ``horizontal_bwd`` (right to left). A trace holds each sweep's hidden states
as ``layers.{k}.<direction>`` [B, d, rows, cols].

* :func:`plot_sweep_maps` shows what the four sweeps computed, either as one RGB image
  (a PCA of the d channels fitted jointly over the four maps, so equal colours mean
  similar state vectors in every panel) or as a grid of single channels.
* :func:`plot_patch_grid` draws a layer's patch grid over the input image.
* :func:`plot_context_reach` shows, for one output position, which part of the input
  each sweep can have seen: the recurrences make this follow from the sweep order
  alone (see :func:`context_reach_masks`).
* :func:`plot_sweep_gates` shows one gate of every sweep's RNN at every patch, averaged
  over the channels (``layers.{k}.gates.<direction>.<gate>``, see :data:`SWEEP_GATE_PATTERN`),
  and how the channels' means are spread.

None of these runs a model.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.figures.arrays import as_rgb_uint8, check_index, to_numpy
from crmn_viz.figures.layout import (
    add_meta,
    finish_figure,
    image_figure_height_in,
    image_pixel_axes,
    legend_rows,
)
from crmn_viz.figures.theme import DIVERGING_COLORSCALE, OKABE_ITO, SEQUENTIAL_COLORSCALE, symmetric_range

__all__ = [
    "BOUNDED_GATES",
    "SWEEP_DIRECTIONS",
    "SWEEP_GATE_LABELS",
    "SWEEP_GATE_PATTERN",
    "SWEEP_LABELS",
    "context_reach_masks",
    "plot_context_reach",
    "plot_patch_grid",
    "plot_sweep_gates",
    "plot_sweep_maps",
    "renet_grid_sizes",
    "sweep_gate_map",
    "sweep_gate_names",
    "sweep_maps",
    "sweep_pca_rgb",
]

SWEEP_DIRECTIONS: tuple[str, ...] = ("vertical_fwd", "vertical_bwd", "horizontal_fwd", "horizontal_bwd")
"""The four sweeps of a ReNet layer, in the order they are drawn (2 x 2, row by row)."""

SWEEP_LABELS: dict[str, str] = {
    "vertical_fwd": "↓ top to bottom",
    "vertical_bwd": "↑ bottom to top",
    "horizontal_fwd": "→ left to right",
    "horizontal_bwd": "← right to left",
}
"""Panel title of each sweep: the direction the RNN reads the patch grid in."""

SWEEP_GATE_PATTERN = "layers.{layer}.gates.{sweep}.{gate}"
"""Trace name of one gate of one sweep's RNN in one ReNet layer, [B, d, rows, cols]."""

BOUNDED_GATES: frozenset[str] = frozenset(
    {"update_gate", "reset_gate", "input_gate", "forget_gate", "output_gate"}
)
"""The sweep gates that are logistic sigmoids, in [0, 1] (:mod:`crmn_viz.models.sweeps`: GRU
update and reset gates, LSTM input, forget and output gates); the LSTM's ``cell`` state is not."""

SWEEP_GATE_LABELS: dict[str, str] = {
    "update_gate": "update gate u",
    "reset_gate": "reset gate r",
    "input_gate": "input gate i",
    "forget_gate": "forget gate f",
    "output_gate": "output gate o",
    "cell": "cell state c",
}
"""Readable name of every recorded sweep gate (GRU: u, r; LSTM: i, f, o and the cell state c)."""

_REACH_COLOUR = OKABE_ITO["blue"]
_TARGET_COLOUR = OKABE_ITO["vermillion"]
_DEFAULT_CHANNELS = 6
_OUTLINE = {"layer": "above", "opacity": 1, "fillcolor": "rgba(0,0,0,0)"}  # the template fills shapes

PatchSize = int | Sequence[int]
TraceLike = Mapping[str, Any]


# --------------------------------------------------------------------------- reading traces


def _four_sweeps_grid(horizontal_spacing: float) -> go.Figure:
    """A 2x2 subplot grid, one panel per sweep direction in :data:`SWEEP_DIRECTIONS` order
    (panel ``k`` at row ``k // 2 + 1``, column ``k % 2 + 1``), titled with :data:`SWEEP_LABELS`."""
    return make_subplots(
        rows=2,
        cols=2,
        subplot_titles=[SWEEP_LABELS[d] for d in SWEEP_DIRECTIONS],
        horizontal_spacing=horizontal_spacing,
        vertical_spacing=0.14,
    )


def renet_grid_sizes(trace: TraceLike) -> list[tuple[int, int]]:
    """Patch-grid size (rows, cols) of every ReNet layer recorded in ``trace``.

    Args:
        trace: A ReNet trace (needs ``layers.{k}.<direction>`` or ``layers.{k}.out``).

    Returns:
        One (rows, cols) per layer, from layer 0 up to the last one recorded.

    Raises:
        KeyError: No ReNet layer is in the trace.
    """
    sizes = []
    layer = 0
    while True:
        names = [f"layers.{layer}.{direction}" for direction in (*SWEEP_DIRECTIONS, "out")]
        found = next((name for name in names if name in trace), None)
        if found is None:
            break
        shape = tuple(trace[found].shape)
        sizes.append((int(shape[-2]), int(shape[-1])))
        layer += 1
    if not sizes:
        raise KeyError("the trace holds no ReNet layer (no 'layers.0.vertical_fwd' or 'layers.0.out')")
    return sizes


def sweep_maps(trace: TraceLike, layer: int = 0, image_index: int = 0) -> dict[str, np.ndarray]:
    """The four sweep maps of one layer for one image.

    Args:
        trace: A ReNet trace.
        layer: ReNet layer index.
        image_index: Which image of the batch.

    Returns:
        ``direction -> [d, rows, cols]`` float arrays, in :data:`SWEEP_DIRECTIONS` order.
    """
    maps = {}
    for direction in SWEEP_DIRECTIONS:
        values = to_numpy(trace[f"layers.{layer}.{direction}"])
        if values.ndim != 4:
            raise ValueError(f"layers.{layer}.{direction} should be [B, d, rows, cols], got {values.shape}")
        maps[direction] = values[check_index(image_index, values.shape[0], "image_index")]
    return maps


def sweep_pca_rgb(maps: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Project the d channels of several maps to 3 with one PCA, and scale them to RGB.

    The principal components are fitted on the state vectors of *all* maps together
    (every grid position of every map is one sample), and each component is scaled
    to [0, 1] with one minimum and maximum over all maps, so a colour means the same
    state vector in every map. Signs are fixed so the largest loading of each
    component is positive (deterministic colours). With d < 3 the missing channels
    are 0.5 (grey); a component that is constant everywhere is 0.5 too.

    Args:
        maps: ``name -> [d, rows, cols]`` arrays with the same d.

    Returns:
        ``(rgb, explained)``: ``name -> [rows, cols, 3]`` floats in [0, 1] (red = first
        component) and the fraction of the total variance each of the (up to) 3
        components explains.
    """
    arrays = {name: to_numpy(values) for name, values in maps.items()}
    if not arrays:
        raise ValueError("maps must hold at least one [d, rows, cols] array")
    depths = {values.shape[0] for values in arrays.values()}
    if len(depths) != 1 or any(values.ndim != 3 for values in arrays.values()):
        raise ValueError("every map must be [d, rows, cols] with the same d")
    samples = np.concatenate([values.reshape(values.shape[0], -1).T for values in arrays.values()])
    centred = samples - samples.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    count = min(3, components.shape[0])
    components = components[:count]
    signs = np.sign(components[np.arange(count), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    projected = np.full((samples.shape[0], 3), 0.5)
    for index in range(count):
        values = centred @ components[index]
        low, high = float(values.min()), float(values.max())
        if high - low > 1e-12 * max(1.0, abs(high)):
            projected[:, index] = (values - low) / (high - low)
    total = float((singular**2).sum())
    explained = (singular[:count] ** 2) / total if total > 0 else np.zeros(count)
    rgb = {}
    start = 0
    for name, values in arrays.items():
        rows, cols = values.shape[1:]
        rgb[name] = np.clip(projected[start : start + rows * cols].reshape(rows, cols, 3), 0.0, 1.0)
        start += rows * cols
    return rgb, explained


# --------------------------------------------------------------------------- figures


def _square_cells(fig: go.Figure, count: int, reverse_y: bool = True) -> None:
    """Give every subplot square cells and row 0 at the top."""
    for index in range(1, count + 1):
        suffix = "" if index == 1 else str(index)
        fig.layout[f"yaxis{suffix}"].update(
            scaleanchor=f"x{suffix}", scaleratio=1, constrain="domain", showgrid=False
        )
        fig.layout[f"xaxis{suffix}"].update(constrain="domain", showgrid=False)
        if reverse_y:
            fig.layout[f"yaxis{suffix}"].autorange = "reversed"


def _integer_ticks(size: int) -> dict[str, Any]:
    step = max(1, math.ceil(size / 6))
    return {"tickmode": "array", "tickvals": list(range(0, size, step))}


def plot_sweep_maps(
    trace: TraceLike,
    layer: int = 0,
    image_index: int = 0,
    mode: Literal["pca", "channels"] = "pca",
    channels: int | Sequence[int] | None = None,
    *,
    columns: Literal[1, 2] | None = None,
    height_in: float | None = None,
) -> go.Figure:
    """The four sweeps of one ReNet layer for one image, on the layer's patch grid.

    ``mode="pca"``: a 2 x 2 figure (top to bottom, bottom to top / left to right, right
    to left), each panel an RGB image of the sweep's hidden states projected on the
    first three principal components (see :func:`sweep_pca_rgb`; fitted jointly over
    the four maps, so colours compare across panels). The explained variance ratios
    are kept in ``fig.layout.meta["explained_variance_ratio"]``.

    ``mode="channels"``: one row per sweep and one column per channel, each a heatmap
    of that hidden unit over the patch grid, all on one diverging colour scale
    symmetric about 0.

    Args:
        trace: A ReNet trace.
        layer: ReNet layer index.
        image_index: Which image of the batch.
        mode: ``"pca"`` or ``"channels"``.
        channels: For ``"channels"``: how many channels from the first (int) or which
            ones (sequence); default the first 6 (or all if fewer).
        columns: Printed width (default: 1 for ``"pca"``, 2 for ``"channels"``).
        height_in: Printed height in inches (default: fitted to the grid's aspect).

    Returns:
        ``"pca"``: four ``go.Image`` traces named after the directions with ``z`` in
        [0, 1] (``zmax`` = 1). ``"channels"``: one ``go.Heatmap`` per (direction,
        channel), named ``"<direction> ch <k>"``, ``z`` = the map [rows, cols].
        ``fig.layout.meta`` holds ``layer``, ``image_index``, ``directions`` and
        ``explained_variance_ratio`` (pca) or ``channels`` (channels).
    """
    maps = sweep_maps(trace, layer, image_index)
    depth, rows, cols = maps["vertical_fwd"].shape
    image_position = check_index(image_index, len(trace[f"layers.{layer}.vertical_fwd"]), "image_index")
    if mode == "pca":
        rgb, explained = sweep_pca_rgb(maps)
        fig = _four_sweeps_grid(horizontal_spacing=0.08)
        for index, direction in enumerate(SWEEP_DIRECTIONS):
            fig.add_trace(
                go.Image(
                    z=rgb[direction],
                    zmin=[0, 0, 0, 0],
                    zmax=[1, 1, 1, 1],
                    colormodel="rgb",
                    name=direction,
                    hovertemplate="row %{y}, col %{x}<br>PC 1-3 (scaled): %{z}<extra>"
                    + direction
                    + "</extra>",
                ),
                row=index // 2 + 1,
                col=index % 2 + 1,
            )
        _square_cells(fig, 4, reverse_y=False)  # go.Image already puts row 0 at the top
        fig.update_xaxes(**_integer_ticks(cols))
        fig.update_yaxes(**_integer_ticks(rows))
        fig.update_xaxes(title_text="patch column", row=2)
        fig.update_yaxes(title_text="patch row", col=1)
        fig.update_layout(
            meta={
                "explained_variance_ratio": [round(float(v), 6) for v in explained],
                "layer": layer,
                "image_index": image_position,
                "directions": list(SWEEP_DIRECTIONS),
            }
        )
        width = columns or 1
        default = image_figure_height_in(
            width, rows, cols, panel_rows=2, panel_cols=2, reserved_width_px=90, reserved_height_px=110
        )
        return finish_figure(fig, width, height_in, default)
    if mode != "channels":
        raise ValueError(f"mode must be 'pca' or 'channels', got {mode!r}")

    if channels is None:
        chosen = list(range(min(depth, _DEFAULT_CHANNELS)))
    elif isinstance(channels, (int, np.integer)):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        chosen = list(range(min(depth, int(channels))))
    else:
        chosen = [int(c) for c in channels]
        if not chosen or min(chosen) < 0 or max(chosen) >= depth:
            raise ValueError(f"channels must be in 0..{depth - 1}, got {chosen}")
    low, high = symmetric_range(np.stack([maps[d][chosen] for d in SWEEP_DIRECTIONS]))
    count = len(chosen)
    fig = make_subplots(
        rows=4,
        cols=count,
        column_titles=[f"channel {c}" for c in chosen],
        horizontal_spacing=min(0.02, 0.2 / count),
        vertical_spacing=0.03,
    )
    for row, direction in enumerate(SWEEP_DIRECTIONS, start=1):
        for col, channel in enumerate(chosen, start=1):
            fig.add_trace(
                go.Heatmap(
                    z=maps[direction][channel],
                    coloraxis="coloraxis",
                    name=f"{direction} ch {channel}",
                    hovertemplate=f"{direction}, channel {channel}<br>row %{{y}}, col %{{x}}: "
                    "%{z:.3f}<extra></extra>",
                ),
                row=row,
                col=col,
            )
        fig.update_yaxes(title_text=SWEEP_LABELS[direction], row=row, col=1)
    _square_cells(fig, 4 * count)
    fig.update_xaxes(showticklabels=False, ticks="", showline=False)
    fig.update_yaxes(showticklabels=False, ticks="", showline=False)
    fig.update_layout(
        coloraxis={
            "colorscale": DIVERGING_COLORSCALE,
            "cmin": low,
            "cmax": high,
            "colorbar": {"title": {"text": "hidden state", "side": "right"}, "thickness": 8},
        }
    )
    add_meta(fig, layer=layer, image_index=image_position, directions=list(SWEEP_DIRECTIONS), channels=chosen)
    width = columns or 2
    panel_in = (3.5 if width == 1 else 7.16) * 0.85 / count * rows / cols
    return finish_figure(fig, width, height_in, min(8.5, max(2.2, 4 * panel_in + 0.5)))


def _pair(value: PatchSize) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f"a patch size is an int or (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


def _patch_sizes(patch_sizes: Sequence[PatchSize]) -> list[tuple[int, int]]:
    sizes = [_pair(size) for size in patch_sizes]
    if not sizes or any(min(size) < 1 for size in sizes):
        raise ValueError(f"patch sizes must be positive, got {list(patch_sizes)!r}")
    return sizes


def _grid_path(xs: Sequence[float], ys: Sequence[float]) -> str:
    """One SVG path with a vertical line at every x and a horizontal line at every y."""
    top, bottom, left, right = ys[0], ys[-1], xs[0], xs[-1]
    parts = [f"M{x},{top} L{x},{bottom}" for x in xs] + [f"M{left},{y} L{right},{y}" for y in ys]
    return " ".join(parts)


def plot_patch_grid(
    image: Any,
    patch_sizes: Sequence[PatchSize],
    layer: int = 0,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """The input image with the patch grid of one ReNet layer drawn over it.

    Patch sizes compound: a layer-k patch covers ``ph_0 x ... x ph_k`` by
    ``pw_0 x ... x pw_k`` input pixels. An input that is not a multiple of the patch
    size is zero-padded at the bottom and right (as the model does); the padding is
    shaded grey.

    Args:
        image: The input image (see :func:`crmn_viz.figures.arrays.as_rgb_uint8`).
        patch_sizes: Patch size per layer, as in ``ReNetConfig.patch_sizes`` (an int or
            (height, width) each).
        layer: Whose grid to draw.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: fitted to the image's aspect).

    Returns:
        A figure with one ``go.Image`` (axes in input pixels, pixel centres at integers),
        the grid as a path shape and the padding as a rectangle shape. The pixel size of
        the layer's patches is in ``fig.layout.meta["patch_pixels"]``; the meta also holds
        ``layer``, ``grid`` (rows, cols), ``grid_x`` and ``grid_y`` (the positions of the
        drawn grid lines, in pixels), ``image_size`` and ``padded_size`` ([height, width]).
    """
    rgb = as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    sizes = _patch_sizes(patch_sizes)
    layer = check_index(layer, len(sizes), "layer")
    rows, cols, patch_h, patch_w = height, width, 1, 1
    for ph, pw in sizes[: layer + 1]:
        rows, cols = math.ceil(rows / ph), math.ceil(cols / pw)
        patch_h, patch_w = patch_h * ph, patch_w * pw
    covered_h, covered_w = rows * patch_h, cols * patch_w
    fig = go.Figure(go.Image(z=rgb, name="input", hovertemplate="x %{x}, y %{y}<extra></extra>"))
    if covered_h > height or covered_w > width:
        shade = {
            "type": "path",
            "line": {"width": 0},
            "fillcolor": "rgba(128,128,128,0.6)",
            "layer": "above",
            "opacity": 1,
        }
        right, bottom = covered_w - 0.5, covered_h - 0.5
        fig.add_shape(
            path=(
                f"M{width - 0.5},-0.5 L{right},-0.5 L{right},{bottom} L-0.5,{bottom} "
                f"L-0.5,{height - 0.5} L{width - 0.5},{height - 0.5} Z"
            ),
            name="zero padding",
            **shade,
        )
    xs = [c * patch_w - 0.5 for c in range(cols + 1)]
    ys = [r * patch_h - 0.5 for r in range(rows + 1)]
    path = _grid_path(xs, ys)
    fig.add_shape(type="path", path=path, line={"color": "#000000", "width": 2.2}, **_OUTLINE)
    fig.add_shape(type="path", path=path, line={"color": OKABE_ITO["yellow"], "width": 1}, **_OUTLINE)
    image_pixel_axes(fig, covered_h, covered_w)
    fig.update_layout(
        meta={
            "layer": layer,
            "patch_pixels": [patch_h, patch_w],
            "grid": [rows, cols],
            "grid_x": xs,
            "grid_y": ys,
            "image_size": [height, width],
            "padded_size": [covered_h, covered_w],
        },
    )
    default = image_figure_height_in(
        columns, covered_h, covered_w, reserved_width_px=55, reserved_height_px=50
    )
    return finish_figure(fig, columns, height_in, default)


def context_reach_masks(
    grid_sizes: Sequence[tuple[int, int]],
    layer: int,
    row: int,
    col: int,
    *,
    patch_sizes: Sequence[PatchSize] | None = None,
    input_size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """Which input positions each sweep's output at (row, col) of ``layer`` depends on.

    Follows from the sweep definitions (zero initial states, no other mixing):
    ``vertical_fwd`` at (r, c) has read the patches of rows <= r in column c,
    ``vertical_bwd`` those of rows >= r; the horizontal sweeps read the concatenated
    vertical states, which at (r, c') already cover the whole column c', so
    ``horizontal_fwd`` at (r, c) depends on every row of the columns <= c and
    ``horizontal_bwd`` on the columns >= c. A layer's output therefore depends on the
    whole input of the layer, so from layer 1 on every sweep reaches the whole image.
    Every such set is a product (rows x columns), which is how it is computed; the
    result is exact. Zero padding is not an input and is never marked.

    Args:
        grid_sizes: (rows, cols) of every layer's patch grid up to ``layer`` (see
            :func:`renet_grid_sizes`).
        layer: Layer of the output position.
        row: Row of the output position on that layer's grid.
        col: Column of the output position.
        patch_sizes: Patch size per layer; needed with ``input_size``. Without it,
            the patch sizes of layers >= 1 are inferred from the grid sizes (the smallest
            one that gives them) - which does not change the masks.
        input_size: (height, width) of the input in pixels: masks are then on the
            pixel grid. Default: masks on the layer-0 patch grid.

    Returns:
        ``direction -> bool array`` ([height, width] in pixels, or [rows_0, cols_0]),
        True where that input can influence the output.

    Raises:
        ValueError: Position out of range, or sizes that do not fit together.
    """
    grids = [(int(r), int(c)) for r, c in grid_sizes]
    layer = check_index(layer, len(grids), "layer")
    rows_k, cols_k = grids[layer]
    if not (0 <= row < rows_k and 0 <= col < cols_k):
        raise ValueError(f"position ({row}, {col}) is outside layer {layer}'s {rows_k} x {cols_k} grid")
    if input_size is not None:
        if patch_sizes is None:
            raise ValueError("input_size needs patch_sizes (the pixel size of the layer-0 patches)")
        sizes = _patch_sizes(patch_sizes)
        base_h, base_w = (int(v) for v in input_size)
    else:
        base_h, base_w = grids[0]
        sizes = _inferred_patch_sizes(grids)  # the layer-0 patches are the base grid: (1, 1)
        if patch_sizes is not None:
            sizes[1:] = _patch_sizes(patch_sizes)[1 : len(grids)]
    if len(sizes) <= layer:
        raise ValueError(f"patch_sizes has {len(sizes)} entries; layer {layer} needs {layer + 1}")
    in_rows = list(np.eye(base_h, dtype=bool))  # dependence of each input row position
    in_cols = list(np.eye(base_w, dtype=bool))
    masks: dict[str, np.ndarray] = {}
    for index in range(layer + 1):
        ph, pw = sizes[index]
        patch_rows = [
            _union(in_rows[r * ph : (r + 1) * ph], base_h) for r in range(math.ceil(len(in_rows) / ph))
        ]
        patch_cols = [
            _union(in_cols[c * pw : (c + 1) * pw], base_w) for c in range(math.ceil(len(in_cols) / pw))
        ]
        if (len(patch_rows), len(patch_cols)) != grids[index]:
            raise ValueError(
                f"layer {index}: patches of {ph} x {pw} give a {len(patch_rows)} x {len(patch_cols)} grid, "
                f"but the trace's grid is {grids[index][0]} x {grids[index][1]}"
            )
        down = np.logical_or.accumulate(np.array(patch_rows), axis=0)  # rows <= r
        up = np.logical_or.accumulate(np.array(patch_rows)[::-1], axis=0)[::-1]  # rows >= r
        whole_column = down | up
        right = np.logical_or.accumulate(np.array(patch_cols), axis=0)  # columns <= c
        left = np.logical_or.accumulate(np.array(patch_cols)[::-1], axis=0)[::-1]  # columns >= c
        if index == layer:
            masks = {
                "vertical_fwd": np.outer(down[row], patch_cols[col]),
                "vertical_bwd": np.outer(up[row], patch_cols[col]),
                "horizontal_fwd": np.outer(whole_column[row], right[col]),
                "horizontal_bwd": np.outer(whole_column[row], left[col]),
            }
        in_rows, in_cols = list(whole_column), list(right | left)
    return masks


def _inferred_patch_sizes(grids: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """(1, 1) for layer 0, then the smallest patch size that maps each grid onto the next."""
    return [(1, 1)] + [
        (math.ceil(prev[0] / cur[0]), math.ceil(prev[1] / cur[1])) for prev, cur in itertools.pairwise(grids)
    ]


def _union(parts: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Logical OR of the parts (none: the zero padding, which depends on nothing)."""
    return np.logical_or.reduce(np.array(parts), axis=0) if len(parts) else np.zeros(size, dtype=bool)


def plot_context_reach(
    trace: TraceLike,
    layer: int,
    row: int,
    col: int,
    *,
    patch_sizes: Sequence[PatchSize] | None = None,
    image: Any = None,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """Which input patches can influence each sweep's output at one patch (2 x 2 masks).

    One panel per sweep (as in :func:`plot_sweep_maps`); the chosen output patch is
    outlined in vermillion. Without ``image`` the masks are drawn on the layer-0 patch
    grid (blue: can influence, light grey: cannot). With ``image`` and ``patch_sizes``
    they are drawn over the input image in pixels, the unreachable part dimmed. A
    legend above the panels names the colours.
    The masks come from :func:`context_reach_masks` (sweep order only, exact).

    Args:
        trace: A ReNet trace (only the grid sizes are read).
        layer: Layer of the output position.
        row: Row on that layer's patch grid.
        col: Column on that layer's patch grid.
        patch_sizes: Patch size per layer (``ReNetConfig.patch_sizes``); needed with
            ``image``, and used to outline the patch of layers >= 1.
        image: The input image, to draw the masks over it in pixels.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: fitted to the grid's aspect).

    Returns:
        A figure whose heatmaps, named after the directions, have ``z`` = the mask as
        0/1 (on the image: 1 where the input *cannot* influence, drawn dark), plus
        legend-only entries (no data). ``fig.layout.meta`` holds ``layer``, ``row``,
        ``col``, ``output_patch`` (the outlined box x0, y0, x1, y1, in the axes' units)
        and ``directions``.
    """
    grids = renet_grid_sizes(trace)
    layer = check_index(layer, len(grids), "layer")
    grids = grids[: layer + 1]
    rgb = None if image is None else as_rgb_uint8(image)
    if rgb is not None and patch_sizes is None:
        raise ValueError("drawing over the image needs patch_sizes (pixels per layer-0 patch)")
    masks = context_reach_masks(
        grids,
        layer,
        row,
        col,
        patch_sizes=patch_sizes,
        input_size=None if rgb is None else rgb.shape[:2],
    )
    # footprint of the chosen patch on the base grid (pixels, or layer-0 patches)
    sizes = _inferred_patch_sizes(grids) if patch_sizes is None else _patch_sizes(patch_sizes)
    counted = sizes[: layer + 1] if rgb is not None else sizes[1 : layer + 1]
    span_h = math.prod(size[0] for size in counted)
    span_w = math.prod(size[1] for size in counted)
    base_h, base_w = masks["vertical_fwd"].shape
    box = {
        "x0": col * span_w - 0.5,
        "x1": min((col + 1) * span_w, base_w) - 0.5,
        "y0": row * span_h - 0.5,
        "y1": min((row + 1) * span_h, base_h) - 0.5,
    }
    fig = _four_sweeps_grid(horizontal_spacing=0.1)
    for index, direction in enumerate(SWEEP_DIRECTIONS):
        where = {"row": index // 2 + 1, "col": index % 2 + 1}
        mask = masks[direction]
        if rgb is not None:
            fig.add_trace(go.Image(z=rgb, name="input", hoverinfo="skip"), **where)
            dimmed = _two_colour_heatmap(
                ~mask, "rgba(0,0,0,0)", "rgba(0,0,0,0.65)", direction, "x %{x}, y %{y}"
            )
            fig.add_trace(dimmed, **where)
        else:
            reach = _two_colour_heatmap(mask, "#E8E8E8", _REACH_COLOUR, direction, "patch row %{y}, col %{x}")
            fig.add_trace(reach.update(xgap=1, ygap=1), **where)
        fig.add_shape(type="rect", line={"color": _TARGET_COLOUR, "width": 2.5}, **_OUTLINE, **box, **where)
    if rgb is not None:
        keys = [("can influence", "rgba(0,0,0,0)"), ("cannot influence (dimmed)", "rgba(0,0,0,0.65)")]
    else:
        keys = [("can influence", _REACH_COLOUR), ("cannot influence", "#E8E8E8")]
    keys.append(("output patch", "rgba(0,0,0,0)"))
    for name, colour in keys:
        outline = _TARGET_COLOUR if name == "output patch" else "#7F7F7F"
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=name,
                marker={
                    "symbol": "square",
                    "size": 10,
                    "color": colour,
                    "line": {"color": outline, "width": 1.5},
                },
                hoverinfo="skip",
            ),
            row=1,
            col=1,
        )
    _square_cells(fig, 4)
    unit = "pixels" if rgb is not None else "layer-0 patch"
    fig.update_xaxes(range=[-0.5, base_w - 0.5], showline=False, **_integer_ticks(base_w))
    fig.update_yaxes(range=[base_h - 0.5, -0.5], showline=False, **_integer_ticks(base_h))
    fig.update_xaxes(title_text=f"x ({unit})" if rgb is not None else "layer-0 patch column", row=2)
    fig.update_yaxes(title_text=f"y ({unit})" if rgb is not None else "layer-0 patch row", col=1)
    fig.update_layout(
        meta={
            "layer": layer,
            "row": row,
            "col": col,
            "output_patch": [box["x0"], box["y0"], box["x1"], box["y1"]],
            "directions": list(SWEEP_DIRECTIONS),
        },
        showlegend=True,
    )
    default = image_figure_height_in(
        columns, base_h, base_w, panel_rows=2, panel_cols=2, reserved_width_px=90, reserved_height_px=125
    )
    return finish_figure(
        fig, columns, height_in, default, legend_lines=legend_rows([k[0] for k in keys], columns)
    )


def _two_colour_heatmap(mask: np.ndarray, off: str, on: str, name: str, hover: str) -> go.Heatmap:
    """A boolean map [H, W] drawn in two flat colours (``off`` for False, ``on`` for True)."""
    return go.Heatmap(
        z=mask.astype(np.uint8),
        name=name,
        zmin=0,
        zmax=1,
        colorscale=[[0.0, off], [0.5, off], [0.5, on], [1.0, on]],
        showscale=False,
        hovertemplate=hover + "<extra>" + name + "</extra>",
    )


# --------------------------------------------------------------------------- gates


def sweep_gate_names(names: Iterable[str], layer: int = 0) -> tuple[str, ...]:
    """The gates recorded for every sweep of ``layer``, in recording order.

    Args:
        names: trace names, e.g. ``model.trace_names()`` or the keys of a trace.
        layer: ReNet layer index.

    Returns:
        e.g. ``("update_gate", "reset_gate")`` (GRU) or ``("input_gate", "forget_gate",
        "output_gate", "cell")`` (LSTM): the names ``g`` for which every direction of
        :data:`SWEEP_DIRECTIONS` has ``layers.{layer}.gates.<direction>.g``; ``()`` if none.
    """
    found: dict[str, set[str]] = {}
    prefix = f"layers.{layer}.gates."
    for name in names:
        if name.startswith(prefix):
            direction, _, gate = name[len(prefix) :].partition(".")
            found.setdefault(gate, set()).add(direction)
    return tuple(gate for gate, directions in found.items() if directions >= set(SWEEP_DIRECTIONS))


def sweep_gate_map(
    trace: TraceLike, layer: int, direction: str, gate: str, image_index: int = 0
) -> np.ndarray:
    """One sweep's gate for one image, [d, rows, cols] (float64)."""
    name = SWEEP_GATE_PATTERN.format(layer=layer, sweep=direction, gate=gate)
    if name not in trace:
        raise KeyError(f"the trace holds no {name!r} (trace the model with that name)")
    values = trace[name]
    if len(values.shape) != 4:
        raise ValueError(f"{name} should be [B, d, rows, cols], got {tuple(values.shape)}")
    return to_numpy(values[check_index(image_index, values.shape[0], "image_index")])


def plot_sweep_gates(
    trace: TraceLike,
    layer: int = 0,
    gate: str | None = None,
    image_index: int = 0,
    *,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """One gate of the four sweeps of a ReNet layer, averaged over the channels at every patch.

    A 2 x 2 grid in :data:`SWEEP_DIRECTIONS` order (titled with :data:`SWEEP_LABELS`), each panel
    the channel mean ``(1 / d) sum_j g_j`` of the gate at every position of the layer's patch
    grid (the GRU's update gate ``u_t`` or reset gate ``r_t`` of Visin et al. 2015, sec. 4.2; the
    LSTM's ``i``, ``f``, ``o`` or its cell state: :mod:`crmn_viz.models.sweeps`). Beneath, one box
    per sweep of the d channels' means over the patches: whether some units stay open or shut
    over the whole image. Sigmoid gates (:data:`BOUNDED_GATES`) share one fixed [0, 1] viridis
    scale, so panels and images compare; the cell state gets a diverging scale symmetric about 0
    over the four panels.

    Args:
        trace: a ReNet trace holding ``layers.{layer}.gates.<direction>.<gate>`` for the four
            directions (:data:`SWEEP_GATE_PATTERN`), each [B, d, rows, cols].
        layer: ReNet layer index.
        gate: which gate (default: the first :func:`sweep_gate_names` finds in the trace).
        image_index: which image of the batch.
        columns: printed width, 1 or 2 columns.
        height_in: printed height in inches (default: fitted to the grid's aspect).

    Returns:
        Four ``go.Heatmap`` named after the directions, ``z`` = the channel mean [rows, cols],
        on one colour axis; four ``go.Box`` named after the directions' labels, ``y`` = the
        channel means over the patches [d]. ``layout.meta`` holds ``layer``, ``gate``,
        ``image_index``, ``directions``, ``bounded`` (a [0, 1] gate) and ``channel_means``
        (direction -> [d]).

    Raises:
        KeyError: the trace lacks the gate (or, with ``gate=None``, holds no gate of ``layer``).
    """
    if gate is None:
        recorded = sweep_gate_names(trace.keys(), layer)
        if not recorded:
            raise KeyError(f"the trace holds no gates of ReNet layer {layer} ('layers.{layer}.gates.*')")
        gate = recorded[0]
    maps = {
        direction: sweep_gate_map(trace, layer, direction, gate, image_index)
        for direction in SWEEP_DIRECTIONS
    }
    batch = len(trace[SWEEP_GATE_PATTERN.format(layer=layer, sweep=SWEEP_DIRECTIONS[0], gate=gate)])
    position = check_index(image_index, batch, "image_index")
    averaged = {direction: values.mean(axis=0) for direction, values in maps.items()}  # [rows, cols]
    channel_means = {direction: values.mean(axis=(1, 2)) for direction, values in maps.items()}  # [d]
    bounded = gate in BOUNDED_GATES
    if bounded:
        scale = {"colorscale": SEQUENTIAL_COLORSCALE, "cmin": 0.0, "cmax": 1.0}
    else:
        low, high = symmetric_range(np.concatenate([m.ravel() for m in averaged.values()]))
        scale = {"colorscale": DIVERGING_COLORSCALE, "cmin": low, "cmax": high}
    label = SWEEP_GATE_LABELS.get(gate, gate.replace("_", " "))
    rows, cols = next(iter(averaged.values())).shape
    fig = make_subplots(
        rows=3,
        cols=2,
        specs=[[{}, {}], [{}, {}], [{"colspan": 2}, None]],
        subplot_titles=[SWEEP_LABELS[d] for d in SWEEP_DIRECTIONS] + [""],
        row_heights=[0.36, 0.36, 0.28],
        horizontal_spacing=0.1,
        vertical_spacing=0.1,
    )
    for index, direction in enumerate(SWEEP_DIRECTIONS):
        fig.add_trace(
            go.Heatmap(
                z=averaged[direction],
                name=direction,
                coloraxis="coloraxis",
                hovertemplate=f"{SWEEP_LABELS[direction]}<br>patch row %{{y}}, col %{{x}}<br>"
                f"{label}, channel mean %{{z:.3f}}<extra></extra>",
            ),
            row=index // 2 + 1,
            col=index % 2 + 1,
        )
        fig.add_trace(
            go.Box(
                y=channel_means[direction],
                name=SWEEP_LABELS[direction],
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker={"size": 3, "color": OKABE_ITO["blue"]},
                line={"color": "#000000", "width": 1},
                fillcolor="rgba(0,0,0,0)",
                showlegend=False,
                hovertemplate=f"{SWEEP_LABELS[direction]}<br>channel mean over patches %{{y:.3f}}"
                "<extra></extra>",
            ),
            row=3,
            col=1,
        )
    _square_cells(fig, 4)
    for axis in range(1, 5):
        suffix = "" if axis == 1 else str(axis)
        fig.layout[f"xaxis{suffix}"].update(showline=False, **_integer_ticks(cols))
        fig.layout[f"yaxis{suffix}"].update(showline=False, **_integer_ticks(rows))
    fig.update_xaxes(title_text="patch column", row=2)
    fig.update_yaxes(title_text="patch row", col=1, row=1)
    fig.update_yaxes(title_text="patch row", col=1, row=2)
    fig.update_xaxes(  # the arrows of the panel titles above
        tickmode="array",
        tickvals=[SWEEP_LABELS[d] for d in SWEEP_DIRECTIONS],
        ticktext=[SWEEP_LABELS[d].split(" ", 1)[0] for d in SWEEP_DIRECTIONS],
        tickangle=0,
        title_text="sweep",
        row=3,
        col=1,
    )
    fig.update_yaxes(
        title_text="channel mean<br>over patches", row=3, col=1, **({"range": [0, 1]} if bounded else {})
    )
    fig.update_layout(
        coloraxis={
            **scale,
            "colorbar": {
                "title": {"text": f"{label}, mean over channels", "side": "right"},
                "thickness": 8,
                "len": 0.7,
                "y": 1.0,
                "yanchor": "top",
            },
        }
    )
    add_meta(
        fig,
        layer=layer,
        gate=gate,
        image_index=position,
        directions=list(SWEEP_DIRECTIONS),
        bounded=bounded,
        grid=[rows, cols],
        channel_means={direction: [float(v) for v in values] for direction, values in channel_means.items()},
    )
    maps_height = image_figure_height_in(
        columns, rows, cols, panel_rows=2, panel_cols=2, reserved_width_px=110, reserved_height_px=70
    )
    return finish_figure(fig, columns, height_in, round(maps_height / 0.72, 3))
