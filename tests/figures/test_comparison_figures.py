"""Figures of two classifiers on the same images, from a comparison of planted predictions."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from crmn_viz.analysis.comparison import ModelComparison, summarise_predictions
from crmn_viz.figures import figure_data
from crmn_viz.figures.comparison import (
    plot_agreement_matrix,
    plot_correctness,
    plot_per_class_accuracy,
    plot_stepwise_accuracy,
)

CLASSES = ["plane", "car", "bird", "cat"]


def planted_comparison(stepwise: bool = True) -> ModelComparison:
    """120 images: A right on 80%, B on 60%; class 3 has no image; a rising read-out for A."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    predictions_a = np.where(rng.random(120) < 0.8, labels, rng.integers(0, 4, 120))
    predictions_b = np.where(rng.random(120) < 0.6, labels, rng.integers(0, 4, 120))
    confidence = rng.random(120).astype(np.float32)
    steps = np.linspace(0.3, float(np.mean(predictions_a == labels)), 9) if stepwise else None
    return summarise_predictions(
        labels,
        predictions_a,
        predictions_b,
        confidence,
        confidence[::-1].copy(),
        CLASSES,
        name_a="crmn-x",
        name_b="resnet-x",
        dataset="toy",
        stepwise_accuracy_a=steps,
    )


def test_per_class_bars_are_each_models_accuracy_on_the_images_of_that_class():
    cmp = planted_comparison()
    fig = plot_per_class_accuracy(cmp)
    bars = [trace for trace in fig.data if isinstance(trace, go.Bar)]
    assert len(bars) == 2 and list(bars[0].x) == CLASSES
    for trace, predictions, overall in (
        (bars[0], cmp.predictions_a, cmp.accuracy_a),
        (bars[1], cmp.predictions_b, cmp.accuracy_b),
    ):
        expected = [
            100 * np.mean(predictions[cmp.labels == k] == k) if np.any(cmp.labels == k) else np.nan
            for k in range(len(CLASSES))
        ]
        np.testing.assert_allclose(np.asarray(trace.y, dtype=float), expected)
        assert f"{100 * overall:.1f}%" in trace.name  # the overall accuracy is in the legend
    assert fig.layout.barmode == "group"
    assert fig.layout.meta["count"] == 120 and fig.layout.meta["name_a"] == "crmn-x"
    assert fig.layout.meta["per_class_n"][3] == 0
    assert figure_data(fig)


def test_the_agreement_matrix_counts_a_row_per_prediction_of_a_and_a_column_per_prediction_of_b():
    cmp = planted_comparison()
    fig = plot_agreement_matrix(cmp)
    heatmap = fig.data[0]
    expected = np.zeros((4, 4), dtype=int)
    for a, b in zip(cmp.predictions_a, cmp.predictions_b):
        expected[a, b] += 1
    np.testing.assert_array_equal(np.asarray(heatmap.z), expected)
    assert list(heatmap.y) == CLASSES and list(heatmap.x) == CLASSES
    agreement = np.trace(expected) / expected.sum()
    assert f"agreement {100 * agreement:.1f}%" in fig.layout.annotations[0].text
    assert fig.layout.meta["agreement"] == pytest.approx(agreement)
    assert "crmn-x" in fig.layout.yaxis.title.text and "resnet-x" in fig.layout.xaxis.title.text


def test_the_correctness_table_holds_the_discordant_counts_and_the_mcnemar_p():
    cmp = planted_comparison()
    fig = plot_correctness(cmp)
    right_a, right_b = cmp.predictions_a == cmp.labels, cmp.predictions_b == cmp.labels
    np.testing.assert_array_equal(
        np.asarray(fig.data[0].z),
        [
            [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
            [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
        ],
    )
    assert f"McNemar p = {cmp.mcnemar_p:.3g}" in fig.layout.annotations[0].text
    assert fig.layout.meta["mcnemar_p"] == pytest.approx(cmp.mcnemar_p)


def test_the_stepwise_accuracy_ends_on_the_models_own_accuracy_line():
    cmp = planted_comparison()
    fig = plot_stepwise_accuracy(cmp)
    readout = fig.data[0]
    np.testing.assert_allclose(readout.y, 100 * cmp.stepwise_accuracy_a)
    own_line = next(
        trace for trace in fig.data if trace.name.startswith("crmn-x (") and trace.line.dash == "dash"
    )
    assert own_line.y[0] == pytest.approx(readout.y[-1])
    assert fig.layout.xaxis.ticktext[0] == "block 0"
    with pytest.raises(ValueError, match="read-out"):
        plot_stepwise_accuracy(planted_comparison(stepwise=False))
