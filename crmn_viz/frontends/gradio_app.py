"""Gradio front end: a light demo over the same core and figures as the Streamlit app.

Run with ``python -m crmn_viz.frontends.gradio_app`` or ``crmn-viz gradio``. Every handler is a
plain function calling the views (``crmn_viz.views``) and their
:class:`~crmn_viz.views.compute.DirectCompute`; each event has an ``api_name`` so
``gradio_client`` can call ``classify``, ``keypoints``, ``attribute``, ``blocks``,
``sweep_gates``, ``selectivity``, ``exemplars``, ``compare`` and the others programmatically.
Bad inputs (and a missing data set) raise ``gr.Error`` with the core's readable message.

The population tabs take steps counted from 0 (the trace's index, as ``crmn-viz exemplars
--step``); their dropdowns label them from 1, as the figures do.

Image inputs are :class:`UploadedImage`: Gradio's image widget without Gradio's own
decoding, so the uploaded bytes reach :func:`crmn_viz.inputs.uploads.decode_image_uploads`
untouched and a bad file gets the same message as in the Streamlit app.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import os
import tempfile
import urllib.parse
from abc import ABCMeta
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
from gradio.component_meta import ComponentMeta
from gradio.data_classes import ImageData
from PIL import Image

from crmn_viz import devices
from crmn_viz.analysis import ATTRIBUTION_METHODS
from crmn_viz.analysis.comparison import zoo_pairs
from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.analysis.population import PopulationQuantity, population_quantities
from crmn_viz.analysis.training_logs import TrainingLogError
from crmn_viz.checkpoints import CheckpointError, list_checkpoints, load
from crmn_viz.data import DATA_DIR_ENV_VAR, DatasetNotFoundError
from crmn_viz.figures import FigureExportError, browser_available, figure_data
from crmn_viz.figures.files import FigureItem, export_bundle, for_screen, safe_figure_name
from crmn_viz.figures.memory import LSTM_QUANTITY_LABELS
from crmn_viz.figures.population import quantity_label
from crmn_viz.figures.renet import SWEEP_GATE_LABELS
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.inputs.uploads import UPLOAD_IMAGE_LIMITS, decode_image_uploads
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel
from crmn_viz.views import attribution, experiments, faces, memory, prediction, report, sweeps, trust
from crmn_viz.views.applicability import ModelNeed, suggest_checkpoints
from crmn_viz.views.attribution import METHOD_LABELS
from crmn_viz.views.blocks import block_channels_view
from crmn_viz.views.comparison import comparison_markdown, comparison_views, disagreement_rows
from crmn_viz.views.compute import DirectCompute
from crmn_viz.views.keypoint_report import keypoint_zoo_rows
from crmn_viz.views.population import selectivity_markdown, selectivity_view
from crmn_viz.views.shown import Shown
from crmn_viz.views.training_curves import training_curves_view

__all__ = ["UploadedImage", "build_demo", "main"]

PLOT_WIDTH = 640
"""Pixels: the narrowest a figure is drawn in the demo (the builders draw at print size)."""

MAX_READ_BYTES = max(UPLOAD_IMAGE_LIMITS.max_bytes, LIMITS.max_image_bytes) + 1
"""Most bytes read from one upload: Gradio's own upload cap (``max_file_size`` in :func:`main`)
plus one, so the image checks can tell the real size of anything Gradio let through."""

Upload = tuple[str, bytes]
"""An uploaded image as the handlers receive it: (its file name, without any folder; its bytes)."""


class _StublessComponentMeta(ComponentMeta):
    """Gradio's component metaclass without its stub writer.

    ``ComponentMeta`` writes a ``.pyi`` copy of the defining module beside it for every component
    class (to type its event listeners), which type checkers would read instead of this file. A
    subclass that defines no ``__init__`` and no ``EVENTS`` needs nothing else from it.
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> type:
        if "__init__" in attrs or "EVENTS" in attrs:
            raise TypeError(f"{name}: a component with __init__ or EVENTS needs Gradio's ComponentMeta")
        return ABCMeta.__new__(mcs, name, bases, attrs)


class UploadedImage(gr.Image, metaclass=_StublessComponentMeta):
    """``gr.Image`` (same widget, sources, preview and API) whose value is the raw upload.

    ``gr.Image`` decodes every upload with PIL before the handler runs, so a bad file fails
    inside Gradio, with Gradio's error and a server path. This template component (drawn by
    the ``image`` front end, as Gradio's own ``gr.Sketchpad`` is drawn by ``imageeditor``)
    only reads the file's bytes; the handlers decode them with the app's checks. Being a
    class, it survives Gradio rebuilding a component from its arguments (``gr.update``, as
    ``gr.Examples`` does).
    """

    is_template = True

    def preprocess(self, payload: ImageData | None) -> Upload | None:
        """The uploaded file as ``(name, bytes)``, or None when nothing was sent."""
        if payload is None:
            return None
        if payload.path:
            return _read_upload(payload.path, payload.orig_name)
        if payload.url and payload.url.startswith("data:"):
            return _decode_data_url(payload.url, payload.orig_name)
        return None


def _read_upload(path: str | os.PathLike, name: str | None = None) -> Upload:
    """``(name, bytes)`` of a file, at most :data:`MAX_READ_BYTES` of them.

    The name is the browser's (``name``) or else the file's own; :func:`decode_image_uploads`
    keeps only its last component, so no folder of the server is ever shown.
    """
    try:
        with open(path, "rb") as stream:
            return name or Path(path).name, stream.read(MAX_READ_BYTES)
    except OSError:
        raise gr.Error(
            "The upload could not be read (it may have expired): please upload it again."
        ) from None


def _decode_data_url(url: str, name: str | None) -> Upload:
    """An image sent as a ``data:`` URL instead of an uploaded file (bounded like a file)."""
    header, _, body = url.partition(",")
    body = body[: 4 * (MAX_READ_BYTES // 3 + 1)]
    try:
        data = base64.b64decode(body) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(body)
    except (binascii.Error, ValueError):
        raise gr.Error("The image's data URL is not valid base64: upload the image as a file.") from None
    return name or "image", data


def zoo_names(needs: str | ModelNeed | None = None) -> list[str]:
    """Checkpoint names of the zoo; with ``needs`` (a page key of
    :data:`crmn_viz.views.applicability.VIEWS` or a predicate on a model's capabilities) only
    those whose model satisfies it."""
    return suggest_checkpoints(needs)


@functools.lru_cache(maxsize=16)
def cached_model(name: str) -> TracedModel:
    """Load a zoo checkpoint once per process, onto :func:`crmn_viz.devices.select_device`'s device
    (CUDA when present)."""
    return load(name)


def prepare_gpu() -> bool:
    """Get ready for Hugging Face ZeroGPU when the ``spaces`` package is there; says whether it is.

    ``spaces`` is imported before any model is placed (on ZeroGPU it patches PyTorch so models
    can go to ``cuda`` at start-up), then every zoo checkpoint is loaded once in this process,
    so the GPU workers that run the :func:`crmn_viz.devices.on_gpu` handlers start with them.
    """
    if devices.spaces_module() is None:
        return False
    for name in zoo_names():
        with contextlib.suppress(CheckpointError):  # said by the tab that asks for it
            cached_model(name)
    return True


def _model(name: str | None) -> TracedModel:
    if not name:
        raise gr.Error("No checkpoint is available for this tab: add one to checkpoints/.")
    if name not in zoo_names():  # an API caller may send any text: only zoo names are loaded
        raise gr.Error(f"{str(name)[:60]!r} is not a checkpoint of this app's zoo.")
    try:
        return cached_model(name)
    except (CheckpointError, devices.DeviceError) as err:
        raise gr.Error(str(err)) from None


def _image(source: Upload | bytes | str | os.PathLike | None) -> Image.Image:
    """The decoded picture of an upload (see :func:`_selected`)."""
    return _selected(source).image()


def _selected(source: Upload | bytes | str | os.PathLike | None) -> SelectedImage:
    """Decode an upload (or, when a handler is called directly, a file) with the app's checks.

    The result keeps the file's name and the SHA-256 of its bytes, for the figure's provenance.

    Raises:
        gr.Error: nothing sent, or the file's ``InvalidImageError`` message, which starts with
            the file's base name and never shows a server path.
    """
    if source is None:
        raise gr.Error("Please upload an image first.")
    if isinstance(source, tuple):
        name, data = source
    elif isinstance(source, (bytes, bytearray)):
        name, data = "image", bytes(source)
    else:
        name, data = _read_upload(source)
    result = decode_image_uploads([(name, data)], limits=UPLOAD_IMAGE_LIMITS)
    if result.errors:
        raise gr.Error(result.errors[0])
    return result.images[0]


RUN = DirectCompute()
"""The views' computations, run as asked (Gradio keeps no result cache; models are cached)."""


def _for_screen(figure: go.Figure) -> go.Figure:
    """The figure enlarged to at least :data:`PLOT_WIDTH` pixels, its pictures sent as PNG."""
    width = figure.layout.width or PLOT_WIDTH
    return for_screen(figure, max(1.4, PLOT_WIDTH / width))


def _classify(image: Any, checkpoint: str, top_k: int) -> tuple[dict[str, float], Shown | None, TracedModel]:
    model = _model(checkpoint)
    chosen = [_selected(image)]
    ranked, _ = prediction.class_prediction(model, chosen, 0, int(top_k), RUN)
    shown = (
        prediction.stepwise_prediction(model, chosen, 0, int(top_k), RUN)
        if model.has_stepwise_readout
        else None
    )
    return {label: float(p) for label, p in ranked}, shown, model


def classify_handler(
    image: Any, checkpoint: str, top_k: int = 5
) -> tuple[dict[str, float], go.Figure | None]:
    """Top-k class probabilities and, for a CRMN, the probability after every block."""
    ranked, shown, _ = _classify(image, checkpoint, top_k)
    return ranked, None if shown is None else _for_screen(shown.figure)


def _gates(image: Any, checkpoint: str, quantity: str) -> tuple[Shown, TracedModel]:
    model = _model(checkpoint)
    if not model.has_memory:
        raise gr.Error("Gate heatmaps need a CRMN checkpoint (the only model with an LSTM memory).")
    if quantity not in model.memory_quantities:
        raise gr.Error(f"Choose one of {', '.join(model.memory_quantities)}.")
    return memory.memory_gate_heatmap(model, [_selected(image)], 0, quantity, None, RUN), model


def gate_handler(image: Any, checkpoint: str, quantity: str) -> go.Figure:
    """Heatmap of one LSTM quantity (units x blocks) for the uploaded image."""
    return _for_screen(_gates(image, checkpoint, quantity)[0].figure)


EXPERIMENT_CHOICES = {
    "memory_off": ("Memory off (h_T = 0)", "memory_off", 1.0),
    "skip_block": ("Skip block l's write (x_l = 0)", "skip_block", 1.0),
    "cell_reset": ("Reset the cell at block l (c_l = 0)", "cell_reset", 1.0),
    "forget_1": ("Forget gates = 1 from block l", "forget_clamp", 1.0),
    "forget_0": ("Forget gates = 0 from block l", "forget_clamp", 0.0),
}
"""The Experiments tab's menu: key -> (label, experiment family, forget gate value)."""


def _experiment(
    image: Any, checkpoint: str, choice: str, step: float
) -> tuple[str, Shown | None, Shown, TracedModel]:
    model = _model(checkpoint)
    if not model.has_memory:
        raise gr.Error("Memory experiments need a CRMN checkpoint (the only model with an LSTM memory).")
    if choice not in EXPERIMENT_CHOICES:
        raise gr.Error(f"Choose one of {', '.join(EXPERIMENT_CHOICES)}.")
    steps = model.intervention_steps(model.memory_input_name)
    block = int(step)
    if not 0 <= block < steps:
        raise gr.Error(f"This CRMN has blocks 0..{steps - 1}.")
    _, family, value = EXPERIMENT_CHOICES[choice]
    spec = experiments.ExperimentSpec(family, None if family == "memory_off" else block, value=value)
    chosen = [_selected(image)]
    text, readout = experiments.experiment_readout(model, chosen, 0, spec, None, RUN)
    cells = experiments.experiment_heatmaps(model, chosen, 0, spec, None, "cell", None, RUN)
    return text, readout, cells, model


def experiment_handler(
    image: Any, checkpoint: str, choice: str, step: float = 0
) -> tuple[str, go.Figure | None, go.Figure]:
    """One memory experiment on the image: the prediction intact and intervened, after every
    block, and the cell state of both runs with their difference."""
    text, readout, cells, _ = _experiment(image, checkpoint, choice, step)
    return text, None if readout is None else _for_screen(readout.figure), _for_screen(cells.figure)


def experiment_files_handler(image: Any, checkpoint: str, choice: str, step: float = 0) -> str:
    """The experiment's per-block readout figure's files."""
    _, readout, cells, model = _experiment(image, checkpoint, choice, step)
    return _files(readout or cells, model)


def _sweeps(image: Any, checkpoint: str, layer: int, mode: str) -> tuple[Shown, TracedModel]:
    model = _model(checkpoint)
    if not model.sweep_names:
        raise gr.Error("Sweep maps need a ReNet checkpoint.")
    layer = int(layer)
    if not 0 <= layer < len(model.grid_sizes):
        raise gr.Error(f"This ReNet has layers 0..{len(model.grid_sizes) - 1}.")
    if mode not in ("pca", "channels"):
        raise gr.Error("Display must be 'pca' or 'channels'.")
    return sweeps.renet_sweeps(model, [_selected(image)], 0, layer, mode, None, RUN), model  # type: ignore[arg-type]


def sweeps_handler(image: Any, checkpoint: str, layer: int, mode: str) -> go.Figure:
    """The four sweep maps of one ReNet layer."""
    return _for_screen(_sweeps(image, checkpoint, layer, mode)[0].figure)


def _attribution(
    image: Any, checkpoint: str, method: str, target_class: float | None, steps: float
) -> tuple[Shown, dict[str, Any], TracedModel]:
    model = _model(checkpoint)
    if method not in ATTRIBUTION_METHODS:
        raise gr.Error(f"Choose one of {', '.join(ATTRIBUTION_METHODS)}.")
    options = (("n_steps", int(steps)),) if method == "integrated_gradients" else ()
    target = ("predicted",) if target_class is None or target_class < 0 else ("class", int(target_class))
    chosen = _selected(image)
    try:
        result, shown = attribution.attribution_view(model, chosen, method, target, options, RUN)
    except ValueError as err:
        raise gr.Error(str(err)) from None
    summary = {
        "method": METHOD_LABELS.get(result.method, result.method),
        "target": result.target,
        "target_value": float(result.target_value) if result.target_value is not None else None,
        "convergence_delta": None if result.convergence_delta is None else float(result.convergence_delta),
    }
    return shown, summary, model


def attribute_handler(
    image: Any, checkpoint: str, method: str, target_class: float | None = None, steps: float = 32
) -> tuple[go.Figure, dict[str, Any]]:
    """Attribution overlay for one method; the target defaults to the predicted class."""
    shown, summary, _ = _attribution(image, checkpoint, method, target_class, steps)
    return _for_screen(shown.figure), summary


def _attribution_check(
    image: Any, checkpoint: str, method: str, target_class: float | None, steps: float, mode: str
) -> tuple[Shown, Shown, dict[str, Any]]:
    model = _model(checkpoint)
    if method not in ATTRIBUTION_METHODS:
        raise gr.Error(f"Choose one of {', '.join(ATTRIBUTION_METHODS)}.")
    if mode not in ("cascading", "independent"):
        raise gr.Error("Randomisation must be 'cascading' or 'independent'.")
    options = (("n_steps", int(steps)),) if method == "integrated_gradients" else ()
    target = ("predicted",) if target_class is None or target_class < 0 else ("class", int(target_class))
    chosen = _selected(image)
    try:
        curves, references, curves_shown = trust.faithfulness_view(
            model, chosen, method, target, options, 32, RUN
        )
        (check,), sanity_shown = trust.sanity_check_view(
            model, chosen, [(method, options)], target, mode, RUN
        )
    except ValueError as err:
        raise gr.Error(str(err)) from None
    summary = {
        "method": METHOD_LABELS.get(method, method),
        "target": curves[0].target,
        "score": curves[0].score_name,
        "curves": [
            {
                "curve": f"{c.kind} ({c.order})",
                "auc": round(float(c.auc), 4),
                "random_auc": round(float(r.auc), 4),
            }
            for c, r in zip(curves, references)
        ],
        "randomisation": {
            "mode": mode,
            "stages": list(check.stages),
            "spearman": [round(float(v), 4) for v in check.spearman],
            "ssim": [round(float(v), 4) for v in check.ssim],
        },
        "random_logit": check.random_logit,
    }
    return curves_shown, sanity_shown, summary


def attribution_check_handler(
    image: Any,
    checkpoint: str,
    method: str,
    target_class: float | None = None,
    steps: float = 32,
    mode: str = "cascading",
) -> tuple[go.Figure, go.Figure, dict[str, Any]]:
    """Can this map be trusted? Its deletion, insertion and ROAD curves beside a random map's, and
    the model-parameter randomisation test (similarity per stage, the maps beneath)."""
    curves, sanity, summary = _attribution_check(image, checkpoint, method, target_class, steps, mode)
    return _for_screen(curves.figure), _for_screen(sanity.figure), summary


FACE_GROUP_HEADERS = ["landmarks", "points", "NME (%)"]
"""Columns of the face tab's table of errors by landmark group."""


def _face_index(face: float | str | None) -> int:
    """The 0-based index of a 1-based face number (None or "": the first face)."""
    if face is None or face == "":
        return 0
    try:
        number = float(face)
    except (TypeError, ValueError):
        raise gr.Error(f"The face number must be a whole number from 1, not {face!r}.") from None
    if not number.is_integer() or number < 1:
        raise gr.Error(f"The face number must be a whole number from 1, not {face!r}.")
    return int(number) - 1


def _keypoints(
    image: Any, checkpoint: str, face: float | str | None = 1
) -> tuple[Shown, list[FaceKeypoints], SelectedImage, int, TracedModel]:
    model = _model(checkpoint)
    if model.task != "keypoints":
        raise gr.Error("Face keypoints need a keypoint checkpoint (task = keypoints).")
    selected = faces.with_gallery_truth(_selected(image))  # a gallery face brings its true points
    index = _face_index(face)
    try:
        found = faces.face_keypoints(model, selected, None, RUN, face_index=index)
    except ValueError as err:  # a face number beyond the faces found
        raise gr.Error(f"{str(err)[0].upper()}{str(err)[1:]}.") from None
    if isinstance(found, str):
        raise gr.Error(found)
    detected, shown = found
    return shown, detected, selected, index, model


def keypoints_handler(
    image: Any, checkpoint: str, face: float | str | None = 1
) -> tuple[go.Figure, list[list[list[float]]], list[list[Any]], str, Any]:
    """68 facial keypoints for every detected face, drawn on the photo with the detector's boxes
    numbered and scored; for face number ``face`` (from 1) its crops, what found it, and (for a
    gallery face, whose ground truth is known) its error by landmark group.

    Returns:
        The figure, every face's points ([F][68][2] photo pixels), the group table's rows (empty
        without ground truth), a sentence on the chosen face and the face menu's update.
    """
    shown, detected, selected, index, _ = _keypoints(image, checkpoint, face)
    detector = faces.face_detector()
    chosen = detected[index]
    rows = faces.group_error_table(chosen.keypoints, selected.keypoints)
    note = faces.face_summary(chosen, detector)
    if rows is None:
        note += " No ground truth is known for this photo (the gallery's faces have it), so no error table."
    choices = [(faces.face_label(item, k + 1, detector), k + 1) for k, item in enumerate(detected)]
    return (
        _for_screen(shown.figure),
        [np.asarray(item.keypoints).round(2).tolist() for item in detected],
        [[row[name] for name in FACE_GROUP_HEADERS] for row in rows or []],
        note,
        gr.update(choices=choices, value=index + 1),
    )


def reset_face_choice(_image: Any) -> Any:
    """A new photo: the face menu goes back to face 1 (until the photo's faces are found)."""
    return gr.update(choices=[("face 1", 1)], value=1)


# --------------------------------------------------------------------------- populations


POPULATION_IMAGES = 1000
"""Test images a population pass covers by default in the demo (at most
``LIMITS.max_statistics_images``); each pass is cached on disk, so a second query answers at once."""

EXEMPLAR_ENDS = {"highest": False, "lowest": True}
"""The exemplars menu: which end of the unit's values -> ``lowest``."""


def population_names() -> list[str]:
    """Zoo checkpoints the population views apply to (blocks or a memory) whose card names a data set."""
    with_data = {entry["name"] for entry in list_checkpoints() if entry.get("dataset")}
    return [name for name in zoo_names("population") if name in with_data]


def _dataset_of(model: TracedModel) -> str:
    dataset = model.card.get("dataset")
    if not dataset:
        raise gr.Error("This checkpoint's card names no data set, so it has no test images to pass.")
    return str(dataset)


def _image_count(count: float | None) -> int:
    most = LIMITS.max_statistics_images
    if count is None or not 1 <= int(count) <= most:
        raise gr.Error(f"Choose between 1 and {most} test images.")
    return int(count)


@contextlib.contextmanager
def _dataset_errors() -> Iterator[None]:
    """The core's refusals as ``gr.Error``: a missing data set (without the server's folders), an
    unknown quantity, step or unit, a model a view does not apply to."""
    try:
        yield
    except DatasetNotFoundError as err:
        raise gr.Error(
            f"The {err.dataset_name} data set is not on this server, so its test images cannot be "
            f"passed (set {DATA_DIR_ENV_VAR} to a folder holding it and restart the demo)."
        ) from None
    except KeyError as err:
        raise gr.Error(str(err.args[0] if err.args else err)) from None
    except ValueError as err:
        raise gr.Error(str(err)) from None


@functools.lru_cache(maxsize=16)
def _quantities(name: str) -> dict[str, PopulationQuantity]:
    return population_quantities(cached_model(name))


def _population_quantities(checkpoint: str) -> dict[str, PopulationQuantity]:
    _model(checkpoint)  # a zoo name, loaded
    return _quantities(checkpoint)


def _quantity_choices(quantities: dict[str, PopulationQuantity]) -> list[tuple[str, str]]:
    return [(quantity_label(name), name) for name in quantities]


def _step_choices(quantity: PopulationQuantity | None) -> list[tuple[str, int]]:
    """People read steps from 1 (as the figures do); the value sent is the trace's index, from 0."""
    return [] if quantity is None else [(f"step {step + 1}", step) for step in range(quantity.steps)]


def population_choices_handler(checkpoint: str) -> tuple[Any, Any]:
    """The quantities the checkpoint records and the steps of the first (the hidden state when it
    has one), as updates of the two dropdowns."""
    quantities = _population_quantities(checkpoint)
    first = "hidden" if "hidden" in quantities else next(iter(quantities), None)
    steps = _step_choices(quantities.get(first)) if first else []
    return (
        gr.update(choices=_quantity_choices(quantities), value=first),
        gr.update(choices=steps, value=steps[-1][1] if steps else None),
    )


def population_steps_handler(checkpoint: str, quantity: str | None) -> Any:
    """The steps of one quantity (labelled from 1, valued from 0), the last chosen."""
    steps = _step_choices(_population_quantities(checkpoint).get(quantity or ""))
    return gr.update(choices=steps, value=steps[-1][1] if steps else None)


def _population_cell(checkpoint: str, quantity: str, step: float | None) -> tuple[TracedModel, str, int]:
    model = _model(checkpoint)
    quantities = _population_quantities(checkpoint)
    if quantity not in quantities:
        raise gr.Error(f"Choose one of {', '.join(quantities)}.")
    steps = quantities[quantity].steps
    if step is None or not 0 <= int(step) < steps:
        raise gr.Error(f"{quantity} has steps 0..{steps - 1} (counted from 0; the figure shows 1..{steps}).")
    return model, _dataset_of(model), int(step)


def _selectivity(
    checkpoint: str, count: float, quantity: str, step: float, ordering: str, bootstrap: int
) -> tuple[Shown, str, TracedModel]:
    model, dataset, index = _population_cell(checkpoint, quantity, step)
    if model.task != "classification":
        raise gr.Error(f"A {model.task} model has no classes, so no unit can be selective for one.")
    if ordering not in ("cluster", "selectivity"):
        raise gr.Error("Order the units by 'cluster' or 'selectivity'.")
    with _dataset_errors():
        table = RUN.population(model, dataset, _image_count(count))
        result, shown = selectivity_view(
            model, table, quantity, index, ordering=ordering, bootstrap=int(bootstrap)
        )
    text = f"{shown.caption}\n\n**Most selective units**\n\n{selectivity_markdown(result, 10)}"
    return shown, text, model


def selectivity_handler(
    checkpoint: str,
    count: float = POPULATION_IMAGES,
    quantity: str = "hidden",
    step: float = 0,
    ordering: str = "cluster",
    bootstrap: int = 1000,
) -> tuple[go.Figure, str]:
    """Units x classes heatmap of one quantity at one step (``step`` counted from 0) over ``count``
    test images, each unit's selectivity d' with bootstrap intervals, and the most selective units
    as Markdown."""
    shown, text, _ = _selectivity(checkpoint, count, quantity, step, ordering, bootstrap)
    return _for_screen(shown.figure), text


def selectivity_files_handler(
    checkpoint: str,
    count: float = POPULATION_IMAGES,
    quantity: str = "hidden",
    step: float = 0,
    ordering: str = "cluster",
) -> str:
    """The selectivity figure's files."""
    shown, _, model = _selectivity(checkpoint, count, quantity, step, ordering, 1000)
    return _files(shown, model)


def exemplars_handler(
    checkpoint: str,
    count: float = POPULATION_IMAGES,
    quantity: str = "hidden",
    step: float = 0,
    unit: float = 0,
    k: float = 9,
    end: str = "highest",
) -> list[tuple[Image.Image, str]]:
    """The ``k`` test images with the highest (or lowest) value of one unit at one step (counted
    from 0), captioned ``"<file name in the data set> = <value>"``, best first."""
    model, dataset, index = _population_cell(checkpoint, quantity, step)
    if end not in EXEMPLAR_ENDS:
        raise gr.Error("Show the 'highest' or the 'lowest' values.")
    if k is None or not 1 <= int(k) <= 64:
        raise gr.Error("Show between 1 and 64 images.")
    with _dataset_errors():
        found = RUN.exemplars(
            model, dataset, _image_count(count), quantity, index, int(unit or 0), int(k), EXEMPLAR_ENDS[end]
        )
        pictures = RUN.test_images(model, dataset, [item.image for item in found])
    return [(picture.image(), f"{item.image} = {item.value:.4g}") for picture, item in zip(pictures, found)]


# --------------------------------------------------------------------------- comparison


def pair_choices() -> list[tuple[str, str]]:
    """The zoo's matched pairs (:func:`crmn_viz.analysis.comparison.zoo_pairs`) as dropdown choices:
    (``"A vs B (what they share)"``, ``"A vs B"``)."""
    return [(f"{p.name_a} vs {p.name_b} ({p.label})", f"{p.name_a} vs {p.name_b}") for p in zoo_pairs()]


def _comparison_key(name: str, name_a: str) -> str:
    """A comparison figure's name without the pair and data set: ``"per_class_accuracy"``."""
    return name.split(f"_{name_a}_vs_")[0]


DISAGREEMENT_HEADERS = ["image", "label", "prediction A", "confidence A", "prediction B", "confidence B"]


def compare_handler(
    pair: str, count: float = POPULATION_IMAGES
) -> tuple[str, dict[str, go.Figure], Any, go.Figure | None, go.Figure | None, list[list[Any]]]:
    """A zoo pair (``"A vs B"``, one of :func:`pair_choices`) on ``count`` test images: the comparison
    as Markdown, its figures (by name, the picker, the first), both models' training curves (None
    without logs) and the images they disagree on, the most differently sure first."""
    pairs = {value: value.split(" vs ") for _, value in pair_choices()}
    if pair not in pairs:
        raise gr.Error("Choose one of the zoo's pairs.")
    name_a, name_b = pairs[pair]
    model_a, model_b = _model(name_a), _model(name_b)
    with _dataset_errors():
        result = RUN.comparison(model_a, model_b, name_b, _dataset_of(model_a), _image_count(count))
    figures = {
        _comparison_key(shown.name, result.name_a): _for_screen(shown.figure)
        for shown in comparison_views(result)
    }
    text = comparison_markdown(result)
    try:
        curves: go.Figure | None = _for_screen(training_curves_view([name_a, name_b]).figure)
    except (FileNotFoundError, TrainingLogError, ValueError) as err:
        curves = None
        text += f"\n\nNo training curves: {err}"
    rows = [
        [
            row["image"],
            row["label"],
            row["prediction_a"],
            round(row["confidence_a"], 3),
            row["prediction_b"],
            round(row["confidence_b"], 3),
        ]
        for row in disagreement_rows(result, "any", 50)
    ]
    first = next(iter(figures), None)
    return (
        text,
        figures,
        gr.update(choices=list(figures), value=first),
        figures.get(first or ""),
        curves,
        rows,
    )


# --------------------------------------------------------------------------- blocks and sweep gates


def _blocks(image: Any, checkpoint: str) -> tuple[Shown, TracedModel]:
    model = _model(checkpoint)
    if not model.gradcam_layers:
        raise gr.Error("Block channels need a model with residual blocks or layers (a CRMN, ResNet or RiR).")
    chosen = _selected(image)
    try:
        return block_channels_view(model, chosen, RUN), model
    except ValueError as err:
        raise gr.Error(str(err)) from None


def blocks_handler(image: Any, checkpoint: str) -> go.Figure:
    """Per block: the mean and the L2 norm of every channel of its output, and the output's norm."""
    return _for_screen(_blocks(image, checkpoint)[0].figure)


def blocks_files_handler(image: Any, checkpoint: str) -> str:
    """The block channel figure's files."""
    return _files(*_blocks(image, checkpoint))


def _sweep_gates(image: Any, checkpoint: str, layer: int, gate: str | None) -> tuple[Shown, TracedModel]:
    model = _model(checkpoint)
    if not model.sweep_names:
        raise gr.Error("Sweep gates need a ReNet checkpoint.")
    chosen = _selected(image)
    try:
        return sweeps.sweep_gates_view(model, chosen, int(layer), gate or None, RUN), model
    except ValueError as err:
        raise gr.Error(str(err)) from None


def sweep_gates_handler(image: Any, checkpoint: str, layer: int = 0, gate: str | None = None) -> go.Figure:
    """One gate of the four sweeps' RNNs of a ReNet layer (default: the first recorded gate)."""
    return _for_screen(_sweep_gates(image, checkpoint, layer, gate)[0].figure)


def _sweep_gate_choices(names: list[str]) -> list[tuple[str, str]]:
    """Every gate the zoo's ReNets record at layer 0, labelled (a ReNet without one refuses it)."""
    gates = dict.fromkeys(gate for name in names for gate in sweeps.renet_gate_names(cached_model(name)))
    return [(SWEEP_GATE_LABELS.get(gate, gate), gate) for gate in gates]


# --------------------------------------------------------------------------- downloads


def _files(shown: Shown, model: TracedModel) -> str:
    """A zip of a view's figure (PNG and PDF, or HTML without Chromium), its data and ``meta.json``.

    Every file is named after the checkpoint and carries the provenance (checkpoint, weights
    SHA-256, the image's name and file SHA-256, the settings, the time, the version). Returns
    the zip's path in a fresh private temporary folder (Gradio serves it from there).
    """
    provenance = shown.provenance(model)
    stem = safe_figure_name(f"{provenance.checkpoint}__{shown.name}")
    formats = ("png", "pdf") if browser_available() else ("html",)
    item = FigureItem(stem, shown.figure, figure_data(shown.figure), provenance)
    try:
        bundle = export_bundle([item], formats, keep_title=True)
    except FigureExportError as err:
        raise gr.Error(f"The figure could not be drawn: {err}") from None
    path = Path(tempfile.mkdtemp(prefix="crmn-viz-gradio-")) / f"{stem}.zip"
    path.write_bytes(bundle.data)
    return str(path)


def classify_files_handler(image: Any, checkpoint: str, top_k: int = 5) -> str:
    """The per-block readout figure's files (CRMN)."""
    _, shown, model = _classify(image, checkpoint, top_k)
    if shown is None:
        raise gr.Error("Only a CRMN has a figure here (its prediction after every block).")
    return _files(shown, model)


def gate_files_handler(image: Any, checkpoint: str, quantity: str) -> str:
    """The gate heatmap's files."""
    return _files(*_gates(image, checkpoint, quantity))


def sweeps_files_handler(image: Any, checkpoint: str, layer: int, mode: str) -> str:
    """The sweep maps' files."""
    return _files(*_sweeps(image, checkpoint, layer, mode))


def attribute_files_handler(
    image: Any, checkpoint: str, method: str, target_class: float | None = None, steps: float = 32
) -> str:
    """The attribution overlay's files."""
    shown, _, model = _attribution(image, checkpoint, method, target_class, steps)
    return _files(shown, model)


def keypoints_files_handler(image: Any, checkpoint: str, face: float | str | None = 1) -> str:
    """The keypoint figure's files (the crops drawn are face number ``face``'s)."""
    shown, _, _, _, model = _keypoints(image, checkpoint, face)
    return _files(shown, model)


def _gallery_examples(dataset: str, limit: int = 4) -> list[str]:
    try:
        from crmn_viz.inputs.gallery import list_gallery
    except ImportError:
        return []
    return [str(entry.path) for entry in list_gallery(dataset)][:limit]


def _renet_layers(names: list[str]) -> int:
    """Most layers among the zoo's ReNets (the layer choices; a smaller one refuses the rest)."""
    layers = [len(cached_model(name).grid_sizes) for name in names]
    return max(layers, default=1)


def all_figures_handler(image: Any, checkpoint: str) -> tuple[dict[str, go.Figure], Any, go.Figure | None]:
    """Every figure that applies to the checkpoint for one image, what ``crmn-viz analyze`` writes
    (:func:`crmn_viz.views.report.report_figures`): the screen figures by name, the picker, the first."""
    made = report.report_figures(_model(checkpoint), _selected(image), compute=RUN)
    figures = {item.name: _for_screen(item.figure) for item in made}
    names = list(figures)
    first = names[0] if names else None
    return figures, gr.update(choices=names, value=first), figures.get(first) if first else None


def pick_figure_handler(figures: dict[str, go.Figure] | None, name: str | None) -> go.Figure | None:
    """One of the figures :func:`all_figures_handler` made (None before any were made)."""
    return (figures or {}).get(name) if name else None


def _files_row(handler: Any, inputs: list[Any], api_name: str) -> None:
    """A button that makes the tab's figure files (with provenance) and a file box to download them."""
    with gr.Row():
        button = gr.Button("Figure files (PNG, PDF, data, provenance)", size="sm")
        files = gr.File(label="Figure files", interactive=False)
    button.click(devices.on_gpu(handler), inputs, files, api_name=api_name)


def build_demo() -> gr.Blocks:
    """The Gradio app: tabs for classification, gates, experiments, sweeps (and their gates),
    attributions, faces, blocks, populations (selectivity, exemplars), zoo-pair comparisons and
    every figure at once.

    Every handler that runs a network is registered through :func:`crmn_viz.devices.on_gpu`
    (``spaces.GPU`` on ZeroGPU, the handler itself elsewhere).
    """
    prepare_gpu()
    on_gpu = devices.on_gpu
    classifiers = zoo_names(lambda model: model.task == "classification")
    memory_models = zoo_names("lstm")
    crmn_classifiers = [name for name in memory_models if name in classifiers]
    renets = zoo_names("renet")
    keypoint_models = zoo_names("faces")
    block_models = zoo_names("blocks")
    population_models = population_names()
    pairs = pair_choices()
    with gr.Blocks(title="crmn-viz") as demo:
        gr.Markdown(
            "# crmn-viz\nLook inside recurrent-memory vision networks (CRMN, ReNet, ResNet in ResNet). "
            "Upload an image or pick an example."
        )
        with gr.Tab("Classify"):
            with gr.Row():
                image = UploadedImage(label="Image", sources=["upload", "clipboard"])
                with gr.Column():
                    checkpoint = gr.Dropdown(
                        classifiers, value=(crmn_classifiers or classifiers or [None])[0], label="Checkpoint"
                    )
                    top_k = gr.Slider(1, 10, value=5, step=1, label="Top k")
                    button = gr.Button("Classify", variant="primary")
            label = gr.Label(label="Prediction")
            steps = gr.Plot(label="Prediction after every residual block (CRMN)")
            button.click(
                on_gpu(classify_handler), [image, checkpoint, top_k], [label, steps], api_name="classify"
            )
            _files_row(classify_files_handler, [image, checkpoint, top_k], "classify_files")
            examples = _gallery_examples("cifar10")
            if examples:
                gr.Examples(examples, inputs=image)
        with gr.Tab("LSTM gates"):
            with gr.Row():
                gate_image = UploadedImage(label="Image")
                with gr.Column():
                    gate_ckpt = gr.Dropdown(
                        crmn_classifiers + [name for name in memory_models if name not in crmn_classifiers],
                        value=(crmn_classifiers or [None])[0],
                        label="CRMN checkpoint",
                    )
                    quantity = gr.Dropdown(
                        [(label, name) for name, label in LSTM_QUANTITY_LABELS.items()],
                        value="forget_gate",
                        label="Quantity",
                    )
                    gate_button = gr.Button("Show memory", variant="primary")
            gate_plot = gr.Plot(label="Units x blocks")
            gate_button.click(
                on_gpu(gate_handler), [gate_image, gate_ckpt, quantity], gate_plot, api_name="gates"
            )
            _files_row(gate_files_handler, [gate_image, gate_ckpt, quantity], "gates_files")
        with gr.Tab("Experiments"):
            with gr.Row():
                exp_image = UploadedImage(label="Image")
                with gr.Column():
                    exp_ckpt = gr.Dropdown(
                        crmn_classifiers + [name for name in memory_models if name not in crmn_classifiers],
                        value=(crmn_classifiers or memory_models or [None])[0],
                        label="CRMN checkpoint",
                    )
                    exp_choice = gr.Dropdown(
                        [(label, key) for key, (label, _, _) in EXPERIMENT_CHOICES.items()],
                        value="memory_off",
                        label="Experiment",
                    )
                    exp_step = gr.Number(value=0, precision=0, minimum=0, label="Block l")
                    exp_button = gr.Button("Run the experiment", variant="primary")
            exp_text = gr.Markdown()
            exp_readout = gr.Plot(label="Prediction after every block, intact and intervened")
            exp_cells = gr.Plot(label="Cell state: intact, intervened, difference")
            exp_button.click(
                on_gpu(experiment_handler),
                [exp_image, exp_ckpt, exp_choice, exp_step],
                [exp_text, exp_readout, exp_cells],
                api_name="experiment",
            )
            _files_row(
                experiment_files_handler, [exp_image, exp_ckpt, exp_choice, exp_step], "experiment_files"
            )
        with gr.Tab("ReNet sweeps"):
            with gr.Row():
                sweep_image = UploadedImage(label="Image")
                with gr.Column():
                    sweep_ckpt = gr.Dropdown(renets, value=(renets or [None])[0], label="ReNet checkpoint")
                    layer = gr.Dropdown(
                        [(f"layer {k}", k) for k in range(_renet_layers(renets))], value=0, label="Layer"
                    )
                    mode = gr.Radio(
                        [("3 principal components as colour", "pca"), ("single channels", "channels")],
                        value="pca",
                        label="Display",
                    )
                    sweep_button = gr.Button("Show sweeps", variant="primary")
            sweep_plot = gr.Plot(label="Four sweeps")
            sweep_button.click(
                on_gpu(sweeps_handler), [sweep_image, sweep_ckpt, layer, mode], sweep_plot, api_name="sweeps"
            )
            _files_row(sweeps_files_handler, [sweep_image, sweep_ckpt, layer, mode], "sweeps_files")
            gate_choices = _sweep_gate_choices(renets)
            with gr.Row():
                sweep_gate = gr.Dropdown(
                    gate_choices, value=(gate_choices or [(None, None)])[0][1], label="Gate"
                )
                sweep_gate_button = gr.Button("Show the gates of the sweeps")
            sweep_gate_plot = gr.Plot(label="One gate of each sweep's RNN, averaged over its channels")
            sweep_gate_button.click(
                on_gpu(sweep_gates_handler),
                [sweep_image, sweep_ckpt, layer, sweep_gate],
                sweep_gate_plot,
                api_name="sweep_gates",
            )
        with gr.Tab("Attribution"):
            with gr.Row():
                attr_image = UploadedImage(label="Image")
                with gr.Column():
                    attr_ckpt = gr.Dropdown(classifiers, value=(classifiers or [None])[0], label="Checkpoint")
                    method = gr.Dropdown(
                        [(METHOD_LABELS.get(name, name), name) for name in ATTRIBUTION_METHODS],
                        value="integrated_gradients",
                        label="Method",
                    )
                    target = gr.Number(-1, precision=0, label="Target class (-1: predicted)")
                    most_steps = min(256, LIMITS.max_attribution_steps)
                    n_steps = gr.Slider(
                        min(8, most_steps),
                        most_steps,
                        value=min(32, most_steps),
                        step=8,
                        label="Integration steps (IG)",
                    )
                    attr_button = gr.Button("Attribute", variant="primary")
            attr_plot = gr.Plot(label="Attribution overlay")
            attr_info = gr.JSON(label="Details")
            attr_button.click(
                on_gpu(attribute_handler),
                [attr_image, attr_ckpt, method, target, n_steps],
                [attr_plot, attr_info],
                api_name="attribute",
            )
            _files_row(
                attribute_files_handler, [attr_image, attr_ckpt, method, target, n_steps], "attribute_files"
            )
            with gr.Accordion("Can I trust this map?", open=False):
                gr.Markdown(
                    "Faithfulness: the score as the map's most relevant pixels are removed (deletion, "
                    "ROAD) or put back (insertion), beside a random map. Randomisation: the map of the "
                    "model with its layers randomised, output first; a trustworthy map changes."
                )
                check_mode = gr.Radio(["cascading", "independent"], value="cascading", label="Randomisation")
                check_button = gr.Button("Run the checks")
                check_curves = gr.Plot(label="Faithfulness curves")
                check_sanity = gr.Plot(label="Model-parameter randomisation")
                check_info = gr.JSON(label="Areas under the curves and similarities")
                check_button.click(
                    on_gpu(attribution_check_handler),
                    [attr_image, attr_ckpt, method, target, n_steps, check_mode],
                    [check_curves, check_sanity, check_info],
                    api_name="attribution_check",
                )
        with gr.Tab("Face keypoints"):
            with gr.Row():
                face_image = UploadedImage(label="Photo", sources=["upload", "webcam", "clipboard"])
                with gr.Column():
                    face_ckpt = gr.Dropdown(
                        keypoint_models, value=(keypoint_models or [None])[0], label="Keypoint checkpoint"
                    )
                    face_number = gr.Dropdown(
                        [("face 1", 1)],
                        value=1,
                        label="Face",
                        info="The number drawn on the detector's box, with its score.",
                        allow_custom_value=True,  # a client may ask for any face: the handler checks it
                    )
                    face_button = gr.Button("Find keypoints", variant="primary")
            face_note = gr.Markdown()
            face_plot = gr.Plot(label="68 keypoints")
            face_table = gr.Dataframe(
                headers=FACE_GROUP_HEADERS,
                label="NME by landmark group (when the ground truth is known: the gallery's faces)",
                interactive=False,
            )
            face_points = gr.JSON(label="Keypoints per face (pixels)")
            face_inputs = [face_image, face_ckpt, face_number]
            face_outputs = [face_plot, face_points, face_table, face_note, face_number]
            find_keypoints = on_gpu(keypoints_handler)  # one GPU registration for both events
            face_button.click(find_keypoints, face_inputs, face_outputs, api_name="keypoints")
            face_number.input(find_keypoints, face_inputs, face_outputs, api_name=False)
            face_image.change(reset_face_choice, face_image, face_number, api_name=False)
            _files_row(keypoints_files_handler, face_inputs, "keypoints_files")
            face_examples = _gallery_examples("faces68")
            if face_examples:
                gr.Examples(face_examples, inputs=face_image)
            zoo_rows = keypoint_zoo_rows()
            if zoo_rows:
                with gr.Accordion(
                    "The zoo's keypoint models on the test photos (from their cards)", open=False
                ):
                    gr.Dataframe(
                        [["" if v is None else v for v in row.values()] for row in zoo_rows],
                        headers=list(zoo_rows[0]),
                        interactive=False,
                        label="Mean NME (%) over the faces68 test photos, overall and per landmark group",
                    )
        with gr.Tab("Blocks"):
            gr.Markdown(
                "Every residual block's (or layer's) output for one image: the mean and the L2 norm of "
                "each channel over the map's positions, and the output's overall norm."
            )
            with gr.Row():
                block_image = UploadedImage(label="Image", sources=["upload", "clipboard"])
                with gr.Column():
                    block_ckpt = gr.Dropdown(
                        block_models, value=(block_models or [None])[0], label="Checkpoint with blocks"
                    )
                    block_button = gr.Button("Show the blocks", variant="primary")
            block_plot = gr.Plot(label="Channels of every block output")
            block_button.click(
                on_gpu(blocks_handler), [block_image, block_ckpt], block_plot, api_name="blocks"
            )
            _files_row(blocks_files_handler, [block_image, block_ckpt], "blocks_files")
        with gr.Tab("Population"):
            gr.Markdown(
                "Which units respond to which classes, over many test images of the checkpoint's data "
                "set (one pass, cached on disk: a second query answers at once). Steps are shown from 1; "
                "the API takes them from 0, as the trace counts them."
            )
            with gr.Row():
                with gr.Column():
                    pop_ckpt = gr.Dropdown(
                        population_models, value=(population_models or [None])[0], label="Checkpoint"
                    )
                    pop_count = gr.Number(
                        min(POPULATION_IMAGES, LIMITS.max_statistics_images),
                        precision=0,
                        minimum=1,
                        maximum=LIMITS.max_statistics_images,
                        label="Test images N",
                    )
                with gr.Column():
                    # filled from the checkpoint when the page loads and when it changes (a
                    # forward pass, so never while the demo is built: ZeroGPU runs the network
                    # only inside its GPU handlers); an API caller may name any quantity and step
                    # of its checkpoint, which the handlers check
                    pop_quantity = gr.Dropdown([], allow_custom_value=True, label="Population quantity")
                    pop_step = gr.Dropdown([], allow_custom_value=True, label="Step")
                    pop_ordering = gr.Radio(
                        [("clustered by class profile", "cluster"), ("by selectivity", "selectivity")],
                        value="cluster",
                        label="Order the units",
                    )
            pop_button = gr.Button("Show unit x class selectivity", variant="primary")
            pop_plot = gr.Plot(label="Class-conditional means and selectivity d'")
            pop_text = gr.Markdown()
            pop_button.click(
                on_gpu(selectivity_handler),
                [pop_ckpt, pop_count, pop_quantity, pop_step, pop_ordering],
                [pop_plot, pop_text],
                api_name="selectivity",
            )
            _files_row(
                selectivity_files_handler,
                [pop_ckpt, pop_count, pop_quantity, pop_step, pop_ordering],
                "selectivity_files",
            )
            gr.Markdown("### Dataset exemplars: the test images that drive one unit")
            with gr.Row():
                pop_unit = gr.Number(0, precision=0, minimum=0, label="Unit (e.g. a most selective one)")
                pop_k = gr.Slider(1, 32, value=9, step=1, label="Images k")
                pop_end = gr.Radio(list(EXEMPLAR_ENDS), value="highest", label="Values")
                pop_exemplar_button = gr.Button("Show the exemplars")
            pop_gallery = gr.Gallery(label="Exemplars (file name = value)", columns=9, height="auto")
            pop_exemplar_button.click(
                on_gpu(exemplars_handler),
                [pop_ckpt, pop_count, pop_quantity, pop_step, pop_unit, pop_k, pop_end],
                pop_gallery,
                api_name="exemplars",
            )
            population_choices = on_gpu(population_choices_handler)  # one wrapper, two events
            pop_ckpt.change(
                population_choices,
                pop_ckpt,
                [pop_quantity, pop_step],
                api_name="population_quantities",
            )
            pop_quantity.change(
                on_gpu(population_steps_handler),
                [pop_ckpt, pop_quantity],
                pop_step,
                api_name="population_steps",
            )
            demo.load(
                population_choices,
                pop_ckpt,
                [pop_quantity, pop_step],
                api_name="population_choices",
            )
        with gr.Tab("Compare"):
            gr.Markdown(
                "A CRMN (or RiR) beside the ResNet trained the same way, on the same test images: "
                "accuracies, the agreement matrix, per-class accuracy, the images they disagree on, "
                "and both training runs."
            )
            with gr.Row():
                cmp_pair = gr.Dropdown(pairs, value=(pairs or [(None, None)])[0][1], label="Pair")
                cmp_count = gr.Number(
                    min(POPULATION_IMAGES, LIMITS.max_statistics_images),
                    precision=0,
                    minimum=1,
                    maximum=LIMITS.max_statistics_images,
                    label="Test images N",
                )
                cmp_button = gr.Button("Compare", variant="primary")
            cmp_text = gr.Markdown()
            cmp_names = gr.Dropdown([], label="Comparison figure")
            cmp_plot = gr.Plot(label="Comparison figure")
            cmp_curves = gr.Plot(label="Training curves of the pair")
            cmp_rows = gr.Dataframe(
                headers=DISAGREEMENT_HEADERS, label="Images they disagree on", interactive=False
            )
            cmp_made = gr.State({})
            cmp_button.click(
                on_gpu(compare_handler),
                [cmp_pair, cmp_count],
                [cmp_text, cmp_made, cmp_names, cmp_plot, cmp_curves, cmp_rows],
                api_name="compare",
            )
            cmp_names.change(pick_figure_handler, [cmp_made, cmp_names], cmp_plot, api_name=False)
        with gr.Tab("All figures"):
            gr.Markdown(
                "Every view that applies to the checkpoint, with its default settings: the figures "
                "`crmn-viz analyze` writes and the Streamlit app's Export page makes."
            )
            with gr.Row():
                all_image = UploadedImage(label="Image", sources=["upload", "clipboard"])
                with gr.Column():
                    all_ckpt = gr.Dropdown(zoo_names(), value=(zoo_names() or [None])[0], label="Checkpoint")
                    all_button = gr.Button("Make every figure", variant="primary")
                    all_names = gr.Dropdown([], label="Figure")
            all_plot = gr.Plot(label="Figure")
            all_made = gr.State({})
            all_button.click(
                on_gpu(all_figures_handler),
                [all_image, all_ckpt],
                [all_made, all_names, all_plot],
                api_name="all_figures",
            )
            all_names.change(pick_figure_handler, [all_made, all_names], all_plot, api_name=False)
    return demo


def main(argv: list[str] | None = None) -> None:
    """Launch the demo (``--port``, ``--host``; defaults 7860 on 127.0.0.1)."""
    import argparse

    parser = argparse.ArgumentParser(description="crmn-viz Gradio demo")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    from crmn_viz.jobs import configure_threads, default_job_slots

    slots = default_job_slots()  # CRMN_VIZ_MAX_CONCURRENT_JOBS, else from the CPU or GPUs
    configure_threads(slots)
    build_demo().queue(default_concurrency_limit=slots).launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        max_file_size=LIMITS.max_image_bytes,  # refused before it is stored (CRMN_VIZ_MAX_IMAGE_BYTES)
    )


if __name__ == "__main__":
    main()
