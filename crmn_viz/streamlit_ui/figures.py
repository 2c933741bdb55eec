"""Show a core figure with its download buttons, and remember it for the Export page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from crmn_viz.app_support.figure_files import (
    figure_data_file,
    figure_image_file,
    for_screen,
    safe_figure_name,
)
from crmn_viz.streamlit_ui import compute

REGISTRY = "figure_registry"
MAX_REMEMBERED = 40
MAX_NATURAL_WIDTH = 860  # pixels: picture figures are drawn at most this wide
SCREEN_SCALE = 1.4  # print-sized figures are enlarged this much on screen
PLOTLY_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}


def remembered() -> dict[str, go.Figure]:
    """Figures shown in this session by name, newest last (what the Export page offers)."""
    return st.session_state.setdefault(REGISTRY, {})


def _remember(name: str, figure: go.Figure) -> None:
    registry = remembered()
    registry.pop(name, None)
    registry[name] = figure
    while len(registry) > MAX_REMEMBERED:
        registry.pop(next(iter(registry)))


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
    caption: str | None = None,
    key: str | None = None,
    max_width: float = MAX_NATURAL_WIDTH,
) -> None:
    """Draw ``figure`` with buttons to download its image and its data.

    The screen copy is enlarged (:func:`crmn_viz.app_support.figure_files.for_screen`); figures
    made of pictures keep their proportions (at most ``max_width`` pixels wide), charts stretch
    to the width of their column. The files are only made when a button is clicked (PNG through
    Chromium, or an interactive HTML file when no browser is installed); the figure is also
    remembered for the Export page.

    Args:
        figure: a figure from :mod:`crmn_viz.figures`.
        name: a short unique name, used for file names and the Export list.
        caption: text under the figure.
        key: widget key prefix (default: from ``name``).
        max_width: widest a picture figure may be drawn, in pixels (pass less in narrow columns).
    """
    stem = safe_figure_name(name)
    prefix = key or stem
    pictures = any(trace.type == "image" for trace in figure.data) and bool(figure.layout.width)
    if pictures:
        screen = for_screen(figure, min(SCREEN_SCALE, max_width / figure.layout.width))
        st.plotly_chart(screen, key=f"{prefix}_chart", config=PLOTLY_CONFIG, width="content")
    else:
        st.plotly_chart(for_screen(figure, SCREEN_SCALE), key=f"{prefix}_chart", config=PLOTLY_CONFIG)
    if caption:
        st.caption(caption)
    _remember(stem, figure)
    image_format = "png" if compute.browser_available() else "html"
    data = data_of(figure)
    buttons = st.container(horizontal=True, gap="small")
    buttons.download_button(
        f"Image ({image_format.upper()})",
        data=lambda: figure_image_file(figure, stem, image_format).data,
        file_name=f"{stem}.{image_format}",
        mime="image/png" if image_format == "png" else "text/html",
        key=f"{prefix}_image_download",
        icon=":material/download:",
        on_click="ignore",
    )
    if data is not None:
        extension = _data_extension(data)
        buttons.download_button(
            f"Data ({extension.upper()})",
            data=lambda: figure_data_file(figure, stem, data).data,
            file_name=f"{stem}.data.{extension}",
            mime="text/csv" if extension == "csv" else "application/octet-stream",
            key=f"{prefix}_data_download",
            icon=":material/table:",
            on_click="ignore",
        )


def builder(module: str, name: str) -> Any:
    """The figure builder ``crmn_viz.figures.<module>.<name>``, or None with a notice if absent.

    Pages call the core's figure functions by name; an installation that lacks one shows a
    short notice in place of that figure instead of failing the whole page.
    """
    import importlib

    try:
        return getattr(importlib.import_module(f"crmn_viz.figures.{module}"), name)
    except (ImportError, AttributeError):
        st.warning(f"This view needs `crmn_viz.figures.{module}.{name}`, which this installation lacks.")
        return None
