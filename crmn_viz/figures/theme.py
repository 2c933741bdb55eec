"""The paper look shared by every crmn_viz figure: template, palettes and print sizes.

Units
-----
Plotly lays figures out in CSS pixels, and Chrome (which kaleido drives to
write PDF/SVG/PNG) maps **96 CSS px to one inch**. Typography uses points,
**72 pt to one inch**, so one point is 4/3 px:

==================  =========  ==========  =========
size                inches     points      plotly px
==================  =========  ==========  =========
one column          3.5        252         336
two columns         7.16       515.5       687.4
base font           --         8           10.67
tick labels         --         7           9.33
title / panel tag   --         9           12
axis lines          --         0.75        1
==================  =========  ==========  =========

The column widths are the IEEE/ACM two-column widths (3.5 in and 7.16 in);
Nature-style 89 mm / 183 mm columns are within 0.05 in of them.

Colours are colour-blind safe: the Okabe-Ito palette for categories (models,
conditions), viridis (or cividis) for magnitudes, and reversed RdBu for signed
maps (blue negative, white zero, red positive; pair it with ``zmid=0`` or
:func:`symmetric_range`).

Importing this module registers the Plotly template :data:`PAPER_TEMPLATE_NAME`
(``"crmn_paper"``) without making it the global default, so the interactive
app keeps its own look until a figure opts in with
``fig.update_layout(template="crmn_paper")`` or :func:`apply_paper_style`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "CATEGORICAL_COLOURS",
    "CSS_PIXELS_PER_INCH",
    "DIVERGING_COLORSCALE",
    "FONT_FAMILY",
    "MODEL_COLOURS",
    "OKABE_ITO",
    "ONE_COLUMN_WIDTH_IN",
    "PAPER_TEMPLATE_NAME",
    "POINTS_PER_INCH",
    "SEQUENTIAL_COLORSCALE",
    "SEQUENTIAL_COLORSCALE_ALT",
    "TWO_COLUMN_WIDTH_IN",
    "FontSizes",
    "apply_paper_style",
    "column_width_in",
    "default_height_in",
    "inches_to_px",
    "paper_template",
    "pt_to_px",
    "register_paper_template",
    "symmetric_range",
]

PAPER_TEMPLATE_NAME = "crmn_paper"
"""Name under which the paper template is registered in ``plotly.io.templates``."""

POINTS_PER_INCH = 72.0
CSS_PIXELS_PER_INCH = 96.0
"""Plotly layout pixels per inch, as Chrome prints them to PDF and SVG."""

ONE_COLUMN_WIDTH_IN = 3.5
"""Width of a one-column figure in inches (252 pt)."""
TWO_COLUMN_WIDTH_IN = 7.16
"""Width of a figure spanning both columns in inches (515.5 pt)."""
_DEFAULT_HEIGHT_IN = {1: 2.5, 2: 3.0}
_DEFAULT_ASPECT = _DEFAULT_HEIGHT_IN[1] / ONE_COLUMN_WIDTH_IN

FONT_FAMILY = "Arial, Helvetica, 'Liberation Sans', 'Nimbus Sans', 'DejaVu Sans', sans-serif"
"""Arial first; Liberation Sans (metric-compatible) is what Debian's Chromium finds."""

OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
"""The Okabe & Ito (2008) colour-blind-safe palette, by name."""

CATEGORICAL_COLOURS: tuple[str, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["vermillion"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["orange"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["black"],
    OKABE_ITO["yellow"],
)
"""Okabe-Ito ordered for a white background: strong colours first, pale yellow last."""

MODEL_COLOURS: dict[str, str] = {
    "CRMN": OKABE_ITO["blue"],
    "ReNet": OKABE_ITO["vermillion"],
    "RiR": OKABE_ITO["bluish_green"],
    "ResNet": OKABE_ITO["reddish_purple"],
}
"""One fixed colour per architecture, so a model looks the same in every figure."""

SEQUENTIAL_COLORSCALE: list[list[float | str]] = plotly.colors.get_colorscale("Viridis")
"""Perceptually uniform scale for non-negative magnitudes (activations, attention)."""
SEQUENTIAL_COLORSCALE_ALT: list[list[float | str]] = plotly.colors.get_colorscale("Cividis")
"""Cividis: like viridis but also readable with full red-green colour blindness."""
DIVERGING_COLORSCALE: list[list[float | str]] = plotly.colors.get_colorscale("RdBu_r")
"""Blue (negative) - white (zero) - red (positive) for signed maps; use with ``zmid=0``."""


class FontSizes:
    """Print font sizes in points (convert with :func:`pt_to_px` for Plotly).

    Attributes:
        base: Axis titles, legend titles and general text (8 pt).
        tick: Tick labels, legend entries and colour bars (7 pt).
        title: Figure titles and bold panel tags such as "a", "b" (9 pt).
    """

    base: float = 8.0
    tick: float = 7.0
    title: float = 9.0


CONTAINER_TOP_LEFT = {
    **{"x": 0.0, "xanchor": "left", "xref": "container"},
    **{"y": 1.0, "yanchor": "top", "yref": "container"},
}
"""Plotly placement at the top-left corner of the whole figure (titles, legends above the plots)."""


def pt_to_px(points: float) -> float:
    """Convert points (1/72 in) to Plotly layout pixels (1/96 in).

    Args:
        points: A length or font size in points.

    Returns:
        The same length in Plotly (CSS) pixels, e.g. 8 pt -> 10.67 px.
    """
    return points * CSS_PIXELS_PER_INCH / POINTS_PER_INCH


def inches_to_px(inches: float) -> float:
    """Convert inches to Plotly layout pixels (96 per inch).

    Args:
        inches: A length in inches.

    Returns:
        The length in Plotly (CSS) pixels, e.g. 3.5 in -> 336 px.
    """
    return inches * CSS_PIXELS_PER_INCH


def column_width_in(columns: Literal[1, 2]) -> float:
    """Return the printed width of a figure spanning one or two columns.

    Args:
        columns: 1 for a single column (3.5 in), 2 for the full page width (7.16 in).

    Returns:
        The width in inches.

    Raises:
        ValueError: ``columns`` is not 1 or 2.
    """
    if columns == 1:
        return ONE_COLUMN_WIDTH_IN
    if columns == 2:
        return TWO_COLUMN_WIDTH_IN
    raise ValueError(f"columns must be 1 or 2, got {columns!r}")


def default_height_in(columns: Literal[1, 2] | None = None, *, width_in: float | None = None) -> float:
    """Return a default figure height: 2.5 in for one column, 3.0 in for two.

    Args:
        columns: 1 or 2; takes precedence over ``width_in``.
        width_in: For a custom width without ``columns``, the height keeps the
            one-column aspect ratio (width x 5/7).

    Returns:
        The height in inches.
    """
    if columns is not None:
        column_width_in(columns)  # validates
        return _DEFAULT_HEIGHT_IN[columns]
    if width_in is not None:
        return round(width_in * _DEFAULT_ASPECT, 3)
    return _DEFAULT_HEIGHT_IN[1]


def symmetric_range(values: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Return (-m, m) with m the largest absolute finite value, for diverging colour scales.

    Args:
        values: Any array-like of numbers (NaNs and infinities are ignored).

    Returns:
        ``(zmin, zmax)`` centred on zero; ``(-1.0, 1.0)`` when there is no non-zero finite value.
    """
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float)
    finite = np.abs(array[np.isfinite(array)])
    largest = float(finite.max()) if finite.size else 0.0
    if largest == 0.0:
        return (-1.0, 1.0)
    return (-largest, largest)


def _axis_style() -> dict:
    return {
        "showline": True,
        "linewidth": 1,  # 0.75 pt
        "linecolor": "#000000",
        "mirror": False,
        "ticks": "outside",
        "ticklen": 3,
        "tickwidth": 1,
        "tickcolor": "#000000",
        "showgrid": False,
        "zeroline": False,
        "automargin": True,
        "title": {"standoff": 4, "font": {"size": pt_to_px(FontSizes.base)}},
        "tickfont": {"size": pt_to_px(FontSizes.tick)},
    }


def _colorbar_style() -> dict:
    return {
        "thickness": 8,
        "outlinewidth": 0,
        "ticks": "outside",
        "ticklen": 2,
        "tickwidth": 1,
        "tickfont": {"size": pt_to_px(FontSizes.tick)},
        "title": {"font": {"size": pt_to_px(FontSizes.base)}, "side": "right"},
    }


def paper_template() -> go.layout.Template:
    """Build the ``crmn_paper`` Plotly template.

    White background, thin black axes with outside ticks and no grid, sans-serif
    type at print sizes (see :class:`FontSizes`), the Okabe-Ito colourway and
    viridis / reversed-RdBu colour scales. Built on Plotly's ``simple_white``.

    Returns:
        A new template; changing it does not change the registered one.
    """
    template = go.layout.Template(pio.templates["simple_white"])
    template.layout.update(
        font={"family": FONT_FAMILY, "size": pt_to_px(FontSizes.base), "color": "#000000"},
        title={"font": {"size": pt_to_px(FontSizes.title)}, "x": 0.0, "xanchor": "left"},
        paper_bgcolor="#FFFFFF",
        plot_bgcolor="#FFFFFF",
        colorway=list(CATEGORICAL_COLOURS),
        colorscale={
            "sequential": SEQUENTIAL_COLORSCALE,
            "sequentialminus": SEQUENTIAL_COLORSCALE,
            "diverging": DIVERGING_COLORSCALE,
        },
        margin={"l": 4, "r": 4, "t": 6, "b": 4, "pad": 0, "autoexpand": True},
        xaxis=_axis_style(),
        yaxis=_axis_style(),
        legend={
            "font": {"size": pt_to_px(FontSizes.tick)},
            "title": {"font": {"size": pt_to_px(FontSizes.base)}},
            "bgcolor": "rgba(255,255,255,0)",
            "borderwidth": 0,
            "tracegroupgap": 2,
            "itemwidth": 30,
        },
        coloraxis={"colorscale": SEQUENTIAL_COLORSCALE, "colorbar": _colorbar_style()},
        annotationdefaults={"font": {"size": pt_to_px(FontSizes.base)}},
        hoverlabel={"font": {"family": FONT_FAMILY}},
    )
    template.data.scatter = [go.Scatter(line={"width": 1.5}, marker={"size": 5, "line": {"width": 0}})]
    template.data.heatmap = [go.Heatmap(colorscale=SEQUENTIAL_COLORSCALE, colorbar=_colorbar_style())]
    template.data.contour = [go.Contour(colorscale=SEQUENTIAL_COLORSCALE, colorbar=_colorbar_style())]
    template.data.histogram2d = [go.Histogram2d(colorscale=SEQUENTIAL_COLORSCALE, colorbar=_colorbar_style())]
    template.data.bar = [go.Bar(marker={"line": {"width": 0}})]
    return template


def register_paper_template(*, set_default: bool = False) -> str:
    """Register (or refresh) the paper template in ``plotly.io.templates``.

    Args:
        set_default: Also make it Plotly's default template for new figures.

    Returns:
        The template name, :data:`PAPER_TEMPLATE_NAME`.
    """
    pio.templates[PAPER_TEMPLATE_NAME] = paper_template()
    if set_default:
        pio.templates.default = PAPER_TEMPLATE_NAME
    return PAPER_TEMPLATE_NAME


def apply_paper_style(
    fig: go.Figure | dict,
    columns: Literal[1, 2] = 1,
    *,
    width_in: float | None = None,
    height_in: float | None = None,
    keep_title: bool = False,
    font_size_pt: float = FontSizes.base,
) -> go.Figure:
    """Return a copy of ``fig`` styled and sized for print in a paper.

    The copy uses the ``crmn_paper`` template, is exactly one column (3.5 in)
    or two columns (7.16 in) wide, has its title removed (the caption carries
    it) unless ``keep_title``, and has every axis, legend and colour-bar font
    set to print sizes: ``font_size_pt`` for text and axis titles, one point
    less for tick labels and legends. The original figure is not changed.

    Args:
        fig: A Plotly figure or its dict form.
        columns: 1 for a one-column figure, 2 for a figure spanning the page.
        width_in: Overrides the column width, in inches.
        height_in: Figure height in inches; default 2.5 (one column) or 3.0 (two).
        keep_title: Keep the figure title (at 9 pt) instead of removing it.
        font_size_pt: Base font size in points (8 by default; 7-9 suits print).

    Returns:
        A new ``go.Figure`` whose ``layout.width``/``height`` are in Plotly
        pixels (96 per inch), ready for :func:`crmn_viz.figures.export_figure`.

    Raises:
        ValueError: ``columns`` is not 1 or 2, or a size is not positive.
    """
    width = width_in if width_in is not None else column_width_in(columns)
    height = height_in if height_in is not None else default_height_in(columns)
    if width <= 0 or height <= 0:
        raise ValueError(f"figure size must be positive, got {width} x {height} in")
    if font_size_pt <= 0:
        raise ValueError(f"font_size_pt must be positive, got {font_size_pt}")

    styled = go.Figure(fig)
    text_px = pt_to_px(font_size_pt)
    small_px = pt_to_px(max(font_size_pt - 1.0, 5.0))
    styled.update_layout(
        template=pio.templates[
            PAPER_TEMPLATE_NAME if PAPER_TEMPLATE_NAME in pio.templates else register_paper_template()
        ],
        width=inches_to_px(width),
        height=inches_to_px(height),
        autosize=False,
        font={"family": FONT_FAMILY, "size": text_px, "color": "#000000"},
        legend={"font": {"size": small_px}, "title": {"font": {"size": text_px}}},
        margin={"l": 4, "r": 4, "b": 4, "t": 6, "pad": 0, "autoexpand": True},
    )
    styled.for_each_xaxis(lambda axis: axis.update(title_font_size=text_px, tickfont_size=small_px))
    styled.for_each_yaxis(lambda axis: axis.update(title_font_size=text_px, tickfont_size=small_px))
    styled.for_each_coloraxis(
        lambda coloraxis: coloraxis.update(
            colorbar={"tickfont": {"size": small_px}, "title": {"font": {"size": text_px}}}
        )
    )
    for trace in styled.data:
        if "colorbar" in trace:
            trace.update(colorbar={"tickfont": {"size": small_px}, "title": {"font": {"size": text_px}}})
    title_px = pt_to_px(font_size_pt + 1.0)
    top_margin = 6.0
    for annotation in styled.layout.annotations:
        size = annotation.font.size
        if size is not None and size > title_px:  # e.g. make_subplots' 16 px subplot titles
            annotation.font.size = title_px
        if _sits_above_plot(annotation):
            # Plotly does not grow margins for annotations: make room for subplot titles.
            top_margin = max(top_margin, (annotation.font.size or text_px) * 1.5 + 4)
    if keep_title and styled.layout.title.text:
        styled.update_layout(
            title={"font": {"size": title_px}, **CONTAINER_TOP_LEFT, "pad": {"t": 4, "l": 4}}
        )
        top_margin += title_px * 2.0
    else:
        styled.layout.title.text = None
    styled.update_layout(margin={"t": top_margin})
    return styled


def _sits_above_plot(annotation: go.layout.Annotation) -> bool:
    """Whether an annotation is placed on or above the top edge of the plotting area."""
    if annotation.yref != "paper" and not str(annotation.yref or "").endswith(" domain"):
        return False
    y = annotation.y if annotation.y is not None else 0.5
    return y >= 1.0 or (y >= 0.98 and annotation.yanchor == "bottom")


register_paper_template()
