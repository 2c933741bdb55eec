"""Small, evenly spread subsets of a test set (for statistics an app can afford)."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset, Subset

from crmn_viz.data import build_dataset

__all__ = ["app_data_dir", "test_subset"]

REPO_ROOT = Path(__file__).resolve().parents[2]


def app_data_dir() -> Path:
    """The data root the app reads: ``$CRMN_VIZ_DATA_DIR``, else ``../shared/data`` beside the repo,
    else ``./data``."""
    from_environment = os.environ.get("CRMN_VIZ_DATA_DIR")
    if from_environment:
        return Path(from_environment)
    shared = REPO_ROOT.parent / "shared" / "data"
    return shared if shared.exists() else Path("data")


def test_subset(dataset: str, count: int, data_dir: str | Path | None = None) -> Dataset:
    """``count`` test images spread evenly over the test split (which is sorted by class).

    Items are ``(normalised image [C, H, W], label)`` as :func:`crmn_viz.data.build_dataset` gives.

    Raises:
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    full = build_dataset(dataset, "test", data_dir if data_dir is not None else app_data_dir())
    size = len(full)  # type: ignore[arg-type]
    count = max(1, min(count, size))
    return Subset(full, [round(k * size / count) for k in range(count)])
