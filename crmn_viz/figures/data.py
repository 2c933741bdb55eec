"""The numbers behind a figure, so they can be written beside it.

:func:`figure_data` reads back what a Plotly figure actually plots (``x``, ``y`` and
``z`` of every trace) as numpy arrays, in the form
:func:`crmn_viz.figures.export_figure` takes as ``data=``::

    fig = plot_gate_heatmap(trace, "forget_gate")
    export_figure(fig, "out/forget.pdf", data=figure_data(fig))   # + forget.data.npz
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

__all__ = ["figure_data"]

_AXES = ("x", "y", "z")


def _decode_typed_array(value: Mapping[str, Any]) -> np.ndarray:
    """Decode Plotly's base64 typed-array form ``{"dtype", "bdata", "shape"}``."""
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    shape = value.get("shape")
    if shape:
        dims = [int(part) for part in str(shape).split(",")] if isinstance(shape, str) else list(shape)
        array = array.reshape(dims)
    return array.copy()


def _as_array(value: Any) -> np.ndarray | None:
    """A numeric or text array, or None when there is nothing to export."""
    if value is None:
        return None
    if isinstance(value, Mapping) and "bdata" in value:
        return _decode_typed_array(value)
    array = np.asarray(value)
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


def _unique_names(traces: tuple[Any, ...]) -> list[str]:
    names = [str(trace.name).replace("/", "-") if trace.name else "" for trace in traces]
    result = []
    for index, name in enumerate(names):
        if not name:
            result.append(f"trace {index}")
        elif names.count(name) > 1:
            result.append(f"{name} ({index})")
        else:
            result.append(name)
    return result


def figure_data(fig: go.Figure | Mapping[str, Any], *, include_frames: bool = False) -> dict[str, np.ndarray]:
    """Extract the numbers a figure plots: ``x``, ``y`` and ``z`` of every trace.

    Keys are ``"<trace name>.<axis>"`` (e.g. ``"forget gate f.z"``); a trace without a
    name is called ``"trace <index>"``, and a name used by several traces gets
    ``" (<index>)"`` appended. ``/`` in names becomes ``-`` (export needs plain keys).
    Plotly's base64 typed arrays are decoded, ``None`` gaps become NaN, and legend-only
    traces (all ``None``) are left out. Images give their pixel array ``z``
    ([H, W, 3]); heatmaps their matrix ``z`` as drawn (rows = y).

    Args:
        fig: A Plotly figure or its dict form.
        include_frames: Also export every animation frame's traces, under
            ``"frame <frame name>: <trace name>.<axis>"``.

    Returns:
        An insertion-ordered dict of arrays, ready for ``export_figure(..., data=...)``.

    Raises:
        ValueError: The figure plots no numbers at all.
    """
    figure = fig if isinstance(fig, go.Figure) else go.Figure(fig)
    data: dict[str, np.ndarray] = {}

    def collect(traces: tuple[Any, ...], prefix: str) -> None:
        for name, trace in zip(_unique_names(traces), traces):
            for axis in _AXES:
                if axis not in trace:
                    continue
                array = _as_array(trace[axis])
                if array is not None and array.size:
                    data[f"{prefix}{name}.{axis}"] = array

    collect(tuple(figure.data), "")
    if include_frames:
        for index, frame in enumerate(figure.frames):
            label = str(frame.name if frame.name is not None else index).replace("/", "-")
            collect(tuple(frame.data), f"frame {label}: ")
    if not data:
        raise ValueError("the figure has no x, y or z values to export")
    return data
