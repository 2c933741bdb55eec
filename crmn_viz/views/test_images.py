"""Small, evenly spread subsets of a test set (for statistics an app can afford)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from crmn_viz.data import build_dataset
from crmn_viz.images import encode_png
from crmn_viz.inputs.selection import SelectedImage

__all__ = ["Renormalised", "for_model", "test_image", "test_image_names", "test_images", "test_subset"]


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
    if isinstance(subset, Renormalised):
        subset = subset.dataset
    full = getattr(subset, "dataset", subset)
    indices = list(getattr(subset, "indices", range(len(subset))))  # type: ignore[arg-type]
    samples = getattr(full, "samples", None)
    if samples is not None:
        return [str(samples[index][0]) for index in indices]
    label = type(full).__name__
    return [f"{label} test image {index}" for index in indices]


def test_image(dataset: str, name: str, data_dir: str | Path | None = None) -> SelectedImage:
    """One test image of ``dataset`` by its :func:`test_image_names` name (see :func:`test_images`).

    Raises:
        ValueError: no test image has that name.
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    return test_images(dataset, [name], data_dir)[0]


def test_images(
    dataset: str, names: Sequence[str], data_dir: str | Path | None = None
) -> list[SelectedImage]:
    """Test images of ``dataset`` by their :func:`test_image_names` names, as :class:`SelectedImage`
    objects (source ``"dataset"``, labelled with their class) that every page can show. The data
    set and its name index are built once for all of them.

    For a data set kept as an archive or folder (CIFAR-10) a picture is the member's own bytes
    (``test/cat/0001.jpg``; its SHA-256 is what provenance records); for other data sets
    (``"<data set> test image <index>"``) it is the item at that index, unnormalised.

    Raises:
        ValueError: no test image has one of the names.
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    full = build_dataset(dataset, "test", data_dir)
    samples = getattr(full, "samples", None)
    reader = getattr(full, "reader", None)
    classes = list(getattr(full, "classes", []) or [])

    def missing(name: str) -> ValueError:
        return ValueError(f"{dataset} has no test image named {name!r}")

    if samples is not None and reader is not None:
        labels = dict(samples)
        found = []
        for name in names:
            if name not in labels:
                raise missing(name)
            label = classes[labels[name]] if labels[name] < len(classes) else None
            found.append(SelectedImage.from_source(name, reader.read(name), source="dataset", label=label))
        return found
    prefix = f"{type(full).__name__} test image "
    indices = []
    for name in names:
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            raise missing(name)
        if int(name[len(prefix) :]) >= len(full):  # type: ignore[arg-type]
            raise missing(name)
        indices.append(int(name[len(prefix) :]))
    raw = build_dataset(dataset, "test", data_dir, normalize=False) if indices else None
    found = []
    for name, index in zip(names, indices):
        image, target = raw[index]  # type: ignore[index]
        pixels = (torch.as_tensor(image).float().clamp(0, 1) * 255).round().to(torch.uint8)
        picture = Image.fromarray(pixels.permute(1, 2, 0).squeeze(-1).numpy())
        label = classes[int(target)] if isinstance(target, int) and int(target) < len(classes) else None
        found.append(SelectedImage.from_source(name, encode_png(picture), source="dataset", label=label))
    return found


Statistics = tuple[tuple[float, ...], tuple[float, ...]]
"""Per-channel ``(mean, std)`` on the [0, 1] scale."""


class Renormalised(Dataset):
    """Items ``(image, label)`` of a data set normalised with one mean/std, re-normalised to another:
    ``(x * std_from + mean_from - mean_to) / std_to`` per channel (what a model whose card states
    other statistics than the data set's expects).

    Attributes:
        dataset: the data set as built (its ``samples``/``indices`` still name its images).
    """

    def __init__(self, dataset: Dataset, source: Statistics, target: Statistics) -> None:
        self.dataset = dataset
        (mean_from, std_from), (mean_to, std_to) = source, target
        self.scale = (torch.tensor(std_from) / torch.tensor(std_to))[:, None, None]
        self.shift = ((torch.tensor(mean_from) - torch.tensor(mean_to)) / torch.tensor(std_to))[:, None, None]

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image, label = self.dataset[index]
        return torch.as_tensor(image) * self.scale + self.shift, label


def for_model(subset: Dataset, dataset: str, model: Any) -> Dataset:
    """``subset`` (normalised with the data set's statistics, :func:`crmn_viz.data.dataset_info`) as
    ``model``'s card expects it: unchanged when the statistics agree, else :class:`Renormalised`."""
    from crmn_viz.analysis.inputs import preprocessor_for
    from crmn_viz.data import dataset_info

    info = dataset_info(dataset)
    preprocess = preprocessor_for(model)
    source = (tuple(info.mean), tuple(info.std))
    target = (tuple(preprocess.mean), tuple(preprocess.std))
    if len(source[0]) != len(target[0]) or all(
        abs(a - b) < 1e-9 for a, b in zip(source[0] + source[1], target[0] + target[1])
    ):
        return subset
    return Renormalised(subset, source, target)
