"""Small, evenly spread subsets of a test set (for statistics an app can afford)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from crmn_viz.data import build_dataset

__all__ = ["test_image_names", "test_subset"]


def test_subset(dataset: str, count: int, data_dir: str | Path | None = None) -> Dataset:
    """``count`` test images spread evenly over the test split (which is sorted by class).

    Items are ``(normalised image [C, H, W], label)`` as :func:`crmn_viz.data.build_dataset` gives.

    Raises:
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    full = build_dataset(dataset, "test", data_dir)  # None: $CRMN_VIZ_DATA_DIR, else ./data
    size = len(full)  # type: ignore[arg-type]
    count = max(1, min(count, size))
    return Subset(full, [round(k * size / count) for k in range(count)])


def test_image_names(subset: Dataset) -> list[str]:
    """The file name of every image of a :func:`test_subset`: the member name inside the data
    set's archive or folder (e.g. ``test/cat/0001.jpg``) where the data set keeps one, else
    ``"<data set> test image <index>"``."""
    full = getattr(subset, "dataset", subset)
    indices = list(getattr(subset, "indices", range(len(subset))))  # type: ignore[arg-type]
    samples = getattr(full, "samples", None)
    if samples is not None:
        return [str(samples[index][0]) for index in indices]
    label = type(full).__name__
    return [f"{label} test image {index}" for index in indices]
