"""Figures as downloadable files: one image, its numbers, or a zip of many, via :mod:`crmn_viz.figures`.

Everything is written by :func:`crmn_viz.figures.export_figures` into a private temporary
folder and read back as bytes, so a front end only hands the bytes to the browser.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import plotly.graph_objects as go

from crmn_viz.figures import FigureExport, FigureExportError, apply_paper_style, export_figures
from crmn_viz.limits import LIMITS, Limits

__all__ = [
    "MIME_TYPES",
    "DownloadFile",
    "FigureItem",
    "export_bundle",
    "figure_data_file",
    "figure_image_file",
    "for_screen",
    "safe_figure_name",
]

MIME_TYPES = {
    "pdf": "application/pdf",
    "svg": "image/svg+xml",
    "png": "image/png",
    "html": "text/html",
    "json": "application/json",
    "csv": "text/csv",
    "npz": "application/octet-stream",
    "zip": "application/zip",
}


@dataclass(frozen=True)
class DownloadFile:
    """A file ready for download: ``name`` (with extension), ``data`` (bytes), ``mime`` type."""

    name: str
    data: bytes
    mime: str


@dataclass(frozen=True)
class FigureItem:
    """A figure to export: file stem ``name``, the ``figure``, and optional numbers ``data``."""

    name: str
    figure: go.Figure
    data: Mapping[str, Any] | None = None


def safe_figure_name(text: str) -> str:
    """A file stem made of letters, digits, ``_``, ``-`` and ``.`` (what the exporter accepts)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in text).strip("._-")
    return (cleaned or "figure")[:100]


def _scale_fonts(node: Any, factor: float) -> None:
    """Multiply every ``size`` inside a font specification of a figure dict, in place."""
    if isinstance(node, dict):
        for name, value in node.items():
            if (
                name.endswith("font")
                and isinstance(value, dict)
                and isinstance(value.get("size"), (int, float))
            ):
                value["size"] = value["size"] * factor
            _scale_fonts(value, factor)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _scale_fonts(value, factor)


def for_screen(figure: go.Figure, factor: float = 1.4) -> go.Figure:
    """A copy of a print-sized figure enlarged for a screen: type, size and margins times ``factor``.

    The figure builders draw at paper sizes (3.5 in wide, 7-9 pt type), which reads small in a
    browser. The copy keeps every proportion; the original (the one to export) is unchanged.
    """
    data = figure.to_plotly_json()
    _scale_fonts(data, factor)
    layout = data.setdefault("layout", {})
    for name in ("width", "height"):
        if isinstance(layout.get(name), (int, float)):
            layout[name] = layout[name] * factor
    margin = layout.get("margin")
    if isinstance(margin, dict):
        for side in ("l", "r", "t", "b"):
            if isinstance(margin.get(side), (int, float)):
                margin[side] = margin[side] * factor
    return go.Figure(data)


def _screen_size(figure: go.Figure) -> dict[str, Any]:
    """Export sizes for a figure drawn for the screen: its own size, else two columns wide."""
    if figure.layout.width:
        return {}
    return {"columns": 2}


def figure_image_file(
    figure: go.Figure, name: str, file_format: str = "png", dpi: float = 200
) -> DownloadFile:
    """One figure as an image file (PNG, SVG or PDF through Chromium; HTML without a browser).

    Raises:
        crmn_viz.figures.FigureExportError: no Chrome/Chromium for PNG/SVG/PDF.
    """
    stem = safe_figure_name(name)
    item = FigureExport(stem, figure, **_screen_size(figure))
    with tempfile.TemporaryDirectory(prefix="crmn-viz-figure-") as folder:
        (path,) = export_figures([item], folder, formats=(file_format,), dpi=dpi)
        return DownloadFile(path.name, path.read_bytes(), MIME_TYPES[file_format])


def figure_data_file(figure: go.Figure, name: str, data: Mapping[str, Any]) -> DownloadFile:
    """The numbers behind a figure, as the exporter writes them: ``name.data.csv`` or ``.npz``."""
    stem = safe_figure_name(name)
    with tempfile.TemporaryDirectory(prefix="crmn-viz-data-") as folder:
        written = export_figures([FigureExport(stem, figure, data=data)], folder, formats=("json",))
        data_path = next(path for path in written if ".data." in path.name)
        return DownloadFile(data_path.name, data_path.read_bytes(), MIME_TYPES[data_path.suffix.lstrip(".")])


def export_bundle(
    items: Sequence[FigureItem],
    formats: Sequence[str] = ("pdf", "svg", "png"),
    columns: Literal[1, 2] = 1,
    dpi: float = 300,
    keep_title: bool = False,
    include_data: bool = True,
    single_file: bool = False,
) -> DownloadFile:
    """Style figures for print and export them in one browser session.

    Every figure gets :func:`crmn_viz.figures.apply_paper_style` (one or two columns), then
    :func:`crmn_viz.figures.export_figures` writes each format, plus ``name.data.csv``/``.npz``
    and ``name.meta.json`` beside it when ``include_data`` and the figure has data.

    Args:
        items: the figures (names must be unique).
        formats: any of ``pdf``, ``svg``, ``png`` (``html``, ``json`` also work).
        columns: 1 (3.5 in) or 2 (7.16 in) wide.
        dpi: PNG resolution.
        keep_title: keep figure titles (papers usually put them in the caption).
        include_data: write the data and metadata sidecars.
        single_file: return the one figure file itself instead of a zip (needs exactly one
            figure and one format).

    Returns:
        A zip (``crmn-viz-figures.zip``) or the single file.

    Raises:
        ValueError: no figures, or ``single_file`` with more than one figure or format.
        crmn_viz.figures.FigureExportError: Chrome/Chromium is missing, rendering failed, or more
            figures than ``LIMITS.max_export_figures`` (or a dpi/size beyond the limits) were asked for.
    """
    if not items:
        raise ValueError("choose at least one figure to export")
    if len(items) > LIMITS.max_export_figures:
        raise FigureExportError(
            f"{len(items)} figures were chosen, above the limit of {LIMITS.max_export_figures} per export "
            f"(set by {Limits.env_name('max_export_figures')}); export them in several parts."
        )
    if single_file and (len(items) != 1 or len(formats) != 1):
        raise ValueError("a single file needs exactly one figure and one format")
    exports = [
        FigureExport(
            safe_figure_name(item.name),
            apply_paper_style(item.figure, columns=columns, keep_title=keep_title),
            data=item.data if include_data and item.data else None,
        )
        for item in items
    ]
    with tempfile.TemporaryDirectory(prefix="crmn-viz-export-") as folder:
        written = export_figures(exports, folder, formats=formats, dpi=dpi)
        if single_file:
            path = written[0]
            return DownloadFile(path.name, path.read_bytes(), MIME_TYPES.get(path.suffix.lstrip("."), ""))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                archive.write(path, arcname=Path(path).name)
        return DownloadFile("crmn-viz-figures.zip", buffer.getvalue(), MIME_TYPES["zip"])
