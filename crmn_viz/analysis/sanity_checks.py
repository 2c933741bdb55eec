"""Sanity checks for attribution maps: model-parameter randomisation and the random-logit test.

An attribution method that explains the *model* must change when the model's learned
parameters are destroyed (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"). The
parameters are redrawn group by group, in the order of
:meth:`~crmn_viz.models.base.TracedModel.randomisation_groups` (output layer first):

* ``"cascading"``: stage ``s`` redraws groups ``0..s`` together (output layer, then also the
  layer below it, ... down to the stem);
* ``"independent"``: stage ``s`` redraws group ``s`` only, every other group stays trained.

At every stage the map of the same method, target and options is compared with the trained
model's map by the Spearman rank correlation and by SSIM. A method whose similarity stays
near 1 ignores the model (an edge detector of the image would). The random-logit test (Sixt
et al. 2020; Quantus ``RandomLogit``) compares the map of the target class with the map of a
seeded random other class: a class-sensitive explanation differs.

Randomisation rule: each parameter tensor of a group is redrawn i.i.d. from a normal
distribution with the trained tensor's own mean and (population) standard deviation. This
keeps each tensor's scale, so activations neither vanish nor explode, and destroys its learned
structure. A constant tensor (standard deviation 0, e.g. a bias of zeros or a fresh
BatchNorm weight of ones) is left as it is: ``N(m, 0) = m``; it has no structure across its
entries to destroy. BatchNorm running statistics are buffers, not parameters, and are kept.
The draw of a tensor uses its own ``torch.Generator``, seeded by ``seed`` and the parameter's
name, so a group gets the same random values in both modes and at every cascading stage (stage
``s + 1`` is stage ``s`` with one more group redrawn).

Maps: a [C, H, W] attribution becomes ``sum_c |a_c|`` [H, W]; a Grad-CAM [H, W] map its
absolute value. Spearman compares the flattened maps; SSIM compares them after dividing each
by its maximum (scaled to [0, 1]; an all-zero map stays zero), with ``data_range=1``.

Why not Quantus's ``MPRT`` itself: it randomises the modules it finds one by one (its own order
and re-initialisation), not the model's own stages (output, LSTM, stages, stem), and it explains
class outputs only, while these checks must also run for a keypoint coordinate and an LSTM gate
unit at a step. What can be compared is compared in the tests: the Spearman and SSIM functions
against Quantus's similarity functions, scipy and scikit-image.
"""

from __future__ import annotations

import copy
import dataclasses
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from crmn_viz.analysis.attributions import (
    ATTRIBUTION_METHODS,
    AttributionTarget,
    GateTarget,
    KeypointTarget,
    attribute,
    describe_target,
)
from crmn_viz.analysis.inputs import ImageBatch, evaluation_mode, prepare_batch
from crmn_viz.models.base import TracedModel

__all__ = [
    "SANITY_MODES",
    "SanityCheckResult",
    "randomised_copy",
    "sanity_check",
    "spearman_similarity",
    "ssim_similarity",
]

SANITY_MODES = ("cascading", "independent")

AttributionFunction = Callable[[TracedModel, torch.Tensor, Any], Any]
"""A custom "method": ``(model, x [1, C, H, W], target) -> map`` ([C, H, W] or [H, W])."""

RANDOMISATION_RULE = (
    "each parameter tensor of a group redrawn i.i.d. from N(mean, std) of the trained tensor "
    "(torch.Generator seeded by seed and the parameter name); BatchNorm running statistics kept"
)

# SSIM constants of Wang et al. (2004) and scikit-image's defaults.
SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


@dataclasses.dataclass
class SanityCheckResult:
    """Similarity of a method's maps on progressively (or singly) randomised models to the trained map.

    Attributes:
        mode: ``"cascading"`` or ``"independent"`` (see :data:`SANITY_MODES`).
        method: the attribution method's name (a custom function's ``__name__``).
        target: readable description of the attributed scalar, e.g. ``"logit of class 3"``.
        stages: randomised group names; stage ``s`` of a cascading check has groups
            ``stages[:s + 1]`` redrawn, of an independent check ``stages[s]`` only.
        spearman: [S] Spearman rank correlation of each stage's map with the trained map.
        ssim: [S] SSIM of each stage's [0, 1]-scaled map with the trained one.
        maps: [S] the 2-D map ``sum_c |attribution|`` [H, W] at each stage.
        trained_map: [H, W] the same for the trained model.
        random_logit: for a class target, ``{"other_class", "spearman", "ssim"}``: the map for a
            seeded random other class compared with the target class's map; None for keypoint
            and gate targets (or when not asked for).
        options: the attribution options used, ``seed``, ``max_batch`` and the randomisation rule.
    """

    mode: str
    method: str
    target: str
    stages: list[str]
    spearman: np.ndarray
    ssim: np.ndarray
    maps: list[np.ndarray]
    trained_map: np.ndarray
    random_logit: dict[str, Any] | None
    options: dict[str, Any]


def _parameter_seed(seed: int, name: str) -> int:
    """A 63-bit seed from the check's seed and a parameter name (stable across runs)."""
    state = np.random.SeedSequence([int(seed) % 2**32, zlib.crc32(name.encode())]).generate_state(2)
    return int((int(state[0]) << 31 | int(state[1])) % 2**63)


def _redraw_(parameter: torch.Tensor, seed: int) -> None:
    """Replace ``parameter`` in place with i.i.d. N(mean, std) draws of its own mean and std."""
    values = parameter.detach().to(torch.float64)
    mean, std = values.mean(), values.std(correction=0)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
    parameter.copy_((mean + std * noise).to(device=parameter.device, dtype=parameter.dtype))


def _randomise_(model: TracedModel, stage_names: Sequence[str], seed: int) -> None:
    """Redraw, in place, every parameter of the named groups (see the module docstring)."""
    members = model.randomisation_group_parameters()
    unknown = [name for name in stage_names if name not in members]
    if unknown:
        raise ValueError(
            f"unknown randomisation group(s) {unknown}; this {model.arch} model has {list(members)}"
        )
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for stage in dict.fromkeys(stage_names):
            for name in members[stage]:
                _redraw_(parameters[name], _parameter_seed(seed, name))


def randomised_copy(model: TracedModel, stage_names: Sequence[str], seed: int) -> TracedModel:
    """A deep copy of ``model`` with the parameters of the groups ``stage_names`` redrawn.

    Args:
        model: any crmn-viz model; it is not modified.
        stage_names: names from ``model.randomisation_groups()`` (any order).
        seed: the same seed redraws a parameter to the same values, whichever groups go with it.

    Returns:
        The copy (same device, dtype and training mode); BatchNorm running statistics kept.

    Raises:
        ValueError: a name that is not one of the model's groups.
    """
    if isinstance(stage_names, str):
        stage_names = [stage_names]
    randomised = copy.deepcopy(model)
    _randomise_(randomised, list(stage_names), seed)
    return randomised


def _as_2d(attribution: Any) -> np.ndarray:
    """``sum_c |a_c|`` of a [C, H, W] (or [1, C, H, W]) map, ``|a|`` of an [H, W] one, as float64."""
    if isinstance(attribution, torch.Tensor):
        attribution = attribution.detach().cpu().numpy()
    values = np.abs(np.asarray(attribution, dtype=np.float64))
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 3:
        return values.sum(axis=0)
    if values.ndim == 2:
        return values
    raise ValueError(f"an attribution map must be [C, H, W] or [H, W]; got shape {values.shape}")


def _check_pair(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("maps must not be empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("maps must be finite (no NaN or infinity)")
    return a, b


def spearman_similarity(a: Any, b: Any) -> float:
    """Spearman rank correlation of two maps of the same shape, flattened (ties: average ranks).

    The Pearson correlation of the ranks, as ``scipy.stats.spearmanr(a.ravel(), b.ravel())``.
    Where that is undefined, a constant map: 1.0 when both maps are constant and equal, else
    0.0 (a constant map carries no ranking to agree with).
    """
    from scipy.stats import rankdata

    a, b = _check_pair(a, b)
    a, b = a.ravel(), b.ravel()
    a_constant, b_constant = bool(np.all(a == a[0])), bool(np.all(b == b[0]))
    if a_constant or b_constant:
        return 1.0 if a_constant and b_constant and a[0] == b[0] else 0.0
    if np.array_equal(a, b):
        return 1.0
    ranks_a = rankdata(a) - (a.size + 1) / 2
    ranks_b = rankdata(b) - (b.size + 1) / 2
    correlation = float(ranks_a @ ranks_b / np.sqrt((ranks_a @ ranks_a) * (ranks_b @ ranks_b)))
    return float(np.clip(correlation, -1.0, 1.0))


def ssim_similarity(a: Any, b: Any) -> float:
    """Mean structural similarity (Wang et al. 2004) of two 2-D maps on a data range of 1.

    Equals ``skimage.metrics.structural_similarity(a, b, data_range=1.0)``: a 7 x 7 uniform
    window (``scipy.ndimage.uniform_filter``, reflected borders), K1 = 0.01, K2 = 0.03, sample
    covariances (N / (N - 1)), averaged over the pixels at least 3 from the border. Maps
    smaller than 7 pixels on a side use the largest odd window that fits (scikit-image's
    ``win_size=`` that value; it would refuse the default).

    Raises:
        ValueError: maps of different shapes, not 2-D, or smaller than 3 x 3.
    """
    from scipy.ndimage import uniform_filter

    a, b = _check_pair(a, b)
    if a.ndim != 2:
        raise ValueError(f"SSIM compares 2-D maps; got shape {a.shape}")
    window = min(SSIM_WINDOW, min(a.shape) - (1 - min(a.shape) % 2))
    if window < 3:
        raise ValueError(f"SSIM needs maps of at least 3 x 3 pixels; got {a.shape}")
    count = window**2
    covariance_norm = count / (count - 1)
    mean_a, mean_b = uniform_filter(a, window), uniform_filter(b, window)
    var_a = covariance_norm * (uniform_filter(a * a, window) - mean_a * mean_a)
    var_b = covariance_norm * (uniform_filter(b * b, window) - mean_b * mean_b)
    cov_ab = covariance_norm * (uniform_filter(a * b, window) - mean_a * mean_b)
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data_range)^2 with data_range = 1
    index = ((2 * mean_a * mean_b + c1) * (2 * cov_ab + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    pad = (window - 1) // 2
    return float(index[pad : index.shape[0] - pad, pad : index.shape[1] - pad].mean(dtype=np.float64))


def _unit_scaled(values: np.ndarray) -> np.ndarray:
    """A non-negative map divided by its maximum: [0, 1]; an all-zero map stays zero."""
    peak = float(values.max())
    return values / peak if peak > 0 else values


def _similarities(values: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    return spearman_similarity(values, reference), ssim_similarity(
        _unit_scaled(values), _unit_scaled(reference)
    )


def _resolve_target(model: TracedModel, x: torch.Tensor, target: AttributionTarget) -> Any:
    """None -> the trained model's predicted class (a keypoint model needs an explicit target)."""
    if target is not None:
        return target
    if model.task != "classification":
        raise ValueError("a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)")
    with evaluation_mode(model), torch.no_grad():
        return int(model(x).argmax(dim=-1)[0])


def _is_class_target(model: TracedModel, target: Any) -> bool:
    return model.task == "classification" and not isinstance(target, (GateTarget, KeypointTarget))


def _explainer(
    method: str | AttributionFunction, options: dict[str, Any], max_batch: int
) -> tuple[Callable[[TracedModel, torch.Tensor, Any], np.ndarray], str, dict[str, Any]]:
    """``(explain, method name, options used)``; ``explain(model, x, target)`` gives the 2-D map
    (eval mode). A named method's calls fill in the options dict with its defaults."""
    used: dict[str, Any] = dict(options)
    if callable(method):
        if options:
            raise ValueError(
                f"attribution options {sorted(options)} apply to the named methods; a function "
                "method takes (model, x, target) only (bind its own options with functools.partial)"
            )

        def explain(model: TracedModel, x: torch.Tensor, target: Any) -> np.ndarray:
            with evaluation_mode(model):
                return _as_2d(method(model, x, target))

        return explain, getattr(method, "__name__", type(method).__name__), used
    if method not in ATTRIBUTION_METHODS:
        raise ValueError(
            f"unknown attribution method {method!r}; choose from {list(ATTRIBUTION_METHODS)} "
            "or pass a function (model, x, target) -> map"
        )

    def explain(model: TracedModel, x: torch.Tensor, target: Any) -> np.ndarray:
        result = attribute(model, x, method, target, max_batch=max_batch, **options)
        used.update(result.options)  # the same at every call, defaults included
        return _as_2d(result.map)

    return explain, method, used


def sanity_check(
    model: TracedModel,
    image: ImageBatch,
    method: str | AttributionFunction,
    target: AttributionTarget = None,
    *,
    mode: str = "cascading",
    seed: int = 0,
    max_batch: int = 64,
    random_logit: bool = True,
    **attribution_options: Any,
) -> SanityCheckResult:
    """Model-parameter randomisation test (Adebayo et al. 2018) and random-logit test of one map.

    Args:
        model: the trained model; never modified (each stage runs on a deep copy).
        image: one PIL image or one normalised tensor [C, H, W] / [1, C, H, W].
        method: one of :data:`~crmn_viz.analysis.attributions.ATTRIBUTION_METHODS`, or a
            function ``(model, x [1, C, H, W], target) -> map`` ([C, H, W] or [H, W]).
        target: class index (default: the trained model's predicted class, kept for every
            stage), :class:`KeypointTarget` or :class:`GateTarget`.
        mode: ``"cascading"`` (stage s: groups 0..s redrawn) or ``"independent"`` (group s only).
        seed: seeds the redrawn parameters, the random other class and, unless given in
            ``attribution_options``, gradient SHAP's noise.
        max_batch: most network inputs per pass, handed to :func:`attribute`.
        random_logit: also run the random-logit test (class targets only).
        **attribution_options: options of a named ``method`` (see :func:`attribute`), the
            same at every stage.

    Returns:
        :class:`SanityCheckResult` with one entry per group of ``model.randomisation_groups()``.

    Raises:
        ValueError: unknown mode or method, options for a function method, a target the model
            cannot attribute, or the random-logit test on a model with a single class.
    """
    if mode not in SANITY_MODES:
        raise ValueError(f"unknown sanity-check mode {mode!r}; choose from {list(SANITY_MODES)}")
    options = dict(attribution_options)
    if method == "gradient_shap":
        options.setdefault("seed", seed)  # the same noise at every stage: only the model changes
    explain, method_name, used_options = _explainer(method, options, max_batch)

    x = prepare_batch(model, image)
    if x.shape[0] != 1:
        raise ValueError(f"sanity_check explains one image at a time; got a batch of {x.shape[0]}")
    target = _resolve_target(model, x, target)
    description = describe_target(model, target)
    stages = [name for name, _ in model.randomisation_groups()]
    if not stages:
        raise ValueError(f"this {model.arch} model has no randomisation groups")

    other_class = None
    if random_logit and _is_class_target(model, target):
        classes = int(model.config.num_outputs)  # type: ignore[attr-defined]
        if classes < 2:
            raise ValueError(
                "the random-logit test needs a model with at least 2 classes; "
                f"this one has {classes} (pass random_logit=False)"
            )
        others = [c for c in range(classes) if c != target % classes]
        other_class = int(np.random.default_rng(seed).choice(others))

    trained_map = explain(model, x, target)
    random_logit_result = None
    if other_class is not None:
        other_map = explain(model, x, other_class)
        spearman, ssim = _similarities(other_map, trained_map)
        random_logit_result = {"other_class": other_class, "spearman": spearman, "ssim": ssim}

    maps, spearman_values, ssim_values = [], [], []
    cascade = copy.deepcopy(model) if mode == "cascading" else None
    for stage in stages:
        if cascade is not None:
            _randomise_(cascade, [stage], seed)  # stage s: groups 0..s (per-name seeds)
            randomised = cascade
        else:
            randomised = randomised_copy(model, [stage], seed)
        stage_map = explain(randomised, x, target)
        if stage_map.shape != trained_map.shape:
            raise ValueError(f"the map changed shape from {trained_map.shape} to {stage_map.shape}")
        maps.append(stage_map)
        spearman, ssim = _similarities(stage_map, trained_map)
        spearman_values.append(spearman)
        ssim_values.append(ssim)

    return SanityCheckResult(
        mode=mode,
        method=method_name,
        target=description,
        stages=stages,
        spearman=np.asarray(spearman_values, dtype=np.float64),
        ssim=np.asarray(ssim_values, dtype=np.float64),
        maps=maps,
        trained_map=trained_map,
        random_logit=random_logit_result,
        options={
            **used_options,
            "mode": mode,
            "randomisation_seed": seed,
            "max_batch": max_batch,
            "randomisation": RANDOMISATION_RULE,
        },
    )
