"""The faces68 keypoint dataset and its geometric augmentation.

Each sample is the face cropped with :func:`face_box_from_keypoints` (square box, side =
``margin`` x the keypoints' larger bounding-box side), resized to ``size x size`` (80 x 80 by
default, as in Recombinator Networks / CRMN 2017), with its 68 keypoints in normalised crop
coordinates (``[0, 1]``, see :mod:`crmn_viz.data.face_geometry`).

Training augmentation is one affine map in normalised crop coordinates, applied to the image
and the keypoints together (the image is resampled only once):
random scale and rotation about the crop centre, random shift, and a horizontal flip that also
re-indexes the points with :data:`FACE68_FLIP_PERMUTATION` (so point 36 stays the subject's
right eye corner). Draws that would push a keypoint outside ``[0, 1]`` are rejected and redrawn,
keeping targets inside a sigmoid head's range.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from crmn_viz.data.face_geometry import (
    DEFAULT_FACE_MARGIN,
    FACE68_FLIP_PERMUTATION,
    FaceBox,
    apply_affine,
    face_box_from_keypoints,
    image_to_normalized_matrix,
    normalized_to_pixel_matrix,
    warp_affine,
)
from crmn_viz.data.jpeg_archive import decode_image_bytes

DEFAULT_FACE_SIZE = 80
NUM_FACE_KEYPOINTS = 68


@dataclass(frozen=True)
class AffineParams:
    """One draw of the keypoint augmentation (identity by default).

    The map, in normalised crop coordinates with centre ``c = (0.5, 0.5)``, is
    ``p' = c + shift + scale * R(rotation_degrees) @ (p - c)``, then ``x' -> 1 - x'`` if ``flip``.
    Positive angles turn the content clockwise on screen (y points down).
    """

    scale: float = 1.0
    rotation_degrees: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False

    def matrix(self) -> torch.Tensor:
        """The 3x3 float64 affine of this draw in normalised crop coordinates."""
        angle = math.radians(self.rotation_degrees)
        cos_a, sin_a = self.scale * math.cos(angle), self.scale * math.sin(angle)
        center = 0.5
        tx = center + self.shift[0] - (cos_a * center - sin_a * center)
        ty = center + self.shift[1] - (sin_a * center + cos_a * center)
        transform = torch.tensor(
            [[cos_a, -sin_a, tx], [sin_a, cos_a, ty], [0.0, 0.0, 1.0]],
            dtype=torch.float64,
        )
        if self.flip:
            mirror = torch.tensor(
                [[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                dtype=torch.float64,
            )
            transform = mirror @ transform
        return transform


@dataclass(frozen=True)
class KeypointAugmentation:
    """Ranges of the random face augmentation (defaults: mild, as used for 300-W style training).

    Attributes:
        scale_range: zoom factor range (>1 enlarges the face in the crop).
        max_rotation_degrees: rotation drawn uniformly in ``[-max, +max]``.
        max_shift: shift per axis drawn uniformly in ``[-max, +max]`` (fraction of the crop side).
        flip_probability: chance of a horizontal flip (with keypoint re-indexing).
        max_attempts: redraws allowed when a keypoint would leave ``[0, 1]``; after that the
            draw keeps only its flip.
    """

    scale_range: tuple[float, float] = (0.9, 1.1)
    max_rotation_degrees: float = 15.0
    max_shift: float = 0.05
    flip_probability: float = 0.5
    max_attempts: int = 10

    def sample(self, generator: torch.Generator | None = None) -> AffineParams:
        """Draw one :class:`AffineParams` (uses torch's RNG, seeded per DataLoader worker)."""
        uniform = torch.rand(5, generator=generator, dtype=torch.float64).tolist()
        low, high = self.scale_range
        return AffineParams(
            scale=low + (high - low) * uniform[0],
            rotation_degrees=self.max_rotation_degrees * (2 * uniform[1] - 1),
            shift=(
                self.max_shift * (2 * uniform[2] - 1),
                self.max_shift * (2 * uniform[3] - 1),
            ),
            flip=uniform[4] < self.flip_probability,
        )

    def sample_keeping_inside(
        self, points01: torch.Tensor, generator: torch.Generator | None = None
    ) -> AffineParams:
        """Draw params whose map keeps all ``points01`` (``[K, 2]``) inside ``[0, 1]``."""
        params = self.sample(generator)
        for _ in range(self.max_attempts):
            moved = apply_affine(points01, params.matrix())
            if bool(((moved >= 0) & (moved <= 1)).all()):
                return params
            params = self.sample(generator)
        return AffineParams(flip=params.flip)


class FaceCropTransform:
    """Crop a face around its keypoints, augment, resize and normalise.

    ``transform(image, keypoints)`` takes a uint8 ``[3, H, W]`` image and ``[68, 2]`` keypoints
    in image pixels and returns ``(image [3, size, size] float32, keypoints01 [68, 2] float32)``.

    Args:
        size: output side in pixels.
        margin: crop box enlargement (see :func:`face_box_from_keypoints`).
        augmentation: random augmentation ranges, or None for a deterministic crop.
        mean, std: per-channel normalisation applied last (after scaling to ``[0, 1]``);
            None leaves the image in ``[0, 1]``.
        flip_permutation: keypoint re-indexing on a horizontal flip.
    """

    def __init__(
        self,
        size: int = DEFAULT_FACE_SIZE,
        margin: float = DEFAULT_FACE_MARGIN,
        augmentation: KeypointAugmentation | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        flip_permutation: Sequence[int] = FACE68_FLIP_PERMUTATION,
    ) -> None:
        self.size = size
        self.margin = margin
        self.augmentation = augmentation
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.flip_permutation = torch.tensor(flip_permutation, dtype=torch.long)

    def box(self, keypoints: torch.Tensor) -> FaceBox:
        """The crop box for ``[K, 2]`` keypoints in image pixels."""
        return face_box_from_keypoints(keypoints, self.margin)

    def choose_params(
        self, keypoints: torch.Tensor, generator: torch.Generator | None = None
    ) -> AffineParams:
        """Random params for these keypoints (identity when there is no augmentation)."""
        if self.augmentation is None:
            return AffineParams()
        points01 = apply_affine(keypoints, image_to_normalized_matrix(self.box(keypoints)))
        return self.augmentation.sample_keeping_inside(points01, generator)

    def apply(
        self, image: torch.Tensor, keypoints: torch.Tensor, params: AffineParams
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic core: crop + ``params`` + resize + normalise.

        Args:
            image: uint8 ``[3, H, W]`` (or float in ``[0, 1]``).
            keypoints: ``[K, 2]`` image pixels.
            params: augmentation draw (``AffineParams()`` for none).

        Returns:
            ``(image [3, size, size] float32, keypoints01 [K, 2] float32)``.
        """
        image_to_normalized = params.matrix() @ image_to_normalized_matrix(self.box(keypoints))
        image_to_crop = normalized_to_pixel_matrix(self.size) @ image_to_normalized
        crop = warp_affine(image, image_to_crop, self.size)
        points01 = apply_affine(torch.as_tensor(keypoints, dtype=torch.float64), image_to_normalized)
        if params.flip:
            points01 = points01[self.flip_permutation]
        crop = crop.to(torch.float32) / 255.0 if crop.dtype == torch.uint8 else crop.to(torch.float32)
        if self.mean is not None and self.std is not None:
            crop = (crop - self.mean) / self.std
        return crop, points01.to(torch.float32)

    def __call__(self, image: torch.Tensor, keypoints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.apply(image, keypoints, self.choose_params(keypoints))


def read_keypoint_csv(
    csv_path: str | os.PathLike[str],
) -> tuple[list[str], torch.Tensor]:
    """Read a faces68 CSV (``image,x0,y0,...,x67,y67``).

    Returns:
        ``(image_names, keypoints)`` with keypoints float32 ``[N, 68, 2]`` in image pixels.
    """
    with open(csv_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[0] != "image" or len(header) != 1 + 2 * NUM_FACE_KEYPOINTS:
            raise ValueError(f"{csv_path}: expected columns image,x0,y0,...,x67,y67")
        names, values = [], []
        for row in reader:
            names.append(row[0])
            values.append([float(value) for value in row[1:]])
    return names, torch.tensor(values, dtype=torch.float32).view(-1, NUM_FACE_KEYPOINTS, 2)


class Faces68Dataset(Dataset):
    """Faces with 68 iBUG keypoints from ``<root>/{split}.csv`` and ``<root>/images/``.

    Items are ``transform(image uint8 [3, H, W], keypoints [68, 2] pixels)``; with the default
    :class:`FaceCropTransform` that is ``(image [3, 80, 80] float32, keypoints01 [68, 2] float32)``.
    Use :meth:`face_box` and :func:`crop_to_image_coords` to map predictions back to the photo
    (valid for un-augmented crops).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        transform: FaceCropTransform | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.image_names, self.keypoints = read_keypoint_csv(self.root / f"{split}.csv")
        self.transform = transform if transform is not None else FaceCropTransform()

    def __len__(self) -> int:
        return len(self.image_names)

    def image_path(self, index: int) -> Path:
        """Path of photo ``index``."""
        return self.root / "images" / self.image_names[index]

    def load_image(self, index: int) -> torch.Tensor:
        """The full photo ``index`` as uint8 RGB ``[3, H, W]``."""
        return decode_image_bytes(self.image_path(index).read_bytes())

    def keypoints_in_image(self, index: int) -> torch.Tensor:
        """Annotated keypoints of ``index`` in image pixels, float32 ``[68, 2]``."""
        return self.keypoints[index].clone()

    def face_box(self, index: int) -> FaceBox:
        """The (un-augmented) crop box of sample ``index`` in image pixels."""
        return self.transform.box(self.keypoints[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.load_image(index), self.keypoints[index])
