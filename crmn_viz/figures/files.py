"""Figures as downloadable files: one image, its numbers, or a zip of many, via :mod:`crmn_viz.figures`.

Single files are drawn straight to bytes (:func:`crmn_viz.figures.export_figure_bytes`); a bundle
is written by :func:`crmn_viz.figures.export_figures` into a private temporary folder and zipped.
Every file carries the figure's :class:`crmn_viz.provenance.Provenance` when one is given.
"""

from __future__ import annotations

import base64
import io
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from crmn_viz.figures import (
    FigureExport,
    FigureExportError,
    apply_paper_style,
    export_figure_bytes,
    export_figures,
    figure_data_bytes,
)
from crmn_viz.limits import LIMITS, Limits
from crmn_viz.provenance import Provenance

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
    """A figure to export: file stem ``name``, the ``figure``, optional numbers ``data`` and the
    ``provenance`` that says what made it."""

    name: str
    figure: go.Figure
    data: Mapping[str, Any] | None = None
    provenance: Provenance | None = None


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


_RGB_RANGE = {"rgb": 3, "rgba": 4, "rgba256": 4}


def _png_data_uri(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _image_as_png(original: Any, trace: dict[str, Any]) -> None:
    """Replace an image trace's pixel array ``z`` by a PNG ``source`` in ``trace``, the JSON dict
    of the trace object ``original`` (whose ``z`` is read).

    Plotly sends ``z`` as JSON numbers (a 443 x 360 photo is megabytes); the same picture as PNG
    is a few kilobytes, and plotly.js draws a ``source`` image with sharp pixels (``zsmooth``
    false), so small inputs enlarged on screen stay crisp. RGB(A) images only; ``zmin``/``zmax``
    are applied as plotly.js would (default 0-255, alpha 0-1).
    """
    if original.type != "image" or original.z is None:
        return
    model = original.colormodel or "rgb"
    if model not in _RGB_RANGE:
        return
    z = np.asarray(original.z, dtype=np.float64)
    if z.ndim != 3 or z.shape[2] not in (3, 4) or not np.isfinite(z).all():
        return
    channels = z.shape[2]
    default_max = [255.0, 255.0, 255.0, 1.0 if model == "rgba" else 255.0][:channels]
    low = np.asarray(original.zmin or [0.0] * channels, dtype=np.float64)[:channels]
    high = np.asarray(original.zmax or default_max, dtype=np.float64)[:channels]
    span = np.where(high > low, high - low, 1.0)
    pixels = np.clip(np.rint((z - low) / span * 255.0), 0, 255).astype(np.uint8)
    for name in ("z", "zmin", "zmax", "colormodel"):
        trace.pop(name, None)
    trace["source"] = _png_data_uri(pixels)
    hover = trace.get("hovertemplate")
    if isinstance(hover, str) and "%{z" in hover:
        trace["hovertemplate"] = hover.replace("%{z}", "%{color}")


def for_screen(figure: go.Figure, factor: float = 1.4) -> go.Figure:
    """A copy of a print-sized figure made for a screen: enlarged, and its pictures sent as PNG.

    The figure builders draw at paper sizes (3.5 in wide, 7-9 pt type), which reads small in a
    browser: type, size and margins are multiplied by ``factor``, keeping every proportion.
    Image traces carry their pixels as PNG (:func:`_image_as_png`), not as JSON arrays. The
    original (the one to export, whose data file holds the pixel values) is unchanged. The copy
    is edited as the figure's JSON and validated once, as one new figure.
    """
    data = figure.to_plotly_json()  # a deep copy of plain dicts, lists and arrays
    for original, trace in zip(figure.data, data.get("data", ())):
        _image_as_png(original, trace)
    for frame, frame_data in zip(figure.frames, data.get("frames", ())):
        for original, trace in zip(frame.data, frame_data.get("data", ())):
            _image_as_png(original, trace)
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
    figure: go.Figure,
    name: str,
    file_format: str = "png",
    dpi: float = 200,
    provenance: Provenance | None = None,
) -> DownloadFile:
    """One figure as an image file (PNG, SVG or PDF through Chromium; HTML without a browser),
    with ``provenance`` inside it.

    Raises:
        crmn_viz.figures.FigureExportError: no Chrome/Chromium for PNG/SVG/PDF.
    """
    stem = safe_figure_name(name)
    content = export_figure_bytes(
        figure, file_format, dpi=dpi, provenance=provenance, name=stem, **_screen_size(figure)
    )
    return DownloadFile(f"{stem}.{file_format}", content, MIME_TYPES[file_format])


def figure_data_file(name: str, data: Mapping[str, Any]) -> DownloadFile:
    """The numbers behind a figure, as the exporter writes them: ``name.data.csv`` or ``.npz``."""
    stem = safe_figure_name(name)
    extension, content = figure_data_bytes(data, stem)
    return DownloadFile(f"{stem}.data.{extension}", content, MIME_TYPES[extension])


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
    and ``name.meta.json`` beside it when ``include_data`` and the figure has data. A figure's
    provenance goes inside each of its files and into its ``name.meta.json``.

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
            provenance=item.provenance,
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
