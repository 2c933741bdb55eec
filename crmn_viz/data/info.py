"""Static facts about each supported dataset: classes, outputs, input size, normalisation.

Normalisation constants are per-channel mean and standard deviation of pixel values scaled
to ``[0, 1]``, over **all pixels of the training split** (population std of the pooled
pixels, not the mean of per-image stds). Unless noted they were computed on the copies in
the shared data folder with::

    compute_channel_stats(build_dataset(NAME, "train", train_augment=False, normalize=False))

(:func:`crmn_viz.data.statistics.compute_channel_stats`).
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crmn_viz.data.data_root import resolve_data_dir

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# torchvision.datasets.CIFAR100 fine label order (alphabetical), one name a line.
CIFAR100_CLASSES = tuple(
    (importlib.resources.files("crmn_viz.data") / "cifar100_classes.txt").read_text("utf-8").split()
)
DIGIT_CLASSES = tuple(str(digit) for digit in range(10))

# CIFAR-10: computed on cifar10-jpeg.zip train/ (50,000 JPEG images, quality 75).
CIFAR10_MEAN = (0.4913, 0.4821, 0.4465)
CIFAR10_STD = (0.2452, 0.2428, 0.2606)
# CIFAR-100 and SVHN have no offline copy here: these are the widely used values computed
# the same way (all training pixels) on the official training sets; not recomputed by us.
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
SVHN_MEAN = (0.4377, 0.4438, 0.4728)
SVHN_STD = (0.1980, 0.2010, 0.1970)
# MNIST: computed on mnist/MNIST/raw train-images-idx3-ubyte (60,000 images).
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
# faces68: computed on the 3,153 train.csv faces after the default crop (margin 1.4, 80x80,
# no augmentation; zero fill outside the photo included).
FACES68_MEAN = (0.4697, 0.3538, 0.2959)
FACES68_STD = (0.2522, 0.2076, 0.2029)
# imagefolder: unknown content, so the ImageNet statistics usual for natural photos.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DEFAULT_IMAGEFOLDER_SIZE = 32


@dataclass(frozen=True)
class DatasetInfo:
    """What a trainer needs to know about a dataset (store :meth:`to_dict` in checkpoints).

    Attributes:
        name: dataset key for :func:`crmn_viz.data.build_dataset`.
        task: ``"classification"`` or ``"keypoints"``.
        class_names: label names in label order (None for keypoints or an unknown image folder).
        num_outputs: model outputs: number of classes, or ``2 * num_keypoints`` (x, y each).
        channels: image channels (3 RGB, 1 grey).
        input_size: ``(height, width)`` of the tensors the dataset yields.
        mean, std: per-channel normalisation applied as the last transform step.
        splits: valid split names.
    """

    name: str
    task: str
    class_names: tuple[str, ...] | None
    num_outputs: int | None
    channels: int
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly dict (tuples become lists)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()
        }


_STATIC_INFO: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        "cifar10",
        "classification",
        CIFAR10_CLASSES,
        10,
        3,
        (32, 32),
        CIFAR10_MEAN,
        CIFAR10_STD,
        ("train", "test"),
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        "classification",
        CIFAR100_CLASSES,
        100,
        3,
        (32, 32),
        CIFAR100_MEAN,
        CIFAR100_STD,
        ("train", "test"),
    ),
    "svhn": DatasetInfo(
        "svhn",
        "classification",
        DIGIT_CLASSES,
        10,
        3,
        (32, 32),
        SVHN_MEAN,
        SVHN_STD,
        ("train", "test", "extra"),
    ),
    "mnist": DatasetInfo(
        "mnist",
        "classification",
        DIGIT_CLASSES,
        10,
        1,
        (28, 28),
        MNIST_MEAN,
        MNIST_STD,
        ("train", "test"),
    ),
    "faces68": DatasetInfo(
        "faces68",
        "keypoints",
        None,
        2 * 68,
        3,
        (80, 80),
        FACES68_MEAN,
        FACES68_STD,
        ("train", "test"),
    ),
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`dataset_info` and :func:`crmn_viz.data.build_dataset`."""
    return [*_STATIC_INFO, "imagefolder"]


def imagefolder_root(data_dir: str | os.PathLike[str] | None, split: str | None) -> Path:
    """Folder of an ImageFolder split: ``<data_dir>/<split>`` if it exists, else ``<data_dir>``."""
    root = resolve_data_dir(data_dir)
    if split is not None and (root / split).is_dir():
        return root / split
    return root


def dataset_info(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
) -> DatasetInfo:
    """Facts about dataset ``name`` (see :class:`DatasetInfo`).

    Args:
        name: one of :func:`list_datasets`.
        data_dir: only for ``"imagefolder"``: the folder whose ``train/`` (or own) class
            sub-folders give the class names; without it they are None.
        image_size: for ``"faces68"`` and ``"imagefolder"`` the crop side if not the default.
    """
    key = name.lower()
    if key == "imagefolder":
        class_names = None
        if data_dir is not None:
            root = imagefolder_root(data_dir, "train")
            if root.is_dir():
                class_names = tuple(sorted(entry.name for entry in root.iterdir() if entry.is_dir()))
        side = image_size or DEFAULT_IMAGEFOLDER_SIZE
        return DatasetInfo(
            "imagefolder",
            "classification",
            class_names,
            None if class_names is None else len(class_names),
            3,
            (side, side),
            IMAGENET_MEAN,
            IMAGENET_STD,
            ("train", "val", "test"),
        )
    if key not in _STATIC_INFO:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list_datasets()}")
    info = _STATIC_INFO[key]
    if image_size is not None and (image_size, image_size) != info.input_size:
        if key != "faces68":
            raise ValueError(f"{name} images are {info.input_size}; image_size={image_size} is not supported")
        info = DatasetInfo(**{**asdict(info), "input_size": (image_size, image_size)})
    return info
