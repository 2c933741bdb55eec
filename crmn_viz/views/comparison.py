"""Views of two classifiers compared on the same test images (the CRMN beside its own ResNet).

The comparison comes in already computed (:func:`crmn_viz.analysis.comparison.compare_models`
or :func:`~crmn_viz.analysis.comparison.test_set_comparison`); these functions only arrange it,
so the Streamlit page, the Gradio demo and ``crmn-viz compare`` show the same figures, tables
and rows.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from crmn_viz.figures.comparison import (
    plot_agreement_matrix,
    plot_correctness,
    plot_per_class_accuracy,
    plot_stepwise_accuracy,
)
from crmn_viz.views.shown import Shown, shown

if TYPE_CHECKING:
    from crmn_viz.analysis.comparison import ModelComparison

__all__ = ["comparison_markdown", "comparison_views", "disagreement_rows"]


def _settings(cmp: ModelComparison) -> dict[str, Any]:
    """What shaped every comparison figure: both checkpoints, the data set, the images."""
    return {
        "checkpoint_a": cmp.name_a,
        "checkpoint_b": cmp.name_b,
        "dataset": cmp.dataset,
        "image_count": int(cmp.count),
        "bootstrap_resamples": int(cmp.resamples),
        "bootstrap_seed": int(cmp.seed),
    }


def _stem(cmp: ModelComparison) -> str:
    return f"{cmp.name_a}_vs_{cmp.name_b}_{cmp.dataset or 'images'}_{cmp.count}"


def comparison_views(cmp: ModelComparison) -> list[Shown]:
    """The comparison's figures: per-class accuracy, the agreement matrix, the right/wrong table,
    and the step-wise read-out's accuracy when a model has one.

    Each :class:`Shown` carries the settings ``checkpoint_a``, ``checkpoint_b``, ``dataset``,
    ``image_count`` (N) and the bootstrap's; it shows no single image (``images`` is empty).
    """
    settings = _settings(cmp)
    stem = _stem(cmp)
    low, high = cmp.accuracy_difference_ci
    only_a, only_b = cmp.discordant
    views = [
        shown(
            f"per_class_accuracy_{stem}",
            plot_per_class_accuracy(cmp),
            [],
            f"Accuracy per class of {cmp.name_a} and {cmp.name_b} on the same {cmp.count} {cmp.dataset} "
            "images; bars: Wilson 95% intervals.",
            **settings,
        ),
        shown(
            f"agreement_matrix_{stem}",
            plot_agreement_matrix(cmp),
            [],
            f"Rows: {cmp.name_a}'s prediction; columns: {cmp.name_b}'s. The two agree on "
            f"{100 * cmp.agreement:.1f}% of the images (the diagonal).",
            **settings,
        ),
        shown(
            f"correctness_{stem}",
            plot_correctness(cmp),
            [],
            f"Only {cmp.name_a} right on {only_a} images, only {cmp.name_b} right on {only_b}: accuracy "
            f"difference {100 * cmp.accuracy_difference:+.1f} points (paired bootstrap 95% interval "
            f"{100 * low:+.1f} to {100 * high:+.1f}), exact McNemar p = {cmp.mcnemar_p:.3g}.",
            **settings,
        ),
    ]
    if cmp.stepwise_accuracy_a is not None or cmp.stepwise_accuracy_b is not None:
        views.append(
            shown(
                f"stepwise_accuracy_{stem}",
                plot_stepwise_accuracy(cmp),
                [],
                "Accuracy of the prediction decoded from the memory after every block (the output "
                "layer applied to h_l); the dashed lines are the models' own accuracies.",
                **settings,
            )
        )
    return views


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}%"


def comparison_markdown(cmp: ModelComparison) -> str:
    """The comparison as Markdown: accuracies with the difference's interval and the McNemar p,
    then one row per class."""
    low, high = cmp.accuracy_difference_ci
    only_a, only_b = cmp.discordant
    lines = [
        f"{cmp.count} {cmp.dataset} images".strip(),
        "",
        "| model | accuracy | only this one right |",
        "|---|---|---|",
        f"| {cmp.name_a} | {_cell(cmp.accuracy_a)} | {only_a} |",
        f"| {cmp.name_b} | {_cell(cmp.accuracy_b)} | {only_b} |",
        "",
        f"Difference A − B: {100 * cmp.accuracy_difference:+.2f} points (paired bootstrap 95% interval "
        f"{100 * low:+.2f} to {100 * high:+.2f}, {cmp.resamples} resamples); exact McNemar "
        f"p = {cmp.mcnemar_p:.3g}. Agreement: {100 * cmp.agreement:.1f}% of the images.",
        "",
        f"| class | images | {cmp.name_a} | {cmp.name_b} |",
        "|---|---|---|---|",
    ]
    for row in cmp.per_class:
        lines.append(
            f"| {row['class']} | {row['n']} | {_cell(row['accuracy_a'])} | {_cell(row['accuracy_b'])} |"
        )
    return "\n".join(lines)


def disagreement_rows(
    cmp: ModelComparison, kind: str = "any", limit: int | None = 50
) -> list[dict[str, Any]]:
    """Rows for a browser of the images on which the two models disagree.

    Args:
        kind: ``"any"``, ``"a_right"``, ``"b_right"`` or ``"both_wrong"``
            (:meth:`~crmn_viz.analysis.comparison.ModelComparison.disagreements`).
        limit: at most this many rows (None: all).

    Returns:
        ``{"index", "image", "label", "prediction_a", "confidence_a", "prediction_b",
        "confidence_b", "kind"}`` per image (class names; confidences as probabilities), the most
        differently sure first.
    """
    found = cmp.disagreements(kind)
    if limit is not None:
        found = found[: max(0, int(limit))]
    return [
        {
            "index": item.index,
            "image": item.image,
            "label": item.label_name,
            "prediction_a": item.prediction_name_a,
            "confidence_a": item.confidence_a,
            "prediction_b": item.prediction_name_b,
            "confidence_b": item.confidence_b,
            "kind": item.kind,
        }
        for item in found
    ]
