"""Show a core figure with its download buttons, and remember it for the Export page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from crmn_viz.figures.files import (
    figure_data_file,
    figure_image_file,
    for_screen,
    safe_figure_name,
)
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.state import Selection, current
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.provenance import Provenance
from crmn_viz.views.shown import Shown

REGISTRY = "figure_registry"
MAX_REMEMBERED = 40
MAX_NATURAL_WIDTH = 860  # pixels: picture figures are drawn at most this wide
SCREEN_SCALE = 1.4  # print-sized figures are enlarged this much on screen
# The toolbar appears only while the pointer is over a chart, so it never hides a title or legend.
PLOTLY_CONFIG = {
    "displayModeBar": "hover",
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}


@dataclass(frozen=True)
class RememberedFigure:
    """A figure seen in this session: its file stem (checkpoint first), the figure, its provenance."""

    name: str
    figure: go.Figure
    provenance: Provenance


class FigureList:
    """The figures seen in one session, newest last, bounded; what the Export page offers.

    The same figure of the same inputs and settings (same provenance identity) moves to the
    end; a figure that differs in anything is a new entry (its stem gets a short digest of its
    provenance when another figure already holds the name), so nothing is replaced silently.
    When the list is full the oldest entry goes and is named in :attr:`dropped`.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED) -> None:
        self.capacity = capacity
        self.entries: dict[str, RememberedFigure] = {}
        self.dropped: list[str] = []

    def add(self, stem: str, figure: go.Figure, provenance: Provenance) -> str:
        """Remember a figure; returns its stem in the list."""
        name = stem
        existing = self.entries.get(name)
        if existing is not None and existing.provenance.identity != provenance.identity:
            name = safe_figure_name(f"{stem}__{provenance.identity[:8]}")
        self.entries.pop(name, None)
        self.entries[name] = RememberedFigure(name, figure, provenance)
        while len(self.entries) > self.capacity:
            oldest = next(iter(self.entries))
            self.entries.pop(oldest)
            self.dropped.append(oldest)
        return name

    def __len__(self) -> int:
        return len(self.entries)


def remembered() -> FigureList:
    """This session's :class:`FigureList`."""
    figures = st.session_state.get(REGISTRY)
    if not isinstance(figures, FigureList):
        figures = st.session_state[REGISTRY] = FigureList()
    return figures


def figure_provenance(
    selection: Selection, images: Sequence[SelectedImage] | None, settings: Mapping[str, Any] | None
) -> Provenance:
    """The provenance of a figure drawn on a page: the sidebar's checkpoint, the images, the settings."""
    chosen = selection.images if images is None else images
    return Provenance.of(
        selection.model, [image.record for image in chosen], settings, checkpoint=selection.name
    )


def data_of(figure: go.Figure) -> Mapping[str, Any] | None:
    """The numbers behind a core figure (:func:`crmn_viz.figures.data.figure_data`), if any."""
    try:
        from crmn_viz.figures.data import figure_data
    except ImportError:
        return None
    data = figure_data(figure)
    return data if data else None


def _data_extension(data: Mapping[str, Any]) -> str:
    """``csv`` when the exporter writes equal-length columns, else ``npz``."""
    if hasattr(data, "to_csv"):
        return "csv"
    arrays = [np.asarray(value) for value in data.values()]
    if arrays and all(a.ndim == 1 for a in arrays) and len({a.shape[0] for a in arrays}) == 1:
        return "csv"
    return "npz"


def show_figure(
    figure: go.Figure,
    name: str,
    *,
    images: Sequence[SelectedImage] | None = None,
    settings: Mapping[str, Any] | None = None,
    caption: str | None = None,
    key: str | None = None,
    max_width: float = MAX_NATURAL_WIDTH,
) -> None:
    """Draw ``figure`` with buttons to download its image and its data.

    The screen copy is enlarged (:func:`crmn_viz.figures.files.for_screen`); figures
    made of pictures keep their proportions (at most ``max_width`` pixels wide), charts stretch
    to the width of their column. The files are only made when a button is clicked (PNG through
    Chromium, or an interactive HTML file when no browser is installed); the figure is also
    remembered for the Export page.

    Every file made from it (here and on the Export page) is named after the checkpoint and
    carries the figure's provenance: checkpoint, weights digest, ``images`` and ``settings``.

    Args:
        figure: a figure from :mod:`crmn_viz.figures`.
        name: a short unique name, used for file names and the Export list.
        images: the images the figure shows (default: every image chosen in the sidebar).
        settings: every option that shaped the figure (method, target, units, step, layer...).
        caption: text under the figure.
        key: widget key prefix (default: from ``name``).
        max_width: widest a picture figure may be drawn, in pixels (pass less in narrow columns).
    """
    stem = safe_figure_name(name)
    prefix = key or stem
    selection = current()
    if selection is None:
        raise RuntimeError("show_figure needs a checkpoint chosen in the sidebar")
    provenance = figure_provenance(selection, images, settings)
    file_stem = remembered().add(safe_figure_name(f"{selection.name}__{stem}"), figure, provenance)
    pictures = any(trace.type == "image" for trace in figure.data) and bool(figure.layout.width)
    if pictures:
        screen = for_screen(figure, min(SCREEN_SCALE, max_width / figure.layout.width))
        st.plotly_chart(screen, key=f"{prefix}_chart", config=PLOTLY_CONFIG, width="content")
    else:
        st.plotly_chart(for_screen(figure, SCREEN_SCALE), key=f"{prefix}_chart", config=PLOTLY_CONFIG)
    if caption:
        st.caption(caption)
    image_format = "png" if compute.browser_available() else "html"
    data = data_of(figure)
    buttons = st.container(horizontal=True, gap="small")
    buttons.download_button(
        f"Image ({image_format.upper()})",
        data=lambda: figure_image_file(figure, file_stem, image_format, provenance=provenance).data,
        file_name=f"{file_stem}.{image_format}",
        mime="image/png" if image_format == "png" else "text/html",
        key=f"{prefix}_image_download",
        icon=":material/download:",
        on_click="ignore",
    )
    if data is not None:
        extension = _data_extension(data)
        buttons.download_button(
            f"Data ({extension.upper()})",
            data=lambda: figure_data_file(file_stem, data).data,
            file_name=f"{file_stem}.data.{extension}",
            mime="text/csv" if extension == "csv" else "application/octet-stream",
            key=f"{prefix}_data_download",
            icon=":material/table:",
            on_click="ignore",
        )


def show(figure: Shown, *, key: str | None = None, max_width: float = MAX_NATURAL_WIDTH) -> None:
    """Draw a view's :class:`~crmn_viz.views.shown.Shown` figure (see :func:`show_figure`)."""
    show_figure(
        figure.figure,
        figure.name,
        images=list(figure.images),
        settings=figure.settings,
        caption=figure.caption or None,
        key=key,
        max_width=max_width,
    )
