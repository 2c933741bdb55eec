"""figure_data: the numbers a figure plots, and writing them beside the figure with export_figure."""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from crmn_viz.figures import (
    export_figure,
    figure_data,
    plot_cell_state,
    plot_gate_heatmap,
    plot_keypoints,
    plot_memory_animation,
)
from tests.conftest import random_input, tiny_model


@pytest.fixture(scope="module")
def crmn_trace():
    torch.manual_seed(0)
    model = tiny_model("crmn")
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, batch=1))
    return trace


def test_heatmap_matrix_and_axes(crmn_trace) -> None:
    fig = plot_gate_heatmap(crmn_trace, "forget_gate")
    data = figure_data(fig)
    assert list(data)[:3] == ["forget gate f.x", "forget gate f.y", "forget gate f.z"]  # traces first
    assert all(key.startswith("layout.") for key in list(data)[3:])
    assert data["layout.xaxis.ticktext"].tolist()[:2] == ["block 0", "block 1"]
    np.testing.assert_allclose(
        data["forget gate f.z"], crmn_trace["lstm.forget_gate"][0].numpy().T, rtol=1e-6
    )
    np.testing.assert_array_equal(data["forget gate f.x"], np.arange(6))
    assert data["forget gate f.y"].tolist() == [str(u) for u in range(6)]


def test_dict_form_with_base64_arrays_gives_the_same_numbers(crmn_trace) -> None:
    fig = plot_gate_heatmap(crmn_trace, "cell")
    as_dict = fig.to_dict()
    assert isinstance(as_dict["data"][0]["z"], dict) and "bdata" in as_dict["data"][0]["z"]
    from_dict = figure_data(as_dict)
    np.testing.assert_allclose(from_dict["cell state c.z"], figure_data(fig)["cell state c.z"])
    assert from_dict["cell state c.z"].shape == (6, 6)


def test_names_gaps_legend_entries_and_frames(crmn_trace) -> None:
    fig = go.Figure(
        [
            go.Scatter(x=[0, 1, 2], y=[1.0, None, 3.0], name="a/b"),
            go.Scatter(x=[0, 1], y=[2, 3], name="same"),
            go.Scatter(x=[0, 1], y=[4, 5], name="same"),
            go.Scatter(x=[None], y=[None], name="legend only"),
            go.Bar(x=["p", "q"], y=[0.3, 0.7]),
        ]
    )
    data = figure_data(fig)
    expected = ["a-b", "same (1)", "same (2)", "trace 4"]
    assert list(data) == [f"{name}.{axis}" for name in expected for axis in "xy"]
    assert np.isnan(data["a-b.y"][1]) and data["a-b.y"][2] == 3.0
    assert data["trace 4.x"].tolist() == ["p", "q"]
    animated = figure_data(plot_memory_animation(crmn_trace), include_frames=True)
    assert "frame block 5: forget gate f.y" in animated
    np.testing.assert_allclose(
        animated["frame block 5: forget gate f.y"], crmn_trace["lstm.forget_gate"][0, 5].numpy(), rtol=1e-6
    )
    with pytest.raises(ValueError, match="no x, y or z"):
        figure_data(go.Figure())


def test_image_pixels_are_exported() -> None:
    fig = plot_keypoints(np.zeros((10, 10, 3), np.uint8), np.array([[5.0, 5.0]]), upscale=2)
    data = figure_data(fig)
    assert data["keypoints.z"].shape == (20, 20, 3) and data["keypoints.z"].dtype == np.uint8
    assert not any(key.startswith("prediction") for key in data)


def test_export_figure_writes_the_data_beside_the_figure(tmp_path, crmn_trace) -> None:
    heatmap = plot_gate_heatmap(crmn_trace, "input_gate")
    path = export_figure(heatmap, tmp_path / "input_gate.json", data=figure_data(heatmap))
    assert path.exists()
    with np.load(tmp_path / "input_gate.data.npz") as stored:
        np.testing.assert_allclose(
            stored["input gate i.z"], crmn_trace["lstm.input_gate"][0].numpy().T, rtol=1e-6
        )
    meta = json.loads((tmp_path / "input_gate.meta.json").read_text())
    assert meta["data"]["kind"] == "npz" and meta["data"]["arrays"]["input gate i.z"]["shape"] == [6, 6]

    lines = plot_cell_state(crmn_trace, units=[0])
    export_figure(lines, tmp_path / "cell.html", data=figure_data(lines, include_layout=False))
    header = (tmp_path / "cell.data.csv").read_text().splitlines()[0]
    assert header == "unit 0.x,unit 0.y,mean over units.x,mean over units.y"  # equal-length columns: CSV
