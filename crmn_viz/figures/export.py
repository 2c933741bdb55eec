"""Write figures to PDF, SVG, PNG, HTML or JSON at their printed size, with their numbers.

PDF, SVG and PNG are drawn by Chrome/Chromium through kaleido (>= 1.0).
Starting a browser takes a second or two, so :func:`export_figures` renders
every figure and format in one browser session; :func:`export_figure` is the
one-figure case of the same thing. HTML and JSON need no browser.

Sizes are physical. A figure's width and height in inches come from the
explicit arguments, else from ``columns`` (3.5 in / 7.16 in), else from the
figure's own ``layout.width``/``height`` (Plotly pixels, 96 per inch, as set by
:func:`crmn_viz.figures.apply_paper_style`), else a one-column default. Then:

* PDF: one page of that size in points (72 per inch) with vector text and
  embedded fonts; Chrome rounds page sizes to its own grid, so a page may be
  up to ~1 pt off (7.16 in = 515.5 pt comes out 516 pt). The 0.1 in page
  margins kaleido asks for are removed, so nothing is shifted or clipped.
* SVG: the root element says ``width="3.5in"`` etc. with a pixel ``viewBox``.
* PNG: ``inches x dpi`` pixels (kaleido's ``scale`` = dpi / 96), with the dpi
  recorded in the file so word processors place it at the right size.

Sizes are bounded by :data:`crmn_viz.limits.LIMITS`: a dpi above ``max_export_dpi`` (1200),
a side longer than ``max_export_inches`` (50 in) or a PNG of more than ``max_export_pixels``
(200 megapixels) is refused with :class:`FigureExportError` before anything is drawn.

When ``data`` is given, the numbers behind the figure are written beside it
(``<name>.data.npz`` or ``<name>.data.csv``) together with ``<name>.meta.json``
describing the files, size and software versions.

Browser rendering lives in :mod:`crmn_viz.figures.rendering` (how Chrome is found, MathJax
off: write symbols as Unicode), the data files and ``.meta.json`` in
:mod:`crmn_viz.figures.sidecars`; this module plans sizes, checks limits and writes the files.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from crmn_viz.figures import rendering
from crmn_viz.figures.file_metadata import embed_provenance
from crmn_viz.figures.rendering import FigureExportError, RenderJob, find_browser
from crmn_viz.figures.sidecars import FigureData, encode_data, validate_data, write_atomically, write_sidecars
from crmn_viz.figures.theme import CSS_PIXELS_PER_INCH, column_width_in, default_height_in
from crmn_viz.limits import LIMITS, Limits
from crmn_viz.provenance import Provenance

__all__ = [
    "BROWSER_FORMATS",
    "SUPPORTED_FORMATS",
    "FigureData",
    "FigureExport",
    "FigureExportError",
    "browser_available",
    "export_figure",
    "export_figure_bytes",
    "export_figures",
    "figure_data_bytes",
    "find_browser",
]

BROWSER_FORMATS: tuple[str, ...] = ("pdf", "svg", "png")
"""Formats that need Chrome/Chromium (drawn by kaleido)."""
SUPPORTED_FORMATS: tuple[str, ...] = (*BROWSER_FORMATS, "html", "json")
"""Every format :func:`export_figure` can write; the file extension chooses it."""

# Copying one figure object from several threads at once (two app sessions exporting the same
# cached figure) can mix up trace types inside plotly; the copies are cheap, so serialise them.
_FIGURE_COPY_LOCK = threading.Lock()


@dataclass(frozen=True)
class FigureExport:
    """One figure to write with :func:`export_figures`.

    Attributes:
        name: File stem, e.g. ``"fig3_attention"`` (no folders, no extension).
        figure: The Plotly figure (or its dict form).
        data: Optional numbers behind the figure, written beside it (see :func:`export_figure`).
        columns: 1 or 2 to size it as a one- or two-column figure.
        width_in: Printed width in inches (overrides ``columns``).
        height_in: Printed height in inches.
        metadata: Extra JSON-serialisable facts for the ``.meta.json`` sidecar.
        provenance: What made the figure (checkpoint, weights digest, images, settings), written
            inside every figure file and into the ``.meta.json`` sidecar.
    """

    name: str
    figure: go.Figure | dict
    data: FigureData | None = None
    columns: int | None = None
    width_in: float | None = None
    height_in: float | None = None
    metadata: Mapping[str, Any] | None = field(default=None)
    provenance: Provenance | None = None


@dataclass
class _RenderedFigure:
    """One figure drawn in every asked format: ``files`` maps a format to the file's bytes."""

    item: FigureExport
    width_in: float
    height_in: float
    files: dict[str, bytes]


# --------------------------------------------------------------------------- public API


def export_figure(
    fig: go.Figure | dict,
    path: str | os.PathLike,
    *,
    dpi: float = 300,
    columns: int | None = None,
    width_in: float | None = None,
    height_in: float | None = None,
    data: FigureData | None = None,
    metadata: Mapping[str, Any] | None = None,
    provenance: Provenance | None = None,
) -> Path:
    """Write one figure to ``path``, in the format its extension names, at its printed size.

    Args:
        fig: A Plotly figure or its dict form (style it first with
            :func:`crmn_viz.figures.apply_paper_style`).
        path: Output file ending in ``.pdf``, ``.svg``, ``.png``, ``.html`` or
            ``.json``; missing folders are created.
        dpi: PNG resolution: the PNG is ``width_in * dpi`` pixels wide.
        columns: 1 or 2 to use the one-column (3.5 in) or two-column (7.16 in) width.
        width_in: Printed width in inches; overrides ``columns``.
        height_in: Printed height in inches; default from the figure or the column size.
        data: Numbers behind the figure. A mapping of equal-length 1-D columns
            or a pandas DataFrame is written to ``<stem>.data.csv``; any other
            mapping of arrays to ``<stem>.data.npz``. A ``<stem>.meta.json``
            sidecar describes them.
        metadata: Extra JSON-serialisable facts for the sidecar (written when
            ``data``, ``metadata`` or ``provenance`` is given).
        provenance: What made the figure; written inside the file (PDF document information,
            SVG ``<metadata>``, PNG text chunks, HTML ``<meta>``) and into the sidecar.

    Returns:
        The path of the figure file.

    Raises:
        ValueError: Unsupported extension, bad size or dpi, or unusable ``data``.
        FigureExportError: Chrome/Chromium or kaleido is missing, rendering failed, or the dpi,
            size or PNG pixel count is beyond :data:`crmn_viz.limits.LIMITS`.
    """
    target = Path(path)
    file_format = target.suffix.lower().lstrip(".")
    if file_format not in SUPPORTED_FORMATS:
        raise ValueError(
            f"Cannot tell the format of {str(target)!r}: use one of the extensions "
            f"{', '.join('.' + name for name in SUPPORTED_FORMATS)}."
        )
    _check_dpi(dpi)
    item = FigureExport(
        name=target.stem,
        figure=fig,
        data=data,
        columns=columns,
        width_in=width_in,
        height_in=height_in,
        metadata=metadata,
        provenance=provenance,
    )
    written = _export_items([item], target.parent, [file_format], dpi)
    return written[0]


def export_figure_bytes(
    fig: go.Figure | dict,
    file_format: str = "png",
    *,
    dpi: float = 300,
    columns: int | None = None,
    width_in: float | None = None,
    height_in: float | None = None,
    provenance: Provenance | None = None,
    name: str = "figure",
) -> bytes:
    """One figure as the bytes of a file in ``file_format``, without touching the disk.

    The same drawing, sizes and embedded provenance as :func:`export_figure`; ``name`` is
    the figure's name inside the file (the PDF/SVG/HTML title).

    Raises:
        ValueError: Unsupported format or bad size or dpi.
        FigureExportError: as :func:`export_figure`.
    """
    normalised = file_format.lower().lstrip(".")
    if normalised not in SUPPORTED_FORMATS:
        raise ValueError(f"Unsupported format {file_format!r}; choose from {', '.join(SUPPORTED_FORMATS)}.")
    _check_dpi(dpi)
    item = FigureExport(
        name=name if _SAFE_NAME.match(name) else "figure",
        figure=fig,
        columns=columns,
        width_in=width_in,
        height_in=height_in,
        provenance=provenance,
    )
    (rendered,) = _render_items([item], [normalised], dpi)
    return rendered.files[normalised]


def figure_data_bytes(data: FigureData, name: str = "figure") -> tuple[str, bytes]:
    """The numbers behind a figure as the data file :func:`export_figure` writes beside it.

    Returns:
        ``(extension, content)``: ``"csv"`` for equal-length 1-D columns or a DataFrame,
        else ``"npz"``.

    Raises:
        ValueError: unusable ``data``.
    """
    validate_data(data, name)
    extension, content, _ = encode_data(data)
    return extension, content


def export_figures(
    items: Mapping[str, go.Figure | dict] | Iterable[FigureExport | tuple[str, go.Figure | dict]],
    out_dir: str | os.PathLike,
    formats: Sequence[str] = ("pdf", "svg", "png"),
    dpi: float = 300,
) -> list[Path]:
    """Write many figures in several formats, starting the browser only once.

    Args:
        items: Figures by name (a mapping name -> figure), or a sequence of
            :class:`FigureExport` (to give each its size, data and metadata) or
            of ``(name, figure)`` pairs. Names become file stems.
        out_dir: Folder for the files; created if missing.
        formats: Any of ``"pdf"``, ``"svg"``, ``"png"``, ``"html"``, ``"json"``.
        dpi: PNG resolution in dots per inch.

    Returns:
        Every path written, figure by figure: its files in the order of
        ``formats``, then its data file and ``.meta.json`` sidecar if any.

    Raises:
        ValueError: Unknown format, duplicate or unsafe names, bad sizes or data.
        FigureExportError: Chrome/Chromium or kaleido is missing, rendering failed, or the dpi,
            size or PNG pixel count is beyond :data:`crmn_viz.limits.LIMITS`.
    """
    normalised_formats = [name.lower().lstrip(".") for name in formats]
    unknown = [name for name in normalised_formats if name not in SUPPORTED_FORMATS]
    if unknown or not normalised_formats:
        raise ValueError(
            f"Unsupported formats {unknown or formats!r}; choose from {', '.join(SUPPORTED_FORMATS)}."
        )
    _check_dpi(dpi)
    return _export_items(_normalise_items(items), Path(out_dir), list(dict.fromkeys(normalised_formats)), dpi)


def browser_available() -> bool:
    """Return whether PDF/SVG/PNG export can run: kaleido >= 1 and an executable Chrome/Chromium.

    Returns:
        True when :func:`find_browser` gives an executable file and kaleido >= 1 imports.
    """
    try:
        rendering.require_kaleido()
        rendering.require_browser(find_browser())
    except FigureExportError:
        return False
    return True


# --------------------------------------------------------------------------- planning


def _check_dpi(dpi: float) -> None:
    if not isinstance(dpi, (int, float)) or not math.isfinite(dpi) or dpi <= 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    if dpi > LIMITS.max_export_dpi:
        raise FigureExportError(
            f"dpi={dpi:g} is above the limit of {LIMITS.max_export_dpi:g} dpi "
            f"(set by {Limits.env_name('max_export_dpi')}); choose a lower resolution."
        )


def _check_png_pixels(name: str, width_in: float, height_in: float, dpi: float) -> None:
    pixels = round(width_in * dpi) * round(height_in * dpi)
    if pixels > LIMITS.max_export_pixels:
        raise FigureExportError(
            f"{name}.png would be {round(width_in * dpi)} x {round(height_in * dpi)} pixels "
            f"({pixels / 1e6:.0f} megapixels), above the limit of {LIMITS.max_export_pixels / 1e6:g} "
            f"megapixels (set by {Limits.env_name('max_export_pixels')}); lower the dpi or the size."
        )


_SAFE_NAME = re.compile(r"^[\w][\w.\-]*$")


def _normalise_items(
    items: Mapping[str, go.Figure | dict] | Iterable[FigureExport | tuple[str, go.Figure | dict]],
) -> list[FigureExport]:
    if isinstance(items, Mapping):
        pairs: Iterable[Any] = items.items()
    else:
        pairs = items
    normalised: list[FigureExport] = []
    for entry in pairs:
        if isinstance(entry, FigureExport):
            normalised.append(entry)
        elif isinstance(entry, tuple) and len(entry) == 2:
            normalised.append(FigureExport(name=entry[0], figure=entry[1]))
        else:
            raise ValueError(
                f"Each item must be a FigureExport or a (name, figure) pair, got {type(entry).__name__}."
            )
    names = [item.name for item in normalised]
    for name in names:
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise ValueError(
                f"Figure name {name!r} cannot be a file name: use letters, digits, '_', '-' and '.', "
                "starting with a letter, digit or '_'."
            )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"Figure names must be unique; repeated: {', '.join(duplicates)}.")
    return normalised


def _figure_size_in(
    figure: go.Figure, columns: int | None, width_in: float | None, height_in: float | None
) -> tuple[float, float]:
    layout_width = figure.layout.width
    layout_height = figure.layout.height
    if width_in is None:
        if columns is not None:
            width_in = column_width_in(columns)  # type: ignore[arg-type]
        elif layout_width:
            width_in = layout_width / CSS_PIXELS_PER_INCH
        else:
            width_in = column_width_in(1)
    if height_in is None:
        if layout_height:
            height_in = layout_height / CSS_PIXELS_PER_INCH
        elif columns is not None:
            height_in = default_height_in(columns)  # type: ignore[arg-type]
        else:
            height_in = default_height_in(width_in=width_in)
    for label, value in (("width_in", width_in), ("height_in", height_in)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{label} must be a positive number of inches, got {value!r}")
        if value > LIMITS.max_export_inches:
            raise FigureExportError(
                f"{label}={value:g} in is above the limit of {LIMITS.max_export_inches:g} in "
                f"(set by {Limits.env_name('max_export_inches')}); choose a smaller figure."
            )
    return float(width_in), float(height_in)


def _render_items(items: list[FigureExport], formats: list[str], dpi: float) -> list[_RenderedFigure]:
    """Draw every figure in every format (one browser session), with provenance embedded."""
    browser_jobs: list[RenderJob] = []
    planned: list[tuple[FigureExport, go.Figure, float, float, list[RenderJob]]] = []
    for item in items:
        with _FIGURE_COPY_LOCK:  # plotly's copy of a shared figure is not thread safe
            figure = go.Figure(item.figure)
        width_in, height_in = _figure_size_in(figure, item.columns, item.width_in, item.height_in)
        figure.update_layout(
            width=width_in * CSS_PIXELS_PER_INCH, height=height_in * CSS_PIXELS_PER_INCH, autosize=False
        )
        if item.data is not None:
            validate_data(item.data, item.name)
        if "png" in formats:
            _check_png_pixels(item.name, width_in, height_in, dpi)
        jobs = [
            RenderJob(
                figure_dict=figure.to_dict(),
                file_name=f"{item.name}.{file_format}",
                file_format=file_format,
                width_px=width_in * CSS_PIXELS_PER_INCH,
                height_px=height_in * CSS_PIXELS_PER_INCH,
                width_in=width_in,
                height_in=height_in,
                dpi=dpi,
            )
            for file_format in formats
            if file_format in BROWSER_FORMATS
        ]
        browser_jobs.extend(jobs)
        planned.append((item, figure, width_in, height_in, jobs))
    if browser_jobs:
        rendering.render_in_one_browser_session(browser_jobs, find_browser())
    rendered: list[_RenderedFigure] = []
    for item, figure, width_in, height_in, jobs in planned:
        drawn = {job.file_format: job.result for job in jobs}
        files: dict[str, bytes] = {}
        for file_format in formats:
            if file_format == "html":
                content = _figure_html(figure).encode("utf-8")
            elif file_format == "json":
                content = pio.to_json(figure, pretty=False).encode("utf-8")
            else:
                content = drawn[file_format] or b""
            if item.provenance is not None:
                content = embed_provenance(content, file_format, item.provenance, item.name)
            files[file_format] = content
        rendered.append(_RenderedFigure(item, width_in, height_in, files))
    return rendered


def _export_items(items: list[FigureExport], out_dir: Path, formats: list[str], dpi: float) -> list[Path]:
    rendered = _render_items(items, formats, dpi)  # every size is checked before a folder is made
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for figure in rendered:
        item_paths = [out_dir / f"{figure.item.name}.{file_format}" for file_format in formats]
        for path, file_format in zip(item_paths, formats):
            write_atomically(path, figure.files[file_format])
        written.extend(item_paths)
        item = figure.item
        if item.data is not None or item.metadata or item.provenance is not None:
            written.extend(
                write_sidecars(
                    item.name,
                    out_dir,
                    item_paths,
                    figure.width_in,
                    figure.height_in,
                    dpi,
                    data=item.data,
                    metadata=item.metadata,
                    provenance=item.provenance,
                )
            )
    return written


def _figure_html(figure: go.Figure) -> str:
    # Self-contained (plotly.js inlined): the file opens offline, years later.
    return pio.to_html(figure, include_plotlyjs=True, full_html=True, config={"displaylogo": False})
