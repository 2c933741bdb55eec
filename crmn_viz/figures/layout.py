"""Layout helpers shared by the figure builders: print sizes, legends above the plot, line styles.

Every builder ends with :func:`finish_figure` (the ``crmn_paper`` style at a printed
size); figures of images get a height that fits the image's aspect ratio from
:func:`image_figure_height_in`, so square pixels do not leave wide empty margins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import plotly.graph_objects as go

from crmn_viz.figures.theme import (
    CATEGORICAL_COLOURS,
    CONTAINER_TOP_LEFT,
    OKABE_ITO,
    apply_paper_style,
    column_width_in,
    inches_to_px,
)

__all__ = [
    "add_meta",
    "finish_figure",
    "image_figure_height_in",
    "image_pixel_axes",
    "legend_rows",
    "line_style",
]

_LINE_DASHES = ("solid", "dash", "dot", "dashdot")
_LEGEND_ROW_PX = 19


def add_meta(fig: go.Figure, **entries: Any) -> None:
    """Record numbers a figure stands for in ``fig.layout.meta`` (a dict), keeping what is there.

    Builders keep here what the data file (:func:`crmn_viz.figures.data.figure_data`, keys
    ``"layout.meta.<name>"``) must hold but no trace draws: keypoint coordinates, NME, full
    probability matrices, axis labels. Values must be JSON-friendly (numbers, strings,
    nested lists of them, dicts); ``None`` entries are left out.

    Args:
        fig: The figure to change in place.
        **entries: Name -> value.
    """
    meta = dict(fig.layout.meta) if isinstance(fig.layout.meta, dict) else {}
    meta.update({name: value for name, value in entries.items() if value is not None})
    fig.layout.meta = meta


def finish_figure(
    fig: go.Figure,
    columns: Literal[1, 2],
    height_in: float | None,
    default_height_in: float,
    *,
    legend_lines: int = 0,
) -> go.Figure:
    """Apply the paper style and size; optionally put a horizontal legend above the plot.

    Args:
        fig: The figure (not changed).
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches, or ``None`` for ``default_height_in``.
        default_height_in: The figure's own default height.
        legend_lines: Rows of legend to make room for at the top of the figure (above
            any stage labels); 0 leaves the legend where it is.

    Returns:
        The styled copy.
    """
    styled = apply_paper_style(fig, columns=columns, height_in=height_in or default_height_in)
    if legend_lines:
        styled.update_layout(
            showlegend=True,
            legend={
                "orientation": "h",
                **CONTAINER_TOP_LEFT,
                "entrywidthmode": "pixels",
                "tracegroupgap": 0,
            },
        )
        styled.layout.margin.t = (styled.layout.margin.t or 0) + _LEGEND_ROW_PX * legend_lines
    return styled


def legend_rows(labels: Sequence[str], columns: Literal[1, 2]) -> int:
    """Estimate how many rows a horizontal legend of ``labels`` needs at a print width.

    Args:
        labels: The legend entries' texts.
        columns: Printed width: 1 or 2 columns.

    Returns:
        The number of rows (at least 1).
    """
    available = inches_to_px(column_width_in(columns)) - 8
    widths = [40 + 4.7 * len(label) for label in labels]  # symbol + 7 pt text
    if not widths or sum(widths) <= available:
        return 1
    per_row = max(1, int(available // max(widths)))  # wrapped legends align their items in columns
    return math.ceil(len(widths) / per_row)


def line_style(index: int) -> tuple[str, str]:
    """Colour and dash for the index-th line: 7 strong Okabe-Ito colours, then new dashes."""
    strong = [colour for colour in CATEGORICAL_COLOURS if colour != OKABE_ITO["yellow"]]
    return strong[index % len(strong)], _LINE_DASHES[(index // len(strong)) % len(_LINE_DASHES)]


def image_figure_height_in(
    columns: Literal[1, 2],
    image_height: int,
    image_width: int,
    *,
    panel_rows: int = 1,
    panel_cols: int = 1,
    reserved_width_px: float = 60.0,
    reserved_height_px: float = 50.0,
    limits_in: tuple[float, float] = (1.6, 6.0),
) -> float:
    """Figure height at which panels of an image (square pixels) fill the printed width.

    Args:
        columns: Printed width: 1 or 2 columns.
        image_height: Image height in pixels (or grid cells).
        image_width: Image width.
        panel_rows: Rows of panels.
        panel_cols: Columns of panels.
        reserved_width_px: Horizontal room for axis labels, gaps and colour bars (Plotly px).
        reserved_height_px: Vertical room for axis labels, titles and legends.
        limits_in: Smallest and largest height returned, in inches.

    Returns:
        The height in inches.
    """
    panel_width = (inches_to_px(column_width_in(columns)) - reserved_width_px) / panel_cols
    height_px = panel_rows * panel_width * image_height / image_width + reserved_height_px
    return round(min(max(height_px / 96.0, limits_in[0]), limits_in[1]), 3)


def image_pixel_axes(fig: go.Figure, height: int, width: int) -> None:
    """Titled axes in image pixels for a single-panel image figure: row 0 at the top, square pixels."""
    fig.update_xaxes(title_text="x (pixels)", range=[-0.5, width - 0.5], constrain="domain", showgrid=False)
    fig.update_yaxes(
        title_text="y (pixels)",
        range=[height - 0.5, -0.5],
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
        showgrid=False,
    )
