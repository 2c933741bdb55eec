"""Issue #22's face figures: numbered, scored detector boxes, the crop the model saw, its earlier
rounds and a given box on the photo; the block slider starting at the last block, its ends inside."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from crmn_viz.figures import figure_data, plot_keypoints, plot_stepwise_keypoints
from crmn_viz.figures.files import for_screen
from crmn_viz.figures.overlays import CROP_BOX_COLOUR, FACE_BOX_COLOUR, GIVEN_BOX_COLOUR, keypoint_image


def face_points(shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.uniform(20, 60, size=(68, 2)) + shift


PHOTO = np.full((100, 120, 3), 90, dtype=np.uint8)


def shapes_named(fig: go.Figure, name: str) -> list[tuple[float, float, float, float]]:
    return [(s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes if s.name == name]


def test_detector_boxes_are_numbered_with_their_scores_and_the_crops_are_drawn() -> None:
    boxes = [(10.0, 12.0, 50.0, 60.0), (70.0, -5.0, 118.0, 40.0)]  # the second pokes above the photo
    crop, earlier = (5.0, 8.0, 65.0, 68.0), [(0.0, 0.0, 70.0, 70.0), (4.0, 6.0, 66.0, 68.0)]
    fig = plot_keypoints(
        PHOTO,
        [face_points(), face_points(40)],
        boxes=boxes,
        box_labels=["1  0.99", "2  0.87"],
        crop_box=crop,
        round_boxes=earlier,
    )
    assert shapes_named(fig, "face box") == boxes
    assert shapes_named(fig, "crop box") == [crop]
    assert shapes_named(fig, "round 0 crop") == [earlier[0]] and shapes_named(fig, "round 1 crop") == [
        earlier[1]
    ]
    faint = [s for s in fig.layout.shapes if s.name.startswith("round")]
    assert all(s.line.dash == "dot" and s.opacity < 1 for s in faint)
    assert {s.line.color for s in fig.layout.shapes if s.name == "face box"} == {FACE_BOX_COLOUR}
    assert fig.layout.shapes[-1].line.color == CROP_BOX_COLOUR  # drawn last: above the others
    labels = [(a.text, a.x, a.y) for a in fig.layout.annotations]
    assert labels == [("1  0.99", 10.0, 12.0), ("2  0.87", 70.0, -0.5)]  # kept on the photo
    assert [t.name for t in fig.data[1:]] == ["prediction", "face box", "crop box"]
    meta = fig.layout.meta
    assert meta["face_box_labels"] == ["1  0.99", "2  0.87"]
    assert meta["crop_box"] == list(crop) and meta["round_boxes"] == [list(b) for b in earlier]
    assert "given_box" not in meta
    data = figure_data(fig)  # the numbers and the labels go into the data file
    assert data["layout.annotations.text"].tolist() == ["1  0.99", "2  0.87"]
    np.testing.assert_array_equal(data["layout.meta.crop_box"], crop)


def test_a_given_box_is_drawn_and_the_labels_must_match_the_boxes() -> None:
    fig = plot_keypoints(PHOTO, face_points(), given_box=(20, 25, 80, 90), crop_box=(10, 15, 90, 95))
    assert shapes_named(fig, "given box") == [(20.0, 25.0, 80.0, 90.0)]
    assert [s.line.color for s in fig.layout.shapes if s.name == "given box"] == [GIVEN_BOX_COLOUR]
    assert fig.layout.meta["given_box"] == [20.0, 25.0, 80.0, 90.0]
    assert not fig.layout.annotations
    with pytest.raises(ValueError, match="one label per box"):
        plot_keypoints(PHOTO, face_points(), boxes=[(1, 2, 3, 4)], box_labels=["1", "2"])
    with pytest.raises(ValueError, match="given_box"):
        plot_keypoints(PHOTO, face_points(), given_box=(1, 2, 3))


def test_a_wider_keypoint_figure_is_over_500_pixels_on_screen_with_the_photo_filling_it() -> None:
    square = np.full((200, 200, 3), 90, dtype=np.uint8)
    fig = plot_keypoints(square, face_points(), width_in=4.6)
    assert fig.layout.width == pytest.approx(4.6 * 96)
    screen = for_screen(fig, 1.4)  # what the app shows (1.4 times the print size)
    assert screen.layout.width >= 500
    margin = fig.layout.margin
    plot_w = fig.layout.width - margin.l - margin.r
    plot_h = fig.layout.height - margin.t - margin.b
    assert plot_h >= 0.9 * plot_w, "a square photo is about as tall as the figure is wide"
    assert plot_keypoints(square, face_points()).layout.width == pytest.approx(3.5 * 96)  # default unchanged


def test_the_block_slider_starts_at_the_last_block_with_its_end_labels_inside() -> None:
    crop = np.full((40, 40, 3), 120, dtype=np.uint8)
    base = face_points() / 2
    per_step = np.stack([base + step for step in range(9)])  # [9, 68, 2]
    fig = plot_stepwise_keypoints(crop, per_step, layout="slider", upscale=2)
    (slider,) = fig.layout.sliders
    assert slider.active == 8
    assert slider.steps[0].label == "block 0" and slider.steps[-1].label == "block 8"
    assert slider.x > 0 and slider.x + slider.len < 1  # room either side for the centred end labels
    last, _ = keypoint_image(crop, per_step[8], upscale=2)
    first, _ = keypoint_image(crop, per_step[0], upscale=2)
    shown = np.asarray(fig.data[0].z)
    np.testing.assert_array_equal(shown, last)  # the picture shown first is the last block's
    assert not np.array_equal(shown, first)
    assert fig.data[0].name == "block 8"
    many = plot_stepwise_keypoints(crop, np.stack([base] * 27), layout="slider", upscale=1)
    assert [step.label for step in many.layout.sliders[0].steps][:3] == ["0", "1", "2"]
    assert many.layout.sliders[0].currentvalue.prefix == "decoded after block "
    assert many.layout.sliders[0].active == 26 and many.frames[-1].name == "block 26"
