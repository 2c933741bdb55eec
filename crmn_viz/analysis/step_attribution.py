"""Which block's contribution mattered: integrated gradients summed per step.

For one image and one target (a class logit, a keypoint coordinate, or one unit of a CRMN LSTM
quantity at one step), integrated gradients (Sundararajan et al. 2017) from a zero baseline,

    IG(v) = (v - 0) * integral_0^1 df/dv(a v) da,

are computed with respect to

* each step's LSTM input x_l (the pooled output of block l, Moniz & Pal 2016), all steps on one
  path (the ResNet, and so the pooled features the head also reads, held as they are). Summed
  over the units of x_l this is one number per step, and the numbers add up to
  ``f(x) - f(every x_l = 0)`` (completeness); the gap is reported;
* each block's output (``model.gradcam_layers``: ``blocks.{k}.out``, RiR's residual streams,
  ReNet's layer outputs), one block at a time, with the rest of the network recomputed from the
  scaled output (layer integrated gradients); block k's sum should equal
  ``f(x) - f(block k's output = 0)``, and each block's gap is reported.

The sum over units comes straight out of the gradient of a per-step scale factor: with
``v_l(a_l) = a_l x_l``, ``df/da_l = sum_d x_{l,d} df/dx_{l,d}``, so each step's total is
``integral_0^1 df/da_l da`` on the common path a_l = a (a :class:`crmn_viz.Scale` intervention
per step, one factor per interpolation point, batched). Gauss-Legendre nodes on [0, 1].
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from crmn_viz.analysis.attributions import AttributionTarget, GateTarget, KeypointTarget, describe_target
from crmn_viz.analysis.inputs import ImageBatch, evaluation_mode, prepare_batch
from crmn_viz.interventions import Intervention, Scale, applying
from crmn_viz.limits import LIMITS
from crmn_viz.memory_quantities import memory_quantity
from crmn_viz.models.base import TracedModel
from crmn_viz.tracing import recording

__all__ = ["StepAttribution", "step_attribution"]


@dataclasses.dataclass(frozen=True)
class StepAttribution:
    """Integrated gradients of one target, one number per step (block).

    Attributes:
        target: what was attributed, e.g. ``"logit of class 3 (cat)"``.
        target_value: f(x).
        step_inputs: [T] IG w.r.t. x_l summed over its units (models with memory), else None.
        step_inputs_gap: ``sum(step_inputs) - (f(x) - f(all x_l = 0))``, or None.
        blocks: [K] IG w.r.t. each block's output, summed over it.
        blocks_gap: [K] per block ``blocks[k] - (f(x) - f(block k = 0))``.
        block_names: the K trace names attributed.
        n_steps: interpolation points.
    """

    target: str
    target_value: float
    step_inputs: np.ndarray | None
    step_inputs_gap: float | None
    blocks: np.ndarray
    blocks_gap: np.ndarray
    block_names: tuple[str, ...]
    n_steps: int


def _resolve(model: TracedModel, batch: torch.Tensor, target: AttributionTarget) -> AttributionTarget:
    if target is not None:
        return target
    if model.task != "classification":
        raise ValueError("a keypoint model needs target=KeypointTarget(index, axis) (or a GateTarget)")
    with torch.no_grad():
        return int(model(batch).argmax(1)[0])


def _value(
    model: TracedModel, batch: torch.Tensor, target: AttributionTarget, interventions: list[Intervention]
) -> torch.Tensor:
    """The target [B] of ``batch`` under ``interventions`` (differentiable; grad mode is the caller's)."""
    if isinstance(target, GateTarget):
        name = memory_quantity(target.gate).trace_name
        with recording([name], keep_graph=True) as tensors, applying(model, interventions):
            model(batch)
        return tensors[name][:, target.step, target.unit]
    with applying(model, interventions):
        out = model(batch)
    if isinstance(target, KeypointTarget):
        return out[:, target.index, target.axis_index]
    return out[:, int(target)]  # type: ignore[arg-type]


def _gradients(total: torch.Tensor, factors: list[torch.Tensor]) -> list[torch.Tensor]:
    """d total / d factor for each factor; zeros for a factor the target does not depend on (a
    gate at step l does not read later blocks). ``autograd.grad``, not ``backward()``: a shared
    model's parameters get no ``.grad``."""
    grads = torch.autograd.grad(total, factors, allow_unused=True)
    return [torch.zeros_like(f) if g is None else g for f, g in zip(factors, grads)]


def _nodes(n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return torch.tensor((nodes + 1) / 2, dtype=torch.float32), torch.tensor(weights / 2, dtype=torch.float32)


def step_attribution(
    model: TracedModel, image: ImageBatch, target: AttributionTarget = None, n_steps: int = 32
) -> StepAttribution:
    """Integrated gradients of ``target`` per step: w.r.t. each x_l and each block's output.

    Args:
        model: any crmn-viz model (the x_l part needs memory: ``has_memory``); eval mode is used.
        image: one PIL image or one normalised tensor [C, H, W] / [1, C, H, W].
        target: class index (default: the predicted class), :class:`KeypointTarget` or
            :class:`GateTarget` (CRMN).
        n_steps: Gauss-Legendre points per path (at most ``CRMN_VIZ_MAX_ATTRIBUTION_STEPS``).

    Returns:
        A :class:`StepAttribution`.
    """
    if not isinstance(n_steps, int) or not 1 <= n_steps <= LIMITS.max_attribution_steps:
        raise ValueError(
            f"n_steps must be an integer in 1..{LIMITS.max_attribution_steps} "
            f"(CRMN_VIZ_MAX_ATTRIBUTION_STEPS), got {n_steps!r}"
        )
    batch = prepare_batch(model, image)[:1]
    alphas, weights = _nodes(n_steps)
    alphas, weights = alphas.to(batch.device), weights.to(batch.device)
    path = batch.expand(n_steps, -1, -1, -1)
    with evaluation_mode(model), torch.enable_grad():
        target = _resolve(model, batch, target)
        with torch.no_grad():
            value = float(_value(model, batch, target, [])[0])
        step_inputs, step_gap = None, None
        inputs_name = model.memory_input_name
        if model.has_memory and inputs_name:
            steps = model.intervention_steps(inputs_name)
            factors = [alphas.clone().requires_grad_(True) for _ in range(steps)]
            edits: list[Intervention] = [Scale(inputs_name, factors[k], steps=[k]) for k in range(steps)]
            grads = _gradients(_value(model, path, target, edits).sum(), factors)
            step_inputs = np.array([float((weights * grad).sum()) for grad in grads])
            with torch.no_grad():
                zero = float(_value(model, batch, target, [Scale(inputs_name, 0.0)])[0])
            step_gap = float(step_inputs.sum() - (value - zero))
        names = model.gradcam_layers
        totals, gaps = [], []
        for name in names:
            factor = alphas.clone().requires_grad_(True)
            (grad,) = _gradients(_value(model, path, target, [Scale(name, factor)]).sum(), [factor])
            total = float((weights * grad).sum())
            with torch.no_grad():
                zero = float(_value(model, batch, target, [Scale(name, 0.0)])[0])
            totals.append(total)
            gaps.append(total - (value - zero))
    return StepAttribution(
        describe_target(model, target),
        value,
        step_inputs,
        step_gap,
        np.array(totals),
        np.array(gaps),
        tuple(names),
        n_steps,
    )
