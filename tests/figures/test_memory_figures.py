"""CRMN memory figures built from real traces of a tiny CRMN: structure, values, colour scales."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

from crmn_viz.figures import (
    PAPER_TEMPLATE_NAME,
    plot_cell_state,
    plot_gate_comparison,
    plot_gate_heatmap,
    plot_gate_statistics,
    plot_gate_trajectories,
    plot_memory_animation,
)
from crmn_viz.figures.memory import crmn_stages, lstm_quantity
from crmn_viz.figures.theme import DIVERGING_COLORSCALE, SEQUENTIAL_COLORSCALE
from tests.conftest import random_input, tiny_model

STEPS, UNITS = 6, 6  # tiny CRMN: depth 14 -> 3 stages of 2 blocks; hidden_size 6


@pytest.fixture(scope="module")
def crmn_trace():
    torch.manual_seed(0)
    model = tiny_model("crmn")
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, batch=2))
    return trace


def gate(trace, name: str, image: int = 0) -> np.ndarray:
    return trace[f"lstm.{name}"][image].double().numpy()


def boundary_lines(fig: go.Figure) -> list[float]:
    return sorted(shape.x0 for shape in fig.layout.shapes if shape.type == "line" and shape.x0 == shape.x1)


def assert_paper_figure(fig: go.Figure) -> None:
    assert fig.layout.template == pio.templates[PAPER_TEMPLATE_NAME]
    assert not fig.layout.title.text  # no gratuitous titles
    assert fig.layout.width and fig.layout.height


def test_heatmap_is_units_by_steps_and_equals_the_trace_transposed(crmn_trace) -> None:
    fig = plot_gate_heatmap(crmn_trace, "forget_gate", image_index=1)
    assert_paper_figure(fig)
    (heatmap,) = fig.data
    assert isinstance(heatmap, go.Heatmap)
    np.testing.assert_allclose(np.asarray(heatmap.z), gate(crmn_trace, "forget_gate", 1).T, rtol=1e-6)
    assert list(heatmap.y) == [str(unit) for unit in range(UNITS)]
    assert fig.layout.yaxis.type == "category"
    assert (heatmap.zmin, heatmap.zmax) == (0.0, 1.0)  # fixed gate scale
    assert [list(c) for c in heatmap.colorscale] == [list(c) for c in SEQUENTIAL_COLORSCALE]
    assert list(fig.layout.xaxis.ticktext) == [f"block {k}" for k in range(STEPS)]
    assert boundary_lines(fig) == [1.5, 3.5]  # 3 stages of 2 blocks
    stage_labels = [a.text for a in fig.layout.annotations]
    assert stage_labels == ["stage 1", "stage 2", "stage 3"]
    assert "unit" in fig.layout.yaxis.title.text and "block" in fig.layout.xaxis.title.text


def test_heatmap_of_selected_units_and_signed_quantities(crmn_trace) -> None:
    fig = plot_gate_heatmap(crmn_trace, "lstm.cell", units=[4, 1])
    (heatmap,) = fig.data
    cell = gate(crmn_trace, "cell")
    np.testing.assert_allclose(np.asarray(heatmap.z), cell[:, [4, 1]].T, rtol=1e-6)
    assert list(heatmap.y) == ["4", "1"]
    assert heatmap.zmin == -heatmap.zmax == -np.abs(cell[:, [4, 1]]).max()
    assert [list(c) for c in heatmap.colorscale] == [list(c) for c in DIVERGING_COLORSCALE]
    hidden = plot_gate_heatmap(crmn_trace, "hidden").data[0]
    assert (hidden.zmin, hidden.zmax) == (-1.0, 1.0)


def test_bad_arguments_are_refused(crmn_trace) -> None:
    with pytest.raises(ValueError, match="unknown LSTM quantity"):
        plot_gate_heatmap(crmn_trace, "update_gate")
    with pytest.raises(ValueError, match="units"):
        plot_gate_heatmap(crmn_trace, units=[UNITS])
    with pytest.raises(ValueError, match="image_index"):
        plot_gate_heatmap(crmn_trace, image_index=2)
    with pytest.raises(KeyError):
        lstm_quantity({"blocks.0.out": torch.zeros(1, 2, 3, 3)}, "forget_gate")


def test_stages_of_a_crmn() -> None:
    assert crmn_stages(9) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert crmn_stages(4) == [0, 0, 0, 0]


def test_trajectories_show_mean_and_std_over_units(crmn_trace) -> None:
    gates = ("input_gate", "forget_gate", "output_gate")
    fig = plot_gate_trajectories(crmn_trace, gates, units=[0, 5])
    assert_paper_figure(fig)
    assert len(fig.data) == len(gates) * (1 + 2 + 1)  # band, two units, mean
    for name, label in zip(gates, ("input gate i", "forget gate f", "output gate o")):
        values = gate(crmn_trace, name)
        (mean,) = [t for t in fig.data if t.name == label]
        np.testing.assert_allclose(mean.y, values.mean(axis=1), rtol=1e-6)
        (band,) = [t for t in fig.data if t.name == f"{label} ±1 std"]
        upper = np.asarray(band.y)[:STEPS]
        np.testing.assert_allclose(upper, values.mean(axis=1) + values.std(axis=1), rtol=1e-6)
        (unit5,) = [t for t in fig.data if t.name == f"{label}, unit 5"]
        np.testing.assert_allclose(unit5.y, values[:, 5], rtol=1e-6)
    assert tuple(fig.layout.yaxis.range) == (0, 1)
    assert fig.layout.legend.orientation == "h"
    assert len(plot_gate_trajectories(crmn_trace, ("cell",)).data) == 2


def test_cell_state_lines(crmn_trace) -> None:
    cell = gate(crmn_trace, "cell")
    every = plot_cell_state(crmn_trace)
    assert len(every.data) == UNITS + 1
    np.testing.assert_allclose(every.data[-1].y, cell.mean(axis=1), rtol=1e-6)
    assert every.data[-1].name == "mean over units"
    chosen = plot_cell_state(crmn_trace, units=[2, 3])
    assert [t.name for t in chosen.data] == ["unit 2", "unit 3", "mean over units"]
    np.testing.assert_allclose(chosen.data[1].y, cell[:, 3], rtol=1e-6)


def test_memory_animation_has_one_frame_per_block(crmn_trace) -> None:
    fig = plot_memory_animation(crmn_trace, image_index=1, units=[0, 2, 4])
    assert len(fig.data) == 4 and all(isinstance(t, go.Bar) for t in fig.data)
    assert [frame.name for frame in fig.frames] == [f"block {k}" for k in range(STEPS)]
    assert len(fig.layout.sliders[0].steps) == STEPS
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶", "❚❚"]
    for step in (0, 3, 5):
        frame = fig.frames[step]
        names = [bar.name for bar in frame.data]
        assert names == ["input gate i", "forget gate f", "output gate o", "cell state c"]
        np.testing.assert_allclose(
            frame.data[1].y, gate(crmn_trace, "forget_gate", 1)[step, [0, 2, 4]], rtol=1e-6
        )
        np.testing.assert_allclose(frame.data[3].y, gate(crmn_trace, "cell", 1)[step, [0, 2, 4]], rtol=1e-6)
    assert tuple(fig.layout.yaxis.range) == (0, 1)
    low, high = fig.layout.yaxis2.range
    assert low == -high and high >= np.abs(gate(crmn_trace, "cell", 1)[:, [0, 2, 4]]).max()
    default = plot_memory_animation(crmn_trace)
    assert len(default.data[0].x) == UNITS  # up to 16 units


def test_gate_comparison_shares_one_colour_axis(crmn_trace) -> None:
    fig = plot_gate_comparison(crmn_trace, crmn_trace, "cell", labels=("cat", "dog"), image_indices=(0, 1))
    left, right = fig.data
    assert (left.name, right.name) == ("cat", "dog")
    assert left.coloraxis == right.coloraxis == "coloraxis"
    np.testing.assert_allclose(np.asarray(right.z), gate(crmn_trace, "cell", 1).T, rtol=1e-6)
    both = np.concatenate([gate(crmn_trace, "cell", 0), gate(crmn_trace, "cell", 1)])
    assert fig.layout.coloraxis.cmax == -fig.layout.coloraxis.cmin == pytest.approx(np.abs(both).max())
    assert [a.text for a in fig.layout.annotations] == ["cat", "dog"]


def test_gate_statistics_one_line_per_class() -> None:
    rng = np.random.default_rng(0)
    means, stds = rng.uniform(0, 1, (3, 9, 5)), rng.uniform(0, 0.1, (3, 9, 5))
    fig = plot_gate_statistics(means, stds, ["cat", "dog", "ship"], "forget_gate")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["cat", "dog", "ship"]
    np.testing.assert_allclose(lines[2].y, means[2].mean(axis=-1))
    assert len(fig.data) == 6  # bands are drawn for up to 4 classes
    assert len(boundary_lines(fig)) == 2
    many = plot_gate_statistics(np.zeros((8, 9, 2)), np.zeros((8, 9, 2)), [str(k) for k in range(8)], "cell")
    assert len(many.data) == 8
    assert many.data[7].line.dash != many.data[0].line.dash  # colours repeat with a new dash
    with pytest.raises(ValueError, match="class names"):
        plot_gate_statistics(means, stds, ["cat"], "forget_gate")
