"""Facial keypoints on whole photos: detect faces, crop as in training, predict, map back.

The CRMN keypoint model (Moniz & Pal 2017) sees an ``80 x 80`` crop and predicts 68 points
in normalised crop coordinates ([0, 1], sigmoid head). At training time the crop box comes
from the annotated keypoints (:func:`crmn_viz.data.face_geometry.face_box_from_keypoints`):
a square centred on the keypoints' bounding box with ``side = margin * max(bbox width,
bbox height)``, ``margin = 1.4``. At inference the keypoints are unknown, so this module
estimates the keypoints' bounding box and then applies exactly the same rule and the same
crop code (:func:`~crmn_viz.data.face_geometry.crop_and_resize`), so training and inference
crops agree; predictions return to the photo with
:func:`~crmn_viz.data.face_geometry.crop_to_image_coords`.

Mapping from a face-detector box to the training crop box
---------------------------------------------------------
A detector box ``(x0, y0, x1, y1)`` with side ``w = x1 - x0`` is not the keypoints'
bounding box: OpenCV's frontal-face Haar cascade frames brows to mouth and sits higher than
the 68 points, which reach down to the chin. :class:`DetectorCalibration` holds the
measured relation (medians over 389 faces68 *training* photos where the cascade found the
face; :func:`fit_detector_calibration` recomputes it for another detector)::

    keypoint-box centre = (cx + 0.00 * w,  cy + 0.16 * w)     (cx, cy: detector box centre)
    keypoint-box side   = 0.88 * w
    crop box            = square, same centre, side = 1.4 * 0.88 * w  (about 1.23 w)

Each detector carries its own calibration (:mod:`crmn_viz.analysis.face_detectors`: the default
MTCNN detector's was measured the same way); the Haar numbers above are the fallback.

Re-cropping around the model's own prediction
---------------------------------------------
A detector box frames the face only roughly, and the keypoint model was trained on crops framed
by the true keypoints. So :func:`predict_faces` predicts, makes the training crop box around the
*predicted* points, and predicts again (:func:`refine_crops`), until the box moves by less than a
pixel or after 3 re-crops. Measured on the faces68 test photos (README "Face keypoints from a
photo"; ``crmn-viz faces``), each round's NME is on the card (``test_nme_detector_round{r}``).
A given box is used as it is (it already is the training crop), unless ``refine_rounds`` asks.

No face found
-------------
When the detector finds nothing in a nearly square photo (aspect ratio at most 1.5), the photo is
taken to be a tight face crop: its largest centred square is the first crop and the rounds
re-frame it (``source == "whole photo"``; :func:`whole_photo_box`). Wider photos raise
:class:`NoFaceFoundError`.

A box given by the caller as ``(x0, y0, x1, y1)`` is taken to be the face's keypoint
bounding box (jaw to jaw, brows to chin), so the training rule applies to it directly; a
:class:`~crmn_viz.data.face_geometry.FaceBox` is used as the crop box unchanged (for example
``Faces68Dataset.face_box(i)``, the exact training crop).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image

from crmn_viz.analysis.inputs import evaluation_mode, model_device, model_dtype, preprocessor_for
from crmn_viz.data.face_geometry import (
    DEFAULT_FACE_MARGIN,
    FaceBox,
    crop_and_resize,
    crop_to_image_coords,
    face_box_from_keypoints,
)
from crmn_viz.models.base import TracedModel

__all__ = [
    "FACES68_HAAR_CALIBRATION",
    "DetectedFace",
    "DetectorCalibration",
    "FaceKeypoints",
    "HaarFaceDetector",
    "NoFaceFoundError",
    "box_movement",
    "crop_box_for",
    "fit_detector_calibration",
    "predict_faces",
    "predict_keypoints",
    "refine_crops",
    "whole_photo_box",
]

BoxCorners = tuple[float, float, float, float]
PhotoInput = Image.Image | np.ndarray | torch.Tensor


class NoFaceFoundError(ValueError):
    """The face detector found no face in the photo (the message suggests what to do)."""


class DetectedFace(NamedTuple):
    """One detection: ``box`` = ``(x0, y0, x1, y1)`` in image pixels, ``score`` = confidence."""

    box: BoxCorners
    score: float


FaceDetector = Callable[[np.ndarray], list[DetectedFace]]
"""A detector: RGB uint8 photo [H, W, 3] -> detections, most confident first."""


@dataclasses.dataclass(frozen=True)
class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (Viola & Jones 2001), from ``opencv-python-headless``.

    Detections are sorted by confidence, most confident first. The confidence is the
    number of raw cascade hits merged into the box (``detectMultiScale2``'s
    ``numDetections``); ties go to the larger box.

    Attributes:
        scale_factor: image pyramid step.
        min_neighbors: raw hits needed to keep a box (higher: fewer false faces).
        min_face_fraction: smallest face side as a fraction of the shorter image side
            (never below the cascade's 24 pixels).
        max_side: photos larger than this are shrunk before detection (speed); boxes
            are scaled back to the original pixels.
        equalize: equalise the grey-level histogram first (helps dark photos).
        refine_rounds: re-crops :func:`predict_faces` makes by default (3, by measurement: on
            500 faces68 training photos ``crmn-faces68``'s NME is 7.11% on the calibrated Haar
            crop, then 6.06%, 5.78% and 5.62% after one, two and three re-crops).
    """

    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_face_fraction: float = 0.05
    max_side: int = 1024
    equalize: bool = True
    refine_rounds: int = 3

    def __call__(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 photo [H, W, 3] (or grey [H, W])."""
        import cv2

        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        scale = min(1.0, self.max_side / max(grey.shape))
        if scale < 1.0:
            size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        if self.equalize:
            grey = cv2.equalizeHist(grey)
        min_side = max(24, int(self.min_face_fraction * min(grey.shape)))
        cascade = _haar_cascade()
        rects, hits = cascade.detectMultiScale2(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
        )
        faces = [
            DetectedFace(
                (x / scale, y / scale, (x + w) / scale, (y + h) / scale),
                float(count),
            )
            for (x, y, w, h), count in zip(np.asarray(rects).reshape(-1, 4).tolist(), np.ravel(hits))
        ]
        return sorted(
            faces, key=lambda f: (f.score, (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])), reverse=True
        )


_CASCADE_CACHE: dict[str, object] = {}


def _haar_cascade():  # type: ignore[no-untyped-def]
    """The frontal-face cascade, loaded once (the XML ships in the cv2 wheel)."""
    import cv2

    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    if path not in _CASCADE_CACHE:
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"could not load OpenCV's Haar cascade from {path}")
        _CASCADE_CACHE[path] = cascade
    return _CASCADE_CACHE[path]


@dataclasses.dataclass(frozen=True)
class DetectorCalibration:
    """How a detector's box relates to the bounding box of the 68 keypoints.

    With detector box centre ``(cx, cy)`` and side ``w`` (the larger of width and height):
    keypoint-box centre = ``(cx + center_shift_x * w, cy + center_shift_y * w)`` and
    keypoint-box side = ``keypoint_extent * w``.
    """

    center_shift_x: float = 0.0
    center_shift_y: float = 0.16
    keypoint_extent: float = 0.88

    def keypoint_box(self, detection: BoxCorners) -> BoxCorners:
        """Estimated keypoint bounding box ``(x0, y0, x1, y1)`` for a detector box."""
        x0, y0, x1, y1 = (float(v) for v in detection)
        side = max(x1 - x0, y1 - y0)
        cx = (x0 + x1) / 2 + self.center_shift_x * side
        cy = (y0 + y1) / 2 + self.center_shift_y * side
        half = self.keypoint_extent * side / 2
        return (cx - half, cy - half, cx + half, cy + half)

    def crop_box(self, detection: BoxCorners, margin: float = DEFAULT_FACE_MARGIN) -> FaceBox:
        """The training crop box (same rule as ``face_box_from_keypoints``) for a detector box."""
        return crop_box_for(self.keypoint_box(detection), margin)


FACES68_HAAR_CALIBRATION = DetectorCalibration()
"""Haar frontal-face cascade vs. faces68 keypoints (medians over 389 training photos)."""


def fit_detector_calibration(
    detections: Sequence[BoxCorners], keypoints: Sequence[np.ndarray | torch.Tensor]
) -> DetectorCalibration:
    """Measure a detector's :class:`DetectorCalibration` from annotated faces.

    Args:
        detections: one detector box ``(x0, y0, x1, y1)`` per face.
        keypoints: the matching annotated keypoints, each [K, 2] in image pixels.

    Returns:
        The median centre shifts and extent (medians resist the odd bad detection).
    """
    if len(detections) != len(keypoints) or not detections:
        raise ValueError("need one detection per keypoint set, and at least one")
    rows = []
    for (x0, y0, x1, y1), points in zip(detections, keypoints):
        points = np.asarray(points, dtype=np.float64)
        low, high = points.min(axis=0), points.max(axis=0)
        side = max(x1 - x0, y1 - y0)
        center = (low + high) / 2
        rows.append(
            (
                (center[0] - (x0 + x1) / 2) / side,
                (center[1] - (y0 + y1) / 2) / side,
                float((high - low).max()) / side,
            )
        )
    shift_x, shift_y, extent = np.median(np.asarray(rows), axis=0)
    return DetectorCalibration(float(shift_x), float(shift_y), float(extent))


def crop_box_for(box: FaceBox | BoxCorners | Sequence[float], margin: float = DEFAULT_FACE_MARGIN) -> FaceBox:
    """The training crop box for a caller's box.

    Args:
        box: a :class:`FaceBox` (returned unchanged: it already is a crop box) or the face's
            keypoint bounding box ``(x0, y0, x1, y1)`` in image pixels, to which the training
            rule of :func:`face_box_from_keypoints` applies.
        margin: crop enlargement of that rule (1.4 in training).

    Returns:
        A square :class:`FaceBox` in image pixels.
    """
    if isinstance(box, FaceBox):
        return box
    values = [float(v) for v in box]
    if len(values) != 4:
        raise ValueError(f"a box is (x0, y0, x1, y1) or a FaceBox; got {box!r}")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box (x0, y0, x1, y1) must have x1 > x0 and y1 > y0; got {box!r}")
    return face_box_from_keypoints(torch.tensor([[x0, y0], [x1, y1]], dtype=torch.float64), margin)


@dataclasses.dataclass
class FaceKeypoints:
    """Keypoints of one face, with the boxes that produced them.

    Attributes:
        keypoints: [K, 2] ``(x, y)`` in original image pixels (pixel-centre convention of
            :mod:`crmn_viz.data.face_geometry`).
        keypoints01: [K, 2] the model's raw output, normalised crop coordinates.
        crop_box: the square crop box the model saw for ``keypoints`` (the last round's).
        detection: the detector box ``(x0, y0, x1, y1)`` or None when the caller gave a box
            or the whole photo was taken (``source``).
        score: detector confidence (None when there was no detection).
        source: where the first crop came from: ``"detector"``, ``"box"`` (the caller's) or
            ``"whole photo"`` (no face found in a nearly square photo, see :func:`predict_faces`).
        rounds: the crop box of every prediction made, first to last (``rounds[-1]`` is
            ``crop_box``): the first from ``source``, each later one re-cropped around the
            previous prediction with the training margin.
        round_keypoints: [R, K, 2] the prediction of every round in image pixels.
    """

    keypoints: np.ndarray
    keypoints01: np.ndarray
    crop_box: FaceBox
    detection: BoxCorners | None = None
    score: float | None = None
    source: str = "detector"
    rounds: list[FaceBox] = dataclasses.field(default_factory=list)
    round_keypoints: np.ndarray | None = None


def photo_to_rgb_array(image: PhotoInput) -> np.ndarray:
    """A photo as RGB uint8 [H, W, 3].

    Accepts a PIL image, a uint8 array [H, W] / [H, W, 3 or 4] or a uint8 tensor [C, H, W].
    """
    if isinstance(image, Image.Image):
        return np.array(image.convert("RGB"))  # a writable copy
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.dim() != 3:
            raise TypeError("a photo tensor must be uint8 [C, H, W]")
        image = image.permute(1, 2, 0).cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a PIL image, a uint8 array or a uint8 tensor, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"photo arrays must be uint8, got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise TypeError(f"photo arrays must be [H, W], [H, W, 3] or [H, W, 4]; got {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _model_crops(model: TracedModel, rgb: np.ndarray, boxes: Sequence[FaceBox]) -> torch.Tensor:
    """Crop every box as the training data did, scale to [0, 1] and normalise: [F, C, H, W]."""
    preprocess = preprocessor_for(model)
    channels, height, width = model.input_shape
    grey = channels == 1  # grey models see the photo's luminance, as Preprocessor converts to "L"
    pixels = np.array(Image.fromarray(rgb).convert("L"))[None] if grey else rgb.transpose(2, 0, 1)
    photo = torch.from_numpy(np.ascontiguousarray(pixels))
    crops = torch.stack([crop_and_resize(photo, box, (height, width))[0] for box in boxes])
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(1, -1, 1, 1)
    normalised = (crops.to(torch.float32) / 255.0 - mean) / std
    return normalised.to(device=model_device(model), dtype=model_dtype(model))


DEFAULT_REFINE_ROUNDS = 3
"""At most this many re-crops around the model's own prediction (issue: 3 rounds)."""

REFINE_TOLERANCE_PX = 1.0
"""Refinement stops once the crop box moves by less than this many pixels (largest change of its
left edge, top edge and side)."""

WHOLE_PHOTO_MAX_ASPECT = 1.5
"""A photo with no face found is taken as a tight face crop only when its longer side is at most
this many times its shorter side (faces68 photos, which are face crops, are 1.0-1.5 for 99% of
them; a wide scene photo is not taken for a face)."""


def whole_photo_box(width: int, height: int) -> FaceBox | None:
    """The crop box used when no face is found: the largest centred square of the photo, or None.

    The rule (documented in the README): a photo in which the detector finds no face is taken to
    be a tight face crop when it is nearly square (aspect ratio at most
    :data:`WHOLE_PHOTO_MAX_ASPECT`); its largest centred square is then the first crop, and the
    refinement rounds re-frame it around the predicted face. Other photos raise
    :class:`NoFaceFoundError`.
    """
    short, long = min(width, height), max(width, height)
    if short <= 0 or long / short > WHOLE_PHOTO_MAX_ASPECT:
        return None
    return FaceBox((width - short) / 2, (height - short) / 2, float(short))


def box_movement(a: FaceBox, b: FaceBox) -> float:
    """How far a crop box moved: the largest change of its left edge, top edge and side (pixels)."""
    return max(abs(a.left - b.left), abs(a.top - b.top), abs(a.side - b.side))


def _predict_crops(model: TracedModel, rgb: np.ndarray, boxes: Sequence[FaceBox]) -> torch.Tensor:
    """The model's normalised keypoints [F, K, 2] (float64) for every crop box."""
    with evaluation_mode(model), torch.no_grad():
        return model(_model_crops(model, rgb, boxes)).to(torch.float64).cpu()


def refine_crops(
    model: TracedModel,
    rgb: np.ndarray,
    boxes: Sequence[FaceBox],
    rounds: int = DEFAULT_REFINE_ROUNDS,
    margin: float = DEFAULT_FACE_MARGIN,
    tolerance: float = REFINE_TOLERANCE_PX,
) -> list[tuple[list[FaceBox], list[torch.Tensor]]]:
    """Predict, re-crop around the prediction with the training rule, predict again.

    Round 0 predicts on ``boxes``. Each later round takes the previous prediction's keypoints
    (image pixels), makes the training crop box around them
    (:func:`~crmn_viz.data.face_geometry.face_box_from_keypoints` with ``margin``) and predicts
    on it, until that box moves by less than ``tolerance`` pixels (:func:`box_movement`; the
    last prediction is then kept, not recomputed) or after ``rounds`` re-crops. The faces
    still moving are batched together in each round.

    Returns:
        Per face: (the crop box of every prediction made, the normalised keypoints [K, 2] of
        each), first round first.
    """
    history: list[tuple[list[FaceBox], list[torch.Tensor]]] = [([box], []) for box in boxes]
    active = list(range(len(boxes)))
    for step in range(rounds + 1):
        if not active:
            break
        predictions = _predict_crops(model, rgb, [history[i][0][-1] for i in active])
        still_moving = []
        for face, points01 in zip(active, predictions):
            crops, outputs = history[face]
            outputs.append(points01)
            if step == rounds:
                continue
            pixels = crop_to_image_coords(points01, crops[-1])
            try:
                new_box = face_box_from_keypoints(pixels, margin)
            except ValueError:  # all points on one spot: nothing to re-frame
                continue
            if box_movement(new_box, crops[-1]) >= tolerance:
                crops.append(new_box)
                still_moving.append(face)
        active = still_moving
    return history


def predict_faces(
    model: TracedModel,
    image: PhotoInput,
    box: FaceBox | BoxCorners | Sequence[float] | None = None,
    detector: FaceDetector | None = None,
    calibration: DetectorCalibration | None = None,
    margin: float = DEFAULT_FACE_MARGIN,
    max_faces: int | None = None,
    refine_rounds: int | None = None,
    whole_photo_fallback: bool = True,
    detections: Sequence[DetectedFace] | None = None,
) -> list[FaceKeypoints]:
    """Facial keypoints of every face in a photo, with their crop boxes and detector scores.

    Args:
        model: a keypoint model (``task == "keypoints"``: the 2017 CRMN or its ResNet), run
            in eval mode.
        image: the whole photo: PIL image, uint8 array [H, W(, 3)] or uint8 tensor [C, H, W].
        box: skip detection and use this face: a :class:`FaceBox` crop box, or the face's
            keypoint bounding box ``(x0, y0, x1, y1)`` (see the module docstring).
        detector: callable RGB uint8 [H, W, 3] -> list of :class:`DetectedFace`, most
            confident first (default: :func:`crmn_viz.analysis.face_detectors.default_face_detector`,
            MTCNN where installed, else :class:`HaarFaceDetector`).
        calibration: detector box -> keypoint box relation (default: the detector's own
            ``calibration`` attribute, measured on faces68; else the Haar cascade's).
        margin: crop enlargement, as in training (1.4).
        max_faces: keep at most this many detections.
        refine_rounds: re-crops around the model's own prediction (:func:`refine_crops`);
            default: the detector's own ``refine_rounds`` (chosen by measurement, see
            :mod:`crmn_viz.analysis.face_detectors`), else 3, for detected faces and the
            whole-photo fallback; 0 for a given ``box``.
        whole_photo_fallback: when no face is found in a nearly square photo, take the whole
            photo as the face crop (:func:`whole_photo_box`) instead of raising.
        detections: detections already made for this photo (skips the detector; the app keeps
            them so that changing the box mode never runs the detector again).

    Returns:
        One :class:`FaceKeypoints` per face, most confident detection first; its
        ``keypoints`` are float64 [K, 2] ``(x, y)`` in the photo's own pixels.

    Raises:
        NoFaceFoundError: no box given, the detector found no face and the photo is not
            nearly square (or the fallback is off).
        ValueError: a classifier model or a malformed box.
    """
    if model.task != "keypoints":
        raise ValueError(f"predict_keypoints needs a keypoint model; this {model.arch} model is a classifier")
    rgb = photo_to_rgb_array(image)
    found: list[DetectedFace | None]
    if box is not None:
        found, crop_boxes, source = [None], [crop_box_for(box, margin)], "box"
        rounds = 0 if refine_rounds is None else refine_rounds
    else:
        if detector is None:  # built even when detections are given: its calibration applies
            from crmn_viz.analysis.face_detectors import default_face_detector

            detector = default_face_detector()
        faces = list(detections) if detections is not None else list(detector(rgb))  # type: ignore[misc]
        if max_faces is not None:
            faces = faces[:max_faces]
        rounds = (
            getattr(detector, "refine_rounds", DEFAULT_REFINE_ROUNDS)
            if refine_rounds is None
            else refine_rounds
        )
        if faces:
            relation = calibration or getattr(detector, "calibration", None) or FACES68_HAAR_CALIBRATION
            found, source = list(faces), "detector"
            crop_boxes = [relation.crop_box(face.box, margin) for face in faces]
        else:
            whole = whole_photo_box(rgb.shape[1], rgb.shape[0]) if whole_photo_fallback else None
            if whole is None:
                raise NoFaceFoundError(
                    f"no face found in the {rgb.shape[1]}x{rgb.shape[0]} photo; pass box=(x0, y0, x1, y1) "
                    "around the face, or try a larger, frontal, well-lit face"
                )
            found, crop_boxes, source = [None], [whole], "whole photo"
            rounds = DEFAULT_REFINE_ROUNDS if refine_rounds is None else refine_rounds  # a rough first frame
    history = refine_crops(model, rgb, crop_boxes, rounds=max(0, int(rounds)), margin=margin)
    results = []
    for (crops, outputs), detection in zip(history, found):
        final_box = crops[len(outputs) - 1]
        results.append(
            FaceKeypoints(
                keypoints=crop_to_image_coords(outputs[-1], final_box).numpy(),
                keypoints01=outputs[-1].numpy(),
                crop_box=final_box,
                detection=None if detection is None else detection.box,
                score=None if detection is None else detection.score,
                source=source,
                rounds=list(crops[: len(outputs)]),
                round_keypoints=np.stack(
                    [crop_to_image_coords(points, crop).numpy() for points, crop in zip(outputs, crops)]
                ),
            )
        )
    return results


def predict_keypoints(model: TracedModel, image: PhotoInput, **search: Any) -> list[np.ndarray]:
    """Facial keypoints of every face in a photo, in the photo's own pixel coordinates.

    Args:
        model, image: as :func:`predict_faces`.
        **search: ``box``, ``detector``, ``calibration``, ``margin``, ``max_faces``,
            ``refine_rounds``, ``whole_photo_fallback``, as :func:`predict_faces`.

    Returns:
        One float64 array [K, 2] of ``(x, y)`` image pixels per face, most confident first.
    """
    return [face.keypoints for face in predict_faces(model, image, **search)]
