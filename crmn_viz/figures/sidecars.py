"""The files written beside an exported figure: its numbers and its ``.meta.json``.

The data half of :mod:`crmn_viz.figures.export`. The numbers behind a figure (a mapping of
name -> array, or a pandas DataFrame) become ``<name>.data.csv`` when they are equal-length 1-D
columns (or a DataFrame), else ``<name>.data.npz``; ``<name>.meta.json`` describes the figure
files, the printed size, the data file, the metadata and provenance given, and the versions of
the software that drew it. Every file is written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crmn_viz.figures.theme import POINTS_PER_INCH
from crmn_viz.provenance import Provenance

__all__ = [
    "FigureData",
    "encode_data",
    "package_version",
    "validate_data",
    "write_atomically",
    "write_sidecars",
]

FigureData = Any
"""Numbers behind a figure: a mapping of name -> array (or 1-D column), or a pandas DataFrame."""


def validate_data(data: Any, name: str) -> None:
    """Refuse ``data`` that cannot be written beside figure ``name``.

    Raises:
        ValueError: not a non-empty mapping (or DataFrame), a key that is empty or holds
            ``'/'``, or a value that is not a regular numeric or text array.
    """
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


def encode_data(data: Any) -> tuple[str, bytes, dict[str, Any]]:
    """``(extension, file content, description)`` of the data file for ``data``.

    The extension is ``"csv"`` for a DataFrame or equal-length 1-D columns, else ``"npz"``
    (compressed); the description is what ``.meta.json`` records about the file.
    """
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


def write_atomically(path: Path, content: bytes) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same folder and a rename."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_sidecars(
    name: str,
    out_dir: Path,
    figure_paths: list[Path],
    width_in: float,
    height_in: float,
    dpi: float,
    *,
    data: FigureData | None = None,
    metadata: Mapping[str, Any] | None = None,
    provenance: Provenance | None = None,
) -> list[Path]:
    """Write the data file (when ``data`` is given) and ``<name>.meta.json`` beside a figure.

    Args:
        name: the figure's file stem.
        out_dir: the folder its files are in.
        figure_paths: the figure files written (listed in the description).
        width_in, height_in: the printed size.
        dpi: the PNG resolution (recorded when a PNG is among ``figure_paths``).
        data: the numbers behind the figure (see :func:`encode_data`).
        metadata: extra JSON-serialisable facts.
        provenance: what made the figure.

    Returns:
        The paths written: the data file if any, then the ``.meta.json``.
    """
    stem = out_dir / name
    written: list[Path] = []
    description: dict[str, Any] = {
        "figure": name,
        "files": [path.name for path in figure_paths],
        "width_in": round(width_in, 4),
        "height_in": round(height_in, 4),
        "width_pt": round(width_in * POINTS_PER_INCH, 2),
        "height_pt": round(height_in * POINTS_PER_INCH, 2),
    }
    if any(path.suffix == ".png" for path in figure_paths):
        description["dpi"] = dpi
        description["png_pixels"] = [round(width_in * dpi), round(height_in * dpi)]
    if data is not None:
        data_path, data_description = _write_data(data, stem)
        written.append(data_path)
        description["data_file"] = data_path.name
        description["data"] = data_description
    if metadata:
        description["metadata"] = dict(metadata)
    if provenance is not None:
        description["provenance"] = provenance.to_dict()
    description["software"] = {
        package: version
        for package in ("crmn_viz", "plotly", "kaleido")
        if (version := package_version(package))
    }
    meta_path = stem.with_name(stem.name + ".meta.json")
    text = json.dumps(description, indent=2, sort_keys=False, default=_json_default, allow_nan=True)
    write_atomically(meta_path, (text + "\n").encode("utf-8"))
    written.append(meta_path)
    return written


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "to_csv") and hasattr(data, "columns") and hasattr(data, "index")


def _as_columns(data: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """Return the mapping as equal-length 1-D columns, or None if it is not one."""
    columns = {str(key): np.asarray(value) for key, value in data.items()}
    lengths = {column.shape[0] for column in columns.values() if column.ndim == 1}
    if columns and all(column.ndim == 1 for column in columns.values()) and len(lengths) == 1:
        return columns
    return None


def _write_data(data: Any, stem: Path) -> tuple[Path, dict[str, Any]]:
    extension, content, description = encode_data(data)
    path = stem.with_name(f"{stem.name}.data.{extension}")
    write_atomically(path, content)
    return path, description


def _columns_to_csv(columns: dict[str, np.ndarray]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    writer.writerows(zip(*(column.tolist() for column in columns.values()), strict=True))
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)
