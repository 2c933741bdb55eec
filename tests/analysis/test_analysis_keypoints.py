"""predict_keypoints(): training-identical crops, coordinate mapping, face detection on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.analysis import (
    FACES68_HAAR_CALIBRATION,
    DetectedFace,
    DetectorCalibration,
    HaarFaceDetector,
    NoFaceFoundError,
    crop_box_for,
    fit_detector_calibration,
    predict_faces,
    predict_keypoints,
)
from crmn_viz.data import AffineParams, FaceBox, FaceCropTransform, face_box_from_keypoints, read_keypoint_csv
from crmn_viz.preprocessing import Preprocessor
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn

# Known normalised crop outputs: point k at (k / 67, 1 - k / 67), so the corners of the crop are hit.
KNOWN01 = torch.stack([torch.linspace(0, 1, 68), torch.linspace(1, 0, 68)], dim=-1).double()


def synthetic_photo(height: int = 120, width: int = 100) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def synthetic_keypoints() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(68, 2, generator=generator) * torch.tensor([50.0, 60.0]) + torch.tensor([30.0, 25.0])


def fake_keypoint_model(monkeypatch):  # type: ignore[no-untyped-def]
    """A keypoint CRMN whose forward records its inputs and returns KNOWN01 for every face."""
    model = tiny_keypoint_crmn()
    seen: list[torch.Tensor] = []

    def forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return KNOWN01.to(x.dtype).expand(x.shape[0], -1, -1)

    monkeypatch.setattr(model, "forward", forward)
    return model, seen


def expected_image_points(box: FaceBox) -> np.ndarray:
    return np.stack(
        [box.left + KNOWN01[:, 0].numpy() * box.side, box.top + KNOWN01[:, 1].numpy() * box.side], -1
    )


def test_given_box_uses_the_training_crop_and_maps_back_to_photo_pixels(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, seen = fake_keypoint_model(monkeypatch)
    model.preprocess = Preprocessor((32, 32), 3, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    photo, keypoints = synthetic_photo(), synthetic_keypoints()
    training_box = face_box_from_keypoints(keypoints)

    (points,) = predict_keypoints(model, photo, box=training_box)

    training_crop, _ = FaceCropTransform(size=32, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).apply(
        torch.from_numpy(photo).permute(2, 0, 1), keypoints, AffineParams()
    )
    torch.testing.assert_close(seen[0][0], training_crop, atol=1e-6, rtol=0)
    assert points.shape == (68, 2) and points.dtype == np.float64
    np.testing.assert_allclose(points, expected_image_points(training_box), atol=1e-9)
    np.testing.assert_allclose(points[0], [training_box.left, training_box.top + training_box.side])
    np.testing.assert_allclose(points[-1], [training_box.left + training_box.side, training_box.top])


def test_a_corner_box_gets_the_training_rule() -> None:
    keypoints = synthetic_keypoints()
    low, high = keypoints.min(0).values.tolist(), keypoints.max(0).values.tolist()
    box = crop_box_for((*low, *high))
    np.testing.assert_allclose(box, face_box_from_keypoints(keypoints), atol=1e-5)
    assert crop_box_for(box) is box
    assert crop_box_for((0, 0, 10, 20), margin=1.0) == FaceBox(-5.0, 0.0, 20.0)
    with pytest.raises(ValueError, match="x1 > x0"):
        crop_box_for((10, 0, 5, 20))
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        crop_box_for((1, 2, 3))


def test_detections_are_calibrated_and_kept_most_confident_first(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, seen = fake_keypoint_model(monkeypatch)
    detections = [DetectedFace((20.0, 30.0, 60.0, 70.0), 9.0), DetectedFace((50.0, 10.0, 70.0, 30.0), 4.0)]
    faces = predict_faces(
        model, Image.fromarray(synthetic_photo()), detector=lambda rgb: list(detections), refine_rounds=0
    )
    assert len(seen) == 1 and seen[0].shape == (2, 3, 32, 32)  # one batched forward pass
    assert [f.score for f in faces] == [9.0, 4.0]
    for face, detection in zip(faces, detections):
        assert face.detection == detection.box
        # Calibration: keypoint box centre (cx, cy + 0.16 w), side 0.88 w; crop side 1.4 * 0.88 w.
        x0, y0, x1, y1 = detection.box
        w = x1 - x0
        assert face.crop_box.side == pytest.approx(1.4 * 0.88 * w)
        assert face.crop_box.center == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2 + 0.16 * w))
        np.testing.assert_allclose(face.keypoints, expected_image_points(face.crop_box), atol=1e-9)
        np.testing.assert_allclose(face.keypoints01, KNOWN01.numpy())
    only_first = predict_keypoints(
        model, synthetic_photo(), detector=lambda rgb: list(detections), max_faces=1, refine_rounds=0
    )
    assert len(only_first) == 1


def test_no_face_raises_a_value_error_with_advice() -> None:
    model = tiny_keypoint_crmn()
    wide_blank = np.full((100, 300, 3), 128, dtype=np.uint8)  # 3:1, not taken for a face crop
    with pytest.raises(NoFaceFoundError, match="box="):
        predict_keypoints(model, wide_blank)
    with pytest.raises(ValueError, match="no face found"):
        predict_keypoints(model, wide_blank, detector=lambda rgb: [])
    square_blank = np.full((120, 100, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceFoundError):
        predict_keypoints(model, square_blank, detector=lambda rgb: [], whole_photo_fallback=False)


def test_photo_types_agree_and_grey_models_work() -> None:
    model = tiny_keypoint_crmn()
    photo = synthetic_photo()
    box = (30.0, 25.0, 80.0, 85.0)
    from_array = predict_keypoints(model, photo, box=box)[0]
    from_pil = predict_keypoints(model, Image.fromarray(photo), box=box)[0]
    from_tensor = predict_keypoints(model, torch.from_numpy(photo).permute(2, 0, 1), box=box)[0]
    np.testing.assert_allclose(from_pil, from_array)
    np.testing.assert_allclose(from_tensor, from_array)
    crop = crop_box_for(box)
    assert (from_array >= [crop.left, crop.top]).all() and (from_array <= [crop.left + crop.side] * 2).all()

    grey = tiny_analysis_model("crmn", in_channels=1, task="keypoints", num_outputs=10)
    (points,) = predict_keypoints(grey, Image.fromarray(photo).convert("L"), box=box)
    assert points.shape == (5, 2)
    with pytest.raises(ValueError, match="keypoint model"):
        predict_keypoints(tiny_analysis_model("resnet"), photo, box=box)
    with pytest.raises(TypeError, match="uint8"):
        predict_keypoints(model, photo.astype(np.float32), box=box)


def test_calibration_can_be_refitted_for_another_detector() -> None:
    truth = DetectorCalibration(center_shift_x=0.05, center_shift_y=0.2, keypoint_extent=0.9)
    rng = np.random.default_rng(0)
    detections, keypoint_sets = [], []
    for _ in range(5):
        x0, y0, w = rng.uniform(0, 100), rng.uniform(0, 100), rng.uniform(40, 80)
        detection = (x0, y0, x0 + w, y0 + w)
        kx0, ky0, kx1, ky1 = truth.keypoint_box(detection)
        points = np.column_stack([rng.uniform(kx0, kx1, 68), rng.uniform(ky0, ky1, 68)])
        points[:2] = [[kx0, ky0], [kx1, ky1]]  # the bounding box is exactly the keypoint box
        detections.append(detection)
        keypoint_sets.append(points)
    fitted = fit_detector_calibration(detections, keypoint_sets)
    assert fitted.center_shift_x == pytest.approx(0.05)
    assert fitted.center_shift_y == pytest.approx(0.2)
    assert fitted.keypoint_extent == pytest.approx(0.9)


def box_iou(first: FaceBox, second: FaceBox) -> float:
    width = max(0.0, min(first.left + first.side, second.left + second.side) - max(first.left, second.left))
    height = max(0.0, min(first.top + first.side, second.top + second.side) - max(first.top, second.top))
    return width * height / (first.side**2 + second.side**2 - width * height)


def test_haar_detector_finds_the_annotated_faces_in_real_photos(faces68_dir) -> None:  # type: ignore[no-untyped-def]
    names, keypoints = read_keypoint_csv(faces68_dir / "test.csv")
    model = tiny_keypoint_crmn()
    for index in range(4):
        photo = Image.open(faces68_dir / "images" / names[index])
        faces = predict_faces(model, photo, detector=HaarFaceDetector(), refine_rounds=0)
        assert faces, names[index]
        best = faces[0]
        truth_box = face_box_from_keypoints(keypoints[index])
        x0, y0, x1, y1 = best.detection
        low, high = keypoints[index].min(0).values, keypoints[index].max(0).values
        overlap_x = min(x1, float(high[0])) - max(x0, float(low[0]))
        overlap_y = min(y1, float(high[1])) - max(y0, float(low[1]))
        assert overlap_x > 0 and overlap_y > 0, names[index]  # the detection overlaps the keypoints' box
        assert box_iou(best.crop_box, truth_box) > 0.6, names[index]  # calibrated crop ~ training crop
        assert best.crop_box == FACES68_HAAR_CALIBRATION.crop_box(best.detection)
        points = predict_keypoints(model, photo, detector=HaarFaceDetector(), refine_rounds=0)[0]
        assert points.shape == (68, 2) and np.isfinite(points).all()
        np.testing.assert_allclose(points, best.keypoints)


def test_nme_is_shift_length_over_the_outer_eye_corner_distance():
    """NME re-derived by hand: every point shifted by (3, 4) px is 5 px off; the inter-ocular
    distance is |t_36 - t_45|. Batched and single-face forms agree."""
    import numpy as np
    import torch

    from crmn_viz.analysis.keypoint_evaluation import normalised_mean_error, normalised_mean_errors

    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 200, size=(4, 68, 2))
    predicted = truth + np.array([3.0, 4.0])
    expected = 5.0 / np.linalg.norm(truth[:, 36] - truth[:, 45], axis=-1)
    batched = normalised_mean_errors(torch.as_tensor(predicted), torch.as_tensor(truth)).numpy()
    np.testing.assert_allclose(batched, expected, rtol=1e-12)
    for face in range(4):
        assert normalised_mean_error(predicted[face], truth[face]) == pytest.approx(expected[face], rel=1e-12)
