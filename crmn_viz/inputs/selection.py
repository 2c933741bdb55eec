"""The images a user has chosen, in a form that is cheap to hash, cache and share.

A :class:`SelectedImage` keeps its pixels as canonical PNG bytes, so a result cache can key
on the bytes (the same picture gives the same key in every session), while the decoded
picture is only made when an analysis needs it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from crmn_viz.images import ImageLimits, ImageSource, encode_png, load_image
from crmn_viz.provenance import ImageRecord

__all__ = ["MAX_SIDE", "SelectedImage", "decode_images", "encode_png", "images_digest"]

MAX_SIDE = 1024
"""Pictures larger than this (pixels, longer side) are downscaled on arrival: the networks see
at most 80 x 80 and the face detector works below 1024 px, so nothing is lost but time."""


@dataclass(frozen=True)
class SelectedImage:
    """One image chosen in the app.

    Attributes:
        name: what to call it on screen (file name or gallery label).
        png: the picture as canonical RGB PNG bytes (the cache key).
        source: ``"upload"``, ``"gallery"`` or ``"camera"``.
        label: the true class or person when known (gallery images).
        keypoints: ground-truth keypoints [K, 2] in pixels of this picture, when known.
        file_sha256: SHA-256 (hex) of the file's bytes as uploaded or read from disk (what a
            figure's provenance names); None when the picture came from memory.
    """

    name: str
    png: bytes = field(repr=False)
    source: str = "upload"
    label: str | None = None
    keypoints: np.ndarray | None = field(default=None, repr=False, compare=False)
    file_sha256: str | None = None

    @classmethod
    def from_source(
        cls,
        name: str,
        source_data: ImageSource,
        *,
        source: str = "upload",
        label: str | None = None,
        keypoints: np.ndarray | None = None,
        limits: ImageLimits | None = None,
    ) -> SelectedImage:
        """Load anything :func:`crmn_viz.images.load_image` accepts (raises its ``InvalidImageError``).

        Pictures wider or taller than :data:`MAX_SIDE` are downscaled (keypoints with them).
        """
        picture = load_image(source_data, limits=limits)  # refuses what is too big before hashing
        file_sha256 = None
        if isinstance(source_data, (bytes, bytearray, memoryview)):
            file_sha256 = hashlib.sha256(source_data).hexdigest()
        elif isinstance(source_data, (str, Path)):
            file_sha256 = hashlib.sha256(Path(source_data).read_bytes()).hexdigest()
        scale = MAX_SIDE / max(picture.size)
        if scale < 1.0:
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            picture = picture.resize(size, Image.Resampling.LANCZOS)
            if keypoints is not None:
                keypoints = (np.asarray(keypoints, dtype=np.float64) + 0.5) * scale - 0.5
        return cls(name, encode_png(picture), source, label, keypoints, file_sha256)

    @classmethod
    def from_bytes(
        cls, name: str, data: bytes, *, source: str = "upload", limits: ImageLimits | None = None
    ) -> SelectedImage:
        """Decode an uploaded file's bytes (raises ``InvalidImageError``)."""
        return cls.from_source(name, data, source=source, limits=limits)

    @classmethod
    def from_path(
        cls, path: str | Path, *, label: str | None = None, keypoints: np.ndarray | None = None
    ) -> SelectedImage:
        """A gallery (or any on-disk) image."""
        return cls.from_source(
            Path(path).name, Path(path), source="gallery", label=label, keypoints=keypoints
        )

    @property
    def stem(self) -> str:
        """The name without its file extension (for figure file names)."""
        return Path(self.name).stem or self.name

    @property
    def digest(self) -> str:
        """SHA-256 of the PNG bytes (hex, first 16 characters)."""
        return hashlib.sha256(self.png).hexdigest()[:16]

    @property
    def record(self) -> ImageRecord:
        """The image as a figure's provenance names it: its name and its file's SHA-256.

        A picture that came from memory (no file) is named by the digest of its canonical PNG.
        """
        return ImageRecord(self.name, self.file_sha256 or hashlib.sha256(self.png).hexdigest())

    def enlarged(self, width: int) -> Image.Image:
        """The picture at least ``width`` pixels wide, enlarged by whole pixels (nearest neighbour),
        so a 32 x 32 input stays sharp on screen instead of being smoothed by the browser."""
        picture = self.image()
        factor = max(1, width // picture.width)
        if factor == 1:
            return picture
        return picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)

    def image(self) -> Image.Image:
        """The decoded RGB picture."""
        return decode_images([self.png])[0]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, read from the PNG header."""
        with Image.open(io.BytesIO(self.png)) as picture:
            return picture.size


def decode_images(pngs: Sequence[bytes]) -> list[Image.Image]:
    """Decode canonical PNG bytes (as made by :func:`encode_png`) back to RGB pictures."""
    pictures = []
    for data in pngs:
        with Image.open(io.BytesIO(data)) as picture:
            pictures.append(picture.convert("RGB"))
    return pictures


def images_digest(images: Sequence[SelectedImage]) -> str:
    """One key for an ordered selection of images."""
    digest = hashlib.sha256()
    for image in images:
        digest.update(image.png)
    return digest.hexdigest()[:16]
