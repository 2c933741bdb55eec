"""View of the linear probes: what the backbone holds at each block beside what the memory holds.

The probes are computed beforehand (:func:`crmn_viz.analysis.probes.linear_probes`, a pass over a
training subset and the test images); the view never runs the network, so the Streamlit page, the
Gradio demo and the CLI show the same figure from the same numbers.
"""

from __future__ import annotations

from typing import Any

from crmn_viz.analysis.probes import ProbeResult
from crmn_viz.figures.probes import FEATURE_LABELS, plot_probes
from crmn_viz.models.base import TracedModel
from crmn_viz.views.shown import Shown, shown

__all__ = ["probes_markdown", "probes_view"]


def probes_view(
    model: TracedModel,
    result: ProbeResult,
    *,
    readout_accuracy: Any = None,
    readout_label: str = "CRMN readout",
) -> Shown:
    """The probe accuracy of every block, with its intervals and the chance level.

    Args:
        model: the model the probes were computed for (not run; named in the caption).
        result: its :class:`~crmn_viz.analysis.probes.ProbeResult`.
        readout_accuracy: optional [T] accuracy per step of another read-out on the same test
            images (the comparison page passes the CRMN's step-wise read-out beside a ResNet's
            block probes).
        readout_label: legend text of that read-out.

    Returns:
        The :class:`Shown` figure, named ``"linear_probes"``.
    """
    figure = plot_probes(result, readout_accuracy, readout_label)
    features = " and ".join(
        FEATURE_LABELS.get(name, name).removeprefix("probe on ") for name in result.feature_names
    )
    caption = (
        f"Linear probes of {model.arch}: test accuracy after each residual block (numbered from 1) of a "
        f"logistic-regression classifier on the {features}, trained on {result.train_images} training "
        f"images and scored on {result.test_images} test images; bands are bootstrap 95% intervals, the "
        f"dashed line is chance ({result.chance:.2f}: {result.chance_rule})."
    )
    settings: dict[str, Any] = {
        "train_images": result.train_images,
        "test_images": result.test_images,
        "regularisation": dict(result.regularisation),
        "regularisation_grid": list(result.regularisation_grid),
        "pool": result.pool,
        "seed": result.seed,
        "max_iterations": result.max_iterations,
        "chance_rule": result.chance_rule,
    }
    if readout_accuracy is not None:
        settings["readout_label"] = readout_label
    return shown("linear_probes", figure, [], caption, **settings)


def probes_markdown(result: ProbeResult) -> str:
    """The probes as Markdown: one row per block, each feature's accuracy with its 95% interval."""

    def cell(name: str, step: int) -> str:
        low, high = result.accuracy_ci[name][step]
        return f"{100 * result.accuracy[name][step]:.1f}% ({100 * low:.1f}-{100 * high:.1f})"

    names = list(result.feature_names)
    header = " | ".join(_feature_text(name) for name in names)
    lines = [
        f"| block | {header} |",
        "|---|" + "---|" * len(names),
    ]
    for step in range(result.steps):
        lines.append(f"| {step + 1} | " + " | ".join(cell(name, step) for name in names) + " |")
    penalties = ", ".join(f"{name} {value:g}" for name, value in result.regularisation.items())
    lines += [
        "",
        f"Chance: {100 * result.chance:.1f}% ({result.chance_rule}). {result.train_images} training and "
        f"{result.test_images} test images; L2 strength chosen on a held-out 20% of the training "
        f"images: {penalties}. Intervals: percentile bootstrap over the test images.",
    ]
    return "\n".join(lines)


def _feature_text(name: str) -> str:
    """What a probe reads, e.g. "pooled block output"."""
    return FEATURE_LABELS.get(name, name).removeprefix("probe on ")
