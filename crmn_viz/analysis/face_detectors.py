"""Face detectors for whole photos, each with its measured box-to-keypoints calibration.

A keypoint model sees the training crop, a square around the 68 keypoints' bounding box
(:func:`crmn_viz.data.face_geometry.face_box_from_keypoints`). A detector's box frames the face
its own way, so every detector here carries a :class:`~crmn_viz.analysis.keypoints.DetectorCalibration`
measured on the faces68 *training* photos (medians over the photos where it found the face;
:func:`compare_face_detectors` re-measures it: ``crmn-viz face-detectors --split train``).

Candidates compared on the 3,153 faces68 training photos (``crmn-viz face-detectors --split
train``; README "Face keypoints from a photo" has the table):

* :class:`MTCNNFaceDetector`: the multi-task cascaded CNN of Zhang et al. (2016) from
  ``facenet-pytorch``, whose wheel ships the three networks' weights (``facenet_pytorch/data/*.pt``,
  state dicts read by ``torch.load`` with its default ``weights_only=True``: no pickled code
  runs). It is the default (:func:`default_face_detector`) because it measured best: it found a
  face in every photo, and its calibrated box agrees best with the keypoints' box.
* :class:`~crmn_viz.analysis.keypoints.HaarFaceDetector`: OpenCV's frontal-face Haar cascade
  (the XML ships in ``opencv-python-headless`` 4.x); the fallback where ``facenet-pytorch`` is
  not installed.
* :class:`DlibHogFaceDetector`: dlib's HOG + linear SVM frontal detector (the detector behind
  dlib's 68-point shape predictor; built into dlib, no weights file), only for the comparison
  where ``dlib`` (PyPI ``dlib-bin``) is installed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crmn_viz.analysis.keypoints import (
    FACES68_HAAR_CALIBRATION,
    DetectedFace,
    DetectorCalibration,
    FaceDetector,
    HaarFaceDetector,
    fit_detector_calibration,
    photo_to_rgb_array,
)
from crmn_viz.models.base import one_intra_op_thread

__all__ = [
    "FACES68_MTCNN_CALIBRATION",
    "DetectorComparison",
    "DlibHogFaceDetector",
    "MTCNNFaceDetector",
    "available_face_detectors",
    "box_iou",
    "compare_face_detectors",
    "default_face_detector",
    "detector_name",
    "faces68_photos",
    "mtcnn_available",
]

FACES68_MTCNN_CALIBRATION = DetectorCalibration(
    center_shift_x=0.014, center_shift_y=0.134, keypoint_extent=0.834
)
"""MTCNN box vs. faces68 keypoints: medians over the faces68 training photos
(``crmn-viz face-detectors --split train`` prints the refit)."""

FACES68_DLIB_HOG_CALIBRATION = DetectorCalibration(
    center_shift_x=0.014, center_shift_y=0.111, keypoint_extent=0.985
)
"""dlib HOG box vs. faces68 keypoints (the same measurement)."""

_MTCNN_CACHE: dict[str, Any] = {}


def _mtcnn_networks() -> Any:
    """facenet-pytorch's MTCNN (P-, R- and O-Net with the wheel's weights), built once per process."""
    if "mtcnn" not in _MTCNN_CACHE:
        from facenet_pytorch import MTCNN

        _MTCNN_CACHE["mtcnn"] = MTCNN(keep_all=True, device="cpu", post_process=False)
    return _MTCNN_CACHE["mtcnn"]


def mtcnn_available() -> bool:
    """True where ``facenet-pytorch`` (with its shipped MTCNN weights) imports."""
    try:
        import facenet_pytorch  # noqa: F401
    except Exception:  # an import failure of any kind means: fall back to Haar
        return False
    return True


@dataclasses.dataclass(frozen=True)
class MTCNNFaceDetector:
    """MTCNN (Zhang et al. 2016) from ``facenet-pytorch``, most confident face first.

    Attributes:
        min_probability: keep faces whose O-Net face probability is at least this.
        max_side: photos larger than this are shrunk before detection (speed); boxes are
            scaled back to the original pixels.
        calibration: the box-to-keypoints relation on faces68 (see the module docstring).
        refine_rounds: re-crops around the model's prediction that
            :func:`~crmn_viz.analysis.keypoints.predict_faces` makes by default. One, by
            measurement: on 500 faces68 training photos ``crmn-faces68``'s NME is 5.33% on the
            calibrated MTCNN crop, 5.23% after one re-crop and 5.24% after two or three.
    """

    min_probability: float = 0.7
    max_side: int = 1024
    calibration: DetectorCalibration = FACES68_MTCNN_CALIBRATION
    refine_rounds: int = 1
    name: str = "mtcnn"

    def __call__(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 photo [H, W, 3] (or grey [H, W])."""
        from PIL import Image

        rgb = photo_to_rgb_array(rgb)
        scale = min(1.0, self.max_side / max(rgb.shape[:2]))
        photo = Image.fromarray(rgb)
        if scale < 1.0:
            photo = photo.resize(
                (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))), Image.BILINEAR
            )
        networks = _mtcnn_networks()
        # One intra-op thread: MTCNN is hundreds of tiny convolutions over an image pyramid; on
        # 2 threads it took 47 ms a photo with the other core idle but 150 ms with it busy, on 1
        # thread 55-58 ms either way (BENCHMARKS.md, seventh session; bench/omp_wait_policy.py).
        with torch.no_grad(), one_intra_op_thread():
            boxes, probabilities = networks.detect(photo)
        if boxes is None:
            return []
        faces = [
            DetectedFace(tuple(float(v) / scale for v in box), float(p))  # type: ignore[arg-type]
            for box, p in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(probabilities))
            if p is not None and float(p) >= self.min_probability
        ]
        return sorted(faces, key=lambda f: (f.score, _area(f.box)), reverse=True)


@dataclasses.dataclass(frozen=True)
class DlibHogFaceDetector:
    """dlib's HOG frontal-face detector (Dalal & Triggs features, linear SVM), for comparison.

    Attributes:
        upsample_below: photos whose shorter side is below this are upsampled once (dlib finds
            faces of about 80 pixels and up at the photo's own size).
        threshold: SVM score threshold (dlib's default 0; negative finds more faces).
    """

    upsample_below: int = 300
    threshold: float = 0.0
    calibration: DetectorCalibration = FACES68_DLIB_HOG_CALIBRATION
    name: str = "dlib-hog"

    def __call__(self, rgb: np.ndarray) -> list[DetectedFace]:
        """Detect faces in an RGB uint8 photo [H, W, 3]."""
        import dlib

        rgb = photo_to_rgb_array(rgb)
        if "dlib" not in _MTCNN_CACHE:
            _MTCNN_CACHE["dlib"] = dlib.get_frontal_face_detector()
        upsample = 1 if min(rgb.shape[:2]) < self.upsample_below else 0
        rects, scores, _ = _MTCNN_CACHE["dlib"].run(rgb, upsample, self.threshold)
        faces = [
            DetectedFace((float(r.left()), float(r.top()), float(r.right()), float(r.bottom())), float(s))
            for r, s in zip(rects, scores)
        ]
        return sorted(faces, key=lambda f: (f.score, _area(f.box)), reverse=True)


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def default_face_detector() -> FaceDetector:
    """The detector :func:`~crmn_viz.analysis.keypoints.predict_faces` uses when given none.

    MTCNN where ``facenet-pytorch`` is installed (it measured best on the faces68 training
    photos, see the module docstring); otherwise OpenCV's Haar cascade.
    """
    return MTCNNFaceDetector() if mtcnn_available() else HaarFaceDetector()


def detector_name(detector: FaceDetector) -> str:
    """A short name for a detector (``mtcnn``, ``haar``, ``dlib-hog`` or its class name)."""
    if isinstance(detector, HaarFaceDetector):
        return "haar"
    return str(getattr(detector, "name", type(detector).__name__))


def available_face_detectors() -> dict[str, FaceDetector]:
    """Every candidate detector that imports here, by name: Haar always, MTCNN and dlib's HOG
    where their packages are installed."""
    detectors: dict[str, FaceDetector] = {"haar": HaarFaceDetector()}
    if mtcnn_available():
        detectors["mtcnn"] = MTCNNFaceDetector()
    try:
        import dlib  # noqa: F401

        detectors["dlib-hog"] = DlibHogFaceDetector()
    except Exception:  # dlib is optional: compare what is installed
        pass
    return detectors


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


@dataclasses.dataclass
class DetectorComparison:
    """One detector measured on annotated photos.

    Attributes:
        detector: its name.
        photos: photos tried.
        missed: photos where it found no face.
        first_is_nearest: photos where its most confident face is the annotated one (the
            detection nearest the keypoints' centre).
        iou_median, iou_p10: IoU of its calibrated keypoint box (refitted here) with the true
            keypoints' box made square (as the training crop is), over the photos it found.
        iou_below_half: photos where that IoU is below 0.5 (a badly framed face).
        seconds_per_photo: mean detection time.
        calibration: the calibration refitted on these photos.
    """

    detector: str
    photos: int
    missed: int
    first_is_nearest: int
    iou_median: float
    iou_p10: float
    iou_below_half: int
    seconds_per_photo: float
    calibration: DetectorCalibration

    @property
    def miss_rate(self) -> float:
        """Fraction of photos with no face found."""
        return self.missed / self.photos if self.photos else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the calibration as its three numbers)."""
        row = dataclasses.asdict(self)
        row["miss_rate"] = self.miss_rate
        return row


def _square_keypoint_box(points: np.ndarray) -> tuple[float, float, float, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    centre, half = (low + high) / 2, float((high - low).max()) / 2
    return (
        float(centre[0] - half),
        float(centre[1] - half),
        float(centre[0] + half),
        float(centre[1] + half),
    )


def compare_face_detectors(
    detectors: dict[str, FaceDetector],
    photos: Sequence[np.ndarray],
    keypoints: Sequence[np.ndarray],
    progress: Callable[[str, int, int], None] | None = None,
) -> list[DetectorComparison]:
    """Miss rate, box agreement and speed of each detector on annotated photos.

    Args:
        detectors: name -> detector (see :func:`available_face_detectors`).
        photos: RGB uint8 photos [H, W, 3].
        keypoints: the matching annotated keypoints, each [K, 2] in photo pixels.
        progress: called as ``progress(name, done, total)``.

    Returns:
        One :class:`DetectorComparison` per detector, in the order given. The calibration is
        refitted from these photos (:func:`fit_detector_calibration`) before the IoU is measured,
        so each detector is judged at its best framing rule.
    """
    if len(photos) != len(keypoints) or not photos:
        raise ValueError("need one keypoint set per photo, and at least one photo")
    rows = []
    for name, detector in detectors.items():
        found, boxes, first_right = [], [], 0
        start = time.perf_counter()
        for index, (photo, points) in enumerate(zip(photos, keypoints)):
            faces = detector(photo)
            if progress is not None:
                progress(name, index + 1, len(photos))
            if not faces:
                continue
            centre = (np.asarray(points).min(axis=0) + np.asarray(points).max(axis=0)) / 2
            nearest = min(
                faces,
                key=lambda f: float(
                    np.hypot((f.box[0] + f.box[2]) / 2 - centre[0], (f.box[1] + f.box[3]) / 2 - centre[1])
                ),
            )
            first_right += int(faces[0].box == nearest.box)
            found.append(index)
            boxes.append(nearest.box)
        seconds = (time.perf_counter() - start) / len(photos)
        if found:
            calibration = fit_detector_calibration(boxes, [keypoints[i] for i in found])
            ious = np.array(
                [
                    box_iou(calibration.keypoint_box(box), _square_keypoint_box(np.asarray(keypoints[i])))
                    for i, box in zip(found, boxes)
                ]
            )
            median, p10, below = (
                float(np.median(ious)),
                float(np.percentile(ious, 10)),
                int((ious < 0.5).sum()),
            )
        else:
            calibration, median, p10, below = FACES68_HAAR_CALIBRATION, float("nan"), float("nan"), 0
        rows.append(
            DetectorComparison(
                detector=name,
                photos=len(photos),
                missed=len(photos) - len(found),
                first_is_nearest=first_right,
                iou_median=median,
                iou_p10=p10,
                iou_below_half=below,
                seconds_per_photo=seconds,
                calibration=calibration,
            )
        )
    return rows


def faces68_photos(
    data_dir: str | Path | None, split: str, max_photos: int = 0
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """The faces68 ``split`` photos (RGB uint8) with their keypoints [N, 68, 2] and file names."""
    from crmn_viz.data import read_keypoint_csv, resolve_data_dir
    from crmn_viz.images import load_image

    root = resolve_data_dir(data_dir) / "faces68"
    names, points = read_keypoint_csv(root / f"{split}.csv")
    if max_photos:
        names, points = names[:max_photos], points[:max_photos]
    photos = [photo_to_rgb_array(load_image(root / "images" / name)) for name in names]
    return list(names), photos, points.numpy()
