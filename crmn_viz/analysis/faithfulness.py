"""Faithfulness curves of an attribution map: deletion, insertion and ROAD.

An attribution is faithful when the pixels it ranks highest are the ones the network needs.
Each curve perturbs the pixels in the map's order and records a score of the network at
``steps + 1`` points:

* ``"deletion"`` (Petsiuk, Das & Saenko 2018, RISE, sec. 4.1): replace the ranked pixels by a
  baseline; a faithful map makes the score fall fast (low AUC with ``order="most"``).
* ``"insertion"`` (same paper): start from a baseline image (default a blurred copy) and put
  the original pixels back in order; a faithful map makes the score rise fast (high AUC).
* ``"road"`` (Rong, Leemann, Borisov, Kasneci & Kasneci 2022, "A Consistent and Efficient
  Evaluation Strategy for Attribution Methods", ICML): remove by *noisy linear imputation*
  instead of a constant, so the perturbed image carries no mask shape that leaks the
  ranking. ``order="most"`` is MoRF (most relevant first), ``"least"`` LeRF.

Conventions (the same for all three kinds):

* Per-pixel relevance ``r[h, w] = sum_c A[c, h, w]``, the signed sum over channels of a
  [C, H, W] map (so opposing channel evidence cancels, and an absolute saliency map stays
  non-negative); a [H, W] map (Grad-CAM) is used as is.
* Order: ``"most"`` sorts by descending ``r``, ``"least"`` by ascending ``r``; ties keep the
  row-major pixel order in both (stable argsort, see :func:`ranking`).
* Step k of ``steps`` perturbs the first ``n_k = floor(k * H * W / steps + 1/2)`` pixels
  of the order, every channel of each; ``fractions[k] = k / steps``. Step 0 is the image
  itself for deletion and ROAD and the baseline image for insertion; step ``steps`` is the
  all-baseline image for deletion and the image itself for insertion.
* ``auc = sum_k (f_{k+1} - f_k) (s_k + s_{k+1}) / 2`` (trapezoid rule over ``fractions``).
* Scores: for a class target the softmax probability ``softmax(z)_c`` (Petsiuk et al. use
  the probability), or the ``"logit"`` ``z_c``; for a :class:`KeypointTarget` or
  :class:`GateTarget` the ``"value"`` of that scalar itself (:func:`target_function`).
* Baselines, in normalised input units: ``"zeros"`` (normalised 0, i.e. the dataset mean
  colour), ``"black"``/``"white"`` (pixel value 0/1), a number, a tensor like the image, or
  ``"blur"``: a Gaussian blur of the image with standard deviation ``blur_sigma`` pixels
  (default :func:`default_blur_sigma`: ``max(1, min(H, W) / 16)``, 2 px on 32 x 32
  inputs), truncated at ``round(3 sigma)`` pixels, reflect padding. RISE blurs 224-pixel
  ImageNet inputs with an 11 x 11 window (``gaussian_filter`` of a delta, sigma 5, folded into
  the window); copied as is, that window would cover a third of a 32-pixel input, and
  scaled by 32/224 it would barely blur, hence the rule above. Normalisation is affine per
  channel and the kernel sums to 1, so blurring normalised values equals blurring pixels.
  Defaults: ``"zeros"`` for deletion, ``"blur"`` for insertion; ROAD takes no baseline.
* ROAD imputation (the reference code of Rong et al. and Quantus's
  ``noisy_linear_imputation``): every removed pixel equals the weighted mean of its valid
  8 neighbours, weight 1/6 for the 4 direct and 1/12 for the 4 diagonal ones (renormalised
  by the weights of the neighbours inside the image), kept pixels fixed. Per step that is one
  sparse linear system ``(D - W_uu) x_u = W_uk x_k`` per image, solved for all channels at
  once (one LU factorisation, C right-hand sides), then ``noise * N(0, 1)`` is added to
  every imputed value (default ``noise=0.01`` normalised units, numpy generator seeded with
  ``seed``, drawn step after step). When all pixels are removed (fraction 1) the system is
  singular (every constant solves it): the image's per-channel mean colour is used.

Why not Quantus's ``PixelFlipping`` and ``ROAD`` metrics themselves: they score class outputs
only (these curves also run for a keypoint coordinate or an LSTM gate unit), and the curves here
must batch every step's image into one forward pass. The tests cross-check them where the
definitions meet: the deletion curve against ``PixelFlipping`` and the imputation against
Quantus's ``noisy_linear_imputation``, both to 1e-6.

Cost: all ``steps + 1`` inputs are built on the model's device and scored in chunks of at
most ``max_batch`` under ``torch.no_grad()`` in eval mode: exactly
``ceil((steps + 1) / max_batch)`` forward passes (one for ``steps=32``, ``max_batch=64``).
The predicted class for ``target=None`` is read from the unperturbed row of that same batch,
so it costs no extra pass. ROAD adds one sparse solve per step on the CPU.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from crmn_viz.analysis.attributions import (
    AttributionResult,
    AttributionTarget,
    GateTarget,
    KeypointTarget,
    _baseline,
    _describe_baseline,
    describe_target,
    target_function,
)
from crmn_viz.analysis.inputs import ImageBatch, evaluation_mode, prepare_batch
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel

__all__ = [
    "FAITHFULNESS_BASELINES",
    "FAITHFULNESS_KINDS",
    "FAITHFULNESS_ORDERS",
    "FAITHFULNESS_SCORES",
    "MAX_FAITHFULNESS_STEPS",
    "ROAD_NEIGHBOUR_WEIGHTS",
    "FaithfulnessCurve",
    "default_blur_sigma",
    "deletion_and_insertion",
    "faithfulness",
    "gaussian_blur",
    "noisy_linear_imputation",
    "perturbation_scores",
    "pixel_relevance",
    "random_attribution",
    "ranking",
]

FAITHFULNESS_KINDS = ("deletion", "insertion", "road")
FAITHFULNESS_ORDERS = ("most", "least")
"""``"most"``: most relevant pixels first (MoRF); ``"least"``: least relevant first (LeRF)."""
FAITHFULNESS_SCORES = ("probability", "logit", "value")
FAITHFULNESS_BASELINES = ("zeros", "black", "white", "blur")
"""Named baselines; a number or a tensor like the image is accepted too."""
MAX_FAITHFULNESS_STEPS = 256
"""Most curve steps (each one is a network input; ROAD also solves one linear system per step)."""
ROAD_NEIGHBOUR_WEIGHTS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)
"""((row offset, column offset), weight) of the 8 neighbours in ROAD's linear imputation."""

_ORDER_NAMES = {"most": "most_relevant_first", "least": "least_relevant_first"}
_DEFAULT_BASELINES = {"deletion": "zeros", "insertion": "blur", "road": None}

Attribution = AttributionResult | np.ndarray | torch.Tensor
"""An :class:`AttributionResult` or a map [C, H, W] / [H, W]."""


@dataclasses.dataclass
class FaithfulnessCurve:
    """One faithfulness curve and how it was made.

    Attributes:
        kind: ``"deletion"``, ``"insertion"`` or ``"road"``.
        order: ``"most_relevant_first"`` or ``"least_relevant_first"``.
        fractions: [steps + 1] ``k / steps``: fraction of pixels perturbed (deletion, ROAD) or
            inserted (insertion), 0 to 1.
        scores: [steps + 1] the score at each fraction.
        auc: trapezoidal area under ``scores`` over ``fractions``.
        score_name: what was scored, e.g. ``"probability of class 3 (cat)"``.
        target: :func:`describe_target` of the target.
        options: every option used, defaults included.
    """

    kind: str
    order: str
    fractions: np.ndarray
    scores: np.ndarray
    auc: float
    score_name: str
    target: str
    options: dict[str, Any]


def random_attribution(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A seeded uniform [0, 1) random map of ``shape``: the "random attribution" reference curve.

    Its ranking is a uniformly random pixel permutation (ties have probability 0).
    """
    return np.random.default_rng(seed).random(tuple(shape))


def pixel_relevance(attribution: Attribution, image_shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """Per-pixel relevance [H, W]: ``sum_c A[c, h, w]`` of a [C, H, W] map, a [H, W] map as is.

    Args:
        attribution: an :class:`AttributionResult` or a map (ndarray or tensor).
        image_shape: (C, H, W) of the image the map explains, to check the map against.

    Raises:
        ValueError: a map of another rank or size than the image, or with non-finite values.
    """
    values = attribution.map if isinstance(attribution, AttributionResult) else attribution
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        if image_shape is not None and values.shape[0] not in (1, image_shape[0]):
            raise ValueError(
                f"the attribution has {values.shape[0]} channel(s), the image {image_shape[0]}; "
                "pass a [C, H, W] map of the image's channels or a [H, W] map"
            )
        values = values.sum(axis=0)
    elif values.ndim != 2:
        raise ValueError(f"an attribution map must be [C, H, W] or [H, W]; got shape {values.shape}")
    if image_shape is not None and values.shape != tuple(image_shape[1:]):
        raise ValueError(
            f"the attribution is {values.shape[0]}x{values.shape[1]} pixels, "
            f"the image {image_shape[1]}x{image_shape[2]}"
        )
    if not np.isfinite(values).all():
        raise ValueError("the attribution map has non-finite values (NaN or inf)")
    return values


def ranking(attribution: Attribution) -> np.ndarray:
    """Pixel order [H * W] of flat (row-major) indices, most relevant first.

    Sorted by descending :func:`pixel_relevance`; ties keep the row-major order (stable argsort).
    """
    return np.argsort(-pixel_relevance(attribution).ravel(), kind="stable")


def _pixel_order(relevance: np.ndarray, order: str) -> np.ndarray:
    """Flat pixel indices [H * W] in perturbation order (ties row-major for both orders)."""
    flat = relevance.ravel()
    return np.argsort(-flat if order == "most" else flat, kind="stable")


def _step_counts(pixels: int, steps: int) -> np.ndarray:
    """[steps + 1] pixels perturbed at step k: ``floor(k * pixels / steps + 1/2)`` (exact integers)."""
    k = np.arange(steps + 1, dtype=np.int64)
    return (2 * k * pixels + steps) // (2 * steps)


def default_blur_sigma(height: int, width: int) -> float:
    """Insertion's default blur standard deviation in pixels: ``max(1, min(H, W) / 16)``."""
    return max(1.0, min(height, width) / 16)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a batch [B, C, H, W] (per channel), same shape.

    Kernel ``exp(-t^2 / (2 sigma^2))`` normalised to sum 1, ``t = -r..r`` with
    ``r = min(round(3 sigma), side - 1)`` per axis, reflect padding (whole-sample symmetric,
    scipy's ``mode="mirror"``). ``sigma <= 0`` returns a copy.
    """
    out = x.clone()
    if sigma <= 0:
        return out
    channels = x.shape[1]
    for axis in (2, 3):
        radius = min(int(3 * sigma + 0.5), x.shape[axis] - 1)
        if radius < 1:
            continue
        taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
        kernel = torch.exp(-(taps**2) / (2 * sigma**2))
        kernel = kernel / kernel.sum()
        if axis == 2:
            weight, pad = kernel.view(1, 1, -1, 1), (0, 0, radius, radius)
        else:
            weight, pad = kernel.view(1, 1, 1, -1), (radius, radius, 0, 0)
        out = functional.conv2d(
            functional.pad(out, pad, mode="reflect"), weight.repeat(channels, 1, 1, 1), groups=channels
        )
    return out


def noisy_linear_imputation(
    image: np.ndarray,
    removed: np.ndarray,
    noise: float = 0.01,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al. 2022) of the ``removed`` pixels of one image.

    Each removed pixel i solves ``d_i x_i = sum_{j in N(i)} w_ij x_j`` (weights
    :data:`ROAD_NEIGHBOUR_WEIGHTS`, ``d_i`` the sum of the weights of i's neighbours inside
    the image), kept pixels fixed: one sparse system for all channels, solved by one LU
    factorisation. Then ``noise * N(0, 1)`` from ``rng`` is added to every imputed value.
    With every pixel removed the system is singular; the per-channel mean colour is used.

    Args:
        image: [C, H, W] values (normalised units).
        removed: flat row-major pixel indices [n], or a boolean mask [H, W].
        noise: standard deviation of the added Gaussian noise.
        rng: numpy generator for the noise (default: seeded with 0).

    Returns:
        [C, H, W] float64 copy with the removed pixels imputed.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    channels, height, width = image.shape
    flat = np.array(image, dtype=np.float64).reshape(channels, -1)
    mask = np.zeros(height * width, dtype=bool)
    if removed.dtype == bool:
        mask[:] = removed.ravel()
    else:
        mask[removed] = True
    unknown = np.flatnonzero(mask)
    count = unknown.size
    if count == 0:
        return flat.reshape(image.shape)
    if count == mask.size:
        solution = np.repeat(flat.mean(axis=1, keepdims=True), count, axis=1)
    else:
        variable = np.full(mask.size, -1, dtype=np.int64)
        variable[unknown] = np.arange(count)
        rows, cols = np.divmod(unknown, width)
        diagonal = np.zeros(count)
        rhs = np.zeros((count, channels))
        entries: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for (row_offset, col_offset), weight in ROAD_NEIGHBOUR_WEIGHTS:
            r, c = rows + row_offset, cols + col_offset
            valid = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            equations = np.flatnonzero(valid)  # each equation appears once per offset
            neighbours = r[valid] * width + c[valid]
            diagonal[equations] += weight
            free = mask[neighbours]
            entries.append((equations[free], variable[neighbours[free]], np.full(free.sum(), -weight)))
            rhs[equations[~free]] += weight * flat[:, neighbours[~free]].T
        row_ids = np.concatenate([np.arange(count), *(e[0] for e in entries)])
        col_ids = np.concatenate([np.arange(count), *(e[1] for e in entries)])
        values = np.concatenate([diagonal, *(e[2] for e in entries)])
        system = coo_matrix((values, (row_ids, col_ids)), shape=(count, count)).tocsc()
        solution = splu(system).solve(rhs).reshape(count, channels).T
    rng = rng if rng is not None else np.random.default_rng(0)
    flat[:, unknown] = solution + noise * rng.standard_normal((channels, count))
    return flat.reshape(image.shape)


def _step_images(
    x: torch.Tensor,
    order_pixels: np.ndarray,
    counts: np.ndarray,
    kind: str,
    fill: torch.Tensor | None,
    noise: float,
    seed: int,
    max_batch: int,
) -> Iterator[torch.Tensor]:
    """The perturbed inputs of every step, in chunks [<= max_batch, C, H, W] on ``x``'s device."""
    height, width = x.shape[-2:]
    if kind == "road":
        rng = np.random.default_rng(seed)
        image = x[0].detach().double().cpu().numpy()
        chunk: list[np.ndarray] = []
        for k, count in enumerate(counts):
            removed = order_pixels[:count]
            chunk.append(noisy_linear_imputation(image, removed, noise, rng) if count else image)
            if len(chunk) == max_batch or k == len(counts) - 1:
                yield torch.from_numpy(np.stack(chunk)).to(device=x.device, dtype=x.dtype)
                chunk = []
        return
    assert fill is not None
    position = np.empty(height * width, dtype=np.int64)
    position[order_pixels] = np.arange(height * width)
    position_t = torch.from_numpy(position).to(x.device).view(1, 1, height, width)
    counts_t = torch.from_numpy(counts).to(x.device)
    for start in range(0, len(counts), max_batch):
        mask = position_t < counts_t[start : start + max_batch].view(-1, 1, 1, 1)  # True: perturbed
        yield torch.where(mask, x, fill) if kind == "insertion" else torch.where(mask, fill, x)


def perturbation_scores(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    relevance: np.ndarray,
    *,
    kind: str = "deletion",
    baseline: torch.Tensor | None = None,
    steps: int = 32,
    order: str = "most",
    noise: float = 0.01,
    seed: int = 0,
    max_batch: int = 64,
) -> np.ndarray:
    """The core of :func:`faithfulness`: the outputs of ``score_fn`` along one curve.

    Builds the ``steps + 1`` perturbed inputs (module docstring) and evaluates ``score_fn``
    on chunks of at most ``max_batch`` under ``torch.no_grad()``: exactly
    ``ceil((steps + 1) / max_batch)`` calls. Eval mode is the caller's.

    Args:
        score_fn: batch [B, C, H, W] -> [B] (or [B, K], e.g. logits).
        x: the image [1, C, H, W] (or [C, H, W]), normalised.
        relevance: per-pixel relevance [H, W] (:func:`pixel_relevance`).
        kind: one of :data:`FAITHFULNESS_KINDS`.
        baseline: deletion/insertion fill, a tensor broadcastable to ``x``; None for ROAD.
        steps, order, noise, seed, max_batch: as in :func:`faithfulness` (noise and seed: ROAD).

    Returns:
        float64 [steps + 1] (or [steps + 1, K]).
    """
    x = x.unsqueeze(0) if x.dim() == 3 else x
    if kind not in FAITHFULNESS_KINDS:
        raise ValueError(f"unknown faithfulness kind {kind!r}; choose from {list(FAITHFULNESS_KINDS)}")
    if order not in FAITHFULNESS_ORDERS:
        raise ValueError(f"order must be 'most' or 'least', got {order!r}")
    if (baseline is None) != (kind == "road"):
        raise ValueError("deletion and insertion need a baseline tensor; ROAD takes none")
    fill = None if baseline is None else baseline.to(device=x.device, dtype=x.dtype).expand_as(x)
    counts = _step_counts(relevance.size, steps)
    order_pixels = _pixel_order(relevance, order)
    outputs = []
    with torch.no_grad():
        for chunk in _step_images(x, order_pixels, counts, kind, fill, noise, seed, max_batch):
            outputs.append(score_fn(chunk).detach().to(device="cpu", dtype=torch.float64))
    return torch.cat(outputs).numpy()


def _check_int(value: Any, low: int, high: int, name: str, hint: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in {low}..{high} ({hint}), got {value!r}")
    return int(value)


def _resolve_score(score: str | None, class_target: bool) -> str:
    if score is None:
        return "probability" if class_target else "value"
    if score not in FAITHFULNESS_SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {list(FAITHFULNESS_SCORES)}")
    if class_target and score == "value":
        raise ValueError(
            "score 'value' is for keypoint and gate targets; a class target takes 'probability' or 'logit'"
        )
    if not class_target and score != "value":
        raise ValueError(f"score {score!r} needs a class target; keypoint and gate targets take 'value'")
    return score


def _fill(spec: Any, x: torch.Tensor, model: TracedModel, blur_sigma: float) -> torch.Tensor:
    """The deletion/insertion baseline image [1, C, H, W]."""
    if isinstance(spec, str) and spec == "blur":
        return gaussian_blur(x, blur_sigma)
    if isinstance(spec, str) and spec not in FAITHFULNESS_BASELINES:
        raise ValueError(
            f"unknown baseline {spec!r}; choose from {list(FAITHFULNESS_BASELINES)}, a number or a tensor"
        )
    try:
        return _baseline(spec, x, model)
    except (RuntimeError, ValueError) as error:  # a tensor of the wrong shape, or an unknown type
        raise ValueError(
            f"baseline must be one of {list(FAITHFULNESS_BASELINES)}, a number or a tensor like the "
            f"image {tuple(x.shape)}; got {_describe_baseline(spec)!r}"
        ) from error


def faithfulness(
    model: TracedModel,
    image: ImageBatch,
    attribution: Attribution,
    target: AttributionTarget = None,
    *,
    kind: str = "deletion",
    steps: int = 32,
    order: str = "most",
    score: str | None = None,
    baseline: Any = None,
    seed: int = 0,
    max_batch: int = 64,
    noise: float = 0.01,
    blur_sigma: float | None = None,
) -> FaithfulnessCurve:
    """Deletion, insertion or ROAD curve of one attribution map (semantics: module docstring).

    Args:
        model: any crmn-viz model; used in eval mode (its previous mode is restored).
        image: one PIL image, or one normalised tensor [C, H, W] / [1, C, H, W].
        attribution: an :class:`AttributionResult` or a map [C, H, W] / [H, W] of this image.
        target: class index, :class:`KeypointTarget` or :class:`GateTarget`. None: the
            attribution's ``resolved_target`` for an :class:`AttributionResult`, else the
            predicted class (keypoint models need an explicit target).
        kind: ``"deletion"``, ``"insertion"`` or ``"road"``.
        steps: curve points minus one, 1..:data:`MAX_FAITHFULNESS_STEPS`.
        order: ``"most"`` (most relevant first; ROAD: MoRF) or ``"least"`` (LeRF).
        score: ``"probability"`` [class default] or ``"logit"``; ``"value"`` [keypoint and
            gate targets].
        baseline: ``"zeros"`` [deletion], ``"blur"`` [insertion], ``"black"``, ``"white"``, a
            number or a tensor like the image; must stay None for ROAD.
        seed: seeds ROAD's noise (recorded for every kind).
        max_batch: most network inputs per forward pass.
        noise: ROAD's imputation noise standard deviation (normalised units) [0.01].
        blur_sigma: the ``"blur"`` baseline's sigma in pixels [:func:`default_blur_sigma`].

    Returns:
        :class:`FaithfulnessCurve` with ``steps + 1`` points.

    Shapes:
        image [1, C, H, W], attribution [C, H, W] or [H, W] -> fractions, scores [steps + 1].

    Raises:
        ValueError: unknown kind/order/score/baseline, ``steps`` or ``max_batch`` out of
            range, an attribution not matching the image, a bad target, or several images.
    """
    if kind not in FAITHFULNESS_KINDS:
        raise ValueError(f"unknown faithfulness kind {kind!r}; choose from {list(FAITHFULNESS_KINDS)}")
    if order not in FAITHFULNESS_ORDERS:
        raise ValueError(f"order must be 'most' or 'least', got {order!r}")
    if kind == "road" and baseline is not None:
        raise ValueError("ROAD imputes removed pixels from their neighbours; it takes no baseline")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    setup = _setup(model, image, attribution, target, steps, max_batch, score, seed, blur_sigma)
    baseline = _DEFAULT_BASELINES[kind] if baseline is None else baseline
    with evaluation_mode(model):
        fill = None if kind == "road" else _fill(baseline, setup.x, model, setup.sigma)
        outputs = perturbation_scores(
            setup.score_fn,
            setup.x,
            setup.relevance,
            kind=kind,
            baseline=fill,
            steps=setup.steps,
            order=order,
            noise=float(noise),
            seed=setup.seed,
            max_batch=setup.max_batch,
        )
    unperturbed = outputs[-1 if kind == "insertion" else 0]
    return _curve(model, setup, kind, order, outputs, unperturbed, baseline, float(noise))


def deletion_and_insertion(
    model: TracedModel,
    image: ImageBatch,
    attribution: Attribution,
    target: AttributionTarget = None,
    *,
    steps: int = 32,
    order: str = "most",
    score: str | None = None,
    deletion_baseline: Any = None,
    insertion_baseline: Any = None,
    max_batch: int = 128,
    blur_sigma: float | None = None,
) -> tuple[FaithfulnessCurve, FaithfulnessCurve]:
    """The deletion and the insertion curve of one map, from one batch of perturbed images.

    The same curves as two :func:`faithfulness` calls (``kind="deletion"`` and
    ``kind="insertion"``), but the unperturbed image, the first point of deletion and the last of
    insertion, is evaluated once, and all ``2 * steps + 1`` images go through the model in
    ``ceil((2 * steps + 1) / max_batch)`` forward passes (one at the defaults, 65 images).

    Returns:
        ``(deletion, insertion)``.
    """
    if order not in FAITHFULNESS_ORDERS:
        raise ValueError(f"order must be 'most' or 'least', got {order!r}")
    setup = _setup(model, image, attribution, target, steps, max_batch, score, 0, blur_sigma)
    deletion_baseline = _DEFAULT_BASELINES["deletion"] if deletion_baseline is None else deletion_baseline
    insertion_baseline = _DEFAULT_BASELINES["insertion"] if insertion_baseline is None else insertion_baseline
    counts = _step_counts(setup.relevance.size, setup.steps)
    order_pixels = _pixel_order(setup.relevance, order)
    with evaluation_mode(model):
        fills = [_fill(spec, setup.x, model, setup.sigma) for spec in (deletion_baseline, insertion_baseline)]
        everything = setup.steps + 1
        deleted = torch.cat(
            list(_step_images(setup.x, order_pixels, counts, "deletion", fills[0], 0.0, 0, everything))
        )
        inserted = torch.cat(
            list(_step_images(setup.x, order_pixels, counts[:-1], "insertion", fills[1], 0.0, 0, everything))
        )
        batch = torch.cat([deleted, inserted])
        with torch.no_grad():
            outputs = torch.cat(
                [
                    setup.score_fn(batch[start : start + setup.max_batch]).to(
                        device="cpu", dtype=torch.float64
                    )
                    for start in range(0, len(batch), setup.max_batch)
                ]
            ).numpy()
    deletion_outputs = outputs[: setup.steps + 1]
    insertion_outputs = np.concatenate([outputs[setup.steps + 1 :], outputs[:1]])  # + the unperturbed
    unperturbed = outputs[0]
    return (
        _curve(model, setup, "deletion", order, deletion_outputs, unperturbed, deletion_baseline, 0.0),
        _curve(model, setup, "insertion", order, insertion_outputs, unperturbed, insertion_baseline, 0.0),
    )


@dataclasses.dataclass
class _Setup:
    """What every curve of one map shares: the checked inputs."""

    x: torch.Tensor
    relevance: np.ndarray
    target: AttributionTarget
    class_target: bool
    score: str
    score_fn: Callable[[torch.Tensor], torch.Tensor]
    steps: int
    max_batch: int
    seed: int
    sigma: float
    relevance_kind: str


def _setup(
    model: TracedModel,
    image: ImageBatch,
    attribution: Attribution,
    target: AttributionTarget,
    steps: int,
    max_batch: int,
    score: str | None,
    seed: int,
    blur_sigma: float | None,
) -> _Setup:
    steps = _check_int(steps, 1, MAX_FAITHFULNESS_STEPS, "steps", "MAX_FAITHFULNESS_STEPS")
    limit = LIMITS.max_attribution_batch
    max_batch = _check_int(max_batch, 1, limit, "max_batch", "LIMITS.max_attribution_batch")
    seed = _check_int(seed, 0, 2**63 - 1, "seed", "numpy generator seed")
    x = prepare_batch(model, image)
    if x.shape[0] != 1:
        raise ValueError(f"faithfulness evaluates one image at a time; got a batch of {x.shape[0]}")
    _, channels, height, width = x.shape
    relevance = pixel_relevance(attribution, (channels, height, width))
    if target is None and isinstance(attribution, AttributionResult):
        target = attribution.resolved_target
    class_target = not isinstance(target, (KeypointTarget, GateTarget))
    if class_target and model.task != "classification":
        raise ValueError("a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)")
    score = _resolve_score(score, class_target)
    with evaluation_mode(model):
        forward = target_function(model, target) if target is not None else None  # checks the target
    sigma = default_blur_sigma(height, width) if blur_sigma is None else float(blur_sigma)
    return _Setup(
        x=x,
        relevance=relevance,
        target=target,
        class_target=class_target,
        score=score,
        score_fn=model if class_target else forward,  # type: ignore[arg-type]
        steps=steps,
        max_batch=max_batch,
        seed=seed,
        sigma=sigma,
        relevance_kind="channel_sum" if _map_of(attribution).ndim == 3 else "map",
    )


def _curve(
    model: TracedModel,
    setup: _Setup,
    kind: str,
    order: str,
    outputs: np.ndarray,
    unperturbed: np.ndarray,
    baseline: Any,
    noise: float,
) -> FaithfulnessCurve:
    """One curve from the model's outputs on its ``steps + 1`` images (logits: [steps + 1, K])."""
    target = setup.target
    if setup.class_target:
        if target is None:  # the predicted class on the unperturbed row of the same batch
            target = int(np.argmax(unperturbed))
        logits = torch.from_numpy(np.asarray(outputs))
        values = torch.softmax(logits, dim=-1) if setup.score == "probability" else logits
        scores = values[:, int(target)].numpy()  # type: ignore[arg-type]
    else:
        scores = outputs
    description = describe_target(model, target)
    score_name = description
    if setup.score == "probability":
        score_name = f"probability of {description.removeprefix('logit of ')}"
    fractions = np.arange(setup.steps + 1, dtype=np.float64) / setup.steps
    blur_used = isinstance(baseline, str) and baseline == "blur"
    _, _, height, width = setup.x.shape
    return FaithfulnessCurve(
        kind=kind,
        order=_ORDER_NAMES[order],
        fractions=fractions,
        scores=np.asarray(scores, dtype=np.float64),
        auc=float(np.trapezoid(scores, fractions)),
        score_name=score_name,
        target=description,
        options={
            "steps": setup.steps,
            "order": order,
            "score": setup.score,
            "baseline": _describe_baseline(baseline),
            "blur_sigma": setup.sigma if blur_used else None,
            "noise": noise if kind == "road" else None,
            "seed": setup.seed,
            "max_batch": setup.max_batch,
            "relevance": setup.relevance_kind,
            "pixels": height * width,
        },
    )


def _map_of(attribution: Attribution) -> np.ndarray | torch.Tensor:
    return attribution.map if isinstance(attribution, AttributionResult) else attribution
