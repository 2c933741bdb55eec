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

Chrome is found through the ``BROWSER_PATH`` environment variable when set,
else by kaleido's own search (a browser fetched with ``kaleido_get_chrome``,
then ``chromium``/``chrome`` executables on ``PATH`` and their usual install
locations such as ``/usr/bin/chromium``). MathJax is switched off (kaleido
would fetch it from a CDN), so write symbols in labels as Unicode (Δ, α, ±)
rather than LaTeX.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import importlib.metadata
import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import zlib
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from crmn_viz.figures.file_metadata import embed_provenance
from crmn_viz.figures.theme import (
    CSS_PIXELS_PER_INCH,
    POINTS_PER_INCH,
    column_width_in,
    default_height_in,
)
from crmn_viz.limits import LIMITS, Limits
from crmn_viz.provenance import Provenance

__all__ = [
    "BROWSER_FORMATS",
    "SUPPORTED_FORMATS",
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

RENDER_TIMEOUT_S = 60.0
"""Longest time one figure may take to render before the export fails."""
BROWSER_START_TIMEOUT_S = 60.0
"""Longest time Chrome/Chromium may take to start."""

_BROWSER_EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
_INSTALL_ADVICE = (
    "PDF, SVG and PNG export needs Chrome or Chromium. On Debian/Ubuntu run "
    "`apt-get install -y chromium` (kaleido then finds /usr/bin/chromium), or set the "
    "BROWSER_PATH environment variable to a Chrome/Chromium executable. "
    "HTML and JSON export work without a browser."
)

FigureData = Any
"""Numbers behind a figure: a mapping of name -> array (or 1-D column), or a pandas DataFrame."""


class FigureExportError(RuntimeError):
    """A figure could not be written; the message says why and how to fix it."""


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
class _RenderJob:
    figure_dict: dict
    file_name: str
    file_format: str
    width_px: float
    height_px: float
    width_in: float
    height_in: float
    dpi: float
    result: bytes | None = None


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
    _validate_data(data, name)
    extension, content, _ = _encode_data(data)
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


def find_browser() -> str | None:
    """Locate the Chrome/Chromium executable kaleido will use.

    Returns:
        The executable path from ``BROWSER_PATH`` if that variable is set (even
        if the path is wrong, so the error can name it), else the browser that
        kaleido/choreographer finds, else a ``chromium``/``chrome`` on ``PATH``
        or in ``/usr/bin``; ``None`` when there is none.
    """
    from_environment = os.environ.get("BROWSER_PATH")
    if from_environment:
        return from_environment
    try:
        from choreographer.browsers.chromium import Chromium

        found = Chromium.find_browser(skip_local=False)
    except Exception:  # an unusable choreographer still leaves PATH to search
        found = None
    if found:
        return str(found)
    for executable in _BROWSER_EXECUTABLES:
        located = shutil.which(executable) or shutil.which(executable, path="/usr/bin:/usr/local/bin")
        if located:
            return located
    return None


def browser_available() -> bool:
    """Return whether PDF/SVG/PNG export can run: kaleido >= 1 and an executable Chrome/Chromium.

    Returns:
        True when :func:`find_browser` gives an executable file and kaleido >= 1 imports.
    """
    try:
        _require_kaleido()
        _require_browser()
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
    browser_jobs: list[_RenderJob] = []
    planned: list[tuple[FigureExport, go.Figure, float, float, list[_RenderJob]]] = []
    for item in items:
        with _FIGURE_COPY_LOCK:  # plotly's copy of a shared figure is not thread safe
            figure = go.Figure(item.figure)
        width_in, height_in = _figure_size_in(figure, item.columns, item.width_in, item.height_in)
        figure.update_layout(
            width=width_in * CSS_PIXELS_PER_INCH, height=height_in * CSS_PIXELS_PER_INCH, autosize=False
        )
        if item.data is not None:
            _validate_data(item.data, item.name)
        if "png" in formats:
            _check_png_pixels(item.name, width_in, height_in, dpi)
        jobs = [
            _RenderJob(
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
        _render_in_one_browser_session(browser_jobs)
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
            _write_atomically(path, figure.files[file_format])
        written.extend(item_paths)
        item = figure.item
        if item.data is not None or item.metadata or item.provenance is not None:
            written.extend(_write_sidecars(item, out_dir, item_paths, figure.width_in, figure.height_in, dpi))
    return written


def _figure_html(figure: go.Figure) -> str:
    # Self-contained (plotly.js inlined): the file opens offline, years later.
    return pio.to_html(figure, include_plotlyjs=True, full_html=True, config={"displaylogo": False})


# --------------------------------------------------------------------------- browser rendering


def _require_kaleido() -> Any:
    try:
        import kaleido
    except ImportError as exc:
        raise FigureExportError(
            f"PDF, SVG and PNG export needs the kaleido package (>= 1.0): run `pip install 'kaleido>=1'`. "
            f"({exc})"
        ) from exc
    version = _package_version("kaleido") or ""
    major = re.match(r"(\d+)\.", version)
    if major is not None and int(major.group(1)) < 1:
        raise FigureExportError(f"kaleido {version} is too old; run `pip install -U 'kaleido>=1'`.")
    return kaleido


def _require_browser() -> str:
    browser = find_browser()
    if browser is None:
        raise FigureExportError(f"No Chrome or Chromium was found. {_INSTALL_ADVICE}")
    if not (Path(browser).is_file() and os.access(browser, os.X_OK)):
        origin = "BROWSER_PATH" if os.environ.get("BROWSER_PATH") else "The browser search"
        raise FigureExportError(
            f"{origin} points to {browser!r}, which is not an executable file. {_INSTALL_ADVICE}"
        )
    return browser


def _render_in_one_browser_session(jobs: list[_RenderJob]) -> None:
    kaleido = _require_kaleido()
    browser = _require_browser()

    async def render_all() -> None:
        try:
            session = kaleido.Kaleido(
                n=1,
                timeout=RENDER_TIMEOUT_S,
                page_generator=_full_bleed_page_generator(kaleido),
                path=browser,
            )
        except Exception as exc:
            raise FigureExportError(
                f"Could not start Chrome/Chromium at {browser!r}: {exc}. {_INSTALL_ADVICE}"
            ) from exc
        try:
            await asyncio.wait_for(session.open(), timeout=BROWSER_START_TIMEOUT_S)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.close()
            raise FigureExportError(
                f"Chrome/Chromium at {browser!r} failed to start ({type(exc).__name__}: {exc}). "
                f"Check that `{browser} --headless=new --version` runs. {_INSTALL_ADVICE}"
            ) from exc
        try:
            for job in jobs:
                opts = _render_options(job)
                try:
                    rendered = await session.calc_fig(job.figure_dict, opts=opts)
                except Exception as exc:
                    raise FigureExportError(
                        f"Rendering {job.file_name} failed ({type(exc).__name__}: {exc or 'timed out'})."
                    ) from exc
                job.result = _finish_rendered_file(rendered, job)
        finally:
            await session.close()

    with _BROWSER_SESSION_LOCK:  # one Chrome at a time per process: concurrent sessions can hang
        _run_in_private_event_loop(render_all())


_BROWSER_SESSION_LOCK = threading.Lock()
# Copying one figure object from several threads at once (two app sessions exporting the same
# cached figure) can mix up trace types inside plotly; the copies are cheap, so serialise them.
_FIGURE_COPY_LOCK = threading.Lock()
"""Serialises browser sessions: exports from several threads (Streamlit sessions sharing one
process) queue instead of starting competing Chrome instances."""


def _full_bleed_page_generator(kaleido: Any) -> Any:
    """Kaleido's page, plus CSS that removes the PDF page margins.

    Kaleido 1.x prints PDFs with 0.1 in margins on a page exactly the figure's
    size, which shifts the drawing by 0.1 in and clips its right and bottom
    edges (axis titles, legends). ``@page { margin: 0 }`` wins over those
    margins. MathJax is left out: it would be fetched from a CDN, and LaTeX
    labels are not used (write Unicode instead, e.g. "Δ", "α").
    """

    class FullBleedPageGenerator(kaleido.PageGenerator):
        header = kaleido.PageGenerator.header.replace(
            "<head>",
            "<head>\n        <style>@page { margin: 0; } html, body { margin: 0; padding: 0; } "
            "#kaleido-image { display: block; }</style>",
            1,
        )

    return FullBleedPageGenerator(mathjax=False)


def _render_options(job: _RenderJob) -> dict[str, Any]:
    """Kaleido layout options: the physical size in Plotly pixels, and the PNG scale."""
    if job.file_format != "png":
        return {"format": job.file_format, "width": job.width_px, "height": job.height_px, "scale": 1}
    scale = job.dpi / CSS_PIXELS_PER_INCH
    # The browser truncates canvas sizes, so 2.4 in x 96 x 3.125 = 719.999... would
    # give 719 px. Aim a quarter pixel past the exact count to land on it.
    width_px = (round(job.width_in * job.dpi) + 0.25) / scale
    height_px = (round(job.height_in * job.dpi) + 0.25) / scale
    return {"format": "png", "width": width_px, "height": height_px, "scale": scale}


def _run_in_private_event_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` on a fresh event loop in a worker thread.

    A thread keeps this usable from code that already runs an event loop
    (Jupyter, Streamlit, async web servers), where ``asyncio.run`` would refuse.
    """
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:  # handed back to the caller's thread
            outcome.append(exc)

    worker = threading.Thread(target=run, name="crmn-viz-figure-export", daemon=True)
    worker.start()
    worker.join()
    if outcome:
        raise outcome[0]


def _finish_rendered_file(rendered: bytes | str, job: _RenderJob) -> bytes:
    content = rendered.encode("utf-8") if isinstance(rendered, str) else bytes(rendered)
    if job.file_format == "svg":
        return _svg_with_physical_size(content, job.width_in, job.height_in)
    if job.file_format == "png":
        return _png_with_dpi(content, job.dpi)
    return content


def _svg_with_physical_size(svg: bytes, width_in: float, height_in: float) -> bytes:
    """Give the root ``<svg>`` width/height in inches, keeping its pixel viewBox."""
    text = svg.decode("utf-8")
    root = re.search(r"<svg\b[^>]*>", text)
    if root is None:
        return svg
    tag = root.group(0)
    new_tag = re.sub(r'\swidth="[^"]*"', f' width="{width_in:g}in"', tag, count=1)
    new_tag = re.sub(r'\sheight="[^"]*"', f' height="{height_in:g}in"', new_tag, count=1)
    if "viewBox" not in new_tag:
        width_px = width_in * CSS_PIXELS_PER_INCH
        height_px = height_in * CSS_PIXELS_PER_INCH
        new_tag = new_tag[:-1] + f' viewBox="0 0 {width_px:g} {height_px:g}">'
    return (text[: root.start()] + new_tag + text[root.end() :]).encode("utf-8")


def _png_with_dpi(png: bytes, dpi: float) -> bytes:
    """Insert a pHYs chunk (pixels per metre) after IHDR so the PNG carries its dpi."""
    signature = b"\x89PNG\r\n\x1a\n"
    if not png.startswith(signature) or png[12:16] != b"IHDR":
        return png
    header_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    if b"pHYs" in png[header_end : header_end + 64]:
        return png
    pixels_per_metre = round(dpi / 0.0254)
    payload = struct.pack(">IIB", pixels_per_metre, pixels_per_metre, 1)
    chunk = struct.pack(">I", len(payload)) + b"pHYs" + payload
    chunk += struct.pack(">I", zlib.crc32(b"pHYs" + payload) & 0xFFFFFFFF)
    return png[:header_end] + chunk + png[header_end:]


def _write_atomically(path: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- data sidecars


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "to_csv") and hasattr(data, "columns") and hasattr(data, "index")


def _as_columns(data: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """Return the mapping as equal-length 1-D columns, or None if it is not one."""
    columns = {str(key): np.asarray(value) for key, value in data.items()}
    lengths = {column.shape[0] for column in columns.values() if column.ndim == 1}
    if columns and all(column.ndim == 1 for column in columns.values()) and len(lengths) == 1:
        return columns
    return None


def _validate_data(data: Any, name: str) -> None:
    if _is_dataframe(data):
        return
    if not isinstance(data, Mapping) or not data:
        raise ValueError(
            f"data for {name!r} must be a non-empty mapping of name -> array, or a pandas DataFrame; "
            f"got {type(data).__name__}."
        )
    for key, value in data.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"data keys for {name!r} must be non-empty strings without '/', got {key!r}.")
        if np.asarray(value).dtype == object:
            raise ValueError(
                f"data[{key!r}] for {name!r} is not a numeric or text array (mixed or ragged values); "
                "convert it to a regular numpy array."
            )


def _encode_data(data: Any) -> tuple[str, bytes, dict[str, Any]]:
    """``(extension, file content, description)`` of the data file for ``data``."""
    if _is_dataframe(data):
        keep_index = type(data.index).__name__ != "RangeIndex"
        description = {"columns": [str(column) for column in data.columns], "rows": len(data)}
        return "csv", data.to_csv(index=keep_index).encode("utf-8"), {"kind": "csv", **description}
    columns = _as_columns(data)
    if columns is not None:
        rows = next(iter(columns.values())).shape[0]
        dtypes = {key: str(column.dtype) for key, column in columns.items()}
        description = {"kind": "csv", "columns": list(columns), "rows": rows, "dtypes": dtypes}
        return "csv", _columns_to_csv(columns).encode("utf-8"), description
    arrays = {str(key): np.asarray(value) for key, value in data.items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    shapes = {key: {"shape": list(array.shape), "dtype": str(array.dtype)} for key, array in arrays.items()}
    return "npz", buffer.getvalue(), {"kind": "npz", "arrays": shapes}


def _write_data(data: Any, stem: Path) -> tuple[Path, dict[str, Any]]:
    extension, content, description = _encode_data(data)
    path = stem.with_name(f"{stem.name}.data.{extension}")
    _write_atomically(path, content)
    return path, description


def _columns_to_csv(columns: dict[str, np.ndarray]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*(column.tolist() for column in columns.values()), strict=True))
    return buffer.getvalue()


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _write_sidecars(
    item: FigureExport, out_dir: Path, figure_paths: list[Path], width_in: float, height_in: float, dpi: float
) -> list[Path]:
    stem = out_dir / item.name
    written: list[Path] = []
    description: dict[str, Any] = {
        "figure": item.name,
        "files": [path.name for path in figure_paths],
        "width_in": round(width_in, 4),
        "height_in": round(height_in, 4),
        "width_pt": round(width_in * POINTS_PER_INCH, 2),
        "height_pt": round(height_in * POINTS_PER_INCH, 2),
    }
    if any(path.suffix == ".png" for path in figure_paths):
        description["dpi"] = dpi
        description["png_pixels"] = [round(width_in * dpi), round(height_in * dpi)]
    if item.data is not None:
        data_path, data_description = _write_data(item.data, stem)
        written.append(data_path)
        description["data_file"] = data_path.name
        description["data"] = data_description
    if item.metadata:
        description["metadata"] = dict(item.metadata)
    if item.provenance is not None:
        description["provenance"] = item.provenance.to_dict()
    description["software"] = {
        name: version for name in ("crmn_viz", "plotly", "kaleido") if (version := _package_version(name))
    }
    meta_path = stem.with_name(stem.name + ".meta.json")
    text = json.dumps(description, indent=2, sort_keys=False, default=_json_default, allow_nan=True)
    _write_atomically(meta_path, (text + "\n").encode("utf-8"))
    written.append(meta_path)
    return written
