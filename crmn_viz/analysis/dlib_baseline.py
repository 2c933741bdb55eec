"""dlib's 68-point face landmarks end to end, the baseline the face-keypoint targets are set against.

dlib's HOG frontal-face detector (:class:`~crmn_viz.analysis.face_detectors.DlibHogFaceDetector`)
followed by its ensemble-of-regression-trees shape predictor (Kazemi & Sullivan 2014) trained on
iBUG 300-W, the ``shape_predictor_68_face_landmarks.dat`` file that PyPI's
``face_recognition_models`` ships. Both packages are optional (``pip install dlib-bin`` and
``pip install --no-deps face_recognition_models``); :func:`dlib_baseline_available` says whether
they are here. The points follow the same iBUG order as faces68, so the NME is computed exactly as
for the project's models (:func:`evaluate_dlib_on_photos`, ``crmn-viz faces --baseline dlib``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from crmn_viz.analysis.face_detectors import DlibHogFaceDetector
from crmn_viz.analysis.keypoint_evaluation import (
    LANDMARK_GROUPS,
    group_normalised_errors,
    normalised_mean_error,
)
from crmn_viz.analysis.keypoints import photo_to_rgb_array

__all__ = ["DlibLandmarks", "dlib_baseline_available", "dlib_predictor_path", "evaluate_dlib_on_photos"]

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def dlib_predictor_path() -> Path | None:
    """Where ``face_recognition_models`` keeps dlib's 68-point predictor, or None if not installed.

    Found from the package's location without importing it (its ``__init__`` needs setuptools'
    ``pkg_resources``)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / PREDICTOR_FILE
    return path if path.is_file() else None


def dlib_baseline_available() -> bool:
    """True where both dlib and its 68-point predictor file are installed."""
    if importlib.util.find_spec("dlib") is None:
        return False
    return dlib_predictor_path() is not None


class DlibLandmarks:
    """dlib's detector + 68-point shape predictor: photo -> one [68, 2] array per face found."""

    def __init__(self) -> None:
        import dlib

        path = dlib_predictor_path()
        if path is None:
            raise RuntimeError(
                f"dlib's {PREDICTOR_FILE} not found: pip install --no-deps face_recognition_models"
            )
        self.detector = DlibHogFaceDetector()
        self.predictor = dlib.shape_predictor(str(path))
        self._rectangle = dlib.rectangle

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Landmarks ``(x, y)`` in photo pixels [68, 2] of every face, most confident first."""
        rgb = photo_to_rgb_array(rgb)
        faces = []
        for face in self.detector(rgb):
            x0, y0, x1, y1 = (round(v) for v in face.box)
            shape = self.predictor(rgb, self._rectangle(x0, y0, x1, y1))
            faces.append(np.array([[shape.part(i).x, shape.part(i).y] for i in range(68)], dtype=np.float64))
        return faces


def evaluate_dlib_on_photos(
    data_dir: str | Path | None = None, split: str = "test", max_photos: int = 0, progress: bool = True
) -> dict[str, Any]:
    """dlib's NME on the faces68 ``split`` photos, in the format of
    :func:`~crmn_viz.analysis.keypoint_evaluation.evaluate_keypoints_on_photos` (the face nearest
    the truth is scored; photos where dlib finds no face are counted in ``no_face_found``)."""
    from crmn_viz.data import read_keypoint_csv, resolve_data_dir
    from crmn_viz.images import load_image

    root = resolve_data_dir(data_dir) / "faces68"
    names, keypoints = read_keypoint_csv(root / f"{split}.csv")
    if max_photos:
        names, keypoints = names[:max_photos], keypoints[:max_photos]
    landmarks = DlibLandmarks()
    errors, groups, missed = [], [], 0
    per_photo: list[float | None] = []
    for name, truth in tqdm(list(zip(names, keypoints.numpy())), desc="NME (dlib)", disable=not progress):
        faces = landmarks(photo_to_rgb_array(load_image(root / "images" / name)))
        if not faces:
            missed += 1
            per_photo.append(None)
            continue
        centre = truth.mean(axis=0)
        predicted = min(faces, key=lambda points: np.linalg.norm(points.mean(axis=0) - centre))
        errors.append(normalised_mean_error(predicted, truth))
        per_photo.append(errors[-1])
        groups.append(group_normalised_errors(predicted, truth))
    return {
        "nme": float(np.mean(errors)) if errors else float("nan"),
        "nme_median": float(np.median(errors)) if errors else float("nan"),
        "num_photos": len(names),
        "num_scored": len(errors),
        "no_face_found": missed,
        "whole_photo": 0,
        "detector": "dlib-hog",
        "nme_by_round": [],
        "rounds_used": {},
        "nme_by_group": {g: float(np.mean([row[g] for row in groups])) for g in LANDMARK_GROUPS}
        if groups
        else {},
        "per_photo_nme": per_photo,
    }
