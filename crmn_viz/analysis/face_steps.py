"""Face keypoints block by block: the crop the model saw and its keypoints after every CRMN step.

Glue over :func:`crmn_viz.analysis.predict_faces` and :func:`crmn_viz.analysis.stepwise_readout`:
the face is cut out exactly as for the prediction (:func:`crmn_viz.data.crop_and_resize` on the
same crop box) and every LSTM step's keypoints are mapped to the pixels of a display crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.analysis.readouts import stepwise_readout
from crmn_viz.data.face_geometry import FaceBox, crop_and_resize, image_to_crop_coords
from crmn_viz.models.base import TracedModel

__all__ = ["FaceSteps", "face_crop", "face_steps"]


@dataclass
class FaceSteps:
    """One face as the CRMN saw it, with its prediction after every block.

    Attributes:
        crop: the face crop, RGB uint8 [D, D, 3] at the display size D.
        keypoints_per_step: [T, K, 2] ``(x, y)`` in crop pixels after each LSTM step; the last
            step is the model's output.
        ground_truth: [K, 2] true points in crop pixels, or None.
        crop_box: the square crop box in photo pixels.
    """

    crop: np.ndarray
    keypoints_per_step: np.ndarray
    ground_truth: np.ndarray | None
    crop_box: FaceBox


def _photo_tensor(photo: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(photo.convert("RGB")).transpose(2, 0, 1)))


def face_crop(photo: Image.Image, crop_box: FaceBox, size: int | tuple[int, int]) -> Image.Image:
    """The square face crop as the keypoint model sees it (zeros outside the photo)."""
    crop, _ = crop_and_resize(_photo_tensor(photo), crop_box, size)
    return Image.fromarray(crop.permute(1, 2, 0).numpy())


def face_steps(
    model: TracedModel,
    photo: Image.Image,
    face: FaceKeypoints,
    ground_truth: np.ndarray | None = None,
    display_size: int = 240,
) -> FaceSteps:
    """Per-step keypoints of one detected face, on a display-sized crop.

    Args:
        model: a keypoint CRMN.
        photo: the whole photo.
        face: one result of :func:`crmn_viz.analysis.predict_faces` on ``photo``.
        ground_truth: true keypoints [K, 2] in photo pixels, if known.
        display_size: side of the returned crop in pixels.

    Returns:
        A :class:`FaceSteps`.
    """
    pixels = _photo_tensor(photo)
    _, height, width = model.input_shape
    readout = stepwise_readout(model, face_crop(photo, face.crop_box, (height, width)))
    steps01 = readout.keypoints[0].to(torch.float64).cpu().numpy()  # type: ignore[index]
    display, _ = crop_and_resize(pixels, face.crop_box, display_size)
    truth = None
    if ground_truth is not None:
        truth01 = image_to_crop_coords(torch.as_tensor(ground_truth, dtype=torch.float64), face.crop_box)
        truth = truth01.numpy() * display_size - 0.5
    return FaceSteps(
        crop=display.permute(1, 2, 0).numpy().copy(),
        keypoints_per_step=steps01 * display_size - 0.5,
        ground_truth=truth,
        crop_box=face.crop_box,
    )
