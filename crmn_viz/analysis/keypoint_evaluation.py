"""Photo-level keypoint evaluation: NME through :func:`predict_keypoints`, as a user would call it.

The normalised mean error of 300-W: mean point-to-point distance over the 68 points
divided by the inter-ocular distance (outer eye corners, points 36 and 45), averaged
over faces. Two protocols: the face box given (the ground-truth keypoints' bounding box,
cropped with the training rule) and the face found by the shipped detector (the
detection nearest the true face; photos where no face is found are counted and
reported, not hidden).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from crmn_viz.analysis.keypoints import NoFaceFoundError, predict_keypoints
from crmn_viz.images import load_image
from crmn_viz.models.base import TracedModel

__all__ = ["evaluate_keypoints_on_photos", "normalised_mean_error", "normalised_mean_errors"]

OUTER_EYE_CORNERS = (36, 45)


def normalised_mean_errors(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """300-W NME per face: mean_i ||p_i - t_i|| / ||t_36 - t_45||.

    Shape: predicted, truth [B, 68, 2] in the same units (pixels, or crop-normalised; the
    ratio does not depend on the unit as long as x and y share it). Returns [B] fractions.
    """
    interocular = (truth[:, OUTER_EYE_CORNERS[0]] - truth[:, OUTER_EYE_CORNERS[1]]).norm(dim=-1)
    return (predicted - truth).norm(dim=-1).mean(dim=1) / interocular.clamp_min(1e-9)


def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """300-W NME of one face (see :func:`normalised_mean_errors`), computed in float64.

    Shape: predicted, truth [68, 2] in the same pixels. Returns a fraction (0.05 = 5%).
    """
    as_batch = [torch.as_tensor(np.asarray(a, dtype=np.float64)).unsqueeze(0) for a in (predicted, truth)]
    return float(normalised_mean_errors(*as_batch)[0])


def evaluate_keypoints_on_photos(
    model: TracedModel,
    data_dir: str | Path | None = None,
    split: str = "test",
    detector: bool = False,
    max_photos: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Mean NME over the faces68 ``split`` photos, through ``predict_keypoints``.

    Args:
        detector: False: the face box is given (bounding box of the true keypoints);
            True: faces are found by the detector and the one nearest the truth is scored.
        max_photos: evaluate only the first photos (0: all).

    Returns:
        ``{"nme": mean, "nme_median", "num_photos", "num_scored", "no_face_found"}``.
    """
    from crmn_viz.data import read_keypoint_csv, resolve_data_dir

    root = resolve_data_dir(data_dir) / "faces68"
    names, keypoints = read_keypoint_csv(root / f"{split}.csv")
    if max_photos:
        names, keypoints = names[:max_photos], keypoints[:max_photos]
    errors, missed = [], 0
    label = "detector" if detector else "box given"
    for name, truth in tqdm(list(zip(names, keypoints.numpy())), desc=f"NME ({label})", disable=not progress):
        photo = load_image(root / "images" / name)
        if detector:
            try:
                faces = predict_keypoints(model, photo)
            except NoFaceFoundError:
                missed += 1
                continue
            centre = truth.mean(axis=0)
            predicted = min(faces, key=lambda face: np.linalg.norm(face.mean(axis=0) - centre))
        else:
            x0, y0 = truth.min(axis=0)
            x1, y1 = truth.max(axis=0)
            predicted = predict_keypoints(model, photo, box=(float(x0), float(y0), float(x1), float(y1)))[0]
        errors.append(normalised_mean_error(predicted, truth))
    return {
        "nme": float(np.mean(errors)) if errors else float("nan"),
        "nme_median": float(np.median(errors)) if errors else float("nan"),
        "num_photos": len(names),
        "num_scored": len(errors),
        "no_face_found": missed,
    }
