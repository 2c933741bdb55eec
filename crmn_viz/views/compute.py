"""The network work a view asks for, behind one small interface a front end may cache.

A view never runs the network itself: it asks a :class:`Compute` for traces, predictions,
faces or attributions of :class:`~crmn_viz.inputs.selection.SelectedImage` objects. Every
method hands one module-level *work function* and its picklable arguments (the images as their
canonical PNG bytes) to :meth:`Compute.call`. The base class runs the work at once (the CLI,
Gradio, tests); the Streamlit front end overrides only :meth:`Compute.call` (and
:meth:`Compute.call_with_progress`), answering from one byte-budgeted result cache keyed on the
model's :func:`~crmn_viz.checkpoints.checkpoint_key` and those bytes, and sending
:data:`HEAVY_WORK` through the server's fair job queue, so a display-only change reruns no
network and no method is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from crmn_viz.analysis.face_detectors import default_face_detector
from crmn_viz.analysis.face_steps import FaceSteps, face_crop, face_steps
from crmn_viz.analysis.keypoints import (
    DetectedFace,
    FaceKeypoints,
    NoFaceFoundError,
    photo_to_rgb_array,
    predict_faces,
)
from crmn_viz.analysis.predictions import classify
from crmn_viz.analysis.readouts import StepwiseReadout, stepwise_readout
from crmn_viz.images import encode_png
from crmn_viz.inputs.selection import SelectedImage, decode_images
from crmn_viz.models.base import TracedModel
from crmn_viz.tracing import Trace
from crmn_viz.views.running import model_view, trace_images

__all__ = [
    "FAITHFULNESS_CURVES",
    "HEAVY_WORK",
    "PROGRESS_WORK",
    "WORK",
    "Box",
    "Compute",
    "DirectCompute",
    "MethodOptions",
    "SecondModel",
    "TargetSpec",
    "attribution_target",
]

Box = tuple[float, float, float, float]
"""A face box ``(x0, y0, x1, y1)`` in image pixels."""

TargetSpec = tuple[Any, ...]
"""A hashable attribution target: ``("predicted",)``, ``("class", k)``, ``("keypoint", k, "x")``
or ``("gate", quantity, unit, step)``."""


def attribution_target(spec: TargetSpec) -> Any:
    """The core's target object for a :data:`TargetSpec` (None: the predicted class)."""
    from crmn_viz.analysis.attributions import GateTarget, KeypointTarget

    kind = spec[0]
    if kind == "class":
        return int(spec[1])
    if kind == "keypoint":
        return KeypointTarget(int(spec[1]), spec[2])
    if kind == "gate":
        return GateTarget(str(spec[1]), int(spec[2]), int(spec[3]))
    return None


Result = TypeVar("Result")
Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)``: what long work reports as it goes."""
Pngs = tuple[bytes, ...]


# --------------------------------------------------------------------------- work functions
# Pure functions of the model and picklable arguments: what a front end may cache (keyed on them).


def _trace(model: TracedModel, pngs: Pngs, names: tuple[str, ...] | None) -> Trace:
    """Every recorded internal (or only ``names``) of the pictures, on the CPU."""
    return trace_images(model, decode_images(pngs), names)


def _classify(model: TracedModel, pngs: Pngs, top_k: int) -> list[list[tuple[str, float]]]:
    """:func:`crmn_viz.analysis.classify` on the pictures."""
    return classify(model, decode_images(pngs), top_k=top_k)


def _stepwise(model: TracedModel, pngs: Pngs) -> StepwiseReadout:
    """:func:`crmn_viz.analysis.stepwise_readout` (models with a step-wise readout)."""
    return stepwise_readout(model, decode_images(pngs))


def _face_detections(model: TracedModel, png: bytes) -> list[DetectedFace]:
    """The default face detector's faces in the picture, most confident first (the model only
    keys the cache: detection does not use it)."""
    return default_face_detector()(photo_to_rgb_array(decode_images([png])[0]))


def _faces(
    model: TracedModel, png: bytes, box: Box | None, detections: Sequence[DetectedFace] | None = None
) -> list[FaceKeypoints] | str:
    """:func:`crmn_viz.analysis.predict_faces`, or the message when no face is found.

    ``detections``: the faces :func:`_face_detections` found (used when ``box`` is None)."""
    try:
        return predict_faces(
            model, decode_images([png])[0], box=box, detections=None if box is not None else detections
        )
    except NoFaceFoundError as err:
        return str(err)


def _face_steps(model: TracedModel, png: bytes, face: FaceKeypoints, truth: np.ndarray | None) -> FaceSteps:
    """Per-step keypoints of one found face (``truth``: ground-truth points [K, 2] or None)."""
    return face_steps(model, decode_images([png])[0], face, truth)


def _face_crop(model: TracedModel, png: bytes, crop_box: Any) -> bytes:
    """The picture cut at ``crop_box`` and resized to the model's input size, as PNG bytes."""
    _, height, width = model.input_shape
    return encode_png(face_crop(decode_images([png])[0], crop_box, (height, width)))


def _model_view(model: TracedModel, png: bytes) -> np.ndarray:
    """The picture at the network's input size and colour mode, RGB uint8 [H, W, 3]."""
    return model_view(model, decode_images([png])[0])


def _attribution(
    model: TracedModel, png: bytes, method: str, target: TargetSpec, options: tuple[tuple[str, Any], ...]
) -> Any:
    """:func:`crmn_viz.analysis.attribute` for one picture."""
    from crmn_viz.analysis.attributions import attribute

    return attribute(model, decode_images([png])[0], method, attribution_target(target), **dict(options))


def _experiment(model: TracedModel, pngs: Pngs, spec: Any, source_png: bytes | None) -> Any:
    """:func:`crmn_viz.analysis.experiments.run_experiment` of an ``ExperimentSpec`` on the pictures
    (``source_png``: image B of a swap, whose trace supplies the patched state)."""
    from crmn_viz.analysis.experiments import build_experiment, run_experiment

    source = None if source_png is None else trace_images(model, decode_images([source_png]), None)
    return run_experiment(model, decode_images(pngs), build_experiment(model, spec, source))


def _step_attribution(model: TracedModel, png: bytes, target: TargetSpec, n_steps: int) -> Any:
    """:func:`crmn_viz.analysis.step_attribution.step_attribution` for one picture."""
    from crmn_viz.analysis.step_attribution import step_attribution

    return step_attribution(model, decode_images([png])[0], attribution_target(target), n_steps)


def _dataset_effect(model: TracedModel, dataset: str, count: int, progress: Progress | None = None) -> Any:
    """:func:`crmn_viz.analysis.experiments.dataset_effect` over ``count`` test images spread evenly
    over the test split (:func:`crmn_viz.views.test_images.test_subset`; the split is sorted by class).

    ``progress(done, total, title)`` is called after every pass (not part of what is computed)."""
    from torch.utils.data import DataLoader

    from crmn_viz.analysis.experiments import dataset_effect
    from crmn_viz.views.test_images import test_subset

    batches = list(DataLoader(test_subset(dataset, count), batch_size=256))
    return dataset_effect(model, batches, progress=progress)


def _sanity_check(
    model: TracedModel,
    png: bytes,
    method: str,
    target: TargetSpec,
    options: tuple[tuple[str, Any], ...],
    mode: str,
) -> Any:
    """:func:`crmn_viz.analysis.sanity_checks.sanity_check` of one method's map of one picture."""
    from crmn_viz.analysis.sanity_checks import sanity_check

    picture = decode_images([png])[0]
    return sanity_check(model, picture, method, attribution_target(target), mode=mode, **dict(options))


FAITHFULNESS_CURVES = (("deletion", "most"), ("insertion", "most"), ("road", "most"), ("road", "least"))
"""The curves a view draws for one map: deletion, insertion, and ROAD both ways (kind, order)."""


def _faithfulness(model: TracedModel, png: bytes, result: Any, steps: int) -> tuple[list[Any], list[Any]]:
    """The :data:`FAITHFULNESS_CURVES` of one attribution map (an ``AttributionResult`` of the
    picture) and of a seeded random map of the same shape: deletion and insertion from one batch
    (:func:`crmn_viz.analysis.faithfulness.deletion_and_insertion`), ROAD both ways."""
    from crmn_viz.analysis.faithfulness import deletion_and_insertion, faithfulness, random_attribution

    picture = decode_images([png])[0]
    reference = random_attribution(np.shape(result.map), seed=0)
    curves, references = [], []
    for values, into in ((result.map, curves), (reference, references)):
        into.extend(deletion_and_insertion(model, picture, values, result.resolved_target, steps=steps))
        for kind, order in FAITHFULNESS_CURVES[2:]:
            into.append(
                faithfulness(
                    model, picture, values, result.resolved_target, kind=kind, order=order, steps=steps
                )
            )
    return curves, references


MethodOptions = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
"""Per method, its attribution options: ``(("integrated_gradients", (("n_steps", 32),)), ...)``."""


def _trust_table(
    model: TracedModel,
    images: tuple[tuple[str, bytes], ...],
    methods: tuple[str, ...],
    target: TargetSpec,
    options: MethodOptions,
    steps: int,
    progress: Progress | None = None,
) -> Any:
    """:func:`crmn_viz.analysis.attribution_trust.trust_table` over named pictures (PNG bytes)."""
    pictures = decode_images([png for _, png in images])
    named = [(name, picture) for (name, _), picture in zip(images, pictures)]
    return _checked_table(model, named, methods, target, options, steps, progress)


def _trust_table_test(
    model: TracedModel,
    dataset: str,
    count: int,
    methods: tuple[str, ...],
    target: TargetSpec,
    options: MethodOptions,
    steps: int,
    progress: Progress | None = None,
) -> Any:
    """:func:`crmn_viz.analysis.attribution_trust.trust_table` over ``count`` test images spread
    over the test split, named by their file names in the data set."""
    from crmn_viz.views.test_images import test_image_names, test_subset

    subset = test_subset(dataset, count)
    named = [(name, subset[index][0]) for index, name in enumerate(test_image_names(subset))]
    return _checked_table(model, named, methods, target, options, steps, progress)


def _checked_table(
    model: TracedModel,
    named: list[tuple[str, Any]],
    methods: tuple[str, ...],
    target: TargetSpec,
    options: MethodOptions,
    steps: int,
    progress: Progress | None,
) -> Any:
    from crmn_viz.analysis.attribution_trust import trust_table

    chosen = {method: dict(values) for method, values in options}
    target_object = attribution_target(target)
    return trust_table(model, named, methods, target_object, steps=steps, options=chosen, progress=progress)


def _gate_statistics_images(model: TracedModel, pngs: Pngs, labels: tuple[int | None, ...]) -> Any:
    """:func:`crmn_viz.analysis.gate_statistics` over pictures, grouped by their true class when
    every label is known."""
    from crmn_viz.analysis.statistics import gate_statistics

    pictures = decode_images(pngs)
    items: Any = list(zip(pictures, labels)) if all(label is not None for label in labels) else pictures
    return gate_statistics(model, items, by_class=True, progress=False, batch_size=64)


def _gate_statistics_test(model: TracedModel, dataset: str, count: int) -> Any:
    """:func:`crmn_viz.analysis.gate_statistics` over ``count`` test images spread over every class."""
    from crmn_viz.analysis.statistics import gate_statistics
    from crmn_viz.limits import LIMITS
    from crmn_viz.views.test_images import test_subset

    most = LIMITS.max_statistics_images
    subset = test_subset(dataset, min(count, most))
    return gate_statistics(model, subset, by_class=True, progress=False, batch_size=100, max_images=most)


# --------------------------------------------------------------------------- population work
# Dataset passes over the test split. The pass is kept on disk by the weights' digest
# (crmn_viz.analysis.population), so every query after the first reads it back at once.


def _population(model: TracedModel, dataset: str, count: int, progress: Progress | None = None) -> Any:
    """:func:`crmn_viz.analysis.population.test_set_population` over ``count`` test images spread
    evenly over the test split (read from the on-disk cache when that pass was made before)."""
    from crmn_viz.analysis.population import test_set_population

    report = None if progress is None else (lambda done, total: progress(done, total, "images"))
    return test_set_population(model, dataset, count, progress=report or False)


def _selectivity(
    model: TracedModel, dataset: str, count: int, quantity: str, step: int, ordering: str, bootstrap: int
) -> Any:
    """:func:`crmn_viz.analysis.selectivity.selectivity_from_table` of one quantity at one step over
    the population pass of ``count`` test images."""
    from crmn_viz.analysis.selectivity import selectivity_from_table

    table = _population(model, dataset, count)
    return selectivity_from_table(table, quantity, step, ordering=ordering, bootstrap=bootstrap)


def _exemplars(
    model: TracedModel, dataset: str, count: int, quantity: str, step: int, unit: int, k: int, lowest: bool
) -> list[Any]:
    """:func:`crmn_viz.analysis.population.exemplars`: the ``k`` test images with the highest (or
    lowest) value of one unit at one step, from the population pass."""
    from crmn_viz.analysis.population import exemplars

    return exemplars(_population(model, dataset, count), quantity, step, unit, k, lowest=lowest)


def _nearest_trajectories(
    model: TracedModel, dataset: str, count: int, quantity: str, png: bytes, k: int
) -> list[tuple[int, str, float]]:
    """The ``k`` test images whose trajectory of ``quantity`` over every step and unit lies nearest
    (Euclidean) to the picture's, as :func:`crmn_viz.analysis.population.nearest_trajectories`;
    the picture's own trajectory is recorded by the same pass (one image, not cached)."""
    from crmn_viz.analysis.inputs import preprocessor_for
    from crmn_viz.analysis.population import nearest_trajectories, population_pass

    table = _population(model, dataset, count)
    picture = preprocessor_for(model).to_tensor(decode_images([png])[0]).unsqueeze(0)
    own = population_pass(model, picture, image_names=["this image"], top_k=1)
    trajectory = np.asarray(own.values(quantity)[0], dtype=np.float32)
    return nearest_trajectories(table, quantity, trajectory, k)


def _test_images(model: TracedModel, dataset: str, names: tuple[str, ...]) -> list[Any]:
    """The data set's test images of these names (:func:`crmn_viz.views.test_images.test_images`)."""
    from crmn_viz.views.test_images import test_images

    return test_images(dataset, names)


def _probes(
    model: TracedModel, dataset: str, train_count: int, test_count: int, progress: Progress | None = None
) -> Any:
    """:func:`crmn_viz.analysis.probes.linear_probes` trained on ``train_count`` training images and
    scored on ``test_count`` test images spread over the test split."""
    from crmn_viz.analysis.probes import linear_probes
    from crmn_viz.data import build_dataset
    from crmn_viz.views.test_images import for_model, test_subset

    train = build_dataset(dataset, "train", train_augment=False)  # probes read the images as they are
    test = test_subset(dataset, test_count)
    return linear_probes(
        model,
        for_model(train, dataset, model),
        for_model(test, dataset, model),
        train_images=train_count,
        test_images=len(test),
        progress=progress,
    )


class SecondModel:
    """A second model handed to a work function (a comparison). It pickles as its
    :func:`~crmn_viz.checkpoints.checkpoint_key` (digests of the bytes read), so a front end's
    cache keys on what the model is, and never pickles the model itself."""

    def __init__(self, model: TracedModel, name: str) -> None:
        self.model = model
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        from crmn_viz.checkpoints import checkpoint_key

        return (str, (f"{self.name}|{checkpoint_key(self.model)}",))


def _comparison(
    model: TracedModel, other: SecondModel, dataset: str, count: int, progress: Progress | None = None
) -> Any:
    """:func:`crmn_viz.analysis.comparison.test_set_comparison` of the model (A) and ``other`` (B) on
    ``count`` test images spread evenly over the test split."""
    from crmn_viz.analysis.comparison import test_set_comparison

    identity = getattr(model, "checkpoint", None)
    name_a = str(getattr(identity, "name", None) or model.arch)
    return test_set_comparison(
        model, other.model, dataset, count, progress=progress, name_a=name_a, name_b=other.name
    )


WORK: dict[Callable[..., Any], str] = {
    _trace: "Running the network…",
    _classify: "Classifying…",
    _stepwise: "Decoding every LSTM step…",
    _face_detections: "Finding the faces…",
    _faces: "Predicting the keypoints…",
    _face_steps: "Reading the face after every block…",
    _face_crop: "Cutting out the face…",
    _model_view: "",
    _attribution: "Computing the attribution…",
    _experiment: "Running the experiment…",
    _step_attribution: "Integrating gradients over every block…",
    _sanity_check: "Randomising the model stage by stage and attributing again…",
    _faithfulness: "Deleting and inserting pixels in the map's order…",
    _gate_statistics_images: "Collecting gate statistics…",
    _gate_statistics_test: "Collecting gate statistics over test images…",
    _selectivity: "Resampling the images of every class…",
    _exemplars: "",
    _nearest_trajectories: "Finding the test images whose memory moves like this one's…",
    _test_images: "",
}
"""Every work function a :class:`Compute` hands to :meth:`Compute.call`, with what a front end
may say while it runs ("" for work too quick to mention)."""


PROGRESS_WORK: dict[Callable[..., Any], str] = {
    _dataset_effect: "Running every experiment over the test images…",
    _trust_table: "Checking every method on every image…",
    _trust_table_test: "Checking every method on the test images…",
    _population: "Recording every unit over the test images…",
    _probes: "Training a linear probe at every block…",
    _comparison: "Running both models over the test images…",
}
"""Long work functions that take a last ``progress`` argument, handed to
:meth:`Compute.call_with_progress`, with the title of their progress bar."""

HEAVY_WORK: frozenset[Callable[..., Any]] = frozenset(
    {
        _attribution,
        _experiment,
        _step_attribution,
        _sanity_check,
        _faithfulness,
        _gate_statistics_images,
        _gate_statistics_test,
        _selectivity,
        _nearest_trajectories,
        *PROGRESS_WORK,
    }
)
"""Work a server shares out through its bounded job queue (:mod:`crmn_viz.jobs`): attributions,
experiments, checks and dataset passes. Everything else (one traced forward, predictions, faces,
crops) is light and never waits behind it."""


class Compute:
    """What views ask the network for; this base class runs :mod:`crmn_viz.analysis` at once.

    Override :meth:`call` (and nothing else) to cache: every method goes through it.
    """

    def call(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """Run ``work(model, *arguments)``; ``work`` is one of :data:`WORK`, the arguments picklable."""
        return work(model, *arguments)

    def call_with_progress(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """Run ``work(model, *arguments)``, one of :data:`PROGRESS_WORK` (a front end may pass a
        progress callback as its last argument and keep the result)."""
        return work(model, *arguments)

    def trace(
        self, model: TracedModel, images: Sequence[SelectedImage], names: Sequence[str] | None = None
    ) -> Trace:
        """Recorded internals of the images (batch in image order), on the CPU."""
        return self.call(_trace, model, _pngs(images), None if names is None else tuple(names))

    def classify(
        self, model: TracedModel, images: Sequence[SelectedImage], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """Top-k labelled class probabilities per image."""
        return self.call(_classify, model, _pngs(images), int(top_k))

    def stepwise(self, model: TracedModel, images: Sequence[SelectedImage]) -> StepwiseReadout:
        """The CRMN's prediction after every block."""
        return self.call(_stepwise, model, _pngs(images))

    def face_detections(self, model: TracedModel, image: SelectedImage) -> list[DetectedFace]:
        """The detector's faces in the picture (run once per picture: every box mode and layout
        reuses them)."""
        return self.call(_face_detections, model, image.png)

    def faces(self, model: TracedModel, image: SelectedImage, box: Box | None) -> list[FaceKeypoints] | str:
        """Keypoints of every face found (or in ``box``), or the message when none is found.

        With no box the faces come from :meth:`face_detections` (cached), so a change of box
        mode runs the keypoint model on one crop and never the detector again."""
        if box is not None:
            return self.call(_faces, model, image.png, _box(box), None)
        return self.call(_faces, model, image.png, None, tuple(self.face_detections(model, image)))

    def face_steps(
        self, model: TracedModel, image: SelectedImage, face_index: int, box: Box | None
    ) -> FaceSteps | None:
        """The keypoints of one face after every block (None when no face is found).

        The faces come from :meth:`faces` (cached like every call), so they are found once."""
        found = self.faces(model, image, box)
        if isinstance(found, str) or face_index >= len(found):
            return None
        return self.call(_face_steps, model, image.png, found[int(face_index)], image.keypoints)

    def face_crop(self, model: TracedModel, image: SelectedImage, box: Box | None) -> bytes | None:
        """The first face's crop at the model's input size, as PNG bytes (None: no face)."""
        found = self.faces(model, image, box)
        if isinstance(found, str):
            return None
        return self.call(_face_crop, model, image.png, found[0].crop_box)

    def model_view(self, model: TracedModel, png: bytes) -> np.ndarray:
        """The picture at the network's input size and colour mode, RGB uint8 [H, W, 3]."""
        return self.call(_model_view, model, png)

    def attribution(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
    ) -> Any:
        """:func:`crmn_viz.analysis.attribute` for one picture (PNG bytes)."""
        return self.call(_attribution, model, png, method, tuple(target), tuple(options))

    def experiment(
        self, model: TracedModel, images: Sequence[SelectedImage], spec: Any, source: SelectedImage | None
    ) -> Any:
        """One experiment (an ``ExperimentSpec``) on the images, intact and intervened side by side."""
        return self.call(_experiment, model, _pngs(images), spec, None if source is None else source.png)

    def step_attribution(self, model: TracedModel, png: bytes, target: TargetSpec, n_steps: int) -> Any:
        """Integrated gradients of ``target`` per block (x_l and block outputs) for one picture."""
        return self.call(_step_attribution, model, png, tuple(target), int(n_steps))

    def gate_statistics_images(
        self, model: TracedModel, images: Sequence[SelectedImage], labels: Sequence[int | None]
    ) -> Any:
        """Per-step, per-unit gate statistics over the images (by true class when all are labelled)."""
        return self.call(_gate_statistics_images, model, _pngs(images), tuple(labels))

    def gate_statistics_test(self, model: TracedModel, dataset: str, count: int) -> Any:
        """Gate statistics over ``count`` test images of ``dataset`` spread over every class."""
        return self.call(_gate_statistics_test, model, dataset, int(count))

    def dataset_effect(self, model: TracedModel, dataset: str, count: int) -> Any:
        """Accuracy (or NME) intact and under each standard experiment over ``count`` test images."""
        return self.call_with_progress(_dataset_effect, model, dataset, int(count))

    def sanity_check(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
        mode: str,
    ) -> Any:
        """The model-parameter randomisation test of one method's map of one picture."""
        return self.call(_sanity_check, model, png, method, tuple(target), tuple(options), str(mode))

    def faithfulness(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
        steps: int,
    ) -> tuple[list[Any], list[Any]]:
        """Deletion, insertion and ROAD curves of one method's map, and of a random map (the map is
        :meth:`attribution`'s, so a front end that caches computes it once for both)."""
        result = self.attribution(model, png, method, target, options)
        return self.call(_faithfulness, model, png, result, int(steps))

    def trust_table(
        self,
        model: TracedModel,
        images: tuple[tuple[str, bytes], ...],
        methods: Sequence[str],
        target: TargetSpec,
        options: MethodOptions,
        steps: int,
    ) -> Any:
        """Every method's faithfulness over named pictures, ``(name, PNG bytes)`` pairs."""
        chosen = (tuple(methods), tuple(target), tuple(options), int(steps))
        return self.call_with_progress(_trust_table, model, tuple(images), *chosen)

    def trust_table_test(
        self,
        model: TracedModel,
        dataset: str,
        count: int,
        methods: Sequence[str],
        target: TargetSpec,
        options: MethodOptions,
        steps: int,
    ) -> Any:
        """Every method's faithfulness over ``count`` test images spread over the test split."""
        chosen = (tuple(methods), tuple(target), tuple(options), int(steps))
        return self.call_with_progress(_trust_table_test, model, dataset, int(count), *chosen)

    # ----------------------------------------------------------------------- populations

    def population(self, model: TracedModel, dataset: str, count: int) -> Any:
        """Every unit of every recorded quantity over ``count`` test images (a ``PopulationTable``)."""
        return self.call_with_progress(_population, model, dataset, int(count))

    def selectivity(
        self,
        model: TracedModel,
        dataset: str,
        count: int,
        quantity: str,
        step: int,
        ordering: str = "cluster",
        bootstrap: int = 1000,
    ) -> Any:
        """Unit x class selectivity of ``quantity`` at ``step`` (after :meth:`population`)."""
        chosen = (str(quantity), int(step), str(ordering), int(bootstrap))
        return self.call(_selectivity, model, dataset, int(count), *chosen)

    def exemplars(
        self,
        model: TracedModel,
        dataset: str,
        count: int,
        quantity: str,
        step: int,
        unit: int,
        k: int,
        lowest: bool = False,
    ) -> list[Any]:
        """The ``k`` test images that drive one unit most (or least), after :meth:`population`."""
        chosen = (str(quantity), int(step), int(unit), int(k), bool(lowest))
        return self.call(_exemplars, model, dataset, int(count), *chosen)

    def nearest_trajectories(
        self, model: TracedModel, dataset: str, count: int, quantity: str, image: SelectedImage, k: int
    ) -> list[tuple[int, str, float]]:
        """Test images whose trajectory of ``quantity`` lies nearest to the image's."""
        return self.call(_nearest_trajectories, model, dataset, int(count), str(quantity), image.png, int(k))

    def test_images(self, model: TracedModel, dataset: str, names: Sequence[str]) -> list[SelectedImage]:
        """The named test images of ``dataset`` as :class:`SelectedImage` objects."""
        return self.call(_test_images, model, dataset, tuple(str(name) for name in names))

    def probes(self, model: TracedModel, dataset: str, train_count: int, test_count: int) -> Any:
        """Linear probes of every block (and the memory's hidden state) on the test images."""
        return self.call_with_progress(_probes, model, dataset, int(train_count), int(test_count))

    def comparison(
        self, model: TracedModel, other: TracedModel, other_name: str, dataset: str, count: int
    ) -> Any:
        """The model (A) beside ``other`` (B, named ``other_name``) on ``count`` test images."""
        pair = SecondModel(other, str(other_name))
        return self.call_with_progress(_comparison, model, pair, dataset, int(count))


DirectCompute = Compute
"""The uncached :class:`Compute` (the CLI, Gradio, tests): the name says what it does."""


def _pngs(images: Sequence[SelectedImage]) -> Pngs:
    return tuple(image.png for image in images)


def _box(box: Box | None) -> Box | None:
    return None if box is None else tuple(float(v) for v in box)  # type: ignore[return-value]
