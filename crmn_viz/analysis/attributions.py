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
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

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
    """

    map: np.ndarray
    method: str
    target: str
    target_value: float
    convergence_delta: float | None
    options: dict[str, Any]


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


def _gate_function(model: TracedModel, target: GateTarget) -> Callable[[torch.Tensor], torch.Tensor]:
    """Recompute one LSTM quantity with gradients (traces are detached).

    Runs the trunk, pools the first ``step + 1`` block outputs, zero-pads them as the
    model's ``lstm.input`` does and runs the reference eqs. 2-7 loop up to ``step``
    (later steps cannot influence it).
    """
    if not model.has_memory:
        raise ValueError(f"GateTarget needs a CRMN (its LSTM reads the blocks); got a {model.arch!r} model")
    if target.gate not in LSTM_QUANTITIES:
        raise ValueError(f"unknown gate {target.gate!r}; choose from {list(LSTM_QUANTITIES)}")
    step = _check_index(target.step, model.num_steps, "step")  # type: ignore[attr-defined]
    unit = _check_index(target.unit, model.config.hidden_size, "unit")  # type: ignore[attr-defined]

    def gate_value(x: torch.Tensor) -> torch.Tensor:
        block_outputs, _ = model.run_trunk(x)  # type: ignore[operator]
        stage_inputs = model.pool_block_outputs(block_outputs[: step + 1])  # type: ignore[operator]
        padded = model.lstm.padded_inputs(stage_inputs)  # type: ignore[union-attr,operator]
        history = reference_crmn_lstm(model.lstm, padded)  # type: ignore[arg-type]
        return history[target.gate][:, step, unit]

    return gate_value


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


def attribute(
    model: TracedModel,
    image_or_tensor: ImageBatch,
    method: str,
    target: AttributionTarget = None,
    *,
    max_batch: int = 64,
    limits: AttributionLimits | None = None,
    **options: Any,
) -> AttributionResult:
    """Attribute one scalar of the network (class logit, keypoint coordinate, gate unit) to the input.

    Args:
        model: any crmn-viz model (CRMN, ResNet, RiR, ReNet); used in eval mode.
        image_or_tensor: one PIL image or one normalised tensor [C, H, W] / [1, C, H, W].
        method: one of :data:`ATTRIBUTION_METHODS`.
        target: class index (default: the predicted class), :class:`KeypointTarget`
            (required for keypoint models) or :class:`GateTarget` (CRMN).
        max_batch: most network inputs per forward/backward pass (memory cap).
        limits: bounds on the cost options (default :class:`AttributionLimits`).
        **options: per method (defaults in brackets):

            * saliency: ``abs`` [True] absolute gradients.
            * integrated_gradients: ``n_steps`` [64], ``integration`` ["gausslegendre" or
              "riemann_trapezoid", ...], ``baseline`` ["zeros"; "black", "white", number, tensor].
            * gradient_shap: ``n_samples`` [32], ``stdevs`` [0.1] input noise,
              ``baselines`` [("zeros", "black")] a list of baseline specs, ``seed`` [0; None:
              unseeded].
            * occlusion: ``window`` [input side / 8] int or (h, w), ``stride`` [window / 2],
              ``baseline`` ["zeros"].
            * gradcam: ``block`` [-1, last], ``layer`` [None] explicit module path instead
              of ``block``, ``stream`` ["residual"; RiR "transient"], ``relu`` [True].
            * all: ``precision`` ["float32"; "float64" runs a double copy of the model,
              e.g. for tight completeness checks].

    Returns:
        :class:`AttributionResult`; ``map`` is [C, H, W] (Grad-CAM: [H, W]).

    Shapes:
        input [1, C, H, W] -> map [C, H, W] or [H, W].

    Raises:
        ValueError: unknown method/option, an option beyond ``limits``, a bad target, or
            more than one image.
    """
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose from {list(ATTRIBUTION_METHODS)}")
    limits = limits or AttributionLimits()
    max_batch = _within(max_batch, limits.max_batch, "max_batch", "max_batch")
    resolved = _resolve_options(method, options)
    x = prepare_batch(model, image_or_tensor)
    if x.shape[0] != 1:
        raise ValueError(f"attribute explains one image at a time; got a batch of {x.shape[0]}")

    working = model
    if resolved["precision"] == "float64":
        working = copy.deepcopy(model).to(torch.float64)
        x = x.to(torch.float64)
    with evaluation_mode(working):
        if target is None:
            if working.task != "classification":
                raise ValueError(
                    "a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)"
                )
            with torch.no_grad():
                target = int(working(x).argmax(dim=-1)[0])
        forward = target_function(working, target)
        with torch.no_grad():
            target_value = float(forward(x)[0])
        attribution, delta, used = _run_method(
            working, forward, x, method, target, resolved, max_batch, limits
        )
    return AttributionResult(
        map=attribution.detach().to(torch.float64).cpu().numpy(),
        method=method,
        target=describe_target(model, target),
        target_value=target_value,
        convergence_delta=delta,
        options={**used, "precision": resolved["precision"], "max_batch": max_batch},
    )


def _run_method(
    model: TracedModel,
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    method: str,
    target: AttributionTarget,
    options: dict[str, Any],
    max_batch: int,
    limits: AttributionLimits,
) -> tuple[torch.Tensor, float | None, dict[str, Any]]:
    """Dispatch to Captum; returns (map without the batch dim, delta, options used)."""
    from captum.attr import (
        GradientShap,
        IntegratedGradients,
        LayerAttribution,
        Occlusion,
        Saliency,
    )

    inputs = x.clone().requires_grad_(True)
    if method == "saliency":
        attribution = Saliency(forward).attribute(inputs, abs=bool(options["abs"]))
        return attribution[0], None, {"abs": bool(options["abs"])}

    if method == "integrated_gradients":
        n_steps = _within(options["n_steps"], limits.max_steps, "n_steps", "max_steps")
        baseline = _baseline(options["baseline"], x, model)
        attribution, delta = IntegratedGradients(forward).attribute(
            inputs,
            baselines=baseline,
            n_steps=n_steps,
            method=options["integration"],
            internal_batch_size=max_batch,
            return_convergence_delta=True,
        )
        used = {"n_steps": n_steps, "integration": options["integration"]}
        return (
            attribution[0],
            float(delta.reshape(-1)[0]),
            {**used, "baseline": _describe_baseline(options["baseline"])},
        )

    if method == "gradient_shap":
        n_samples = _within(options["n_samples"], limits.max_samples, "n_samples", "max_samples")
        specs = options["baselines"]
        specs = [specs] if isinstance(specs, (str, int, float, torch.Tensor)) else list(specs)
        baselines = torch.cat([_baseline(spec, x, model) for spec in specs])
        explainer = GradientShap(forward)
        total = torch.zeros_like(x)
        delta_sum = 0.0
        seed = options["seed"]
        seeding = (
            contextlib.nullcontext() if seed is None else seeded_random_state(int(seed), model_device(model))
        )
        with seeding:
            done = 0
            while done < n_samples:  # chunks of at most max_batch noisy samples, weighted by size
                chunk = min(max_batch, n_samples - done)
                attribution, delta = explainer.attribute(
                    inputs,
                    baselines=baselines,
                    n_samples=chunk,
                    stdevs=float(options["stdevs"]),
                    return_convergence_delta=True,
                )
                total += attribution.detach() * chunk
                delta_sum += float(delta.sum())
                done += chunk
        used = {
            "n_samples": n_samples,
            "stdevs": float(options["stdevs"]),
            "baselines": [_describe_baseline(s) for s in specs],
            "seed": seed,
        }
        return (total / n_samples)[0], delta_sum / n_samples, used

    if method == "occlusion":
        _, channels, height, width = x.shape
        window = _pair(options["window"] or max(1, round(min(height, width) / 8)), "window")
        stride = _pair(options["stride"] or (max(1, window[0] // 2), max(1, window[1] // 2)), "stride")
        if window[0] > height or window[1] > width:
            raise ValueError(f"occlusion window {window} is larger than the {height}x{width} input")
        if stride[0] > window[0] or stride[1] > window[1]:
            raise ValueError(f"occlusion stride {stride} must not exceed the window {window}")
        positions = occlusion_positions(height, width, window, stride)
        _within(positions, limits.max_windows, "occlusion window positions", "max_windows")
        baseline = _baseline(options["baseline"], x, model)
        attribution = Occlusion(forward).attribute(
            inputs,
            sliding_window_shapes=(channels, *window),
            strides=(channels, *stride),
            baselines=baseline,
            perturbations_per_eval=max_batch,
        )
        used = {"window": window, "stride": stride, "baseline": _describe_baseline(options["baseline"])}
        return attribution[0], None, {**used, "positions": positions}

    # gradcam
    layer_name = options["layer"] or gradcam_layer_name(model, options["block"], options["stream"])
    modules = dict(model.named_modules())
    if layer_name not in modules:
        raise ValueError(f"no module named {layer_name!r} in this {model.arch} model")
    if isinstance(target, GateTarget) and layer_name.startswith("blocks."):
        block_index = int(layer_name.split(".")[1])
        if block_index > target.step % model.num_steps:  # type: ignore[attr-defined]
            raise ValueError(
                f"the LSTM at step {target.step} has only read blocks 0..{target.step}; "
                f"Grad-CAM on block {block_index} is undefined (choose block <= step)"
            )
    layer_map = grad_cam(forward, inputs, layer_name, relu=bool(options["relu"]))
    upsampled = LayerAttribution.interpolate(layer_map, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    used = {"layer": layer_name, "relu": bool(options["relu"]), "layer_size": tuple(layer_map.shape[-2:])}
    return upsampled[0, 0], None, used


def grad_cam(
    forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, layer_name: str, relu: bool = True
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the activation recorded by the probe ``layer_name``.

    ``cam = sum_c (mean_{h,w} d score / d A_c) * A_c`` (then ReLU), as Captum's
    ``LayerGradCam``, but without module hooks: the activation is captured by the
    thread-local recorder with its autograd graph kept, so concurrent calls on a shared
    model cannot see each other's activations.

    Shape: inputs [B, C, H, W] -> [B, 1, h, w] on the layer's grid.
    """
    with recording([layer_name], keep_graph=True) as captured:
        scores = forward(inputs)
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


def occlusion_positions(height: int, width: int, window: tuple[int, int], stride: tuple[int, int]) -> int:
    """Number of sliding-window positions Captum's occlusion evaluates on an ``height x width`` input."""
    rows = math.ceil((height - window[0]) / stride[0]) + 1
    cols = math.ceil((width - window[1]) / stride[1]) + 1
    return rows * cols
