"""Drawing figures to PDF, SVG and PNG in Chrome/Chromium through kaleido (>= 1.0).

The browser half of :mod:`crmn_viz.figures.export`: finding the browser, one kaleido session
for a batch of :class:`RenderJob`, a page without PDF margins, and the finishing touches kaleido
leaves out (the SVG's size in inches, the PNG's dpi). Nothing here decides sizes or file names:
the caller plans every job and checks it against :data:`crmn_viz.limits.LIMITS` first.

Chrome is found through the ``BROWSER_PATH`` environment variable when set, else by kaleido's
own search (a browser fetched with ``kaleido_get_chrome``, then ``chromium``/``chrome``
executables on ``PATH`` and their usual install locations such as ``/usr/bin/chromium``).
MathJax is switched off (kaleido would fetch it from a CDN), so write symbols in labels as
Unicode (Δ, α, ±) rather than LaTeX.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import os
import re
import shutil
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmn_viz.figures.file_metadata import edit_first_tag, png_chunk
from crmn_viz.figures.theme import CSS_PIXELS_PER_INCH

__all__ = [
    "BROWSER_START_TIMEOUT_S",
    "INSTALL_ADVICE",
    "RENDER_TIMEOUT_S",
    "FigureExportError",
    "RenderJob",
    "find_browser",
    "render_in_one_browser_session",
    "require_browser",
    "require_kaleido",
]

RENDER_TIMEOUT_S = 60.0
"""Longest time one figure may take to render before the export fails."""
BROWSER_START_TIMEOUT_S = 60.0
"""Longest time Chrome/Chromium may take to start."""

_BROWSER_EXECUTABLES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_ADVICE = (
    "PDF, SVG and PNG export needs Chrome or Chromium. On Debian/Ubuntu run "
    "`apt-get install -y chromium` (kaleido then finds /usr/bin/chromium), or set the "
    "BROWSER_PATH environment variable to a Chrome/Chromium executable. "
    "HTML and JSON export work without a browser."
)
"""What to do when no usable browser is found (part of every such error message)."""


class FigureExportError(RuntimeError):
    """A figure could not be written; the message says why and how to fix it."""


@dataclass
class RenderJob:
    """One figure to draw in one browser format; :func:`render_in_one_browser_session` fills ``result``.

    Attributes:
        figure_dict: the figure (``Figure.to_dict()``), already laid out at ``width_px`` x ``height_px``.
        file_name: the file it becomes (for error messages).
        file_format: ``"pdf"``, ``"svg"`` or ``"png"``.
        width_px, height_px: its size in Plotly (CSS) pixels, 96 per inch.
        width_in, height_in: its printed size in inches.
        dpi: PNG resolution.
        result: the finished file's bytes, once drawn.
    """

    figure_dict: dict
    file_name: str
    file_format: str
    width_px: float
    height_px: float
    width_in: float
    height_in: float
    dpi: float
    result: bytes | None = None


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


def require_kaleido() -> Any:
    """The imported ``kaleido`` module (>= 1.0).

    Raises:
        FigureExportError: kaleido is missing or older than 1.0 (the message says how to install it).
    """
    try:
        import kaleido
    except ImportError as exc:
        raise FigureExportError(
            f"PDF, SVG and PNG export needs the kaleido package (>= 1.0): run `pip install 'kaleido>=1'`. "
            f"({exc})"
        ) from exc
    try:
        version = importlib.metadata.version("kaleido")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    major = re.match(r"(\d+)\.", version)
    if major is not None and int(major.group(1)) < 1:
        raise FigureExportError(f"kaleido {version} is too old; run `pip install -U 'kaleido>=1'`.")
    return kaleido


def require_browser(browser: str | None) -> str:
    """``browser`` (as :func:`find_browser` gave it) when it is an executable file.

    Raises:
        FigureExportError: no browser was found, or the path is not an executable file; the
            message says how to install one or where the path came from.
    """
    if browser is None:
        raise FigureExportError(f"No Chrome or Chromium was found. {INSTALL_ADVICE}")
    if not (Path(browser).is_file() and os.access(browser, os.X_OK)):
        origin = "BROWSER_PATH" if os.environ.get("BROWSER_PATH") else "The browser search"
        raise FigureExportError(
            f"{origin} points to {browser!r}, which is not an executable file. {INSTALL_ADVICE}"
        )
    return browser


def render_in_one_browser_session(jobs: list[RenderJob], browser: str | None) -> None:
    """Draw every job in one Chrome/Chromium session, storing each finished file in ``job.result``.

    Args:
        jobs: the figures and formats to draw.
        browser: the executable to run (from :func:`find_browser`); checked with
            :func:`require_browser` after kaleido itself.

    Raises:
        FigureExportError: kaleido or the browser is missing, the browser does not start, or a
            figure fails to render within :data:`RENDER_TIMEOUT_S`.
    """
    kaleido = require_kaleido()
    browser = require_browser(browser)

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
                f"Could not start Chrome/Chromium at {browser!r}: {exc}. {INSTALL_ADVICE}"
            ) from exc
        try:
            await asyncio.wait_for(session.open(), timeout=BROWSER_START_TIMEOUT_S)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await session.close()
            raise FigureExportError(
                f"Chrome/Chromium at {browser!r} failed to start ({type(exc).__name__}: {exc}). "
                f"Check that `{browser} --headless=new --version` runs. {INSTALL_ADVICE}"
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


def _render_options(job: RenderJob) -> dict[str, Any]:
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


def _finish_rendered_file(rendered: bytes | str, job: RenderJob) -> bytes:
    content = rendered.encode("utf-8") if isinstance(rendered, str) else bytes(rendered)
    if job.file_format == "svg":
        return _svg_with_physical_size(content, job.width_in, job.height_in)
    if job.file_format == "png":
        return _png_with_dpi(content, job.dpi)
    return content


def _svg_with_physical_size(svg: bytes, width_in: float, height_in: float) -> bytes:
    """Give the root ``<svg>`` width/height in inches, keeping its pixel viewBox."""

    def sized(tag: str) -> str:
        tag = re.sub(r'\swidth="[^"]*"', f' width="{width_in:g}in"', tag, count=1)
        tag = re.sub(r'\sheight="[^"]*"', f' height="{height_in:g}in"', tag, count=1)
        if "viewBox" not in tag:
            width_px = width_in * CSS_PIXELS_PER_INCH
            height_px = height_in * CSS_PIXELS_PER_INCH
            tag = tag[:-1] + f' viewBox="0 0 {width_px:g} {height_px:g}">'
        return tag

    return edit_first_tag(svg, r"<svg\b[^>]*>", sized)


def _png_with_dpi(png: bytes, dpi: float) -> bytes:
    """Insert a pHYs chunk (pixels per metre) after IHDR so the PNG carries its dpi."""
    signature = b"\x89PNG\r\n\x1a\n"
    if not png.startswith(signature) or png[12:16] != b"IHDR":
        return png
    header_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4
    if b"pHYs" in png[header_end : header_end + 64]:
        return png
    pixels_per_metre = round(dpi / 0.0254)
    chunk = png_chunk(b"pHYs", struct.pack(">IIB", pixels_per_metre, pixels_per_metre, 1))
    return png[:header_end] + chunk + png[header_end:]
