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

from crmn_viz.analysis.keypoints import FaceDetector, NoFaceFoundError, photo_to_rgb_array, predict_faces
from crmn_viz.images import load_image
from crmn_viz.models.base import TracedModel

__all__ = [
    "LANDMARK_GROUPS",
    "evaluate_keypoints_on_photos",
    "group_normalised_errors",
    "normalised_mean_error",
    "normalised_mean_errors",
    "paired_nme_difference",
]

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


LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "brows": tuple(range(17, 27)),
    "nose": tuple(range(27, 36)),
    "eyes": tuple(range(36, 48)),
    "mouth": tuple(range(48, 68)),
}
"""The iBUG 68-point groups (0-16 jaw, 17-26 brows, 27-35 nose, 36-47 eyes, 48-67 mouth)."""


def group_normalised_errors(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """NME of each landmark group of one face: mean point error over the group's points divided
    by the inter-ocular distance of the whole face (so the groups' errors share one scale).

    Shape: predicted, truth [68, 2] in the same pixels. Returns fractions by group name.
    """
    predicted, truth = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    interocular = max(float(np.linalg.norm(truth[OUTER_EYE_CORNERS[0]] - truth[OUTER_EYE_CORNERS[1]])), 1e-9)
    distances = np.linalg.norm(predicted - truth, axis=1)
    return {
        name: float(distances[list(points)].mean() / interocular) for name, points in LANDMARK_GROUPS.items()
    }


def evaluate_keypoints_on_photos(
    model: TracedModel,
    data_dir: str | Path | None = None,
    split: str = "test",
    detector: bool | FaceDetector = False,
    max_photos: int = 0,
    progress: bool = True,
    refine_rounds: int | None = None,
) -> dict[str, Any]:
    """Mean NME over the faces68 ``split`` photos, through ``predict_faces`` as a user calls it.

    Args:
        detector: False: the face box is given (bounding box of the true keypoints, no
            refinement unless ``refine_rounds`` says so); True: faces are found by the default
            detector (or pass a detector), refined as ``predict_faces`` does, and the face
            nearest the truth is scored. A photo where no face is found and the whole-photo
            fallback applies is scored on that fallback and counted in ``whole_photo``.
        max_photos: evaluate only the first photos (0: all).
        refine_rounds: as :func:`~crmn_viz.analysis.keypoints.predict_faces`.

    Returns:
        ``{"nme", "nme_median", "num_photos", "num_scored", "no_face_found", "whole_photo",
        "detector", "nme_by_round", "rounds_used", "nme_by_group"}``: ``no_face_found``
        counts photos where the detector found no face (scored on the fallback when it
        applied, else left out); ``nme_by_round[r]`` is the mean NME when the prediction
        stops after round ``r`` (a face that stopped earlier keeps its last prediction);
        ``rounds_used`` counts faces by the number of re-crops made; ``nme_by_group`` the mean
        per-group NME (:data:`LANDMARK_GROUPS`); ``per_photo_nme`` each photo's NME in CSV
        order (None where it was not scored), for paired comparisons.
    """
    from crmn_viz.analysis.face_detectors import default_face_detector, detector_name
    from crmn_viz.data import read_keypoint_csv, resolve_data_dir

    root = resolve_data_dir(data_dir) / "faces68"
    names, keypoints = read_keypoint_csv(root / f"{split}.csv")
    if max_photos:
        names, keypoints = names[:max_photos], keypoints[:max_photos]
    find = default_face_detector() if detector is True else (detector or None)
    errors, by_round, groups, used = [], [], [], []
    per_photo: list[float | None] = []
    missed = whole = 0
    label = detector_name(find) if find is not None else "box given"
    for name, truth in tqdm(list(zip(names, keypoints.numpy())), desc=f"NME ({label})", disable=not progress):
        photo = load_image(root / "images" / name)
        if find is not None:
            detections = find(photo_to_rgb_array(photo))
            missed += not detections
            try:
                faces = predict_faces(
                    model, photo, detector=find, detections=detections, refine_rounds=refine_rounds
                )
            except NoFaceFoundError:
                per_photo.append(None)
                continue
            whole += faces[0].source == "whole photo"
            centre = truth.mean(axis=0)
            face = min(faces, key=lambda f: np.linalg.norm(f.keypoints.mean(axis=0) - centre))
        else:
            x0, y0 = truth.min(axis=0)
            x1, y1 = truth.max(axis=0)
            box = (float(x0), float(y0), float(x1), float(y1))
            face = predict_faces(model, photo, box=box, refine_rounds=refine_rounds)[0]
        errors.append(normalised_mean_error(face.keypoints, truth))
        per_photo.append(errors[-1])
        rounds = face.round_keypoints if face.round_keypoints is not None else face.keypoints[None]
        by_round.append([normalised_mean_error(points, truth) for points in rounds])
        used.append(len(rounds) - 1)
        groups.append(group_normalised_errors(face.keypoints, truth))
    most = max((len(r) for r in by_round), default=0)
    nme_by_round = [float(np.mean([r[min(k, len(r) - 1)] for r in by_round])) for k in range(most)]
    return {
        "nme": float(np.mean(errors)) if errors else float("nan"),
        "nme_median": float(np.median(errors)) if errors else float("nan"),
        "num_photos": len(names),
        "num_scored": len(errors),
        "no_face_found": missed,
        "whole_photo": whole,
        "detector": label,
        "nme_by_round": nme_by_round,
        "rounds_used": {str(k): used.count(k) for k in sorted(set(used))},
        "nme_by_group": {g: float(np.mean([row[g] for row in groups])) for g in LANDMARK_GROUPS}
        if groups
        else {},
        "per_photo_nme": per_photo,
    }


def paired_nme_difference(
    first: list[float | None], second: list[float | None], resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean per-photo NME difference ``first - second`` with a paired bootstrap 95% interval.

    Args:
        first, second: per-photo NMEs in the same photo order (``per_photo_nme`` of
            :func:`evaluate_keypoints_on_photos`); photos either left unscored are dropped.
        resamples: bootstrap resamples of the photos (with replacement).

    Returns:
        ``{"difference", "low", "high", "photos"}`` (fractions; negative: ``first`` is better).
    """
    if len(first) != len(second):
        raise ValueError("the two evaluations must cover the same photos")
    pairs = np.array(
        [(a, b) for a, b in zip(first, second) if a is not None and b is not None], dtype=np.float64
    )
    if not len(pairs):
        return {"difference": float("nan"), "low": float("nan"), "high": float("nan"), "photos": 0}
    differences = pairs[:, 0] - pairs[:, 1]
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), (resamples, len(differences)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {
        "difference": float(differences.mean()),
        "low": float(low),
        "high": float(high),
        "photos": len(pairs),
    }
