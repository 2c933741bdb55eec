"""Image-folder datasets read straight from a zip archive (or the same layout on disk).

The archive holds ``<split>/<class>/<file>.jpg`` (an optional top-level folder is allowed).
Nothing is extracted to disk: members are read with :mod:`zipfile` and decoded in memory.

Fork/pickle safety: a :class:`zipfile.ZipFile` handle wraps one OS file whose read position
is shared between a parent process and its forked children, so sharing it between DataLoader
workers corrupts reads. :class:`ZipMemberReader` therefore opens its handle lazily, remembers
the process id that opened it, reopens it in any other process, and drops it when pickled.

Once per process: opening a zip parses its central directory (CIFAR-10's 60,022 members take
about a second), and sorting the members into an image folder takes more. Both are kept per
process, keyed by the archive's :class:`ArchiveSignature` (resolved path, size, modification
time): every :class:`ZipMemberReader` of one unchanged archive in one process shares one open
:class:`zipfile.ZipFile` (its reads are thread safe: CPython's zip members seek and read the
shared file under the archive's lock) and one member list, and :class:`ArchiveImageFolder`
indexes each split once. A rewritten archive has another signature and is opened afresh;
:func:`clear_archive_cache` closes this process's handles and forgets everything.
"""

from __future__ import annotations

import dataclasses
import io
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class ArchiveSignature:
    """What identifies one version of an archive file: its resolved path, size and mtime.

    A cache keyed by it is invalidated by any rewrite that changes the size or the modification
    time (nanoseconds where the file system keeps them).
    """

    path: str  # resolved absolute path
    size: int  # bytes
    mtime_ns: int  # st_mtime_ns

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> ArchiveSignature:
        """The signature of the file at ``path`` now (one ``stat``).

        Raises:
            OSError: the file does not exist.
        """
        resolved = Path(path).resolve()
        status = resolved.stat()
        return cls(str(resolved), int(status.st_size), int(status.st_mtime_ns))

    def to_dict(self) -> dict[str, str | int]:
        """JSON-ready ``{"path", "size", "mtime_ns"}`` (e.g. for a cache key)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _OpenArchive:
    """One process's open zip file and its member list (computed on first request)."""

    zip_file: zipfile.ZipFile
    member_names: list[str] | None = None


_ARCHIVE_LOCK = threading.Lock()
# (signature, process id) -> the archive as opened in that process; a forked child sees its
# parent's entries under the parent's pid and never touches them.
_OPEN_ARCHIVES: dict[tuple[ArchiveSignature, int], _OpenArchive] = {}
# (signature, split) -> (class names, samples) of index_image_folder; plain data, fork safe.
_FOLDER_INDEXES: dict[tuple[ArchiveSignature, str], tuple[list[str], list[tuple[str, int]]]] = {}


def _open_archive(signature: ArchiveSignature) -> _OpenArchive:
    """This process's shared open archive for ``signature`` (opened on first use)."""
    key = (signature, os.getpid())
    with _ARCHIVE_LOCK:
        archive = _OPEN_ARCHIVES.get(key)
        if archive is None:
            # Another version of the same path is forgotten (not closed: a reader may still use it).
            for stale in [k for k in _OPEN_ARCHIVES if k[0].path == signature.path and k[1] == key[1]]:
                del _OPEN_ARCHIVES[stale]
            archive = _OpenArchive(zipfile.ZipFile(signature.path))
            _OPEN_ARCHIVES[key] = archive
        return archive


def clear_archive_cache() -> None:
    """Close this process's shared zip handles and forget every cached member list and index.

    Readers that held a closed handle reopen the archive on their next read.
    """
    with _ARCHIVE_LOCK:
        for (_, pid), archive in list(_OPEN_ARCHIVES.items()):
            if pid == os.getpid():
                archive.zip_file.close()
        _OPEN_ARCHIVES.clear()
        _FOLDER_INDEXES.clear()


class ZipMemberReader:
    """Reads member files of one zip archive; safe to pickle and to use after ``fork``.

    Readers of the same unchanged archive in one process share one open handle and one member
    list (see the module docstring): building a second data set over the archive costs a
    ``stat``, not a second parse of its central directory.
    """

    def __init__(self, zip_path: str | os.PathLike[str]) -> None:
        self.zip_path = Path(zip_path)
        self._zip_file: zipfile.ZipFile | None = None
        self._owner_pid: int | None = None
        self._signature: ArchiveSignature | None = None

    def signature(self) -> ArchiveSignature:
        """The archive's :class:`ArchiveSignature`, taken when this reader first needed it."""
        if self._signature is None:
            self._signature = ArchiveSignature.of(self.zip_path)
        return self._signature

    def _archive(self) -> _OpenArchive:
        return _open_archive(self.signature())

    def _handle(self) -> zipfile.ZipFile:
        if self._zip_file is None or self._owner_pid != os.getpid() or self._zip_file.fp is None:
            # A handle inherited through fork belongs to the parent: never read or close it here.
            self._zip_file = self._archive().zip_file
            self._owner_pid = os.getpid()
        return self._zip_file

    def member_names(self) -> list[str]:
        """All member paths in the archive (POSIX separators); listed once per process."""
        archive = self._archive()
        with _ARCHIVE_LOCK:
            if archive.member_names is None:
                archive.member_names = archive.zip_file.namelist()
            return list(archive.member_names)

    def image_folder_index(self, split: str) -> tuple[list[str], list[tuple[str, int]]]:
        """:func:`index_image_folder` of this archive's members, computed once per process."""
        key = (self.signature(), split)
        with _ARCHIVE_LOCK:
            cached = _FOLDER_INDEXES.get(key)
        if cached is None:
            cached = index_image_folder(self.member_names(), split)
            with _ARCHIVE_LOCK:
                _FOLDER_INDEXES[key] = cached
        class_names, samples = cached
        return list(class_names), list(samples)

    def read(self, member_name: str) -> bytes:
        """The bytes of one member."""
        return self._handle().read(member_name)

    def close(self) -> None:
        """Let go of this reader's handle (a later read takes the shared one again).

        The handle is shared with the other readers of the archive in this process, so it stays
        open; :func:`clear_archive_cache` closes it.
        """
        self._zip_file = None
        self._owner_pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "zip_path": self.zip_path,
            "_zip_file": None,
            "_owner_pid": None,
            "_signature": self._signature,
        }

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
        if isinstance(reader, ZipMemberReader):  # indexed once per process and archive version
            self.classes, self.samples = reader.image_folder_index(split)
        else:
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
