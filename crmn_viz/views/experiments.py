"""Views of causal experiments on the memory: one image intact and intervened, step attribution,
and the effect of every experiment over test images.

Each function asks a :class:`~crmn_viz.views.compute.Compute` for the results and returns the
:class:`Shown` figure; which experiments a model offers comes from its capabilities
(:func:`crmn_viz.analysis.experiments.experiment_families`).
"""

from __future__ import annotations

from collections.abc import Sequence

from crmn_viz.analysis.experiments import FAMILY_TITLES, DatasetEffect, ExperimentSpec, experiment_families
from crmn_viz.figures.experiments import (
    plot_dataset_effect,
    plot_experiment_heatmaps,
    plot_experiment_readout,
    plot_step_attribution,
)
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute, TargetSpec
from crmn_viz.views.shown import Shown, shown

__all__ = [
    "FAMILY_TITLES",
    "effect_markdown",
    "experiment_dataset_effect",
    "experiment_families",
    "experiment_heatmaps",
    "experiment_readout",
    "experiment_step_attribution",
]


def _settings(spec: ExperimentSpec) -> dict[str, object]:
    return {
        "experiment": spec.family,
        "step": spec.step,
        "units": "all" if spec.units is None else list(spec.units),
        "value": spec.value,
        "part": spec.part,
    }


def _images(images: Sequence[SelectedImage], index: int, source: SelectedImage | None) -> list[SelectedImage]:
    return [images[index]] + ([] if source is None else [source])


def experiment_readout(
    model: TracedModel,
    images: Sequence[SelectedImage],
    index: int,
    spec: ExperimentSpec,
    source: SelectedImage | None,
    compute: Compute,
) -> tuple[str, Shown | None]:
    """The prediction intact and intervened, in words, and (step-wise models) after every block.

    Returns:
        ``"intact: cat 91% -> intervened: dog 55%"`` (keypoints: the mean shift) and the per-step
        figure, or None for models without a step-wise readout.
    """
    run = compute.experiment(model, [images[index]], spec, source)
    title = run.experiment.title
    if model.task == "classification":
        before, after = run.intact.softmax(-1)[0], run.intervened.softmax(-1)[0]
        k_before, k_after = int(before.argmax()), int(after.argmax())
        names = run.class_names
        text = (
            f"{title}: intact **{names[k_before]}** {100 * float(before[k_before]):.1f}% → "
            f"intervened **{names[k_after]}** {100 * float(after[k_after]):.1f}% "
            f"(intact class now {100 * float(after[k_before]):.1f}%)"
        )
    else:
        shift = float((run.intervened - run.intact).norm(dim=-1).mean())
        text = f"{title}: the keypoints move by {100 * shift:.2f}% of the crop side on average"
    if run.intact_steps is None:
        return text, None
    figure = plot_experiment_readout(run.intact_steps, run.intervened_steps, run.class_names)
    name = f"experiment_{run.experiment.key}_readout_{images[index].stem}"
    return text, shown(name, figure, _images(images, index, source), **_settings(spec))


def experiment_heatmaps(
    model: TracedModel,
    images: Sequence[SelectedImage],
    index: int,
    spec: ExperimentSpec,
    source: SelectedImage | None,
    quantity: str,
    units: Sequence[int] | None,
    compute: Compute,
) -> Shown:
    """One LSTM quantity of the image intact, intervened and their difference (models with memory)."""
    run = compute.experiment(model, [images[index]], spec, source)
    figure = plot_experiment_heatmaps(run.intact_trace, run.intervened_trace, quantity, 0, units)
    name = f"experiment_{run.experiment.key}_{quantity}_{images[index].stem}"
    settings = {
        **_settings(spec),
        "quantity": quantity,
        "shown_units": "all" if units is None else list(units),
    }
    return shown(name, figure, _images(images, index, source), **settings)


def experiment_step_attribution(
    model: TracedModel, image: SelectedImage, target: TargetSpec, n_steps: int, compute: Compute
) -> Shown:
    """Integrated gradients of ``target`` per block: the LSTM input x_l and the block output."""
    result = compute.step_attribution(model, image.png, target, n_steps)
    caption = f"Completeness gap per block output: max {max(abs(g) for g in result.blocks_gap):.2g}"
    if result.step_inputs_gap is not None:
        caption = f"Completeness gap of the x_l bars: {result.step_inputs_gap:.2g}. " + caption
    return shown(
        f"step_attribution_{image.stem}",
        plot_step_attribution(result),
        [image],
        caption,
        target=list(target),
        n_steps=n_steps,
    )


def experiment_dataset_effect(
    model: TracedModel, dataset: str, count: int, compute: Compute
) -> tuple[DatasetEffect, Shown]:
    """Every standard experiment over ``count`` test images spread over the test split: the table
    (accuracy or NME with bootstrap 95% intervals, per class) and its chart."""
    effect = compute.dataset_effect(model, dataset, count)
    return effect, shown(
        f"dataset_effect_{dataset}_{count}",
        plot_dataset_effect(effect),
        [],
        f"{effect.intact.images} {dataset} test images, {effect.resamples} bootstrap resamples",
        dataset=dataset,
        test_images=count,
    )


def effect_markdown(effect: DatasetEffect, per_class: bool = False) -> str:
    """The table ``crmn-viz ablate`` prints: one row per experiment (and per class when asked)."""
    percent = 100.0
    name = "accuracy" if effect.metric == "accuracy" else "NME"
    lines = [
        f"| experiment | {name} | 95% CI | change (paired 95% CI) | images |",
        "|---|---|---|---|---|",
    ]
    for row in effect.rows:
        low, high = percent * row.change_low, percent * row.change_high
        change = (
            "" if row.experiment == "intact" else f"{percent * row.change:+.2f} ({low:+.2f} to {high:+.2f})"
        )
        lines.append(
            f"| {row.title} | {percent * row.value:.2f}% "
            f"| {percent * row.ci_low:.2f}-{percent * row.ci_high:.2f} | {change} | {row.images} |"
        )
    if per_class and effect.intact.per_class:
        classes = list(effect.intact.per_class)
        lines += ["", "| experiment | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        for row in effect.rows:
            cells = [f"{percent * row.per_class[c][0]:.1f}" if c in row.per_class else "-" for c in classes]
            lines.append(f"| {row.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
