"""Views of two classifiers compared: the figures with their settings, the Markdown, the disagreement rows."""

from __future__ import annotations

import numpy as np

from crmn_viz.views.comparison import comparison_markdown, comparison_views, disagreement_rows
from tests.figures.test_comparison_figures import CLASSES, planted_comparison


def test_the_views_show_every_figure_with_both_checkpoints_the_data_set_and_n():
    cmp = planted_comparison()
    views = comparison_views(cmp)
    assert [view.name.split("_crmn-x")[0] for view in views] == [
        "per_class_accuracy",
        "agreement_matrix",
        "correctness",
        "stepwise_accuracy",
    ]
    for view in views:
        assert view.settings["checkpoint_a"] == "crmn-x" and view.settings["checkpoint_b"] == "resnet-x"
        assert view.settings["dataset"] == "toy" and view.settings["image_count"] == 120
        assert view.images == ()
    # no step-wise read-out in the comparison: no such figure
    assert len(comparison_views(planted_comparison(stepwise=False))) == 3


def test_the_markdown_gives_the_accuracies_the_interval_the_p_value_and_a_row_per_class():
    cmp = planted_comparison()
    text = comparison_markdown(cmp)
    low, high = cmp.accuracy_difference_ci
    assert f"| crmn-x | {100 * cmp.accuracy_a:.1f}% |" in text
    assert f"| resnet-x | {100 * cmp.accuracy_b:.1f}% |" in text
    assert f"{100 * low:+.2f} to {100 * high:+.2f}" in text
    assert f"p = {cmp.mcnemar_p:.3g}" in text
    for name in CLASSES:
        assert f"| {name} |" in text
    assert "| cat | 0 | - | - |" in text  # the class without images


def test_disagreement_rows_name_the_image_the_truth_and_both_predictions():
    cmp = planted_comparison()
    rows = disagreement_rows(cmp, "b_right", limit=5)
    right_b_only = np.flatnonzero((cmp.predictions_b == cmp.labels) & (cmp.predictions_a != cmp.labels))
    assert len(rows) == min(5, len(right_b_only))
    for row in rows:
        index = row["index"]
        assert row["image"] == f"image {index}"
        assert row["label"] == CLASSES[cmp.labels[index]] == row["prediction_b"]
        assert row["prediction_a"] == CLASSES[cmp.predictions_a[index]] != row["label"]
        assert row["confidence_a"] == float(cmp.confidence_a[index])
        assert row["kind"] == "b_right"
    assert len(disagreement_rows(cmp, "any", limit=None)) == int(
        np.sum(cmp.predictions_a != cmp.predictions_b)
    )
