"""Shared foundation for the paper figures: the print theme and file export.

Typical use::

    from crmn_viz.figures import apply_paper_style, export_figures

    styled = apply_paper_style(fig, columns=1)
    export_figures({"fig2_accuracy": styled}, "out/figures", formats=("pdf", "svg", "png"))

See :mod:`crmn_viz.figures.theme` for sizes, fonts and palettes, and
:mod:`crmn_viz.figures.export` for formats, sizes on paper and data sidecars.
"""

from crmn_viz.figures.export import (
    SUPPORTED_FORMATS,
    FigureExport,
    FigureExportError,
    browser_available,
    export_figure,
    export_figures,
    find_browser,
)
from crmn_viz.figures.theme import (
    CATEGORICAL_COLOURS,
    DIVERGING_COLORSCALE,
    MODEL_COLOURS,
    OKABE_ITO,
    ONE_COLUMN_WIDTH_IN,
    PAPER_TEMPLATE_NAME,
    SEQUENTIAL_COLORSCALE,
    SEQUENTIAL_COLORSCALE_ALT,
    TWO_COLUMN_WIDTH_IN,
    FontSizes,
    apply_paper_style,
    column_width_in,
    paper_template,
    pt_to_px,
    register_paper_template,
    symmetric_range,
)

__all__ = [
    "CATEGORICAL_COLOURS",
    "DIVERGING_COLORSCALE",
    "MODEL_COLOURS",
    "OKABE_ITO",
    "ONE_COLUMN_WIDTH_IN",
    "PAPER_TEMPLATE_NAME",
    "SEQUENTIAL_COLORSCALE",
    "SEQUENTIAL_COLORSCALE_ALT",
    "SUPPORTED_FORMATS",
    "TWO_COLUMN_WIDTH_IN",
    "FigureExport",
    "FigureExportError",
    "FontSizes",
    "apply_paper_style",
    "browser_available",
    "column_width_in",
    "export_figure",
    "export_figures",
    "find_browser",
    "paper_template",
    "pt_to_px",
    "register_paper_template",
    "symmetric_range",
]
