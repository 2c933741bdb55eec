"""Issue #22: re-cropping around the model's own prediction, the whole-photo fallback, the MTCNN
detector on real photos, per-landmark-group NME and the photo-level evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.analysis.face_detectors import (
    FACES68_MTCNN_CALIBRATION,
    MTCNNFaceDetector,
    available_face_detectors,
    box_iou,
    compare_face_detectors,
    default_face_detector,
    detector_name,
    faces68_photos,
    mtcnn_available,
)
from crmn_viz.analysis.keypoint_evaluation import (
    LANDMARK_GROUPS,
    evaluate_keypoints_on_photos,
    group_normalised_errors,
    normalised_mean_error,
)
from crmn_viz.analysis.keypoints import (
    DetectedFace,
    HaarFaceDetector,
    box_movement,
    predict_faces,
    whole_photo_box,
)
from crmn_viz.data import FaceBox, face_box_from_keypoints, read_keypoint_csv
from tests.analysis.conftest import tiny_keypoint_crmn

needs_mtcnn = pytest.mark.skipif(not mtcnn_available(), reason="facenet-pytorch (MTCNN) not installed")


def constant_model(monkeypatch, points01: torch.Tensor):  # type: ignore[no-untyped-def]
    """A keypoint model that answers ``points01`` [68, 2] for every crop and records its batches."""
    model = tiny_keypoint_crmn()
    seen: list[int] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.shape[0])
        return points01.to(x.dtype).expand(x.shape[0], -1, -1)

    monkeypatch.setattr(model, "forward", forward)
    return model, seen


def photo(height: int = 200, width: int = 200) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)


def spanning(fraction: float) -> torch.Tensor:
    """68 points spanning ``fraction`` of the crop, centred (two of them on the bounding corners)."""
    generator = torch.Generator().manual_seed(0)
    points = 0.5 + (torch.rand(68, 2, generator=generator, dtype=torch.float64) - 0.5) * fraction
    points[0] = 0.5 - fraction / 2
    points[1] = 0.5 + fraction / 2
    return points


def test_each_round_recrops_around_the_previous_prediction_with_the_training_rule(monkeypatch):
    # The points span the whole crop, so each re-crop is the training box around them:
    # same centre, side x 1.4, re-derived here with face_box_from_keypoints on the mapped points.
    points01 = spanning(1.0)
    model, seen = constant_model(monkeypatch, points01)
    start = DetectedFace((60.0, 50.0, 120.0, 110.0), 0.99)
    (face,) = predict_faces(model, photo(), detector=lambda rgb: [start], refine_rounds=3)
    assert seen == [1, 1, 1, 1]  # round 0 and three re-crops
    assert len(face.rounds) == 4 and face.round_keypoints.shape == (4, 68, 2)
    expected = [face.rounds[0]]
    for _ in range(3):
        box = expected[-1]
        pixels = torch.stack([box.left + points01[:, 0] * box.side, box.top + points01[:, 1] * box.side], -1)
        expected.append(face_box_from_keypoints(pixels, 1.4))
    for got, want in zip(face.rounds, expected):
        assert got == pytest.approx(want)
    assert face.rounds[1].side == pytest.approx(1.4 * face.rounds[0].side)
    assert face.crop_box == face.rounds[-1] and face.source == "detector"
    np.testing.assert_allclose(face.keypoints, face.round_keypoints[-1])


def test_refinement_stops_once_the_box_moves_less_than_a_pixel(monkeypatch):
    # Points spanning 1/1.4 of the crop give back the same crop box: one prediction, no re-crop.
    model, seen = constant_model(monkeypatch, spanning(1 / 1.4))
    (face,) = predict_faces(model, photo(), box=FaceBox(40.0, 40.0, 100.0), refine_rounds=3)
    assert seen == [1] and len(face.rounds) == 1
    # A given box is not refined unless asked; detections are refined 3 rounds by default.
    model, seen = constant_model(monkeypatch, spanning(1.0))
    predict_faces(model, photo(), box=FaceBox(40.0, 40.0, 100.0))
    assert seen == [1]
    predict_faces(model, photo(), detector=lambda rgb: [DetectedFace((60.0, 50.0, 120.0, 110.0), 1.0)])
    assert seen == [1, 1, 1, 1, 1]


def test_faces_that_settle_drop_out_of_the_batch(monkeypatch):
    model = tiny_keypoint_crmn()
    batches: list[int] = []
    settled, moving = spanning(1 / 1.4), spanning(1.0)

    def forward(x: torch.Tensor) -> torch.Tensor:  # face 0 settles at once, face 1 keeps growing
        batches.append(x.shape[0])
        rows = [settled, moving] if x.shape[0] == 2 else [moving]
        return torch.stack(rows).to(x.dtype)

    monkeypatch.setattr(model, "forward", forward)
    detections = [
        DetectedFace((20.0, 20.0, 60.0, 60.0), 0.9),
        DetectedFace((100.0, 100.0, 150.0, 150.0), 0.8),
    ]
    faces = predict_faces(model, photo(), detector=lambda rgb: detections)
    assert batches == [2, 1, 1, 1]
    assert [len(f.rounds) for f in faces] == [1, 4]


def test_box_movement_is_the_largest_edge_or_side_change():
    assert box_movement(FaceBox(0.0, 0.0, 10.0), FaceBox(0.5, -2.0, 10.25)) == pytest.approx(2.0)


def test_whole_photo_fallback_applies_to_nearly_square_photos_only(monkeypatch):
    model, _ = constant_model(monkeypatch, spanning(1.0))
    (face,) = predict_faces(model, photo(150, 120), detector=lambda rgb: [], refine_rounds=0)
    assert face.source == "whole photo" and face.detection is None and face.score is None
    assert face.rounds[0] == FaceBox(0.0, 15.0, 120.0)  # the largest centred square
    assert whole_photo_box(120, 150) == FaceBox(0.0, 15.0, 120.0)
    assert whole_photo_box(300, 100) is None  # 3:1 is a scene, not a face crop
    assert whole_photo_box(150, 100) is not None and whole_photo_box(151, 100) is None


def test_given_detections_skip_the_detector_but_keep_its_calibration(monkeypatch):
    model, _ = constant_model(monkeypatch, spanning(1 / 1.4))

    class Refusing(MTCNNFaceDetector):
        def __call__(self, rgb):  # type: ignore[no-untyped-def]
            raise AssertionError("the detector must not run again")

    detection = DetectedFace((60.0, 50.0, 120.0, 110.0), 0.97)
    (face,) = predict_faces(model, photo(), detector=Refusing(), detections=[detection], refine_rounds=0)
    assert face.rounds[0] == pytest.approx(FACES68_MTCNN_CALIBRATION.crop_box(detection.box))
    assert face.score == 0.97


def test_group_errors_reweight_to_the_overall_nme():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 100, (68, 2))
    predicted = truth.copy()
    predicted[list(LANDMARK_GROUPS["mouth"])] += [6.0, 8.0]  # the mouth 10 px off, the rest exact
    interocular = np.linalg.norm(truth[36] - truth[45])
    groups = group_normalised_errors(predicted, truth)
    assert groups["mouth"] == pytest.approx(10 / interocular)
    assert all(groups[g] == 0 for g in LANDMARK_GROUPS if g != "mouth")
    weighted = sum(groups[g] * len(p) for g, p in LANDMARK_GROUPS.items()) / 68
    assert weighted == pytest.approx(normalised_mean_error(predicted, truth))
    assert sorted(i for p in LANDMARK_GROUPS.values() for i in p) == list(range(68))


def test_detector_names_and_the_default():
    assert detector_name(HaarFaceDetector()) == "haar"
    assert "haar" in available_face_detectors()
    expected = "mtcnn" if mtcnn_available() else "haar"
    assert detector_name(default_face_detector()) == expected


def test_box_iou_by_hand():
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


@needs_mtcnn
def test_mtcnn_finds_the_annotated_face_and_its_calibration_holds(faces68_dir):  # type: ignore[no-untyped-def]
    names, photos, keypoints = faces68_photos(faces68_dir.parent, "train", max_photos=16)
    (row,) = compare_face_detectors({"mtcnn": MTCNNFaceDetector()}, photos, list(keypoints))
    assert row.missed == 0 and row.iou_median > 0.8
    # The shipped calibration was measured on all 3,153 training photos; 16 agree within 0.04.
    assert row.calibration.center_shift_y == pytest.approx(FACES68_MTCNN_CALIBRATION.center_shift_y, abs=0.04)
    assert row.calibration.keypoint_extent == pytest.approx(
        FACES68_MTCNN_CALIBRATION.keypoint_extent, abs=0.04
    )
    # The calibrated first crop frames the face like the training crop.
    model = tiny_keypoint_crmn()
    for index in range(3):
        (face, *_) = predict_faces(model, Image.fromarray(photos[index]), refine_rounds=0)
        truth = face_box_from_keypoints(torch.as_tensor(keypoints[index]))
        assert box_iou(face.crop_box.corners, truth.corners) > 0.7, names[index]


@needs_mtcnn
def test_photo_evaluation_reports_rounds_groups_and_misses(faces68_dir):  # type: ignore[no-untyped-def]
    model = tiny_keypoint_crmn()
    result = evaluate_keypoints_on_photos(
        model, faces68_dir.parent, "test", detector=True, max_photos=3, progress=False
    )
    assert result["detector"] == "mtcnn" and result["num_photos"] == 3
    assert result["num_scored"] + result["no_face_found"] - result["whole_photo"] >= 3
    assert 1 <= len(result["nme_by_round"]) <= 4
    assert result["nme_by_round"][-1] == pytest.approx(result["nme"])
    assert sum(result["rounds_used"].values()) == result["num_scored"]
    assert set(result["nme_by_group"]) == set(LANDMARK_GROUPS)
    given = evaluate_keypoints_on_photos(model, faces68_dir.parent, "test", max_photos=1, progress=False)
    names, truth = read_keypoint_csv(faces68_dir / "test.csv")
    low, high = truth[0].min(0).values, truth[0].max(0).values
    first = predict_faces(
        model, Image.open(faces68_dir / "images" / names[0]), box=(*low.tolist(), *high.tolist())
    )
    assert given["nme_by_round"] == [given["nme"]] and given["rounds_used"] == {"0": 1}
    assert given["nme"] == pytest.approx(normalised_mean_error(first[0].keypoints, truth[0].numpy()))


@needs_mtcnn
def test_mtcnn_weights_are_plain_tensors_read_without_unpickling_code():
    from pathlib import Path

    import facenet_pytorch

    files = sorted((Path(facenet_pytorch.__file__).parent / "data").glob("[opr]net.pt"))
    assert [f.name for f in files] == ["onet.pt", "pnet.pt", "rnet.pt"]
    for path in files:
        state = torch.load(path, map_location="cpu", weights_only=True)  # refuses pickled code
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
