"""Views of a keypoint network: the 68 points on the photo, and a CRMN's points after every block.

Besides the figures, the words and numbers a face page shows beside them, so every front end
says the same: each face's label (:func:`face_label`, its number and detector score), what found
it and how often it was re-cropped (:func:`face_summary`), and the error of each landmark group
when the true points are known (:func:`group_error_table`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from typing import Literal

import numpy as np

from crmn_viz.analysis.face_detectors import default_face_detector, detector_name
from crmn_viz.analysis.keypoint_evaluation import (
    LANDMARK_GROUPS,
    group_normalised_errors,
    normalised_mean_error,
)
from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.figures.overlays import plot_keypoints
from crmn_viz.figures.readouts import plot_stepwise_keypoints
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Box, Compute
from crmn_viz.views.shown import Shown, shown

__all__ = [
    "DETECTOR_TITLES",
    "face_detector",
    "face_keypoints",
    "face_label",
    "face_steps_view",
    "face_summary",
    "group_error_table",
    "score_text",
    "with_gallery_truth",
]

DETECTOR_TITLES: dict[str, tuple[str, str]] = {
    "mtcnn": ("MTCNN", "its face probability"),
    "haar": ("OpenCV's Haar cascade", "the number of cascade hits merged into the box"),
    "dlib-hog": ("dlib's HOG detector", "its SVM score"),
}
"""A detector's name on screen and what its score means, by :func:`detector_name`."""


def face_detector() -> str:
    """The name (:func:`~crmn_viz.analysis.face_detectors.detector_name`) of the detector that
    finds faces when no box is given (``"mtcnn"`` where facenet-pytorch is installed, else ``"haar"``)."""
    return detector_name(default_face_detector())


def score_text(score: float | None, detector: str) -> str:
    """A detector score as a face's label shows it: a probability with two decimals (MTCNN,
    ``"0.99"``), a count of cascade hits as a whole number (Haar, ``"12"``); "" without a score."""
    if score is None or not math.isfinite(score):
        return ""
    if detector == "haar" or (detector != "mtcnn" and float(score).is_integer()):
        return f"{score:.0f}"
    return f"{score:.2f}"


def face_label(face: FaceKeypoints, number: int, detector: str) -> str:
    """How a face is named in a menu: ``"face 1 (score 0.99)"``, ``"face 2 (12 cascade hits)"``
    (Haar), or ``"face 1"`` when no detector scored it (``number`` counts from 1)."""
    score = score_text(face.score, detector)
    if not score:
        return f"face {number}"
    if detector == "haar":
        return f"face {number} ({score} cascade hit{'s' * (score != '1')})"
    return f"face {number} (score {score})"


def face_summary(face: FaceKeypoints, detector: str) -> str:
    """What found the face and how its crop was framed, in one or two sentences.

    ``detector``: the name of the detector (:func:`face_detector`) used when no box was given.
    """
    title, meaning = DETECTOR_TITLES.get(detector, (detector, "its confidence"))
    recrops = max(len(face.rounds) - 1, 0)
    if face.source == "whole photo":
        found = (
            f"No face was detected by {title}, so the whole photo was taken as a face crop "
            "(its largest centred square)."
        )
    elif face.source == "detector":
        score = score_text(face.score, detector)
        found = f"Found by {title}" + (f" (score {score}: {meaning})." if score else ".")
    else:  # a given box: the page says where it came from
        found = ""
    if recrops:
        times = "once" if recrops == 1 else "twice" if recrops == 2 else f"{recrops} times"
        framed = (
            f"The crop was re-cropped {times} around the model's own prediction "
            "(dotted: the earlier crops; green: the crop the model finally saw)."
        )
    elif face.source == "box":
        framed = "A given box is not re-cropped: the green box is the crop the model saw."
    else:
        framed = "Its first crop already fitted the model's prediction, so it was not re-cropped (green)."
    return f"{found} {framed}".strip()


def group_error_table(predicted: np.ndarray, truth: np.ndarray | None) -> list[dict[str, object]] | None:
    """The 300-W NME of each landmark group of one face, then of all 68 points, as table rows.

    Args:
        predicted: [68, 2] predicted points, photo pixels.
        truth: [68, 2] true points in the same pixels, or None.

    Returns:
        One row per group of :data:`~crmn_viz.analysis.keypoint_evaluation.LANDMARK_GROUPS`
        (jaw, brows, nose, eyes, mouth) and a last row ``"all"``: ``{"landmarks": name,
        "points": count, "NME (%)": percent rounded to 0.01}`` (every group's error is divided
        by the whole face's outer-eye-corner distance); None without 68 true points.
    """
    if truth is None:
        return None
    predicted, truth = np.asarray(predicted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if predicted.shape != (68, 2) or truth.shape != (68, 2):
        return None
    errors = group_normalised_errors(predicted, truth)
    rows: list[dict[str, object]] = [
        {"landmarks": name, "points": len(points), "NME (%)": round(100 * errors[name], 2)}
        for name, points in LANDMARK_GROUPS.items()
    ]
    overall = normalised_mean_error(predicted, truth)
    rows.append({"landmarks": "all", "points": 68, "NME (%)": round(100 * overall, 2)})
    return rows


@functools.lru_cache(maxsize=1)
def _gallery_faces() -> dict[str, np.ndarray]:
    """The gallery's face photos' true keypoints by the SHA-256 of the file (read once)."""
    from crmn_viz.inputs.gallery import list_gallery

    return {
        hashlib.sha256(entry.path.read_bytes()).hexdigest(): entry.keypoints
        for entry in list_gallery("faces68")
        if entry.keypoints is not None and entry.path.exists()
    }


def with_gallery_truth(image: SelectedImage) -> SelectedImage:
    """The image with its ground-truth keypoints when its file is one of the gallery's faces
    (same bytes, so the same pixels: matched by the file's SHA-256) and it has none yet."""
    if image.keypoints is not None or image.file_sha256 is None:
        return image
    truth = _gallery_faces().get(image.file_sha256)
    if truth is None:
        return image
    return dataclasses.replace(image, keypoints=np.array(truth, dtype=np.float64))


def _box_settings(box: Box | None, how: str) -> dict[str, object]:
    return {"box_mode": how, "box": list(box) if box is not None else "detected"}


def face_keypoints(
    model: TracedModel,
    image: SelectedImage,
    box: Box | None,
    compute: Compute,
    how: str = "Detect",
    *,
    face_index: int = 0,
    width_in: float | None = None,
    detector: str | None = None,
) -> tuple[list[FaceKeypoints], Shown] | str:
    """Every face's predicted keypoints (and the ground truth when known) on the photo.

    Detected faces are drawn with their detector boxes, each labelled with its number and score
    (``"1  0.99"``); the chosen face's final crop (solid green) and its earlier refinement crops
    (dotted) are drawn too, and a given ``box`` in vermillion.

    Args:
        box: the face box to use (drawn on the photo), or None to find faces with the detector.
        how: how the box was chosen (recorded in the provenance).
        face_index: which face's crops to draw (0: the most confident).
        width_in: printed width (default one column; the face page asks for more, so that the
            photo is over 500 px wide on screen).
        detector: the detector's name for the labels (default :func:`face_detector`).

    Returns:
        The faces and their figure, or the message when no face was found.

    Raises:
        ValueError: ``face_index`` is not one of the faces found.
    """
    found = compute.faces(model, image, box)
    if isinstance(found, str):
        return found
    if not 0 <= face_index < len(found):
        count = f"{len(found)} face{'s' * (len(found) != 1)}"
        raise ValueError(
            f"there is no face {face_index + 1} in this photo: {count} found, numbered from 1 to {len(found)}"
        )
    name = detector if detector is not None else face_detector()
    chosen = found[face_index]
    detected = [face.detection for face in found]
    scored = all(corners is not None for corners in detected)
    figure = plot_keypoints(
        image.image(),
        [face.keypoints for face in found],
        ground_truth=image.keypoints,
        boxes=detected if scored else None,
        box_labels=[f"{k + 1}  {score_text(face.score, name)}".rstrip() for k, face in enumerate(found)]
        if scored
        else None,
        crop_box=chosen.crop_box.corners,
        round_boxes=[crop.corners for crop in chosen.rounds[:-1]] or None,
        given_box=box,
        width_in=width_in,
    )
    settings: dict[str, object] = {
        **_box_settings(box, how),
        "face": face_index,
        "source": chosen.source,
        "crop_boxes": [dict(f.crop_box._asdict()) for f in found],
        "rounds": [dict(crop._asdict()) for crop in chosen.rounds],
    }
    if box is None:
        settings["detector"] = name
    return found, Shown(f"face_keypoints_{image.stem}", figure, (image,), settings)


def face_steps_view(
    model: TracedModel,
    image: SelectedImage,
    face_index: int,
    box: Box | None,
    layout: Literal["grid", "slider"],
    compute: Compute,
    how: str = "Detect",
) -> Shown | None:
    """One face's keypoints after every block (a CRMN reads out its memory at each step)."""
    steps = compute.face_steps(model, image, face_index, box)
    if steps is None:
        return None
    figure = plot_stepwise_keypoints(
        steps.crop, steps.keypoints_per_step, ground_truth=steps.ground_truth, layout=layout
    )
    return shown(
        f"face_steps_{layout}_{image.stem}",
        figure,
        [image],
        face=face_index,
        layout=layout,
        crop_box=dict(steps.crop_box._asdict()),
        **_box_settings(box, how),
    )
