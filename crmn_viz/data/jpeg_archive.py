"""Image-folder datasets read straight from a zip archive (or the same layout on disk).

The archive holds ``<split>/<class>/<file>.jpg`` (an optional top-level folder is allowed).
Nothing is extracted to disk: members are read with :mod:`zipfile` and decoded in memory.

Fork/pickle safety: a :class:`zipfile.ZipFile` handle wraps one OS file whose read position
is shared between a parent process and its forked children, so sharing it between DataLoader
workers corrupts reads. :class:`ZipMemberReader` therefore opens its handle lazily, remembers
the process id that opened it, reopens it in any other process, and drops it when pickled.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class ZipMemberReader:
    """Reads member files of one zip archive; safe to pickle and to use after ``fork``."""

    def __init__(self, zip_path: str | os.PathLike[str]) -> None:
        self.zip_path = Path(zip_path)
        self._zip_file: zipfile.ZipFile | None = None
        self._owner_pid: int | None = None

    def _handle(self) -> zipfile.ZipFile:
        if self._zip_file is None or self._owner_pid != os.getpid():
            # A handle inherited through fork belongs to the parent: never read or close it here.
            self._zip_file = zipfile.ZipFile(self.zip_path)
            self._owner_pid = os.getpid()
        return self._zip_file

    def member_names(self) -> list[str]:
        """All member paths in the archive (POSIX separators)."""
        return self._handle().namelist()

    def read(self, member_name: str) -> bytes:
        """The bytes of one member."""
        return self._handle().read(member_name)

    def close(self) -> None:
        """Close this process's handle (a later read reopens it)."""
        if self._zip_file is not None and self._owner_pid == os.getpid():
            self._zip_file.close()
        self._zip_file = None
        self._owner_pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"zip_path": self.zip_path, "_zip_file": None, "_owner_pid": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"ZipMemberReader({str(self.zip_path)!r})"


class DirectoryMemberReader:
    """Same interface as :class:`ZipMemberReader` over an extracted folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def member_names(self) -> list[str]:
        """All file paths below the root, relative and with POSIX separators."""
        return [path.relative_to(self.root).as_posix() for path in self.root.rglob("*") if path.is_file()]

    def read(self, member_name: str) -> bytes:
        """The bytes of one file."""
        return (self.root / member_name).read_bytes()

    def close(self) -> None:
        """Nothing to close; kept for interface parity."""

    def __repr__(self) -> str:
        return f"DirectoryMemberReader({str(self.root)!r})"


MemberReader = ZipMemberReader | DirectoryMemberReader


def index_image_folder(member_names: Sequence[str], split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Find ``[<top>/]<split>/<class>/<file>`` images and label them.

    Returns:
        ``(class_names, samples)``: class names sorted alphabetically (label = position in this
        list, like torchvision's ImageFolder) and ``(member_name, label)`` pairs sorted by
        class then file name.
    """
    by_class: dict[str, list[str]] = {}
    for name in member_names:
        parts = PurePosixPath(name).parts
        if len(parts) < 3 or parts[-3] != split or not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        by_class.setdefault(parts[-2], []).append(name)
    class_names = sorted(by_class)
    samples = [
        (name, label) for label, class_name in enumerate(class_names) for name in sorted(by_class[class_name])
    ]
    return class_names, samples


def decode_image_bytes_hwc(encoded: bytes) -> np.ndarray:
    """Decode JPEG/PNG bytes (Pillow) to an RGB uint8 array of shape ``[H, W, 3]``."""
    with Image.open(io.BytesIO(encoded)) as image:
        return np.array(image.convert("RGB"))


def decode_image_bytes(encoded: bytes) -> torch.Tensor:
    """Decode JPEG/PNG bytes to an RGB uint8 tensor of shape ``[3, H, W]``."""
    return torch.from_numpy(decode_image_bytes_hwc(encoded)).permute(2, 0, 1)


class ArchiveImageFolder(Dataset):
    """ImageFolder-style classification dataset read from a zip archive or folder.

    Each item is ``(image, label)`` where ``image`` is ``transform(uint8 tensor [3, H, W])``
    (the raw uint8 tensor when ``transform`` is None) and ``label`` an ``int``.

    Args:
        reader: where member bytes come from (:class:`ZipMemberReader` or
            :class:`DirectoryMemberReader`).
        split: top-level split folder, e.g. ``"train"`` or ``"test"``.
        transform: applied to each decoded uint8 ``[3, H, W]`` tensor.
        preload: decode every image once into ``self.preloaded_images`` (uint8 ``[N, H, W, 3]``);
            requires all images to share one size.
    """

    def __init__(
        self,
        reader: MemberReader,
        split: str,
        transform: Callable[[torch.Tensor], Any] | None = None,
        preload: bool = False,
    ) -> None:
        self.reader = reader
        self.split = split
        self.transform = transform
        self.classes, self.samples = index_image_folder(reader.member_names(), split)
        if not self.samples:
            raise ValueError(f"No images found under '{split}/<class>/' in {reader!r}")
        self.class_to_idx = {name: label for label, name in enumerate(self.classes)}
        self.targets = [label for _, label in self.samples]
        self.preloaded_images: torch.Tensor | None = self._decode_all() if preload else None

    def __len__(self) -> int:
        return len(self.samples)

    def _decode_all(self) -> torch.Tensor:
        """Decode all images into one uint8 tensor ``[N, H, W, 3]``."""
        first = decode_image_bytes_hwc(self.reader.read(self.samples[0][0]))
        images = np.empty((len(self.samples), *first.shape), dtype=np.uint8)
        for index, (member_name, _) in enumerate(self.samples):
            decoded = decode_image_bytes_hwc(self.reader.read(member_name))
            if decoded.shape != first.shape:
                raise ValueError(
                    f"preload=True needs equal image sizes; {member_name} is "
                    f"{decoded.shape}, not {first.shape}"
                )
            images[index] = decoded
        return torch.from_numpy(images)

    def load_uint8(self, index: int) -> torch.Tensor:
        """The untransformed image ``index`` as uint8 ``[3, H, W]``."""
        if self.preloaded_images is not None:
            return self.preloaded_images[index].permute(2, 0, 1)
        member_name, _ = self.samples[index]
        return decode_image_bytes(self.reader.read(member_name))

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.load_uint8(index)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.samples[index][1]

    def __repr__(self) -> str:
        return f"ArchiveImageFolder({self.reader!r}, split={self.split!r}, n={len(self)})"
