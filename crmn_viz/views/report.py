"""The "figures for a paper" workflow: every view that applies to a model, for a set of images.

:func:`report_figures` asks the views (the same functions the Streamlit pages and the Gradio
demo call) for every figure the model's capabilities allow, with default settings;
:func:`write_report` exports them all in one browser session, each with its data
(:func:`crmn_viz.figures.figure_data`) and provenance beside and inside it.
``crmn-viz analyze CHECKPOINT IMAGES... --out DIR`` is a thin wrapper around it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crmn_viz.analysis.experiments import ExperimentSpec
from crmn_viz.figures import FigureExport, export_figures, figure_data
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.memory_quantities import MEMORY_QUANTITIES
from crmn_viz.models.base import TracedModel
from crmn_viz.provenance import Provenance
from crmn_viz.views import attribution, experiments, faces, memory, prediction, streams, sweeps, trust
from crmn_viz.views.compute import Compute, DirectCompute, TargetSpec
from crmn_viz.views.shown import Shown

__all__ = [
    "ReportFigure",
    "experiment_figures",
    "figures_for_image",
    "report_figures",
    "trust_figures",
    "write_report",
]

MEMORY_HEATMAPS = tuple(
    name for name, quantity in MEMORY_QUANTITIES.items() if quantity.kind in ("gate", "cell")
)
"""The LSTM quantities a report draws as units x steps heatmaps: the three gates and the cell state."""
REPORT_ATTRIBUTIONS = ("integrated_gradients", "saliency")
"""The attribution methods a report draws."""
NOSE_TIP_Y = ("keypoint", 30, "y")
"""A keypoint model's attribution target in a report: the nose tip's y coordinate (iBUG point 30)."""


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: its ``name`` in the report and the view's :class:`Shown`."""

    name: str
    shown: Shown

    @property
    def figure(self):  # type: ignore[no-untyped-def]
        """The plotly figure."""
        return self.shown.figure


def safe_stem(text: str) -> str:
    """A file-name-safe stem (letters, digits, dash, underscore)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60] or "image"


def _network_input(model: TracedModel, image: SelectedImage, compute: Compute) -> SelectedImage:
    """What the network reads: a keypoint model's face crop (the whole photo when no face is found)."""
    if model.task != "keypoints":
        return image
    crop = compute.face_crop(model, image, None)
    if crop is None:
        return image
    return SelectedImage(
        f"{image.stem} face crop.png", crop, image.source, image.label, None, image.file_sha256
    )


def report_figures(
    model: TracedModel, image: SelectedImage, ig_steps: int = 32, compute: Compute | None = None
) -> list[ReportFigure]:
    """Every figure the model's capabilities allow for one image, from the views, default settings."""
    run = compute or DirectCompute()
    figures: list[ReportFigure] = []
    if model.task == "keypoints":
        found = faces.face_keypoints(model, image, None, run)
        box = None
        if isinstance(found, str):  # no face found: the whole photo is taken as the face
            box = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
            found = faces.face_keypoints(model, image, box, run, how="whole photo (no face found)")
        if not isinstance(found, str):
            figures.append(ReportFigure("keypoints", found[1]))
        if model.has_stepwise_readout:
            steps = faces.face_steps_view(model, image, 0, box, "grid", run)
            if steps is not None:
                figures.append(ReportFigure("stepwise_keypoints", steps))
    else:
        top_k = min(5, int(model.config.num_outputs))
        figures.append(
            ReportFigure("prediction", prediction.class_prediction(model, [image], 0, top_k, run)[1])
        )
        if model.has_stepwise_readout:
            figures.append(
                ReportFigure(
                    "stepwise_probabilities", prediction.stepwise_prediction(model, [image], 0, 5, run)
                )
            )
    seen = [_network_input(model, image, run)]
    if model.has_memory:
        for quantity in MEMORY_HEATMAPS:
            shown = memory.memory_gate_heatmap(model, seen, 0, quantity, None, run)
            figures.append(ReportFigure(f"lstm_{quantity}", shown))
        figures.append(
            ReportFigure("lstm_gate_trajectories", memory.memory_gate_trajectories(model, seen, 0, None, run))
        )
        figures.append(
            ReportFigure("lstm_memory_animation", memory.memory_animation(model, seen, 0, None, run))
        )
    if model.sweep_names:
        figures.append(ReportFigure("renet_patch_grid", sweeps.renet_patch_grid(model, seen[0], 0, run)))
        for layer in range(len(model.grid_sizes)):
            shown = sweeps.renet_sweeps(model, seen, 0, layer, "pca", None, run)
            figures.append(ReportFigure(f"renet_layer{layer}_sweeps", shown))
    if model.stream_names:
        last = len(model.blocks) - 1
        figures.append(ReportFigure("rir_stream_norms", streams.rir_stream_norms(model, seen, 0, run)))
        figures.append(
            ReportFigure("rir_stream_maps_last_block", streams.rir_stream_maps(model, seen, 0, last, run))
        )
    target = NOSE_TIP_Y if model.task == "keypoints" else ("predicted",)
    for method in REPORT_ATTRIBUTIONS:
        shown = attribution.attribution_view(
            model, image, method, target, _report_options(method, ig_steps), run
        )[1]
        figures.append(ReportFigure(f"attribution_{method}", shown))
    figures += trust_figures(model, image, target, ig_steps, run)
    figures += experiment_figures(model, seen[0], target, ig_steps, run)
    return figures


def trust_figures(
    model: TracedModel, image: SelectedImage, target: TargetSpec, ig_steps: int, compute: Compute
) -> list[ReportFigure]:
    """The checks of a report's attribution maps: the faithfulness curves of the integrated
    gradients map (beside a random map's) and the cascading randomisation test of both maps."""
    methods = [(method, _report_options(method, ig_steps)) for method in REPORT_ATTRIBUTIONS]
    _, _, curves = trust.faithfulness_view(model, image, *methods[0][:1], target, methods[0][1], 32, compute)
    _, sanity = trust.sanity_check_view(model, image, methods, target, "cascading", compute)
    return [
        ReportFigure("attribution_faithfulness", curves),
        ReportFigure("attribution_sanity_check", sanity),
    ]


def _report_options(method: str, ig_steps: int) -> tuple[tuple[str, int], ...]:
    return (("n_steps", ig_steps),) if method == "integrated_gradients" else ()


def experiment_figures(
    model: TracedModel, image: SelectedImage, target: TargetSpec, ig_steps: int, compute: Compute
) -> list[ReportFigure]:
    """The memory experiments of a report: the readout with the memory off, the cell state with the
    middle block's write skipped (models with memory), and the step attribution (every model)."""
    figures: list[ReportFigure] = []
    if "memory_off" in experiments.experiment_families(model):
        off = ExperimentSpec("memory_off")
        _, readout = experiments.experiment_readout(model, [image], 0, off, None, compute)
        if readout is not None:
            figures.append(ReportFigure("experiment_memory_off_readout", readout))
    if "skip_block" in experiments.experiment_families(model):
        middle = model.intervention_steps(model.memory_input_name) // 2
        skip = ExperimentSpec("skip_block", middle)
        shown = experiments.experiment_heatmaps(model, [image], 0, skip, None, "cell", None, compute)
        figures.append(ReportFigure(f"experiment_skip_block_{middle}_cell", shown))
    if model.gradcam_layers:
        shown = experiments.experiment_step_attribution(model, image, target, ig_steps, compute)
        figures.append(ReportFigure("experiment_step_attribution", shown))
    return figures


def figures_for_image(model: TracedModel, image: SelectedImage, ig_steps: int = 32) -> dict[str, object]:
    """Every figure that applies to ``model`` for one image: report name -> plotly figure."""
    return {item.name: item.figure for item in report_figures(model, image, ig_steps)}


def write_report(
    model: TracedModel,
    images: Sequence[SelectedImage],
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "svg", "png"),
    dpi: int = 300,
    ig_steps: int = 32,
) -> list[Path]:
    """Export every figure for every image (one browser session) with its data and provenance.

    Files are named ``<checkpoint>__<image>__<figure>.<ext>`` with ``.data.csv``/``.data.npz``
    and ``.meta.json`` sidecars; ``index.json`` lists them. Each figure's provenance (checkpoint,
    weights SHA-256, the image's name and file SHA-256, its settings, the time, the version)
    is written inside every file and into its ``.meta.json``. Returns every path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Provenance.of(model)
    prefix = safe_stem(checkpoint.checkpoint)
    items = []
    for image in images:
        stem = safe_stem(image.stem)
        for item in report_figures(model, image, ig_steps):
            provenance = item.shown.provenance(model).with_settings(figure=item.name, ig_steps=ig_steps)
            is_animation = bool(getattr(item.figure, "frames", None))
            items.append(
                FigureExport(
                    name=f"{prefix}__{stem}__{item.name}",
                    figure=item.figure,
                    data=figure_data(item.figure),  # exported at the width each figure was laid out for
                    metadata={"image": image.name, "figure": item.name, "animated": is_animation},
                    provenance=provenance,
                )
            )
    written = export_figures(items, out, formats=tuple(formats), dpi=dpi)
    animations = [item for item in items if item.metadata and item.metadata.get("animated")]
    if animations:  # an animation's static export shows frame 0; keep the playable HTML too
        written += export_figures(animations, out, formats=("html",), dpi=dpi)
    index = {
        "checkpoint": {key: value for key, value in checkpoint.to_dict().items() if key != "settings"},
        "figures": [str(p.name) for p in written],
        "images": [{"name": image.record.name, "sha256": image.record.sha256} for image in images],
    }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return [*written, out / "index.json"]
