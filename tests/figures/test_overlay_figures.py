"""Attribution overlays and keypoint drawings: the values shown, and pixels changed only where expected."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from crmn_viz.figures import draw_keypoints, plot_attribution_overlay, plot_keypoints
from crmn_viz.figures.overlays import (
    FACE68_GROUPS,
    GROUND_TRUTH_COLOUR,
    PREDICTION_COLOUR,
    attribution_map,
    keypoint_image,
)


def rgb_of(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])


def test_attribution_overlay_signed_and_magnitude() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (12, 10, 3), dtype=np.uint8)
    attribution = rng.normal(size=(3, 12, 10))
    fig = plot_attribution_overlay(image, attribution)
    background, heatmap = fig.data
    assert isinstance(background, go.Image) and isinstance(heatmap, go.Heatmap)
    np.testing.assert_allclose(np.asarray(heatmap.z), attribution.sum(axis=0))
    assert heatmap.zmin == -heatmap.zmax == -np.abs(attribution.sum(axis=0)).max()
    assert heatmap.colorscale[0][1].startswith("rgba(") and heatmap.colorscale[5][1].endswith(
        ",0)"
    )  # clear at 0
    z = np.asarray(background.z)
    assert (z[..., 0] == z[..., 1]).all()  # grey background by default
    assert tuple(fig.layout.yaxis.range) == (11.5, -0.5) and fig.layout.yaxis.scaleanchor == "x"
    assert not fig.layout.title.text

    magnitude = plot_attribution_overlay(
        torch.from_numpy(image),
        torch.from_numpy(attribution),
        signed=False,
        title="saliency",
        grey_background=False,
    )
    np.testing.assert_allclose(np.asarray(magnitude.data[1].z), np.abs(attribution).sum(axis=0), rtol=1e-6)
    assert magnitude.data[1].zmin == 0
    assert magnitude.layout.title.text == "saliency"
    np.testing.assert_array_equal(np.asarray(magnitude.data[0].z), image)


def test_attribution_map_shapes_and_resizing() -> None:
    assert attribution_map(np.ones((1, 2, 5, 4))).shape == (5, 4)
    np.testing.assert_allclose(attribution_map(-np.ones((3, 3)), signed=False), np.ones((3, 3)))
    small = np.ones((4, 4))
    fig = plot_attribution_overlay(np.zeros((8, 8, 3), dtype=np.uint8), small)
    assert np.asarray(fig.data[1].z).shape == (8, 8)
    with pytest.raises(ValueError, match="opacity"):
        plot_attribution_overlay(np.zeros((4, 4)), small, opacity=2)


def face68(scale: float = 1.0) -> np.ndarray:
    """68 points: each iBUG group on its own upper half circle (radius 10) in a 3 x 3 layout.

    The chord between a group's two ends passes through the circle's centre, 10 pixels
    from the arc, so a pixel there is drawn only when the group is a closed outline.
    """
    points = np.zeros((68, 2))
    for cell, group in enumerate(FACE68_GROUPS):
        centre_x, centre_y = 20 + 40 * (cell % 3), 25 + 40 * (cell // 3)
        for point, angle in zip(group, np.linspace(0, np.pi, len(group))):
            points[point] = (centre_x + 10 * np.cos(angle), centre_y - 10 * np.sin(angle))
    return points * scale


def changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=-1)


def test_draw_keypoints_changes_pixels_only_near_the_points() -> None:
    image = np.full((100, 120, 3), 40, dtype=np.uint8)
    points = np.array([[20.0, 30.0], [90.5, 70.25]])
    drawn = draw_keypoints(image, points, radius=2)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert (image == 40).all()  # the input is not changed
    mask = changed(image, drawn)
    for x, y in points:
        row, col = int(np.rint(y)), int(np.rint(x))
        assert mask[row, col]
        np.testing.assert_array_equal(drawn[row, col], rgb_of(PREDICTION_COLOUR))
    ys, xs = np.nonzero(mask)
    distance = np.min(np.hypot(xs[:, None] - points[:, 0], ys[:, None] - points[:, 1]), axis=1)
    assert distance.max() <= 2 + 2  # radius plus anti-aliasing
    soft = drawn[mask].astype(int)
    assert any((value != rgb_of(PREDICTION_COLOUR)).any() and (value != 40).any() for value in soft)  # AA


def test_draw_keypoints_connects_the_ibug_groups() -> None:
    image = np.zeros((130, 130, 3), dtype=np.uint8)
    points = face68()
    mask = changed(image, draw_keypoints(image, points, radius=1))

    def midpoint_drawn(a: int, b: int) -> bool:
        x, y = (points[a] + points[b]) / 2
        return bool(mask[int(np.rint(y)), int(np.rint(x))])

    assert midpoint_drawn(0, 1) and midpoint_drawn(15, 16)  # jaw is a polyline
    assert not midpoint_drawn(0, 16)  # ... that is open
    assert midpoint_drawn(36, 41) and midpoint_drawn(42, 47)  # eyes are closed
    assert midpoint_drawn(48, 59) and midpoint_drawn(60, 67)  # lips are closed
    assert not midpoint_drawn(17, 21) and not midpoint_drawn(27, 30)  # brows and nose bridge open
    assert not midpoint_drawn(21, 22)  # brows are separate lines


def test_draw_keypoints_ground_truth_in_its_own_colour_under_predictions() -> None:
    image = np.zeros((60, 60, 3), dtype=np.uint8)
    predicted = np.array([[[15.0, 15.0]], [[45.0, 45.0]]])  # two faces of one point
    truth = [np.array([[15.0, 45.0]]), np.array([[45.0, 45.0]])]
    drawn = draw_keypoints(image, predicted, ground_truth=truth, radius=3)
    np.testing.assert_array_equal(drawn[45, 15], rgb_of(GROUND_TRUTH_COLOUR))
    np.testing.assert_array_equal(drawn[15, 15], rgb_of(PREDICTION_COLOUR))
    np.testing.assert_array_equal(drawn[45, 45], rgb_of(PREDICTION_COLOUR))  # prediction on top
    assert (drawn[0:5, 25:35] == 0).all()
    nan = draw_keypoints(image, np.array([[np.nan, 3.0], [30.0, 30.0]]))
    assert changed(image, nan).any()
    with pytest.raises(ValueError, match=r"\[K, 2\]"):
        draw_keypoints(image, np.zeros((3, 3)))


def test_plot_keypoints_keeps_original_pixel_axes() -> None:
    image = np.full((80, 80, 3), 100, dtype=np.uint8)
    points = face68(0.6)
    fig = plot_keypoints(image, points, ground_truth=points + 1)
    drawing = fig.data[0]
    assert isinstance(drawing, go.Image) and drawing.name == "keypoints"
    factor = round(1 / drawing.dx)
    assert np.asarray(drawing.z).shape == (80 * factor, 80 * factor, 3) and factor == 5
    assert [t.name for t in fig.data[1:]] == ["prediction", "ground truth"]
    assert tuple(fig.layout.xaxis.range) == (-0.5, 79.5)
    enlarged, same = keypoint_image(image, points, upscale=5)
    np.testing.assert_array_equal(
        enlarged,
        draw_keypoints(np.kron(image, np.ones((5, 5, 1), np.uint8)), (points + 0.5) * 5 - 0.5, radius=4),
    )
    assert same == 5
