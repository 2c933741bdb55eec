"""Input attributions with Captum: which pixels drive a class, a keypoint, or an LSTM gate.

Methods (``method=``):

* ``"saliency"``: gradient of the target w.r.t. the input (Simonyan et al. 2014).
* ``"integrated_gradients"``: path integral of gradients from a baseline (Sundararajan et
  al. 2017); reports the completeness gap ``sum(attr) - (f(x) - f(baseline))`` as
  ``convergence_delta``.
* ``"gradient_shap"``: expected gradients over noisy inputs and random points between
  baselines and input (Lundberg & Lee 2017); ``convergence_delta`` is the mean gap.
* ``"occlusion"``: change of the target when a sliding patch is replaced by the baseline
  (Zeiler & Fergus 2014).
* ``"gradcam"``: Grad-CAM (Selvaraju et al. 2017) on one block's output, upsampled
  bilinearly to the input size.

Targets: a class index (default: the predicted class; the *logit* is attributed), a
:class:`KeypointTarget` (one coordinate of one keypoint, in [0, 1] crop units), or a
:class:`GateTarget`: one unit of one CRMN LSTM quantity at one step, e.g. the forget gate
``f_l`` (Moniz & Pal 2016, eq. 3) of unit 17 at block 9.

Traces from ``run_with_trace`` are detached, so gate targets are computed by a separate,
differentiable forward function: the model's own trunk (``run_trunk``), its pooling
(``pool_block_outputs``) and the literal eqs. 2-7 loop of
:func:`crmn_viz.models.reference.reference_crmn_lstm` with the model's LSTM parameters,
stopped at the requested step. It yields exactly ``trace["lstm.<gate>"][:, step, unit]``.

Every method runs the model in eval mode (BatchNorm running statistics, no dropout; the
previous mode is restored). All architectures, ReNet included, use plain PyTorch
recurrences (no cuDNN RNN kernels), so double back-propagation through RNNs in eval mode
is never a problem. Work is batched with at most ``max_batch`` network inputs per pass
(IG's ``internal_batch_size``, occlusion's ``perturbations_per_eval``, GradientSHAP sample
chunks), and costs are bounded by :class:`AttributionLimits`.

A batch of images (a list, or a tensor [B, C, H, W]) runs through each method together: the
network returns one row per image ([B, K]: logits, flattened keypoints, or the batch's gate
targets) and each image's column is picked out (Captum's per-example ``target=[...]``, a gather
in Grad-CAM), so images may have different targets. Every map equals the one-image result
(``tests/analysis/test_attributions_batch.py``); gradient SHAP keeps this with a seed by drawing
each image's samples from the seed alone, in Captum's order.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

import numpy as np
import torch
from PIL import Image

from crmn_viz.analysis.inputs import (
    ImageBatch,
    class_names_for,
    evaluation_mode,
    model_device,
    prepare_batch,
    preprocessor_for,
)
from crmn_viz.analysis.statistics import LSTM_QUANTITIES
from crmn_viz.limits import AttributionLimits, Limits
from crmn_viz.models.base import TracedModel
from crmn_viz.models.reference import reference_crmn_lstm
from crmn_viz.tracing import recording

__all__ = [
    "ATTRIBUTION_METHODS",
    "AttributionLimits",
    "AttributionResult",
    "AttributionTarget",
    "GateTarget",
    "KeypointTarget",
    "attribute",
    "describe_target",
    "gradcam_layer_name",
    "occlusion_positions",
    "target_function",
]

ATTRIBUTION_METHODS = ("saliency", "integrated_gradients", "gradient_shap", "occlusion", "gradcam")


@dataclasses.dataclass(frozen=True)
class KeypointTarget:
    """One coordinate of one predicted keypoint: ``keypoints[:, index, axis]`` in [0, 1].

    ``axis``: 0 or ``"x"`` (horizontal), 1 or ``"y"`` (vertical).
    """

    index: int
    axis: int | str = "x"

    @property
    def axis_index(self) -> int:
        """The axis as 0 (x) or 1 (y)."""
        if self.axis in (0, "x"):
            return 0
        if self.axis in (1, "y"):
            return 1
        raise ValueError(f"keypoint axis must be 0/'x' or 1/'y', got {self.axis!r}")


@dataclasses.dataclass(frozen=True)
class GateTarget:
    """One unit of one CRMN LSTM quantity at one step: ``trace[f"lstm.{gate}"][:, step, unit]``.

    ``gate``: ``input_gate``, ``forget_gate``, ``output_gate``, ``cell_candidate``, ``cell``
    or ``hidden``; ``step``: the block index l (0-based); ``unit``: the memory unit.
    """

    gate: str
    unit: int
    step: int


AttributionTarget = int | KeypointTarget | GateTarget | None
"""A class index, a keypoint coordinate, an LSTM gate unit, or None (predicted class)."""


@dataclasses.dataclass
class AttributionResult:
    """One attribution map and how it was made.

    Attributes:
        map: [C, H, W] per input channel and pixel, or [H, W] for Grad-CAM.
        method: one of :data:`ATTRIBUTION_METHODS`.
        target: readable description of what was attributed, e.g. ``"logit of class 3 (cat)"``.
        target_value: the attributed scalar f(x) on the input.
        convergence_delta: completeness gap ``sum(map) - (f(x) - f(baseline))`` for integrated
            gradients (mean over samples for gradient SHAP); None for other methods.
        options: every option used, defaults included.
        resolved_target: the target itself (the class index chosen for ``target=None``), to
            hand to :func:`crmn_viz.faithfulness` or :func:`crmn_viz.sanity_check`.
    """

    map: np.ndarray
    method: str
    target: str
    target_value: float
    convergence_delta: float | None
    options: dict[str, Any]
    resolved_target: int | KeypointTarget | GateTarget | None = None


def _check_index(value: int, size: int, what: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not -size <= value < size:
        raise ValueError(f"{what} must be an integer in 0..{size - 1}, got {value!r}")
    return int(value) % size


def target_function(model: TracedModel, target: AttributionTarget) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable function ``x [B, C, H, W] -> [B]``: the scalar that is attributed.

    Args:
        model: the network (grad mode is the caller's).
        target: a class index (the logit is returned), a :class:`KeypointTarget` or a
            :class:`GateTarget` (CRMN only). None is not accepted here: resolve it first.

    Returns:
        The forward function to hand to Captum.
    """
    if isinstance(target, GateTarget):
        return _gate_function(model, target)
    if isinstance(target, KeypointTarget):
        if model.task != "keypoints":
            raise ValueError("KeypointTarget needs a keypoint model; use a class index for a classifier")
        count = int(model.config.num_outputs) // 2  # type: ignore[attr-defined]
        index, axis = _check_index(target.index, count, "keypoint index"), target.axis_index
        return lambda x: model(x)[:, index, axis]
    if model.task != "classification":
        raise ValueError("a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)")
    class_index = _check_index(target, int(model.config.num_outputs), "class index")  # type: ignore[attr-defined,arg-type]
    return lambda x: model(x)[:, class_index]


def _gate_spec(model: TracedModel, target: GateTarget) -> tuple[str, int, int]:
    """Check a gate target against the model; returns ``(gate, step, unit)`` with non-negative indices."""
    if not model.has_memory:
        raise ValueError(f"GateTarget needs a CRMN (its LSTM reads the blocks); got a {model.arch!r} model")
    if target.gate not in LSTM_QUANTITIES:
        raise ValueError(f"unknown gate {target.gate!r}; choose from {list(LSTM_QUANTITIES)}")
    step = _check_index(target.step, model.num_steps, "step")  # type: ignore[attr-defined]
    unit = _check_index(target.unit, model.config.hidden_size, "unit")  # type: ignore[attr-defined]
    return target.gate, step, unit


def _gate_values(
    model: TracedModel, specs: list[tuple[str, int, int]]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> [B, len(specs)]``: each ``(gate, step, unit)`` recomputed with gradients.

    Runs the trunk, pools the first ``max(step) + 1`` block outputs, zero-pads them as the
    model's ``lstm.input`` does and runs the reference eqs. 2-7 loop up to the last step
    asked for (later steps cannot influence a value, so one loop serves every spec).
    """
    last = max(step for _, step, _ in specs)

    def gate_values(x: torch.Tensor) -> torch.Tensor:
        block_outputs, _ = model.run_trunk(x)  # type: ignore[operator]
        stage_inputs = model.pool_block_outputs(block_outputs[: last + 1])  # type: ignore[operator]
        padded = model.lstm.padded_inputs(stage_inputs)  # type: ignore[union-attr,operator]
        history = reference_crmn_lstm(model.lstm, padded)  # type: ignore[arg-type]
        return torch.stack([history[gate][:, step, unit] for gate, step, unit in specs], dim=1)

    return gate_values


def _gate_function(model: TracedModel, target: GateTarget) -> Callable[[torch.Tensor], torch.Tensor]:
    """Recompute one LSTM quantity with gradients (traces are detached): ``x -> [B]``."""
    values = _gate_values(model, [_gate_spec(model, target)])
    return lambda x: values(x)[:, 0]


@dataclasses.dataclass(frozen=True)
class _Objective:
    """What a batch attributes: one network output row per image and a column per image.

    ``forward`` maps inputs [n, C, H, W] to [n, K] (logits, flattened keypoints ``[n, 2 *
    count]``, or the distinct gate targets of the batch); ``columns[i]`` is image i's column,
    None for "the predicted class" (the row's arg-max, classifiers only). Captum's ``target=``
    takes the list and repeats it wherever a method expands the batch.
    """

    forward: Callable[[torch.Tensor], torch.Tensor]
    columns: list[int | None]


def _target_kind(target: AttributionTarget) -> str:
    if isinstance(target, GateTarget):
        return "GateTarget"
    return "KeypointTarget" if isinstance(target, KeypointTarget) else "class index"


def _objective(model: TracedModel, targets: list[AttributionTarget]) -> _Objective:
    """Check one target per image and build the batch's :class:`_Objective`."""
    kinds = {_target_kind(target) for target in targets}
    if len(kinds) > 1:
        raise ValueError(
            "the targets of one batch must be of one kind (class indices or None, KeypointTarget, "
            f"or GateTarget); got {sorted(kinds)}"
        )
    kind = kinds.pop()
    if kind == "GateTarget":
        specs = [_gate_spec(model, target) for target in targets]  # type: ignore[arg-type]
        distinct = list(dict.fromkeys(specs))
        return _Objective(_gate_values(model, distinct), [distinct.index(spec) for spec in specs])
    if kind == "KeypointTarget":
        if model.task != "keypoints":
            raise ValueError("KeypointTarget needs a keypoint model; use a class index for a classifier")
        count = int(model.config.num_outputs) // 2  # type: ignore[attr-defined]
        columns = [
            2 * _check_index(target.index, count, "keypoint index") + target.axis_index  # type: ignore[union-attr]
            for target in targets
        ]
        return _Objective(lambda x: model(x).flatten(1), columns)  # type: ignore[arg-type]
    if model.task != "classification":
        raise ValueError("a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)")
    classes = int(model.config.num_outputs)  # type: ignore[attr-defined]
    columns = [None if t is None else _check_index(t, classes, "class index") for t in targets]  # type: ignore[arg-type]
    return _Objective(model, columns)


def describe_target(model: TracedModel, target: AttributionTarget) -> str:
    """Human-readable name of a target, e.g. ``"lstm.forget_gate unit 17 at step 9"``,
    ``"keypoint 36 x"`` or ``"logit of class 3 (cat)"``."""
    if isinstance(target, GateTarget):
        return f"lstm.{target.gate} unit {target.unit} at step {target.step}"
    if isinstance(target, KeypointTarget):
        return f"keypoint {target.index} {'xy'[target.axis_index]}"
    names = class_names_for(model)
    index = _check_index(target, len(names), "class index")  # type: ignore[arg-type]
    return f"logit of class {index}" + ("" if names[index] == f"class {index}" else f" ({names[index]})")


def gradcam_layer_name(model: TracedModel, block: int = -1, stream: str = "residual") -> str:
    """The module whose output Grad-CAM uses for ``block``.

    ResNet and CRMN: ``blocks.{k}.out`` (block output after the residual addition, eq. 1);
    RiR: ``blocks.{k}.residual`` or ``blocks.{k}.transient`` (``stream``) of generalized
    block k; ReNet: ``layers.{k}.out``. Negative ``block`` counts from the end. The model
    knows its own layers: this is :meth:`~crmn_viz.models.base.TracedModel.gradcam_layer`.
    """
    return model.gradcam_layer(block, stream)


def _baseline(spec: Any, x: torch.Tensor, model: TracedModel) -> torch.Tensor:
    """A baseline tensor like ``x``: ``"zeros"`` (normalised 0, i.e. the normalisation mean
    colour), ``"black"`` (pixel value 0), ``"white"`` (pixel value 1), a number, or a tensor."""
    if isinstance(spec, torch.Tensor):
        return spec.to(device=x.device, dtype=x.dtype).expand_as(x).clone()
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return torch.full_like(x, float(spec))
    if spec == "zeros":
        return torch.zeros_like(x)
    if spec in ("black", "white"):
        preprocess = preprocessor_for(model)
        pixel = 0.0 if spec == "black" else 1.0
        values = [(pixel - m) / s for m, s in zip(preprocess.mean, preprocess.std)]
        return torch.tensor(values, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).expand_as(x).clone()
    raise ValueError(f"baseline must be 'zeros', 'black', 'white', a number or a tensor; got {spec!r}")


def _describe_baseline(spec: Any) -> Any:
    return f"tensor{tuple(spec.shape)}" if isinstance(spec, torch.Tensor) else spec


_METHOD_OPTIONS: dict[str, dict[str, Any]] = {
    "saliency": {"abs": True},
    "integrated_gradients": {"n_steps": 64, "integration": "gausslegendre", "baseline": "zeros"},
    "gradient_shap": {"n_samples": 32, "stdevs": 0.1, "baselines": ("zeros", "black"), "seed": 0},
    "occlusion": {"window": None, "stride": None, "baseline": "zeros"},
    "gradcam": {"block": -1, "layer": None, "stream": "residual", "relu": True},
}
_COMMON_OPTIONS: dict[str, Any] = {"precision": "float32"}


def _pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or (height, width), got {value!r}")
    return pair  # type: ignore[return-value]


def _resolve_options(method: str, options: dict[str, Any]) -> dict[str, Any]:
    accepted = {**_METHOD_OPTIONS[method], **_COMMON_OPTIONS}
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for {method!r}; accepted: {sorted(accepted)} and max_batch"
        )
    resolved = {**accepted, **options}
    if resolved["precision"] not in ("float32", "float64"):
        raise ValueError(f"precision must be 'float32' or 'float64', got {resolved['precision']!r}")
    return resolved


def _within(value: int, limit: int, name: str, limit_name: str) -> int:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if value > limit:
        variable = Limits.env_name(f"max_attribution_{limit_name.removeprefix('max_')}")
        raise ValueError(
            f"{name}={value} is above the limit {limit} (AttributionLimits.{limit_name}, "
            f"set by {variable}): choose at most {limit}"
        )
    return value


@contextlib.contextmanager
def seeded_random_state(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch (CPU and ``device``) and NumPy's global generator for the block, then restore them.

    Captum's gradient SHAP draws its noise with torch and its interpolation points with
    ``np.random``; seeding both makes a map reproducible. The previous generator states come
    back afterwards, so callers' random streams are not disturbed.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _image_batch(model: TracedModel, images: Any) -> tuple[torch.Tensor, bool]:
    """The normalised batch [B, C, H, W] and whether the caller gave a batch (a list comes back).

    One image (PIL, [C, H, W], [1, C, H, W]) -> B = 1, False; a list or tuple (even of one
    image) or a tensor [B, C, H, W] with B > 1 -> True.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("attribute needs at least one image; got an empty list")
        if all(isinstance(image, Image.Image) for image in images):
            return prepare_batch(model, list(images)), True
        parts = []
        for position, image in enumerate(images):
            if isinstance(image, torch.Tensor) and not (
                image.dim() == 3 or (image.dim() == 4 and image.shape[0] == 1)
            ):
                raise ValueError(
                    f"image {position} of the list has shape {tuple(image.shape)}; each element must be "
                    "one image: a PIL image or a normalised tensor [C, H, W]"
                )
            parts.append(prepare_batch(model, image))
        shapes = sorted({tuple(part.shape[1:]) for part in parts})
        if len(shapes) > 1:
            raise ValueError(f"the images of one batch must share one size; got tensors of shapes {shapes}")
        return torch.cat(parts), True
    x = prepare_batch(model, images)
    if x.shape[0] == 0:
        raise ValueError("attribute needs at least one image; got an empty batch [0, C, H, W]")
    return x, x.shape[0] > 1


def _per_image_targets(target: Any, count: int) -> list[AttributionTarget]:
    """One target per image: a single target (or None) is shared, a sequence gives one each."""
    if isinstance(target, (torch.Tensor, np.ndarray)):
        target = target.item() if target.ndim == 0 else target.tolist()
    if isinstance(target, (list, tuple)):
        if len(target) != count:
            raise ValueError(
                f"got {len(target)} targets for {count} image(s): give one target per image, "
                "or a single target for all"
            )
        return list(target)
    return [target] * count


@overload
def attribute(
    model: TracedModel,
    image_or_tensor: Image.Image,
    method: str,
    target: AttributionTarget = None,
    *,
    max_batch: int = 64,
    limits: AttributionLimits | None = None,
    **options: Any,
) -> AttributionResult: ...


@overload
def attribute(
    model: TracedModel,
    image_or_tensor: list[Any] | tuple[Any, ...],
    method: str,
    target: AttributionTarget | Sequence[AttributionTarget] = None,
    *,
    max_batch: int = 64,
    limits: AttributionLimits | None = None,
    **options: Any,
) -> list[AttributionResult]: ...


@overload
def attribute(
    model: TracedModel,
    image_or_tensor: torch.Tensor,
    method: str,
    target: AttributionTarget | Sequence[AttributionTarget] = None,
    *,
    max_batch: int = 64,
    limits: AttributionLimits | None = None,
    **options: Any,
) -> AttributionResult | list[AttributionResult]: ...


def attribute(
    model: TracedModel,
    image_or_tensor: ImageBatch | list[Any] | tuple[Any, ...],
    method: str,
    target: AttributionTarget | Sequence[AttributionTarget] = None,
    *,
    max_batch: int = 64,
    limits: AttributionLimits | None = None,
    **options: Any,
) -> AttributionResult | list[AttributionResult]:
    """Attribute one scalar of the network (class logit, keypoint coordinate, gate unit) to the input.

    One image gives one :class:`AttributionResult`; a batch gives a list of them, one per image,
    computed together: the images go through each method as one batch (split only where
    ``max_batch`` requires), and every map equals the one a call for that image alone gives
    (float32: within 1e-5).

    Args:
        model: any crmn-viz model (CRMN, ResNet, RiR, ReNet); used in eval mode.
        image_or_tensor: one image (a PIL image or a normalised tensor [C, H, W] / [1, C, H, W]),
            or a batch: a list or tuple of images (PIL images or [C, H, W] tensors of one size;
            a list of one image is a batch of one) or a tensor [B, C, H, W] with B > 1.
        method: one of :data:`ATTRIBUTION_METHODS`.
        target: class index (default None: each image's predicted class), :class:`KeypointTarget`
            (required for keypoint models) or :class:`GateTarget` (CRMN), shared by every image;
            or a list of them, one per image (of one kind; None entries: predicted class).
        max_batch: most network inputs per forward/backward pass (memory cap): images are
            taken in groups of at most ``max_batch``; integrated gradients runs
            ``max_batch // group`` steps per pass, occlusion as many windows, gradient SHAP
            ``max_batch // n_samples`` images (at least one) per chunk of noisy samples.
        limits: bounds on the cost options (default :class:`AttributionLimits`).
        **options: per method (defaults in brackets):

            * saliency: ``abs`` [True] absolute gradients.
            * integrated_gradients: ``n_steps`` [64], ``integration`` ["gausslegendre" or
              "riemann_trapezoid", ...], ``baseline`` ["zeros"; "black", "white", number, tensor].
            * gradient_shap: ``n_samples`` [32], ``stdevs`` [0.1] input noise,
              ``baselines`` [("zeros", "black")] a list of baseline specs, ``seed`` [0; None:
              unseeded]. With a seed, each image draws its noise, baselines and interpolation
              points from the seed alone, exactly as a call for that image alone does, so a
              batch reproduces the one-by-one maps.
            * occlusion: ``window`` [input side / 8] int or (h, w), ``stride`` [window / 2],
              ``baseline`` ["zeros"].
            * gradcam: ``block`` [-1, last], ``layer`` [None] explicit module path instead
              of ``block``, ``stream`` ["residual"; RiR "transient"], ``relu`` [True].
            * all: ``precision`` ["float32"; "float64" runs a double copy of the model,
              e.g. for tight completeness checks].

            A baseline tensor is [C, H, W] or [1, C, H, W] (shared), or [B, C, H, W] (one per
            image; integrated gradients and occlusion).

    Returns:
        :class:`AttributionResult` for one image, ``list[AttributionResult]`` for a batch; each
        ``map`` is [C, H, W] (Grad-CAM: [H, W]) and ``target``, ``target_value``,
        ``convergence_delta`` and ``resolved_target`` are that image's.

    Shapes:
        input [1, C, H, W] -> map [C, H, W] or [H, W]; input [B, C, H, W] -> B such maps.

    Raises:
        ValueError: unknown method/option, an option beyond ``limits``, a bad target, a targets
            list whose length is not the number of images, targets of mixed kinds, an empty
            batch, or list images of different sizes.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {list(ATTRIBUTION_METHODS)}")
    limits = limits or AttributionLimits()
    max_batch = _within(max_batch, limits.max_batch, "max_batch", "max_batch")
    resolved = _resolve_options(method, options)
    x, batched = _image_batch(model, image_or_tensor)
    targets = _per_image_targets(target, x.shape[0])

    working = model
    if resolved["precision"] == "float64":
        working = copy.deepcopy(model).to(torch.float64)
        x = x.to(torch.float64)
    with evaluation_mode(working):
        objective = _objective(working, targets)
        used, tensors = _prepare_method(working, x, method, resolved, targets, limits)
        maps, values, deltas, columns = [], [], [], []
        for start in range(0, x.shape[0], max_batch):  # groups of at most max_batch images
            group = slice(start, start + max_batch)
            group_maps, group_values, group_deltas, group_columns, extra = _run_method(
                working,
                objective.forward,
                x[group],
                objective.columns[group],
                method,
                resolved,
                used,
                {name: tensor[group] for name, tensor in tensors.items()},
                max_batch,
            )
            used.update(extra)
            maps.append(group_maps.detach().to(torch.float64).cpu())
            values += group_values.detach().to(torch.float64).cpu().tolist()
            deltas += [None] * len(group_columns) if group_deltas is None else group_deltas.tolist()
            columns += group_columns
    all_maps = torch.cat(maps).numpy()
    results = []
    for index, (given, column) in enumerate(zip(targets, columns)):
        resolved_target = column if given is None else given  # classifiers: the column is the class
        results.append(
            AttributionResult(
                map=all_maps[index],
                method=method,
                target=describe_target(model, resolved_target),
                target_value=float(values[index]),
                convergence_delta=deltas[index],
                options={**copy.deepcopy(used), "precision": resolved["precision"], "max_batch": max_batch},
                resolved_target=resolved_target,
            )
        )
    return results if batched else results[0]


def _prepare_method(
    model: TracedModel,
    x: torch.Tensor,
    method: str,
    options: dict[str, Any],
    targets: list[AttributionTarget],
    limits: AttributionLimits,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Check the method's options against ``limits`` and the input before any network pass.

    Returns the options as reported in :attr:`AttributionResult.options` and the per-image
    tensors the method needs (baselines), each with the batch as its first dimension.
    """
    if method == "saliency":
        return {"abs": bool(options["abs"])}, {}
    if method == "integrated_gradients":
        n_steps = _within(options["n_steps"], limits.max_steps, "n_steps", "max_steps")
        used = {"n_steps": n_steps, "integration": options["integration"]}
        return {**used, "baseline": _describe_baseline(options["baseline"])}, {
            "baseline": _baseline(options["baseline"], x, model)
        }
    if method == "gradient_shap":
        n_samples = _within(options["n_samples"], limits.max_samples, "n_samples", "max_samples")
        specs = options["baselines"]
        specs = [specs] if isinstance(specs, (str, int, float, torch.Tensor)) else list(specs)
        baselines = torch.stack([_baseline(spec, x, model) for spec in specs], dim=1)  # [B, n, C, H, W]
        used = {
            "n_samples": n_samples,
            "stdevs": float(options["stdevs"]),
            "baselines": [_describe_baseline(s) for s in specs],
            "seed": options["seed"],
        }
        return used, {"baselines": baselines}
    if method == "occlusion":
        _, _, height, width = x.shape
        window = _pair(options["window"] or max(1, round(min(height, width) / 8)), "window")
        stride = _pair(options["stride"] or (max(1, window[0] // 2), max(1, window[1] // 2)), "stride")
        if window[0] > height or window[1] > width:
            raise ValueError(f"occlusion window {window} is larger than the {height}x{width} input")
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ValueError(f"occlusion stride {stride} must not exceed the window {window}")
        positions = occlusion_positions(height, width, window, stride)
        _within(positions, limits.max_windows, "occlusion window positions", "max_windows")
        used = {"window": window, "stride": stride, "baseline": _describe_baseline(options["baseline"])}
        return {**used, "positions": positions}, {"baseline": _baseline(options["baseline"], x, model)}

    # gradcam
    layer_name = options["layer"] or gradcam_layer_name(model, options["block"], options["stream"])
    if layer_name not in dict(model.named_modules()):
        raise ValueError(f"no module named {layer_name!r} in this {model.arch} model")
    for target in dict.fromkeys(targets):
        if isinstance(target, GateTarget) and layer_name.startswith("blocks."):
            block_index = int(layer_name.split(".")[1])
            if block_index > target.step % model.num_steps:  # type: ignore[attr-defined]
                raise ValueError(
                    f"the LSTM at step {target.step} has only read blocks 0..{target.step}; "
                    f"Grad-CAM on block {block_index} is undefined (choose block <= step)"
                )
    return {"layer": layer_name, "relu": bool(options["relu"])}, {}


def _resolve_columns(outputs: torch.Tensor, columns: list[int | None]) -> list[int]:
    """Each image's column; None (predicted class) becomes the arg-max of its row of ``outputs``."""
    if all(column is not None for column in columns):
        return columns  # type: ignore[return-value]
    predicted = outputs.detach().argmax(dim=-1).tolist()
    return [predicted[row] if column is None else column for row, column in enumerate(columns)]


def _select(outputs: torch.Tensor, columns: list[int]) -> torch.Tensor:
    """``outputs[i, columns[i]]`` for every row: [n, K] -> [n]."""
    index = torch.as_tensor(columns, device=outputs.device).unsqueeze(1)
    return outputs.gather(1, index).squeeze(1)


def _run_method(
    model: TracedModel,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    columns: list[int | None],
    method: str,
    options: dict[str, Any],
    used: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    max_batch: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[int], dict[str, Any]]:
    """One group of at most ``max_batch`` images through ``method``.

    Returns (maps [b, C, H, W] or [b, H, W], target values [b], convergence deltas [b] or None,
    the resolved columns, options learnt on the way).
    """
    from captum.attr import IntegratedGradients, LayerAttribution, Occlusion, Saliency

    if method == "gradcam":
        cam, values, resolved = _grad_cam(forward, x, used["layer"], bool(options["relu"]), columns)
        upsampled = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
        return upsampled[:, 0], values, None, resolved, {"layer_size": tuple(cam.shape[-2:])}

    with torch.no_grad():
        outputs = forward(x)
    resolved = _resolve_columns(outputs, columns)
    values = _select(outputs, resolved)
    if method == "gradient_shap":
        attribution, delta = _gradient_shap(
            forward, x, resolved, tensors["baselines"], used, max_batch, model_device(model)
        )
        return attribution, values, delta, resolved, {}

    inputs = x.clone().requires_grad_(True)
    count = x.shape[0]
    if method == "saliency":
        attribution = Saliency(forward).attribute(inputs, target=resolved, abs=used["abs"])
        return attribution, values, None, resolved, {}

    if method == "integrated_gradients":
        # internal_batch_size counts network inputs: max_batch // count steps of all images per pass
        attribution, delta = IntegratedGradients(forward).attribute(
            inputs,
            baselines=tensors["baseline"],
            target=resolved,
            n_steps=used["n_steps"],
            method=used["integration"],
            internal_batch_size=max_batch,
            return_convergence_delta=True,
        )
        return attribution, values, delta.detach().to(torch.float64).cpu(), resolved, {}

    # occlusion
    channels = x.shape[1]
    attribution = Occlusion(forward).attribute(
        inputs,
        sliding_window_shapes=(channels, *used["window"]),
        strides=(channels, *used["stride"]),
        baselines=tensors["baseline"],
        target=resolved,
        perturbations_per_eval=max(1, max_batch // count),  # each evaluation: count images per window
    )
    return attribution, values, None, resolved, {}


def _shap_chunks(n_samples: int, max_batch: int) -> list[int]:
    """Sizes of the sample chunks one image draws, in order: ``max_batch`` each, then the rest."""
    return [min(max_batch, n_samples - done) for done in range(0, n_samples, max_batch)]


def _draw_shap_samples(
    x: torch.Tensor, baselines: torch.Tensor, chunks: list[int], stdev: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's noisy inputs, baseline choices and interpolation points, as Captum draws them.

    For each chunk, in Captum's order (``GradientShap`` -> ``NoiseTunnel``): the baseline
    indices (``np.random.choice``), the input noise (``torch.normal`` with the standard
    deviation expanded to the chunk's shape) and the interpolation coefficients
    (``np.random.uniform``). Drawing these for each image from its own seeded state is what makes
    a batch reproduce the one-image maps exactly.

    Shapes: x [1, C, H, W], baselines [n, C, H, W] -> noisy [S, C, H, W], indices [S], alphas [S].
    """
    noisy, indices, alphas = [], [], []
    for chunk in chunks:
        indices += np.random.choice(baselines.shape[0], chunk).tolist()
        stdev_expanded = torch.tensor(stdev, device=x.device).repeat((chunk, *x.shape[1:]))
        noisy.append(x.repeat_interleave(chunk, dim=0) + torch.normal(0, stdev_expanded))
        alphas.append(torch.tensor(np.random.uniform(0.0, 1.0, chunk), device=x.device, dtype=x.dtype))
    return torch.cat(noisy), torch.tensor(indices, device=x.device), torch.cat(alphas)


def _gradient_shap(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    columns: list[int],
    baselines: torch.Tensor,
    used: dict[str, Any],
    max_batch: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient SHAP for a batch: ``E[(x~ - x_b) * grad f(x_b + a (x~ - x_b))]`` over noisy
    inputs x~, baselines x_b and a ~ U(0, 1), with Captum's draws (:func:`_draw_shap_samples`).

    Images go ``max(1, max_batch // n_samples)`` at a time; their samples are evaluated in passes
    of at most ``max_batch`` network inputs. Returns (maps [b, C, H, W], mean completeness gap per
    image [b] float64: ``sum(attr) - (f(x~) - f(x_b))`` averaged over the samples, as Captum's).
    """
    n_samples, seed = used["n_samples"], used["seed"]
    chunks = _shap_chunks(n_samples, max_batch)
    per_group = max(1, max_batch // n_samples)
    maps, deltas = [], []
    for start in range(0, x.shape[0], per_group):
        rows = range(start, min(start + per_group, x.shape[0]))
        drawn = []
        for row in rows:
            seeding = contextlib.nullcontext() if seed is None else seeded_random_state(int(seed), device)
            with seeding, torch.no_grad():
                drawn.append(_draw_shap_samples(x[row : row + 1], baselines[row], chunks, used["stdevs"]))
        noisy = torch.cat([d[0] for d in drawn])
        starts = torch.cat([baselines[row][d[1]] for row, d in zip(rows, drawn)])
        alphas = torch.cat([d[2] for d in drawn]).view(-1, *([1] * (x.dim() - 1)))
        points = alphas * noisy + (1.0 - alphas) * starts  # Captum's _scale_input
        targets = [columns[row] for row in rows for _ in range(n_samples)]
        with torch.no_grad():  # f at each image's few baselines, once: [rows, baselines]
            specs = baselines[rows.start : rows.stop].flatten(0, 1)
            spec_targets = [columns[row] for row in rows for _ in range(baselines.shape[1])]
            at_baselines = torch.cat(
                [
                    _select(forward(specs[i : i + max_batch]), spec_targets[i : i + max_batch])
                    for i in range(0, specs.shape[0], max_batch)
                ]
            ).view(len(rows), -1)
            start_values = torch.cat([at_baselines[k][d[1]] for k, d in enumerate(drawn)])
        attribution = torch.empty_like(noisy)
        gaps = torch.empty(noisy.shape[0], dtype=torch.float64)
        for first in range(0, noisy.shape[0], max_batch):
            part = slice(first, first + max_batch)
            point = points[part].detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(_select(forward(point), targets[part]).sum(), point)
            attribution[part] = (noisy[part] - starts[part]) * gradient
            with torch.no_grad():
                rise = _select(forward(noisy[part]), targets[part]) - start_values[part]
            gaps[part] = (attribution[part].flatten(1).sum(1) - rise).to(torch.float64).cpu()
        shape = (len(rows), n_samples, *x.shape[1:])
        maps.append(attribution.view(shape).sum(dim=1) / n_samples)
        deltas.append(gaps.view(len(rows), n_samples).mean(dim=1))
    return torch.cat(maps), torch.cat(deltas)


def _grad_cam(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    layer_name: str,
    relu: bool,
    columns: list[int | None],
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Grad-CAM of each image's column from one forward and one backward pass to the layer.

    Returns (cam [B, 1, h, w], the attributed values [B] from the same forward, the columns
    with None resolved to the row's arg-max).
    """
    with recording([layer_name], keep_graph=True) as captured:
        outputs = forward(inputs)
    resolved = _resolve_columns(outputs, columns)
    scores = _select(outputs, resolved)
    return _cam_from(captured, scores, layer_name, relu), scores.detach(), resolved


def _cam_from(
    captured: dict[str, torch.Tensor], scores: torch.Tensor, layer_name: str, relu: bool
) -> torch.Tensor:
    """``relu(sum_c mean_hw(d scores.sum() / d A_c) * A_c)`` for the recorded activation A."""
    if layer_name not in captured:
        raise ValueError(f"the target never reached {layer_name!r}; choose an earlier block or layer")
    activation = captured[layer_name]
    if activation.dim() != 4:
        raise ValueError(
            f"Grad-CAM needs a spatial layer output [B, C, h, w]; {layer_name!r} gives {activation.dim()}D"
        )
    (gradients,) = torch.autograd.grad(scores.sum(), activation)
    cam = (gradients.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1, keepdim=True)
    return (torch.relu(cam) if relu else cam).detach()


def grad_cam(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, layer_name: str, relu: bool = True
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the activation recorded by the probe ``layer_name``.

    ``cam = sum_c (mean_{h,w} d score / d A_c) * A_c`` (then ReLU), as Captum's
    ``LayerGradCam``, but without module hooks: the activation is captured by the
    thread-local recorder with its autograd graph kept, so concurrent calls on a shared
    model cannot see each other's activations. ``forward`` returns one score per image [B].

    Shape: inputs [B, C, H, W] -> [B, 1, h, w] on the layer's grid.
    """
    with recording([layer_name], keep_graph=True) as captured:
        scores = forward(inputs)
    return _cam_from(captured, scores, layer_name, relu)


def occlusion_positions(height: int, width: int, window: tuple[int, int], stride: tuple[int, int]) -> int:
    """Number of sliding-window positions Captum's occlusion evaluates on an ``height x width`` input."""
    rows = math.ceil((height - window[0]) / stride[0]) + 1
    cols = math.ceil((width - window[1]) / stride[1]) + 1
    return rows * cols
