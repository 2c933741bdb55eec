"""The linear-probe figure, its view and its Markdown table, from a hand-made ProbeResult."""

from __future__ import annotations

import numpy as np
import pytest

from crmn_viz.analysis.probes import ProbeResult
from crmn_viz.figures.probes import plot_probes
from crmn_viz.views.probes import probes_markdown, probes_view
from tests.conftest import tiny_model


def _result() -> ProbeResult:
    block = np.array([0.40, 0.50, 0.55, 0.62, 0.70, 0.86])
    hidden = np.array([0.30, 0.35, 0.45, 0.50, 0.75, 0.88])
    return ProbeResult(
        steps=6,
        feature_names=("block", "hidden"),
        accuracy={"block": block, "hidden": hidden},
        accuracy_ci={
            "block": np.stack([block - 0.03, block + 0.02], 1),
            "hidden": np.stack([hidden - 0.04, hidden + 0.03], 1),
        },
        train_accuracy={"block": np.ones(6), "hidden": np.full(6, 0.9)},
        chance=0.104,
        class_names=[f"c{k}" for k in range(10)],
        train_images=2000,
        test_images=1000,
        regularisation={"block": 0.1, "hidden": 0.01},
        feature_dims={"block": (256, 256, 128, 128, 64, 64), "hidden": (6,) * 6},
        stages=(0, 0, 1, 1, 2, 2),
    )


def _trace(fig, name: str):  # type: ignore[no-untyped-def]
    matches = [trace for trace in fig.data if trace.name == name]
    assert len(matches) == 1, [trace.name for trace in fig.data]
    return matches[0]


def test_probe_lines_bands_and_chance_are_the_result() -> None:
    result = _result()
    fig = plot_probes(result)
    for feature, label in (
        ("block", "probe on pooled block output"),
        ("hidden", "probe on LSTM hidden state h_l"),
    ):
        line = _trace(fig, label)
        np.testing.assert_array_equal(line.x, np.arange(1, 7))  # blocks numbered from 1
        np.testing.assert_allclose(line.y, result.accuracy[feature])
        band = _trace(fig, f"{feature} 95% interval")
        low, high = result.accuracy_ci[feature][:, 0], result.accuracy_ci[feature][:, 1]
        np.testing.assert_allclose(band.y, np.concatenate([high, low[::-1]]))
    chance = next(trace for trace in fig.data if trace.name.startswith("chance"))
    assert set(chance.y) == {0.104}
    assert chance.line.dash == "dash"
    assert "0.10" in chance.name
    assert list(fig.layout.yaxis.range) == [0, 1]
    assert "1 = first" in fig.layout.xaxis.title.text
    meta = fig.layout.meta
    assert meta["train_images"] == 2000 and meta["test_images"] == 1000
    assert meta["regularisation"] == {"block": 0.1, "hidden": 0.01}
    assert meta["chance"] == pytest.approx(0.104)
    assert meta["accuracy"]["hidden"] == pytest.approx(result.accuracy["hidden"].tolist())
    # dotted lines between the three stages, at half blocks
    assert sorted(shape.x0 for shape in fig.layout.shapes) == [2.5, 4.5]


def test_a_readout_line_can_stand_beside_the_probes() -> None:
    readout = np.array([0.2, 0.3, 0.4, 0.6, 0.8, 0.9])
    fig = plot_probes(_result(), readout, readout_label="CRMN step-wise readout")
    np.testing.assert_allclose(_trace(fig, "CRMN step-wise readout").y, readout)
    assert fig.layout.meta["readout_accuracy"] == pytest.approx(readout.tolist())
    with pytest.raises(ValueError, match="one value per step"):
        plot_probes(_result(), readout[:4])


def test_a_model_without_memory_draws_only_block_probes() -> None:
    full = _result()
    result = ProbeResult(
        steps=6,
        feature_names=("block",),
        accuracy={"block": full.accuracy["block"]},
        accuracy_ci={"block": full.accuracy_ci["block"]},
        train_accuracy={"block": full.train_accuracy["block"]},
        chance=0.1,
        class_names=full.class_names,
        train_images=100,
        test_images=50,
        regularisation={"block": 1.0},
        feature_dims={"block": full.feature_dims["block"]},
    )
    names = [trace.name for trace in plot_probes(result).data]
    assert not any("hidden" in name for name in names)
    assert len(names) == 3  # band, line, chance


def test_probes_view_and_markdown() -> None:
    result = _result()
    view = probes_view(tiny_model("crmn"), result)
    assert view.name == "linear_probes"
    assert view.settings["train_images"] == 2000 and view.settings["regularisation"]["hidden"] == 0.01
    assert "chance (0.10" in view.caption or "chance (0.10:" in view.caption
    table = probes_markdown(result)
    rows = [line for line in table.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 6
    assert rows[-1].startswith("| 6 | 86.0% (83.0-88.0) | 88.0% (84.0-91.0) |")
    assert "Chance: 10.4%" in table
