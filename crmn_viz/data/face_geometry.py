"""Face crop geometry: box from keypoints, crop/resize, and the maps between coordinate frames.

Coordinate frames (all points are ``(x, y)``, x to the right, y down):

* **image pixels**: a point ``(x, y)`` with integer values sits on the centre of pixel
  column ``x``, row ``y`` (the NumPy/OpenCV convention; the faces68 CSV is in this frame).
* **normalised crop** (``points01``): ``(0, 0)`` is the top-left corner of the crop box and
  ``(1, 1)`` its bottom-right corner, so ``u = (x - box.left) / box.side``. This is what the
  keypoint model (sigmoid head) predicts, and it does not depend on the output size.
* **crop pixels**: pixel-centre coordinates in the resized ``height x width`` crop, so a crop
  pixel ``(i, j)`` covers normalised ``[(i / width), ((i + 1) / width))``:
  ``x_crop = u * width - 0.5``.

Crop rule (:func:`face_box_from_keypoints`): take the keypoints' axis-aligned bounding box,
then a **square** box centred on that bounding box's centre with
``side = margin * max(bbox_width, bbox_height)`` (``margin = 1.4`` by default). The box may
extend beyond the image; the outside is filled with zeros (black) when cropping.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

DEFAULT_FACE_MARGIN = 1.4
# Downscaling by more than this factor first low-pass filters the image (antialiased resize),
# so 400-pixel faces shrunk to 80 pixels do not alias.
_ANTIALIAS_ABOVE_SCALE = 1.25

# iBUG / 300-W 68-point mirror pairs (subject's right <-> left). Points on the mid-line
# (8 chin, 27-30 nose bridge, 33 nose tip bottom, 51/57/62/66 lip centres) map to themselves.
FACE68_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    *((jaw, 16 - jaw) for jaw in range(8)),  # jaw line 0-16: 0<->16 ... 7<->9
    *((17 + i, 26 - i) for i in range(5)),  # brows: 17-21 <-> 26-22
    (31, 35), (32, 34),  # nostrils / lower nose
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),  # eyes: right 36-41 <-> left 42-47
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),  # outer lips 48-59
    (60, 64), (61, 63), (65, 67),  # inner lips 60-67
)  # fmt: skip


def _flip_permutation(num_points: int, pairs: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    permutation = list(range(num_points))
    for first, second in pairs:
        permutation[first], permutation[second] = second, first
    return tuple(permutation)


# After a horizontal flip, new point ``i`` is old point ``FACE68_FLIP_PERMUTATION[i]``.
FACE68_FLIP_PERMUTATION: tuple[int, ...] = _flip_permutation(68, FACE68_MIRROR_PAIRS)


class FaceBox(NamedTuple):
    """Square crop box in image pixels: top-left corner ``(left, top)`` and side length."""

    left: float
    top: float
    side: float

    @property
    def center(self) -> tuple[float, float]:
        """Box centre ``(x, y)`` in image pixels."""
        return (self.left + self.side / 2, self.top + self.side / 2)

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """The box as ``(x0, y0, x1, y1)`` in image pixels."""
        return (self.left, self.top, self.left + self.side, self.top + self.side)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    height, width = size
    return int(height), int(width)


def face_box_from_keypoints(keypoints: torch.Tensor, margin: float = DEFAULT_FACE_MARGIN) -> FaceBox:
    """Square crop box around a face.

    Args:
        keypoints: ``[K, 2]`` points ``(x, y)`` in image pixels.
        margin: enlargement factor: ``side = margin * max(bbox_width, bbox_height)``.

    Returns:
        A :class:`FaceBox` centred on the keypoints' bounding box.
    """
    points = torch.as_tensor(keypoints, dtype=torch.float64)
    low = points.min(dim=0).values
    high = points.max(dim=0).values
    center = (low + high) / 2
    side = margin * float((high - low).max())
    if side <= 0:
        raise ValueError("keypoints span a zero-size box")
    return FaceBox(float(center[0]) - side / 2, float(center[1]) - side / 2, side)


def apply_affine(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 affine ``matrix`` to points ``[..., 2]``; returns ``[..., 2]`` in their dtype."""
    points = torch.as_tensor(points)
    matrix = torch.as_tensor(matrix, dtype=torch.float64)
    dtype = points.dtype if points.is_floating_point() else torch.float32
    transformed = points.to(torch.float64) @ matrix[:2, :2].T + matrix[:2, 2]
    return transformed.to(dtype)


def image_to_normalized_matrix(box: FaceBox) -> torch.Tensor:
    """3x3 affine from image pixels to normalised crop coordinates of ``box``."""
    scale = 1.0 / box.side
    return torch.tensor(
        [
            [scale, 0.0, -box.left * scale],
            [0.0, scale, -box.top * scale],
            [0.0, 0.0, 1.0],
        ],
        dtype=torch.float64,
    )


def normalized_to_pixel_matrix(size: int | tuple[int, int]) -> torch.Tensor:
    """3x3 affine from normalised crop coordinates to crop pixels of a ``size`` output."""
    height, width = _size_hw(size)
    return torch.tensor([[width, 0.0, -0.5], [0.0, height, -0.5], [0.0, 0.0, 1.0]], dtype=torch.float64)


def image_to_crop_coords(points: torch.Tensor, box: FaceBox) -> torch.Tensor:
    """Map image-pixel points ``[..., 2]`` to normalised crop coordinates ``[..., 2]``.

    Points inside the box land in ``[0, 1]``.
    """
    return apply_affine(points, image_to_normalized_matrix(box))


def crop_to_image_coords(points01: torch.Tensor, box: FaceBox) -> torch.Tensor:
    """Inverse of :func:`image_to_crop_coords`: normalised crop points ``[..., 2]`` to image pixels.

    ``x = box.left + u * box.side`` (same for y). Use it to draw a model's predictions on the
    original photo. The crop's pixel size is not needed: normalised coordinates are relative
    to the box.
    """
    points01 = torch.as_tensor(points01)
    dtype = points01.dtype if points01.is_floating_point() else torch.float32
    offset = torch.tensor([box.left, box.top], dtype=torch.float64)
    return (points01.to(torch.float64) * box.side + offset).to(dtype)


def warp_affine(
    image: torch.Tensor, image_to_output: torch.Tensor, size: int | tuple[int, int]
) -> torch.Tensor:
    """Resample ``image`` through an affine map (bilinear, zeros outside the image).

    Args:
        image: ``[C, H, W]`` uint8 or float tensor.
        image_to_output: 3x3 affine from image pixels to output pixels (pixel-centre frames).
        size: output ``height`` (= width) or ``(height, width)``.

    Returns:
        ``[C, height, width]`` tensor of the input dtype. Strong downscaling is antialiased.
    """
    out_height, out_width = _size_hw(size)
    output_to_image = torch.linalg.inv(torch.as_tensor(image_to_output, dtype=torch.float64))
    source = image.to(torch.float32).unsqueeze(0)
    in_height, in_width = image.shape[-2:]

    input_pixels_per_output_pixel = math.sqrt(abs(float(torch.linalg.det(output_to_image[:2, :2]))))
    if input_pixels_per_output_pixel > _ANTIALIAS_ABOVE_SCALE:
        new_height = max(2, round(in_height / input_pixels_per_output_pixel))
        new_width = max(2, round(in_width / input_pixels_per_output_pixel))
        source = F.interpolate(source, size=(new_height, new_width), mode="bilinear", antialias=True)
        sx, sy = new_width / in_width, new_height / in_height
        image_to_resized = torch.tensor(
            [[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]],
            dtype=torch.float64,
        )
        output_to_image = image_to_resized @ output_to_image
        in_height, in_width = new_height, new_width

    rows, cols = torch.meshgrid(
        torch.arange(out_height, dtype=torch.float64),
        torch.arange(out_width, dtype=torch.float64),
        indexing="ij",
    )
    output_points = torch.stack([cols, rows], dim=-1)
    source_points = apply_affine(output_points, output_to_image)
    # grid_sample with align_corners=True: -1 and +1 are the centres of the first and last pixels.
    grid_x = source_points[..., 0] * (2.0 / max(in_width - 1, 1)) - 1.0
    grid_y = source_points[..., 1] * (2.0 / max(in_height - 1, 1)) - 1.0
    grid = torch.stack([grid_x, grid_y], dim=-1).to(torch.float32).unsqueeze(0)
    warped = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    if image.dtype == torch.uint8:
        return warped.round().clamp(0, 255).to(torch.uint8)
    return warped.to(image.dtype)


def crop_and_resize(
    image: torch.Tensor, box: FaceBox, size: int | tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut ``box`` out of ``image`` and resize it.

    Args:
        image: ``[C, H, W]`` uint8 or float tensor.
        box: crop box in image pixels (may extend past the image: zeros fill the outside).
        size: output ``height`` (= width) or ``(height, width)``.

    Returns:
        ``(crop, image_to_crop)``: the ``[C, height, width]`` crop (input dtype) and the 3x3
        float64 affine taking image pixels to crop pixels (apply with :func:`apply_affine`).
    """
    image_to_crop = normalized_to_pixel_matrix(size) @ image_to_normalized_matrix(box)
    return warp_affine(image, image_to_crop, size), image_to_crop
