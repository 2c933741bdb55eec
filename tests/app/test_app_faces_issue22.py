"""Issue #22's face page, run headless with AppTest: numbered, scored boxes and the face chosen by
number, the box being drawn on the photo, a wide overlay, the block slider at the last block, the
error of every landmark group, a ResNet keypoint model, and the detector run once per photo."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("streamlit")
from PIL import Image
from streamlit.testing.v1 import AppTest

import crmn_viz
from crmn_viz.analysis import face_detectors, keypoints
from crmn_viz.views import faces
from tests.app.conftest import RGB_NORM

APP = str(Path(__file__).resolve().parents[2] / "app.py")
GALLERY = Path(APP).parent / "crmn_viz" / "gallery" / "faces68"
TIMEOUT = 180
KEYPOINT_MODELS = {
    "tiny-faces": ("crmn", {"hidden_size": 6, "pool": 4}),
    "tiny-resnet-faces": ("resnet", {}),
}


@pytest.fixture(scope="module")
def face_zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo of two tiny (untrained) keypoint models: a CRMN and a ResNet (no stepwise readout)."""
    import torch

    folder = tmp_path_factory.mktemp("face_zoo")
    for name, (arch, extra) in KEYPOINT_MODELS.items():
        torch.manual_seed(0)
        model = crmn_viz.create_model(
            arch, depth=8, width=4, num_outputs=136, input_size=80, shortcut="B", task="keypoints", **extra
        )
        crmn_viz.save(model.eval(), folder / name, dataset="faces68", normalization=RGB_NORM)
    return folder


@pytest.fixture
def face_zoo(face_zoo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(face_zoo_dir))
    return face_zoo_dir


def open_faces(checkpoint: str = "tiny-faces") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/face_keypoints.py").run()
    at.sidebar.selectbox(key="zoo_choice").set_value(checkpoint).run()
    assert not at.exception, at.exception
    return at


def specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(element.proto.spec) for element in at.get("plotly_chart")]


def keypoint_figure(at: AppTest) -> dict[str, Any]:
    figure = specs(at)[0]
    assert figure["data"][0]["name"] == "keypoints"
    return figure


def shapes(figure: dict[str, Any], name: str) -> list[list[float]]:
    return [
        [s["x0"], s["y0"], s["x1"], s["y1"]] for s in figure["layout"].get("shapes", []) if s["name"] == name
    ]


def texts(elements) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(element.value) for element in elements)


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def two_faces() -> bytes:
    """Two gallery faces side by side (the detector finds both)."""
    left = np.array(Image.open(GALLERY / "tr_Clark_Randt_10.jpg").convert("RGB"))
    right = np.array(Image.open(GALLERY / "tr_Kirk_Ferentz_50.jpg").convert("RGB"))
    height = min(left.shape[0], right.shape[0])
    return jpeg(np.concatenate([left[:height], right[:height]], axis=1))


def camera_photo(at: AppTest, data: bytes) -> AppTest:
    at.sidebar.button_group(key="image_source").set_value("Camera").run()
    at.sidebar.camera_input(key="camera").upload("photo.jpg", data).run()
    assert not at.exception, at.exception
    return at


def independent_group_errors(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Per-group NME in percent, from the iBUG index ranges (not the app's own code)."""
    distance = np.hypot(*(predicted - truth).T)
    interocular = np.hypot(*(truth[36] - truth[45]))
    ranges = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}
    errors = {name: 100 * distance[a:b].mean() / interocular for name, (a, b) in ranges.items()}
    errors["all"] = 100 * distance.mean() / interocular
    return errors


@pytest.fixture
def detector_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count every run of a face detector (both kinds), with a fresh result cache (so the first
    request for a photo runs the detector)."""
    from crmn_viz.frontends.streamlit import compute
    from crmn_viz.jobs import ResultCache
    from crmn_viz.limits import LIMITS

    monkeypatch.setattr(compute, "RESULTS", ResultCache(LIMITS.max_result_cache_bytes))
    calls: list[int] = []
    for kind in (face_detectors.MTCNNFaceDetector, keypoints.HaarFaceDetector):
        original = kind.__call__

        def counted(self, rgb, _original=original):  # type: ignore[no-untyped-def]
            calls.append(1)
            return _original(self, rgb)

        monkeypatch.setattr(kind, "__call__", counted)
    return calls


def test_detected_faces_are_drawn_numbered_and_scored_with_the_crop_and_the_group_errors(
    face_zoo: Path,
) -> None:
    at = open_faces()
    image = at.session_state["selection"].images[0]
    assert image.keypoints is not None  # a gallery face: its ground truth is known
    figure = keypoint_figure(at)
    (detected,) = shapes(figure, "face box")
    labels = [a["text"] for a in figure["layout"]["annotations"]]
    assert len(labels) == 1 and labels[0].startswith("1  ")
    score = labels[0].split()[-1]
    detector = faces.face_detector()
    assert (
        (score.count(".") == 1 and len(score.split(".")[1]) == 2) if detector == "mtcnn" else score.isdigit()
    )
    (crop,) = shapes(figure, "crop box")
    assert crop[0] <= (detected[0] + detected[2]) / 2 <= crop[2]  # the crop frames the detected face
    assert figure["layout"]["width"] >= 500, "the overlay is at least 500 px wide on screen"
    title = faces.DETECTOR_TITLES[detector][0]
    assert f"Found by {title}" in texts(at.caption)
    assert "re-cropped" in texts(at.caption)  # the refinement rounds are said
    table = at.dataframe[0].value
    assert table["landmarks"].tolist() == ["jaw", "brows", "nose", "eyes", "mouth", "all"]
    meta = figure["layout"]["meta"]
    expected = independent_group_errors(np.array(meta["prediction"][0]), np.array(meta["ground_truth"][0]))
    assert table["NME (%)"].tolist() == pytest.approx(
        [expected[name] for name in table["landmarks"]], abs=0.006
    )
    nme = next(m for m in at.metric if m.label == "NME vs ground truth")
    assert nme.value == f"{expected['all']:.1f}%"
    assert not at.warning and not at.error


def test_box_modes_draw_their_box_and_never_run_the_detector_again(
    face_zoo: Path, detector_calls: list[int]
) -> None:
    at = open_faces()
    assert len(detector_calls) == 1, "the detector ran once for the first photo"
    truth = at.session_state["selection"].images[0].keypoints
    at.button_group(key="faces_box_mode").set_value("Ground-truth box").run()
    assert not at.exception
    expected = [truth[:, 0].min(), truth[:, 1].min(), truth[:, 0].max(), truth[:, 1].max()]
    assert shapes(keypoint_figure(at), "given box") == [pytest.approx(expected)]
    assert shapes(keypoint_figure(at), "face box") == []
    at.button_group(key="faces_box_mode").set_value("Draw a box").run()
    at.slider(key="faces_x").set_value((30, 150)).run()
    at.slider(key="faces_y").set_value((40, 170)).run()
    assert not at.exception
    figure = keypoint_figure(at)
    assert shapes(figure, "given box") == [[30.0, 40.0, 150.0, 170.0]]  # the sliders' rectangle
    (crop,) = shapes(figure, "crop box")
    assert crop[0] < 30 and crop[2] > 150  # the training margin around the box
    assert at.dataframe, "the group table is shown in every mode when the truth is known"
    at.button_group(key="faces_box_mode").set_value("Detect").run()
    at.button_group(key="faces_layout").set_value("slider").run()
    assert not at.exception
    assert len(shapes(keypoint_figure(at), "face box")) == 1
    assert len(detector_calls) == 1, "no box-mode or layout change runs the detector again"


def test_the_block_slider_starts_at_the_last_block(face_zoo: Path) -> None:
    at = open_faces()
    at.button_group(key="faces_layout").set_value("slider").run()
    assert not at.exception
    steps_figure = specs(at)[1]
    (slider,) = steps_figure["layout"]["sliders"]
    assert slider["active"] == len(slider["steps"]) - 1 == len(steps_figure["frames"]) - 1
    assert steps_figure["data"][0]["name"] == slider["steps"][-1]["value"]
    assert slider["x"] > 0 and slider["x"] + slider["len"] < 1


def test_two_faces_are_numbered_and_the_chosen_ones_crop_is_drawn(face_zoo: Path) -> None:
    at = camera_photo(open_faces(), two_faces())
    menu = at.selectbox(key="faces_index")
    labels = list(menu.options)  # AppTest lists the labels the menu shows
    detector = faces.face_detector()
    assert [label.split(" (")[0] for label in labels] == ["face 1", "face 2"]
    assert all(("score" if detector == "mtcnn" else "cascade hit") in label for label in labels)
    figure = keypoint_figure(at)
    boxes = shapes(figure, "face box")
    assert [a["text"].split()[0] for a in figure["layout"]["annotations"]] == ["1", "2"]
    for number in (1, 0):
        at.selectbox(key="faces_index").set_value(number).run()
        assert not at.exception
        (crop,) = shapes(keypoint_figure(at), "crop box")
        x0, y0, x1, y1 = boxes[number]
        assert crop[0] <= (x0 + x1) / 2 <= crop[2] and crop[1] <= (y0 + y1) / 2 <= crop[3]
    assert not at.dataframe, "no ground truth for a camera photo, so no group table"
    assert "Faces found" in [m.label for m in at.metric]


def test_a_photo_without_a_face_says_the_whole_photo_was_taken(face_zoo: Path) -> None:
    flat = np.full((120, 120, 3), 128, dtype=np.uint8)
    at = camera_photo(open_faces(), jpeg(flat))
    message = texts(at.info)
    assert "No face was detected" in message and "whole photo was taken as a face crop" in message
    figure = keypoint_figure(at)
    assert shapes(figure, "face box") == [] and len(shapes(figure, "crop box")) == 1
    wide = camera_photo(open_faces(), jpeg(np.full((60, 240, 3), 128, dtype=np.uint8)))
    assert "no face found" in texts(wide.warning).lower()


def test_a_resnet_keypoint_model_draws_its_points_and_groups_without_a_block_view(face_zoo: Path) -> None:
    at = open_faces("tiny-resnet-faces")
    assert at.session_state["selection"].model.task == "keypoints"
    assert not at.session_state["selection"].model.has_stepwise_readout
    assert len(specs(at)) == 1  # the keypoints; no block-by-block figure
    assert "Only a CRMN can be read out" in texts(at.info)
    assert len(shapes(keypoint_figure(at), "face box")) == 1
    assert at.dataframe[0].value["landmarks"].tolist()[-1] == "all"
    at.button_group(key="faces_box_mode").set_value("Draw a box").run()
    assert not at.exception and shapes(keypoint_figure(at), "given box")
    assert not at.error
