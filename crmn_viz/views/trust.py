"""Views of "Can I trust this map?": the randomisation sanity check and the faithfulness curves of
the map on screen, and every method's faithfulness over many images.

Each function asks a :class:`~crmn_viz.views.compute.Compute` for the results and returns them
with the :class:`Shown` figure, so the Streamlit page, the Gradio demo and the CLI show the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmn_viz.figures.trust import plot_faithfulness_curves, plot_sanity_check, plot_trust_summary
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.attribution import METHOD_LABELS, explained_picture
from crmn_viz.views.compute import Compute, MethodOptions, TargetSpec
from crmn_viz.views.shown import Shown, shown

__all__ = [
    "TABLE_OPTIONS",
    "faithfulness_view",
    "sanity_check_view",
    "trust_markdown",
    "trust_table_view",
]

TABLE_OPTIONS: MethodOptions = (
    ("integrated_gradients", (("n_steps", 32),)),
    ("gradient_shap", (("n_samples", 16),)),
)
"""Options of the many-images table where they differ from the methods' defaults (fewer IG steps
and SHAP samples, so a table over a gallery stays affordable); recorded in the figure's settings."""


def sanity_check_view(
    model: TracedModel,
    image: SelectedImage,
    methods: Sequence[tuple[str, tuple[tuple[str, Any], ...]]],
    target: TargetSpec,
    mode: str,
    compute: Compute,
) -> tuple[list[Any], Shown]:
    """The model-parameter randomisation test (Adebayo et al. 2018) of each method's map.

    Args:
        methods: ``(method, options)`` pairs, e.g. the two maps on the Attributions page.
        mode: ``"cascading"`` (output layer first, then deeper and deeper) or ``"independent"``.

    Returns:
        One :class:`~crmn_viz.analysis.sanity_checks.SanityCheckResult` per method and the figure.
    """
    png, explained = explained_picture(model, image, compute)
    results = [compute.sanity_check(model, png, method, target, options, mode) for method, options in methods]
    figure = plot_sanity_check(results, METHOD_LABELS)
    caption = (
        f"{mode.capitalize()} randomisation of {results[0].target}: a map worth trusting changes when "
        "the model it explains is randomised (similarity falls towards 0)."
    )
    logit = [r for r in results if r.random_logit]
    if logit:
        caption += " Random-logit test (map of another class against this one): " + "; ".join(
            f"{METHOD_LABELS.get(r.method, r.method)} SSIM {r.random_logit['ssim']:.2f}"
            f" vs class {r.random_logit['other_class']}"
            for r in logit
        )
    return results, shown(
        f"sanity_check_{mode}_{image.stem}",
        figure,
        [image],
        caption,
        mode=mode,
        methods=[method for method, _ in methods],
        method_options={method: dict(options) for method, options in methods},
        target=str(results[0].target),
        target_spec=list(target),
        explained=explained,
    )


def faithfulness_view(
    model: TracedModel,
    image: SelectedImage,
    method: str,
    target: TargetSpec,
    options: tuple[tuple[str, Any], ...],
    steps: int,
    compute: Compute,
) -> tuple[list[Any], list[Any], Shown]:
    """Deletion, insertion and ROAD curves of one method's map, a random map's beside them.

    Returns:
        The map's :class:`~crmn_viz.analysis.faithfulness.FaithfulnessCurve` list, the random
        map's, and the figure.
    """
    png, explained = explained_picture(model, image, compute)
    curves, references = compute.faithfulness(model, png, method, target, options, steps)
    label = METHOD_LABELS.get(method, method)
    figure = plot_faithfulness_curves(curves, references, label)
    return (
        curves,
        references,
        shown(
            f"faithfulness_{method}_{image.stem}",
            figure,
            [image],
            f"{label}: the {curves[0].score_name} as pixels are removed (deletion, ROAD) or put back "
            "(insertion) in the map's order; the dashed line is a random map. Deletion and ROAD "
            "most-relevant-first (MoRF): lower area is better; insertion and ROAD least-relevant-first "
            "(LeRF): higher is better.",
            method=method,
            method_options=dict(options),
            steps=steps,
            target=curves[0].target,
            target_spec=list(target),
            explained=explained,
        ),
    )


def trust_table_view(
    model: TracedModel,
    images: Sequence[SelectedImage] | tuple[str, int],
    methods: Sequence[str],
    target: TargetSpec,
    steps: int,
    compute: Compute,
    options: MethodOptions = TABLE_OPTIONS,
) -> tuple[Any, Shown]:
    """Every method's deletion and insertion AUC over many images, with bootstrap intervals.

    Args:
        images: the images (e.g. the gallery), or ``(data set, count)`` test images.

    Returns:
        The :class:`~crmn_viz.analysis.attribution_trust.TrustTable` and its figure.
    """
    chosen = tuple((method, dict(options).get(method, ())) for method in methods)
    if isinstance(images, tuple) and len(images) == 2 and isinstance(images[0], str):
        table = compute.trust_table_test(model, images[0], int(images[1]), methods, target, chosen, steps)
        name, source = f"{images[0]}_{images[1]}_test", f"{images[1]} {images[0]} test images"
        shown_images = []
    else:
        shown_images = list(images)  # type: ignore[arg-type]
        # what the network reads: a keypoint model's face crop (see explained_picture)
        named = tuple((image.name, explained_picture(model, image, compute)[0]) for image in shown_images)
        table = compute.trust_table(model, named, methods, target, chosen, steps)
        name, source = f"{len(shown_images)}_images", f"{len(shown_images)} images"
    return table, shown(
        f"attribution_trust_{name}",
        plot_trust_summary(table, METHOD_LABELS),
        shown_images,
        f"{source}, {table.resamples} bootstrap resamples. {table.describe(METHOD_LABELS)}",
        methods=list(methods),
        method_options={method: dict(options) for method, options in chosen},
        steps=steps,
        target_spec=list(target),
        images_source=source,
    )


def trust_markdown(table: Any) -> str:
    """The many-images table as Markdown: one row per method, means with 95% intervals."""

    def cell(interval: tuple[float, float, float] | None) -> str:
        if interval is None:
            return "-"
        mean, low, high = interval
        return f"{mean:.3f} ({low:.3f}-{high:.3f})"

    randomised = all(summary.randomisation_similarity is not None for summary in table.summaries)
    lines = [
        "| method | deletion AUC ↓ | random | insertion AUC ↑ | random | insertion − deletion | "
        "beats random | images |" + (" similarity after full randomisation ↓ |" if randomised else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if randomised else ""),
    ]
    for summary in table.summaries:
        is_best = summary.method == table.most_faithful and len(table.summaries) > 1
        best = " **(most faithful)**" if is_best else ""
        lines.append(
            f"| {METHOD_LABELS.get(summary.method, summary.method)}{best} | {cell(summary.deletion_auc)} "
            f"| {cell(summary.random_deletion_auc)} | {cell(summary.insertion_auc)} "
            f"| {cell(summary.random_insertion_auc)} | {cell(summary.faithfulness)} "
            f"| {'yes' if summary.beats_random else 'no'} | {summary.images} |"
            + (f" {cell(summary.randomisation_similarity)} |" if randomised else "")
        )
    return "\n".join(lines)
