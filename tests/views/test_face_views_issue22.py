"""Issue #22's face views: faces named by number and score, what found them and how they were
re-cropped, the error of each landmark group, and the figure with every box drawn."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.data.face_geometry import FaceBox
from crmn_viz.inputs.gallery import list_gallery
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.views import faces
from crmn_viz.views.compute import DirectCompute


def photo(size: tuple[int, int] = (160, 120)) -> SelectedImage:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    return SelectedImage.from_bytes("two faces.png", buffer.getvalue())


def a_face(
    shift: float, score: float | None, source: str = "detector", rounds: Sequence[FaceBox] = ()
) -> FaceKeypoints:
    points = np.random.default_rng(int(shift)).uniform(10, 40, size=(68, 2)) + shift
    crops = list(rounds) or [FaceBox(shift, 5.0, 50.0)]
    return FaceKeypoints(
        keypoints=points,
        keypoints01=points / 100,
        crop_box=crops[-1],
        detection=(shift + 5, 10.0, shift + 45, 50.0) if source == "detector" else None,
        score=score,
        source=source,
        rounds=crops,
        round_keypoints=np.stack([points] * len(crops)),
    )


NO_MODEL: Any = None  # the faces come from Found: the views never touch the model


class Found(DirectCompute):
    """A compute whose faces are given (no detector, no model)."""

    def __init__(self, found: list[FaceKeypoints] | str) -> None:
        self.found = found
        self.asked: list[object] = []

    def faces(self, model, image, box):  # type: ignore[no-untyped-def,override]
        self.asked.append(box)
        return self.found


def test_scores_read_as_probabilities_for_mtcnn_and_as_hit_counts_for_haar() -> None:
    assert faces.score_text(0.98765, "mtcnn") == "0.99"
    assert faces.score_text(1.0, "mtcnn") == "1.00"
    assert faces.score_text(12.0, "haar") == "12"
    assert faces.score_text(None, "mtcnn") == ""
    assert faces.face_label(a_face(0, 0.871), 1, "mtcnn") == "face 1 (score 0.87)"
    assert faces.face_label(a_face(0, 12.0), 2, "haar") == "face 2 (12 cascade hits)"
    assert faces.face_label(a_face(0, 1.0), 3, "haar") == "face 3 (1 cascade hit)"
    assert faces.face_label(a_face(0, None, source="box"), 1, "mtcnn") == "face 1"


def test_the_summary_names_the_detector_the_whole_photo_fallback_and_the_re_crops() -> None:
    three = [FaceBox(0, 0, 60), FaceBox(2, 3, 55), FaceBox(3, 4, 54)]
    detected = faces.face_summary(a_face(0, 0.97, rounds=three), "mtcnn")
    assert detected.startswith("Found by MTCNN (score 0.97") and "re-cropped twice" in detected
    haar = faces.face_summary(a_face(0, 7.0, rounds=three[:2]), "haar")
    assert "Haar cascade (score 7: the number of cascade hits" in haar and "re-cropped once" in haar
    whole = faces.face_summary(a_face(0, None, source="whole photo", rounds=three), "mtcnn")
    assert whole.startswith("No face was detected by MTCNN, so the whole photo was taken as a face crop")
    given = faces.face_summary(a_face(0, None, source="box"), "mtcnn")
    assert "given box" in given and "not re-cropped" in given
    still = faces.face_summary(a_face(0, 0.9), "mtcnn")
    assert "was not re-cropped" in still


def test_the_group_table_divides_each_groups_error_by_the_whole_faces_eye_distance() -> None:
    truth = np.zeros((68, 2))
    truth[:, 0] = np.arange(68)
    truth[36], truth[45] = (0.0, 0.0), (50.0, 0.0)  # outer eye corners 50 px apart
    predicted = truth.copy()
    predicted[0:17] += (3.0, 4.0)  # every jaw point 5 px off, the rest exact
    rows = faces.group_error_table(predicted, truth)
    assert [row["landmarks"] for row in rows] == ["jaw", "brows", "nose", "eyes", "mouth", "all"]
    assert [row["points"] for row in rows] == [17, 10, 9, 12, 20, 68]
    assert [row["NME (%)"] for row in rows] == [10.0, 0.0, 0.0, 0.0, 0.0, 2.5]  # 17 * 5 / 68 / 50
    assert faces.group_error_table(predicted, None) is None
    assert faces.group_error_table(predicted[:5], truth[:5]) is None


def test_a_gallery_face_uploaded_as_a_file_brings_its_ground_truth() -> None:
    entry = next(e for e in list_gallery("faces68") if e.keypoints is not None)
    uploaded = SelectedImage.from_bytes("mine.jpg", entry.path.read_bytes())
    assert uploaded.keypoints is None
    known = faces.with_gallery_truth(uploaded)
    np.testing.assert_array_equal(known.keypoints, entry.keypoints)
    assert known.png == uploaded.png and known.name == "mine.jpg"
    other = photo()
    assert faces.with_gallery_truth(other) is other


def test_the_figure_numbers_the_detected_boxes_and_draws_the_chosen_faces_crops() -> None:
    rounds = [FaceBox(60, 0, 70), FaceBox(62, 2, 66), FaceBox(63, 3, 65)]
    found = [a_face(0, 0.996), a_face(60, 0.871, rounds=rounds)]
    image = photo()
    run = Found(found)
    result = faces.face_keypoints(NO_MODEL, image, None, run, face_index=1, detector="mtcnn")
    assert not isinstance(result, str)
    listed, view = result
    assert listed is found and run.asked == [None]
    fig = view.figure
    boxes = [(s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes if s.name == "face box"]
    assert boxes == [face.detection for face in found]
    assert [a.text for a in fig.layout.annotations] == ["1  1.00", "2  0.87"]
    assert fig.layout.meta["crop_box"] == list(rounds[-1].corners)  # the chosen face's last crop
    assert fig.layout.meta["round_boxes"] == [list(r.corners) for r in rounds[:-1]]
    assert view.settings["face"] == 1 and view.settings["detector"] == "mtcnn"
    assert view.settings["rounds"] == [dict(r._asdict()) for r in rounds]
    first = faces.face_keypoints(NO_MODEL, image, None, run, detector="haar")
    assert [a.text for a in first[1].figure.layout.annotations] == ["1  1", "2  1"]
    assert first[1].figure.layout.meta["crop_box"] == list(found[0].crop_box.corners)
    assert "round_boxes" not in first[1].figure.layout.meta  # face 1 was not re-cropped
    with pytest.raises(ValueError, match="no face 3 in this photo: 2 faces found"):
        faces.face_keypoints(NO_MODEL, image, None, run, face_index=2, detector="mtcnn")


def test_a_given_box_is_drawn_and_a_whole_photo_crop_has_no_numbered_boxes() -> None:
    image = photo()
    box = (20.0, 15.0, 90.0, 100.0)
    given = Found([a_face(10, None, source="box")])
    _, view = faces.face_keypoints(NO_MODEL, image, box, given, "Draw a box", detector="mtcnn")
    assert view.figure.layout.meta["given_box"] == list(box)
    assert not view.figure.layout.annotations and "face_boxes" not in view.figure.layout.meta
    assert view.settings["box_mode"] == "Draw a box" and "detector" not in view.settings
    assert given.asked == [box]
    whole = Found([a_face(0, None, source="whole photo")])
    _, view = faces.face_keypoints(NO_MODEL, image, None, whole, detector="mtcnn")
    assert not view.figure.layout.annotations and "face_boxes" not in view.figure.layout.meta
    assert view.settings["source"] == "whole photo" and "crop_box" in view.figure.layout.meta
    assert (
        faces.face_keypoints(NO_MODEL, image, None, Found("no face found"), detector="mtcnn")
        == "no face found"
    )
