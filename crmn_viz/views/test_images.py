"""Small, evenly spread subsets of a test set (for statistics an app can afford)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from crmn_viz.data import build_dataset

__all__ = ["test_subset"]


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
