"""Stepwise readout figures and the prediction bar chart, from plain arrays."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from crmn_viz.figures import plot_prediction_bar, plot_stepwise_keypoints, plot_stepwise_probabilities

CLASSES = ["plane", "car", "bird", "cat", "deer", "dog"]


def step_probabilities(steps: int = 9) -> np.ndarray:
    logits = torch.randn(steps, len(CLASSES), generator=torch.Generator().manual_seed(3))
    return torch.softmax(logits * torch.linspace(0.5, 3, steps)[:, None], dim=-1).numpy()


def test_stepwise_probabilities_follow_the_final_top_k() -> None:
    probabilities = step_probabilities()
    fig = plot_stepwise_probabilities(probabilities, CLASSES, top_k=3)
    final_order = np.argsort(-probabilities[-1])[:3]
    assert [t.name for t in fig.data] == [CLASSES[i] for i in final_order]
    for trace, index in zip(fig.data, final_order):
        np.testing.assert_allclose(trace.y, probabilities[:, index], rtol=1e-6)
        np.testing.assert_array_equal(trace.x, np.arange(9))
    assert fig.layout.yaxis.range[0] == 0 and fig.layout.yaxis.range[1] >= 1
    assert list(fig.layout.xaxis.ticktext)[:2] == ["block 0", "block 1"]
    assert len([s for s in fig.layout.shapes if s.type == "line"]) == 2  # CRMN stage boundaries
    assert len(plot_stepwise_probabilities(probabilities, CLASSES, top_k=50).data) == len(CLASSES)
    with pytest.raises(ValueError, match="class names"):
        plot_stepwise_probabilities(probabilities, CLASSES[:2])


def test_stepwise_keypoints_grid_and_slider() -> None:
    image = np.full((20, 20, 3), 128, dtype=np.uint8)
    base = np.array([[5.0, 5.0], [14.0, 6.0], [10.0, 15.0]])
    per_step = np.stack([base + step for step in range(-4, 5)])  # [9, 3, 2]
    grid = plot_stepwise_keypoints(image, per_step)
    images = [t for t in grid.data if isinstance(t, go.Image)]
    assert [t.name for t in images] == ["block 0", "block 2", "block 3", "block 5", "block 6", "block 8"]
    assert [a.text for a in grid.layout.annotations] == [t.name for t in images]
    assert [t.name for t in grid.data if isinstance(t, go.Scatter)] == ["prediction"]

    chosen = plot_stepwise_keypoints(image, per_step, steps=[0, -1], ground_truth=base)
    assert [t.name for t in chosen.data if isinstance(t, go.Image)] == ["block 0", "block 8"]
    last = np.asarray(chosen.data[1].z)
    first = np.asarray(chosen.data[0].z)
    assert not np.array_equal(first, last)  # the points moved between the steps

    slider = plot_stepwise_keypoints(image, per_step, layout="slider")
    assert [f.name for f in slider.frames] == [f"block {k}" for k in range(9)]
    assert len(slider.layout.sliders[0].steps) == 9
    with pytest.raises(ValueError, match="steps"):
        plot_stepwise_keypoints(image, per_step, steps=[9])
    with pytest.raises(ValueError, match=r"\[T, K, 2\]"):
        plot_stepwise_keypoints(image, base)


def test_prediction_bar_is_sorted_with_the_top_class_highlighted() -> None:
    fig = plot_prediction_bar(["cat", "dog", "ship"], torch.tensor([0.2, 0.7, 0.1]))
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert list(bar.y) == ["dog", "cat", "ship"]
    np.testing.assert_allclose(bar.x, [0.7, 0.2, 0.1], rtol=1e-6)
    assert list(bar.text) == ["70.0%", "20.0%", "10.0%"]
    assert bar.marker.color[0] != bar.marker.color[1] == bar.marker.color[2]
    assert tuple(fig.layout.xaxis.range) == (0, 1) and fig.layout.yaxis.autorange == "reversed"
    with pytest.raises(ValueError, match="one label per probability"):
        plot_prediction_bar(["cat"], [0.5, 0.5])


def test_every_prediction_bar_is_labelled_even_when_narrower_than_a_pixel() -> None:
    """Plotly draws no bar text for a sub-pixel bar, so narrow bars are labelled by annotations
    placed at their tips; a probability that would round to 0.0% reads <0.1%."""
    probabilities = [0.9873, 0.0102, 0.0012, 4.3e-4, 1.25e-5, 5.4e-6]
    names = ["airplane", "bird", "truck", "cat", "ship", "automobile"]
    fig = plot_prediction_bar(names, probabilities)
    (bar,) = fig.data
    assert list(bar.text) == ["98.7%", "1.0%", "0.1%", "<0.1%", "<0.1%", "<0.1%"]
    drawn_in_bar = [name for name, where in zip(bar.y, bar.textposition) if where == "inside"]
    annotated = {note.y: (note.x, note.text) for note in fig.layout.annotations}
    assert drawn_in_bar == ["airplane"]
    assert set(drawn_in_bar) | set(annotated) == set(names) and not set(drawn_in_bar) & set(annotated)
    for name, probability in zip(names[1:], probabilities[1:]):
        x, text = annotated[name]
        assert x == pytest.approx(probability) and text == bar.text[names.index(name)]
