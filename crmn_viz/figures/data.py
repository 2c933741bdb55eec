"""The numbers behind a figure, so they can be written beside it.

:func:`figure_data` reads back what a Plotly figure actually shows as numpy arrays, in the
form :func:`crmn_viz.figures.export_figure` takes as ``data=``::

    fig = plot_gate_heatmap(trace, "forget_gate")
    export_figure(fig, "out/forget.pdf", data=figure_data(fig))   # + forget.data.npz

What is read, and under which key:

* every trace: ``"<trace name>.x"``, ``.y``, ``.z`` (an image given as a base64 PNG
  ``source`` is decoded to its pixels under ``.z``), ``.customdata`` and ``.text`` (values
  shown on hover or beside bars), ``.error_x`` / ``.error_y`` (error bars, with
  ``.error_y.minus`` when asymmetric) and the placement ``.x0``, ``.dx``, ``.y0``, ``.dy``
  when set (an image's pixel ``(col, row)`` lies at ``(x0 + col * dx, y0 + row * dy)``);
* animation frames, under ``"frame <frame name>: <trace name>.<key>"``;
* the layout: ``"layout.title"``; per axis whose ticks are labelled with text (e.g.
  ``block k``) ``"layout.xaxis.tickvals"`` and ``"layout.xaxis.ticktext"`` (``xaxis2``,
  ``yaxis`` ... likewise; plain numeric ticks are left out); the shapes as
  ``"layout.shapes.coordinates"`` ([S, 4]: ``x0, y0, x1, y1`` per shape, NaN for SVG
  paths, text when a shape sits on a category or date axis), ``"layout.shapes.type"``,
  ``.name``, ``.xref``, ``.yref`` and, when a shape is an SVG path, ``"layout.shapes.path"``;
  the annotations as ``"layout.annotations.text"``, ``.x``, ``.y``, ``.xref``, ``.yref``
  (leaving out an annotation that only repeats a trace's own ``text`` at that trace's data
  point, such as a bar's label written beside it);
* every entry of ``layout.meta`` as ``"layout.meta.<key>"`` (nested dicts as
  ``"layout.meta.<key>.<sub key>"``, a ragged list as ``"layout.meta.<key>.<index>"``). The
  builders of :mod:`crmn_viz.figures` keep there the numbers a figure stands for but no
  trace holds: keypoint coordinates, face boxes and NME, whole probability matrices, the
  label of every block, attribution targets.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["figure_data"]

_AXES = ("x", "y", "z")
_TRACE_VALUES = ("customdata", "text")
_PLACEMENT = ("x0", "dx", "y0", "dy")
_ERROR_BARS = ("error_x", "error_y")
_SHAPE_CORNERS = ("x0", "y0", "x1", "y1")
_AXIS_NAME = re.compile(r"^([xy])axis(\d*)$")


def _decode_typed_array(value: Mapping[str, Any]) -> np.ndarray:
    """Decode Plotly's base64 typed-array form ``{"dtype", "bdata", "shape"}``."""
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = value.get("shape")
    if shape:
        dims = [int(part) for part in str(shape).split(",")] if isinstance(shape, str) else list(shape)
        array = array.reshape(dims)
    return array.copy()


def _decode_image_source(source: str) -> np.ndarray | None:
    """The pixels of a ``data:image/...;base64,...`` URI as uint8 [H, W, C], or None."""
    header, _, payload = source.partition(",")
    if not header.startswith("data:image/") or ";base64" not in header or not payload:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(payload))) as picture:
            picture.load()
            if picture.mode not in ("L", "RGB", "RGBA"):
                picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
            pixels = np.asarray(picture, dtype=np.uint8)
    except (OSError, ValueError):
        return None
    return pixels[..., None] if pixels.ndim == 2 else pixels.copy()


def _as_array(value: Any) -> np.ndarray | None:
    """A numeric or text array, or None when there is nothing to export."""
    if value is None:
        return None
    if isinstance(value, Mapping) and "bdata" in value:
        return _decode_typed_array(value)
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nested lists (numpy >= 1.24 refuses them)
        return None
    if array.dtype != object:
        return array
    flat = [item for item in array.reshape(-1).tolist()]
    if all(item is None for item in flat):
        return None  # legend-only traces (x = [None])
    try:
        return np.array([np.nan if item is None else item for item in flat], dtype=float).reshape(array.shape)
    except (TypeError, ValueError):
        pass
    try:  # ragged rows (e.g. lists of lists): a float array padded with NaN is not honest; use text
        return np.array(["" if item is None else str(item) for item in flat]).reshape(array.shape)
    except ValueError:
        return None


def _safe(name: Any) -> str:
    return str(name).replace("/", "-")


def _unique_names(traces: tuple[Any, ...]) -> list[str]:
    names = [_safe(trace.name) if trace.name else "" for trace in traces]
    result = []
    for index, name in enumerate(names):
        if not name:
            result.append(f"trace {index}")
        elif names.count(name) > 1:
            result.append(f"{name} ({index})")
        else:
            result.append(name)
    return result


def _put(data: dict[str, np.ndarray], key: str, value: Any) -> None:
    array = _as_array(value)
    if array is None or not array.size or (array.ndim == 0 and array.dtype.kind == "U" and not str(array)):
        return
    data[key] = array


def _trace_arrays(trace: Any, key: str, data: dict[str, np.ndarray]) -> None:
    """Every number one trace shows, under ``"<key>.<property>"``."""
    source = getattr(trace, "source", None)  # go.Image only
    for axis in _AXES:
        if axis in trace:
            _put(data, f"{key}.{axis}", trace[axis])
    if isinstance(source, str) and source:
        pixels = _decode_image_source(source)
        if pixels is not None:  # Plotly draws the source, not z
            data[f"{key}.z"] = pixels
    for name in _TRACE_VALUES:
        if name in trace:
            _put(data, f"{key}.{name}", trace[name])
    for name in _PLACEMENT:
        if name in trace and trace[name] is not None:
            _put(data, f"{key}.{name}", trace[name])
    for name in _ERROR_BARS:
        if name not in trace or trace[name] is None or trace[name].visible is False:
            continue
        _put(data, f"{key}.{name}", trace[name].array)
        if trace[name].symmetric is False:
            _put(data, f"{key}.{name}.minus", trace[name].arrayminus)


def _column(values: list[Any]) -> np.ndarray:
    """Numbers as floats (None -> NaN) when they all are numbers, else text ("" for None)."""
    if all(
        value is None or (isinstance(value, (int, float, np.number)) and not isinstance(value, bool))
        for value in values
    ):
        return np.array([np.nan if value is None else float(value) for value in values], dtype=float)
    return np.array(["" if value is None else str(value) for value in values])


def _axis_order(name: str) -> tuple[str, int]:
    letter, number = _AXIS_NAME.match(name).groups()  # type: ignore[union-attr]
    return letter, int(number or 1)


def _layout_arrays(figure: go.Figure, data: dict[str, np.ndarray]) -> None:
    """Titles, tick labels, shapes, annotations and ``meta`` of the layout, under ``"layout..."``."""
    layout = figure.layout
    if layout.title is not None and layout.title.text:
        data["layout.title"] = np.array(str(layout.title.text))
    axes = sorted((name for name in layout.to_plotly_json() if _AXIS_NAME.match(name)), key=_axis_order)
    for name in axes:
        axis = layout[name]
        if axis.ticktext is not None:
            for tick in ("tickvals", "ticktext"):
                _put(data, f"layout.{name}.{tick}", axis[tick])
    shapes = list(layout.shapes or ())
    if shapes:
        corners = [[shape[corner] for corner in _SHAPE_CORNERS] for shape in shapes]
        flat = _column([value for row in corners for value in row])
        data["layout.shapes.coordinates"] = flat.reshape(len(shapes), len(_SHAPE_CORNERS))
        data["layout.shapes.type"] = _column([shape.type or "" for shape in shapes])
        data["layout.shapes.name"] = _column([shape.name or "" for shape in shapes])
        data["layout.shapes.xref"] = _column([shape.xref or "x" for shape in shapes])
        data["layout.shapes.yref"] = _column([shape.yref or "y" for shape in shapes])
        if any(shape.path for shape in shapes):
            data["layout.shapes.path"] = _column([shape.path or "" for shape in shapes])
    labelled = _labelled_points(figure)
    annotations = [note for note in layout.annotations or () if not _repeats_a_label(note, labelled)]
    if annotations:
        data["layout.annotations.text"] = _column([note.text or "" for note in annotations])
        data["layout.annotations.x"] = _column([note.x for note in annotations])
        data["layout.annotations.y"] = _column([note.y for note in annotations])
        data["layout.annotations.xref"] = _column([note.xref or "x" for note in annotations])
        data["layout.annotations.yref"] = _column([note.yref or "y" for note in annotations])
    if layout.meta is not None:
        _meta_arrays(layout.meta, "layout.meta", data)


def _position(value: Any) -> float | str:
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return float(value)
    return str(value)


def _labelled_points(figure: go.Figure) -> set[tuple[str, float | str, float | str, str]]:
    """``(x axis, x, y, text)`` of every trace point that carries its own text label."""
    points = set()
    for trace in figure.data:
        if "text" not in trace or "x" not in trace or "y" not in trace:
            continue
        texts, xs, ys = (_as_array(trace[name]) for name in ("text", "x", "y"))
        if (
            texts is None
            or xs is None
            or ys is None
            or texts.ndim != 1
            or not xs.shape == ys.shape == texts.shape
        ):
            continue
        axis = trace.xaxis or "x"
        for x, y, text in zip(xs.tolist(), ys.tolist(), texts.tolist()):
            points.add((axis, _position(x), _position(y), str(text)))
    return points


def _repeats_a_label(note: Any, labelled: set[tuple[str, float | str, float | str, str]]) -> bool:
    """True for an annotation on the data axes that writes a trace point's own text at that point."""
    xref = note.xref or "x"
    if "domain" in xref or xref == "paper" or note.x is None or note.y is None:
        return False
    return (xref, _position(note.x), _position(note.y), str(note.text)) in labelled


def _meta_arrays(value: Any, key: str, data: dict[str, np.ndarray]) -> None:
    """Numbers and texts of ``layout.meta``; a ragged list is split into ``"<key>.<index>"``."""
    if value is None:
        return
    if isinstance(value, Mapping) and "bdata" not in value:
        for sub_key, item in value.items():
            _meta_arrays(item, f"{key}.{_safe(sub_key)}", data)
        return
    array = _as_array(value)
    if array is not None and array.dtype.kind in "biufU":
        if array.size:
            data[key] = array
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _meta_arrays(item, f"{key}.{index}", data)


def figure_data(
    fig: go.Figure | Mapping[str, Any],
    *,
    include_frames: bool | None = None,
    include_layout: bool = True,
) -> dict[str, np.ndarray]:
    """Extract the numbers a figure shows: its traces, frames and layout (see the module docs).

    Trace keys are ``"<trace name>.<property>"`` (e.g. ``"forget gate f.z"``); a trace
    without a name is called ``"trace <index>"``, and a name used by several traces gets
    ``" (<index>)"`` appended. ``/`` in names becomes ``-`` (export needs plain keys).
    Plotly's base64 typed arrays are decoded, ``None`` gaps become NaN, and legend-only
    traces (all ``None``) are left out. Images give their pixel array ``z``
    ([H, W, 3]); heatmaps their matrix ``z`` as drawn (rows = y). Texts are numpy
    unicode arrays, never ``object`` arrays.

    Args:
        fig: A Plotly figure or its dict form.
        include_frames: Also export every animation frame's traces, under
            ``"frame <frame name>: <trace name>.<property>"``. Default: when the figure
            has frames (an animation shows them all).
        include_layout: Also export the layout's titles, tick labels, shapes,
            annotations and ``meta`` under ``"layout...."`` keys.

    Returns:
        An insertion-ordered dict of arrays, ready for ``export_figure(..., data=...)``:
        traces first, then frames, then the layout.

    Raises:
        ValueError: The figure shows no numbers at all.
    """
    figure = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    data: dict[str, np.ndarray] = {}

    def collect(traces: tuple[Any, ...], prefix: str) -> None:
        for name, trace in zip(_unique_names(traces), traces):
            _trace_arrays(trace, f"{prefix}{name}", data)

    collect(tuple(figure.data), "")
    if include_frames is None:
        include_frames = bool(figure.frames)
    if include_frames:
        for index, frame in enumerate(figure.frames):
            label = _safe(frame.name if frame.name is not None else index)
            collect(tuple(frame.data), f"frame {label}: ")
    if include_layout:
        _layout_arrays(figure, data)
    if not data:
        raise ValueError("the figure has no x, y or z values to export")
    return data
