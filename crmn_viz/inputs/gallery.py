"""The gallery: a few real test images per dataset, shipped with the package.

The files under ``crmn_viz/gallery/`` are written by
:mod:`crmn_viz.inputs.make_gallery` from the offline data sets and indexed by
``index.csv`` (``file,dataset,label,source``). Face photos come with their 68 ground-truth
keypoints in ``faces68/keypoints.csv`` (the faces68 layout: ``image,x0,y0,...,x67,y67``, in
pixels of the shipped, downscaled photo).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["GALLERY_DIR", "GalleryEntry", "gallery_datasets", "list_gallery"]

GALLERY_DIR = Path(__file__).resolve().parent.parent / "gallery"
"""Folder of the shipped gallery (``crmn_viz/gallery``)."""

INDEX_NAME = "index.csv"
KEYPOINTS_NAME = "keypoints.csv"


@dataclass(frozen=True)
class GalleryEntry:
    """One gallery image.

    Attributes:
        path: the image file.
        dataset: data set key (``"cifar10"``, ``"mnist"``, ``"faces68"``).
        label: class name (classification) or the subject's name (faces).
        source: where it came from in the data set, e.g. ``"test/cat/0123.jpg"``.
        keypoints: ground-truth keypoints [68, 2] ``(x, y)`` in pixels of this file, or None.
    """

    path: Path
    dataset: str
    label: str
    source: str
    keypoints: np.ndarray | None = None

    @property
    def name(self) -> str:
        """File name, e.g. ``"cat_0123.png"``."""
        return self.path.name


def _read_keypoints(folder: Path) -> dict[str, np.ndarray]:
    path = folder / KEYPOINTS_NAME
    if not path.exists():
        return {}
    points: dict[str, np.ndarray] = {}
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            values = np.asarray([float(v) for v in row[1:]], dtype=np.float64)
            points[row[0]] = values.reshape(-1, 2)
    return points


@functools.lru_cache(maxsize=4)
def _load_index(folder: Path) -> tuple[GalleryEntry, ...]:
    index = folder / INDEX_NAME
    if not index.exists():
        return ()
    entries = []
    keypoints_by_folder: dict[str, dict[str, np.ndarray]] = {}
    with index.open(newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / row["file"]
            subfolder = path.parent
            if str(subfolder) not in keypoints_by_folder:
                keypoints_by_folder[str(subfolder)] = _read_keypoints(subfolder)
            points = keypoints_by_folder[str(subfolder)].get(path.name)
            entries.append(GalleryEntry(path, row["dataset"], row["label"], row["source"], points))
    return tuple(entries)


def list_gallery(dataset: str | None = None, folder: str | Path | None = None) -> list[GalleryEntry]:
    """Gallery images, optionally of one data set, in index order.

    Args:
        dataset: ``"cifar10"``, ``"mnist"``, ``"faces68"`` (None: all of them).
        folder: another gallery folder with the same layout (default :data:`GALLERY_DIR`).

    Returns:
        The entries; empty when the gallery (or that data set) is absent.
    """
    entries = _load_index(Path(folder) if folder is not None else GALLERY_DIR)
    return [entry for entry in entries if dataset is None or entry.dataset == dataset]


def gallery_datasets(folder: str | Path | None = None) -> list[str]:
    """Data sets that have gallery images, in index order."""
    return list(dict.fromkeys(entry.dataset for entry in list_gallery(folder=folder)))
