"""Issue #22's Gradio face tab: boxes numbered with their scores, the face chosen by number, the
error by landmark group for a gallery face, and clear messages for what cannot be answered."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import crmn_viz
from crmn_viz.frontends import gradio_app
from crmn_viz.inputs.gallery import list_gallery
from crmn_viz.views import faces
from tests.conftest import tiny_model

NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
GALLERY = Path(gradio_app.__file__).resolve().parents[1] / "gallery" / "faces68"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A CRMN and a ResNet keypoint model and a classifier, in a private zoo folder."""
    folder = tmp_path_factory.mktemp("zoo")
    crmn_viz.save(
        tiny_model("crmn", task="keypoints", num_outputs=136, pool=4, input_size=80),
        folder / "faces-tiny",
        dataset="faces68",
        normalization=NORM,
    )
    resnet = crmn_viz.create_model(
        "resnet", depth=8, width=4, num_outputs=136, input_size=80, shortcut="B", task="keypoints"
    )
    crmn_viz.save(resnet.eval(), folder / "resnet-faces-tiny", dataset="faces68", normalization=NORM)
    crmn_viz.save(
        tiny_model("crmn", num_outputs=10, input_size=32),
        folder / "crmn-tiny",
        dataset="cifar10",
        class_names=[f"class {k}" for k in range(10)],
        normalization=NORM,
    )
    old = os.environ.get("CRMN_VIZ_CHECKPOINT_DIR")
    os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = str(folder)
    gradio_app.cached_model.cache_clear()
    yield folder
    gradio_app.cached_model.cache_clear()
    if old is None:
        os.environ.pop("CRMN_VIZ_CHECKPOINT_DIR", None)
    else:
        os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = old


def gallery_face() -> tuple[str, np.ndarray]:
    entry = next(e for e in list_gallery("faces68") if e.keypoints is not None)
    return str(entry.path), entry.keypoints


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> str:
    left = np.array(Image.open(GALLERY / "tr_Clark_Randt_10.jpg").convert("RGB"))
    right = np.array(Image.open(GALLERY / "tr_Kirk_Ferentz_50.jpg").convert("RGB"))
    height = min(left.shape[0], right.shape[0])
    path = tmp_path_factory.mktemp("photos") / "two.jpg"
    Image.fromarray(np.concatenate([left[:height], right[:height]], axis=1)).save(path, quality=95)
    return str(path)


def shapes(figure: Any, name: str) -> list[tuple[float, float, float, float]]:
    return [(s.x0, s.y0, s.x1, s.y1) for s in figure.layout.shapes if s.name == name]


@pytest.mark.parametrize("checkpoint", ["faces-tiny", "resnet-faces-tiny"])
def test_a_gallery_face_gets_its_numbered_box_and_its_error_by_landmark_group(zoo, checkpoint: str) -> None:
    path, truth = gallery_face()
    figure, points, rows, note, menu = gradio_app.keypoints_handler(path, checkpoint)
    detector = faces.face_detector()
    assert len(points) == 1 and np.asarray(points[0]).shape == (68, 2)
    assert len(shapes(figure, "face box")) == 1
    (label,) = [a.text for a in figure.layout.annotations]
    assert label.startswith("1  ") and shapes(figure, "crop box")
    assert f"Found by {faces.DETECTOR_TITLES[detector][0]}" in note
    assert [row[0] for row in rows] == ["jaw", "brows", "nose", "eyes", "mouth", "all"]
    predicted = np.asarray(points[0])  # rounded to 0.01 px for the JSON
    distance = np.hypot(*(predicted - truth).T)
    interocular = np.hypot(*(truth[36] - truth[45]))
    assert rows[-1][1] == 68 and rows[-1][2] == pytest.approx(100 * distance.mean() / interocular, abs=0.02)
    assert rows[0][2] == pytest.approx(100 * distance[:17].mean() / interocular, abs=0.02)
    assert menu["value"] == 1 and [value for _, value in menu["choices"]] == [1]
    assert menu["choices"][0][0].startswith("face 1 (")


def test_the_face_number_chooses_the_face_whose_crop_is_drawn(zoo, two_faces: str) -> None:
    figure, points, rows, note, menu = gradio_app.keypoints_handler(two_faces, "faces-tiny", 2)
    assert len(points) == 2 and [value for _, value in menu["choices"]] == [1, 2] and menu["value"] == 2
    boxes = shapes(figure, "face box")
    assert [a.text.split()[0] for a in figure.layout.annotations] == ["1", "2"]
    (crop,) = shapes(figure, "crop box")
    x0, y0, x1, y1 = boxes[1]
    assert crop[0] <= (x0 + x1) / 2 <= crop[2] and crop[1] <= (y0 + y1) / 2 <= crop[3]
    assert rows == [] and "No ground truth" in note
    first, *_ = gradio_app.keypoints_handler(two_faces, "faces-tiny", "1")  # a menu may send text
    (crop,) = shapes(first, "crop box")
    x0, y0, x1, y1 = boxes[0]
    assert crop[0] <= (x0 + x1) / 2 <= crop[2]
    with pytest.raises(gr.Error, match="There is no face 3 in this photo: 2 faces found"):
        gradio_app.keypoints_handler(two_faces, "faces-tiny", 3)
    for bad in (0, 1.5, "face two"):
        with pytest.raises(gr.Error, match="whole number from 1"):
            gradio_app.keypoints_handler(two_faces, "faces-tiny", bad)


def test_what_cannot_be_answered_says_why(zoo) -> None:
    path, _ = gallery_face()
    with pytest.raises(gr.Error, match="keypoint checkpoint"):
        gradio_app.keypoints_handler(path, "crmn-tiny")
    with pytest.raises(gr.Error, match="upload an image first"):
        gradio_app.keypoints_handler(None, "faces-tiny")
    buffer = io.BytesIO()
    Image.new("RGB", (300, 60), (128, 128, 128)).save(buffer, "PNG")  # wide, and no face in it
    with pytest.raises(gr.Error, match="no face found"):
        gradio_app.keypoints_handler(("wide.png", buffer.getvalue()), "faces-tiny")


def test_the_tab_wires_the_face_menu_to_the_keypoints_and_its_files(zoo, two_faces: str) -> None:
    from gradio.state_holder import SessionState

    demo = gradio_app.build_demo()
    keypoints = next(fn for fn in demo.fns.values() if fn.api_name == "keypoints")
    menu = keypoints.inputs[2]
    assert isinstance(menu, gr.Dropdown) and menu.label == "Face"
    table = keypoints.outputs[2]
    assert isinstance(table, gr.Dataframe) and table.headers == gradio_app.FACE_GROUP_HEADERS
    assert keypoints.outputs[4] is menu
    rerun = [fn for fn in demo.fns.values() if fn.fn is keypoints.fn and fn is not keypoints]
    assert rerun and rerun[0].inputs == keypoints.inputs  # choosing a face redraws with it
    files = next(fn for fn in demo.fns.values() if fn.api_name == "keypoints_files")
    assert files.inputs[2] is menu
    payload = {"path": two_faces, "orig_name": "two.jpg", "meta": {"_type": "gradio.FileData"}}
    result = asyncio.run(demo.process_api(keypoints, [payload, "faces-tiny", 2], state=SessionState(demo)))
    points = result["data"][1]
    assert len(getattr(points, "root", points)) == 2  # both faces' points
    assert result["data"][4]["value"] == 2  # the menu keeps the face asked for
    made = gradio_app.keypoints_files_handler(two_faces, "faces-tiny", 2)
    assert Path(made).suffix == ".zip" and Path(made).stat().st_size > 0
