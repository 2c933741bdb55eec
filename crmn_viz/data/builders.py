"""``build_dataset``: one entry point for every supported dataset, with paper augmentations.

Augmentation (training split only, unless ``train_augment`` says otherwise):

* CIFAR-10/100: 4-pixel zero padding, random 32x32 crop, random horizontal flip.
* SVHN: 4-pixel zero padding and random 32x32 crop; no flip (digits are not mirror-symmetric).
* MNIST: random shifts of up to 2 pixels (2-pixel zero padding + random 28x28 crop), as in ReNet;
  no flip.
* faces68: random scale, rotation, shift and mirror flip (image and keypoints together), see
  :mod:`crmn_viz.data.faces`.
* imagefolder: resize + centre crop to ``image_size``, then the CIFAR recipe scaled to the
  size (padding = size / 8).

Normalisation with :func:`dataset_info`'s mean/std is always the last step (``normalize=False``
returns ``[0, 1]`` floats instead, e.g. for display).
"""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from crmn_viz.data.data_root import DatasetNotFoundError, resolve_data_dir
from crmn_viz.data.faces import FaceCropTransform, Faces68Dataset, KeypointAugmentation
from crmn_viz.data.in_memory import InMemoryImageDataset
from crmn_viz.data.info import dataset_info, imagefolder_root, list_datasets
from crmn_viz.data.jpeg_archive import (
    ArchiveImageFolder,
    DirectoryMemberReader,
    ZipMemberReader,
)

if TYPE_CHECKING:  # torchvision (about 2 s to import) is imported where a dataset is built
    from torchvision import datasets as tv_datasets

CIFAR10_ZIP_NAME = "cifar10-jpeg.zip"
CIFAR10_FOLDER_NAME = "cifar10-jpeg"
MNIST_SUBDIR = "mnist"
SVHN_SUBDIR = "svhn"
FACES68_SUBDIR = "faces68"
# Seconds a silent network may stall a download before it fails (instead of hanging).
DOWNLOAD_SOCKET_TIMEOUT_S = 30.0

# name -> (padding, flip) of the pad-and-crop augmentation.
_PAD_CROP_FLIP: dict[str, tuple[int, bool]] = {
    "cifar10": (4, True),
    "cifar100": (4, True),
    "svhn": (4, False),
    "mnist": (2, False),
}


def classification_transform(
    size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    augment: bool,
    padding: int = 4,
    flip: bool = True,
    resize_to: int | None = None,
    normalize: bool = True,
) -> Callable[[Any], torch.Tensor]:
    """Image pipeline for classification datasets.

    Input: a PIL image or uint8 tensor ``[C, H, W]``. Output: float32 ``[C, *size]``.

    Args:
        size: output ``(height, width)``.
        mean, std: per-channel normalisation (last step).
        augment: add zero padding + random crop (+ flip).
        padding: zero padding in pixels before the random crop.
        flip: random horizontal flip (only when ``augment``).
        resize_to: first resize the short side to this and centre-crop ``size`` (image folders).
        normalize: apply mean/std; False leaves values in ``[0, 1]``.
    """
    from torchvision.transforms import v2

    steps: list[Callable[..., Any]] = [v2.ToImage()]
    if resize_to is not None:
        steps += [v2.Resize(resize_to, antialias=True), v2.CenterCrop(size)]
    if augment:
        steps.append(v2.RandomCrop(size, padding=padding, fill=0, padding_mode="constant"))
        if flip:
            steps.append(v2.RandomHorizontalFlip(p=0.5))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if normalize:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    steps.append(v2.ToPureTensor())
    return v2.Compose(steps)


@contextlib.contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """Give sockets a default timeout (if none is set) so a dead network fails instead of hanging."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _torchvision_dataset(
    dataset_name: str,
    looked_in: list[Path],
    download: bool,
    factory: Callable[[bool], Dataset],
) -> Dataset:
    """Call a torchvision dataset constructor, turning 'missing' and download failures into
    :class:`DatasetNotFoundError`."""
    try:
        if download:
            with _network_timeout(DOWNLOAD_SOCKET_TIMEOUT_S):
                return factory(True)
        return factory(False)
    except RuntimeError as error:
        if "not found" not in str(error).lower() and "download=true" not in str(error).lower():
            raise
        raise DatasetNotFoundError(dataset_name, looked_in, f"torchvision said: {error}") from error
    except (
        urllib.error.URLError,
        TimeoutError,
        ConnectionError,
        socket.gaierror,
    ) as error:
        raise DatasetNotFoundError(
            dataset_name,
            looked_in,
            f"Download failed ({error}); is there internet access?",
        ) from error


def _check_split(name: str, split: str) -> None:
    splits = dataset_info(name).splits
    if split not in splits:
        raise ValueError(f"{name} has splits {splits}, not {split!r}")


def build_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    train_augment: bool | None = None,
    download: bool = False,
    *,
    preload: bool = False,
    normalize: bool = True,
    image_size: int | None = None,
) -> Dataset:
    """Build dataset ``name`` / ``split`` with the transforms used for training or evaluation.

    Args:
        name: one of :func:`list_datasets` (case-insensitive).
        split: ``"train"`` / ``"test"`` (SVHN also ``"extra"``; imagefolder: any sub-folder).
        data_dir: data root; default ``$CRMN_VIZ_DATA_DIR``, else ``./data``. For
            ``"imagefolder"`` the image folder itself (with ``<split>/`` sub-folders or not).
        train_augment: random augmentation on/off; None means on for ``split == "train"``.
        download: let torchvision download missing CIFAR-10/100, SVHN or MNIST files.
        preload: CIFAR-10 only: return the whole split decoded in memory (attribute
            ``preloaded_images``, uint8 ``[N, 32, 32, 3]``, and ``targets``); from the JPEG
            archive this decodes every image once.
        normalize: apply :func:`dataset_info` mean/std as the last step.
        image_size: faces68 crop side (default 80) or imagefolder side (default 32).

    Returns:
        A map-style dataset. Classification items: ``(image float32 [C, H, W], label int)``.
        faces68 items: ``(image float32 [3, S, S], keypoints01 float32 [68, 2])``.

    Raises:
        DatasetNotFoundError: the files are missing (and not downloaded).
        ValueError: unknown name/split, or an option the dataset does not support.
    """
    from torchvision import datasets as tv_datasets

    key = name.lower()
    if key not in list_datasets():
        raise ValueError(f"Unknown dataset {name!r}; choose one of {list_datasets()}")
    augment = (split == "train") if train_augment is None else bool(train_augment)
    if preload and key != "cifar10":
        raise ValueError("preload=True is only supported for cifar10")
    if key == "imagefolder":
        return _build_imagefolder(split, data_dir, augment, normalize, image_size)
    _check_split(key, split)
    info = dataset_info(key, image_size=image_size)
    root = resolve_data_dir(data_dir)
    if key == "faces68":
        return _build_faces68(root, split, augment, normalize, info.input_size[0], info.mean, info.std)

    padding, flip = _PAD_CROP_FLIP[key]
    transform = classification_transform(
        info.input_size,
        info.mean,
        info.std,
        augment,
        padding=padding,
        flip=flip,
        normalize=normalize,
    )
    train = split == "train"
    if key == "cifar10":
        zip_path, folder = root / CIFAR10_ZIP_NAME, root / CIFAR10_FOLDER_NAME
        if zip_path.is_file():
            return ArchiveImageFolder(ZipMemberReader(zip_path), split, transform, preload=preload)
        if folder.is_dir():
            return ArchiveImageFolder(DirectoryMemberReader(folder), split, transform, preload=preload)
        cifar10 = _torchvision_dataset(
            "cifar10",
            [zip_path, folder, root / "cifar-10-batches-py"],
            download,
            lambda fetch: tv_datasets.CIFAR10(str(root), train=train, transform=transform, download=fetch),
        )
        if preload:  # torchvision already holds the split as uint8 [N, 32, 32, 3]
            images = torch.from_numpy(cifar10.data)
            return InMemoryImageDataset(images, cifar10.targets, cifar10.classes, transform)
        return cifar10
    if key == "cifar100":
        return _torchvision_dataset(
            "cifar100",
            [root / "cifar-100-python"],
            download,
            lambda fetch: tv_datasets.CIFAR100(str(root), train=train, transform=transform, download=fetch),
        )
    if key == "svhn":
        svhn_root = root / SVHN_SUBDIR
        return _torchvision_dataset(
            "svhn",
            [svhn_root / f"{split}_32x32.mat"],
            download,
            lambda fetch: tv_datasets.SVHN(str(svhn_root), split=split, transform=transform, download=fetch),
        )
    mnist_root = root / MNIST_SUBDIR
    return _torchvision_dataset(
        "mnist",
        [mnist_root / "MNIST" / "raw"],
        download,
        lambda fetch: tv_datasets.MNIST(str(mnist_root), train=train, transform=transform, download=fetch),
    )


def _build_faces68(
    root: Path,
    split: str,
    augment: bool,
    normalize: bool,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> Faces68Dataset:
    faces_root = root / FACES68_SUBDIR
    csv_path = faces_root / f"{split}.csv"
    if not csv_path.is_file():
        raise DatasetNotFoundError(
            "faces68",
            [csv_path],
            "faces68 has no torchvision download; copy the faces68/ folder "
            "(train.csv, test.csv, images/) there.",
        )
    transform = FaceCropTransform(
        size=size,
        augmentation=KeypointAugmentation() if augment else None,
        mean=mean if normalize else None,
        std=std if normalize else None,
    )
    return Faces68Dataset(faces_root, split, transform)


def _build_imagefolder(
    split: str,
    data_dir: str | os.PathLike[str] | None,
    augment: bool,
    normalize: bool,
    image_size: int | None,
) -> tv_datasets.ImageFolder:
    root = imagefolder_root(data_dir, split)
    if not root.is_dir():
        raise DatasetNotFoundError(
            "imagefolder",
            [root],
            "Pass data_dir=<folder with one sub-folder per class>.",
        )
    info = dataset_info("imagefolder", data_dir=data_dir, image_size=image_size)
    side = info.input_size[0]
    transform = classification_transform(
        info.input_size,
        info.mean,
        info.std,
        augment,
        padding=max(1, side // 8),
        flip=True,
        resize_to=side,
        normalize=normalize,
    )
    from torchvision import datasets as tv_datasets

    return tv_datasets.ImageFolder(str(root), transform=transform)
