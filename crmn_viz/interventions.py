"""Causal edits of a model's internals by trace name: clamp, scale, mean-ablate, patch.

``logits, trace = model.run_with_trace(x, interventions=[crmn_viz.Clamp("lstm.forget_gate", 1.0)])``
runs the ordinary (fast) forward pass with the named internals replaced where the network
computes them, so everything downstream, the recurrence included, uses the edited value; the
trace records the edited values. The names are the trace names (``model.intervention_names()``):

* ``lstm.input`` (x_l, the pooled block output the LSTM reads), ``lstm.input_gate`` (i_l, eq. 2
  of Moniz & Pal 2016), ``lstm.forget_gate`` (f_l, eq. 3), ``lstm.output_gate`` (o_l, eq. 4),
  ``lstm.cell_candidate`` (s_l, eq. 6), ``lstm.cell`` (c_l, eq. 5), ``lstm.hidden`` (h_l, eq. 7):
  ``steps`` are the blocks l (0-based), ``units`` the memory units (input features for
  ``lstm.input``). Inside step l the order of eqs. 2-7 is kept: an edited f_l or i_l makes c_l,
  an edited c_l feeds the output gate's peephole and h_l, an edited h_l feeds step l + 1.
* every other probe on the forward path (``blocks.{k}.out``, ``layers.{k}.vertical_fwd`` ...,
  ``blocks.{k}.residual`` / ``.transient``, ``pooled``, ``features``, ``logits``): ``units``
  index dimension 1 (channels of a map); these have no steps (``steps`` must be None).

Each intervention selects ``steps`` (None: all) and ``units`` (None: all) and replaces the
selected values by

* :class:`Clamp`: a constant (0 is ablation);
* :class:`Scale`: the value times a factor (a number, or one factor per image of the batch,
  which may require gradients: integrated gradients along a path use it);
* :class:`MeanAblate`: given means (per step and unit ``[T, U]``, or per unit ``[U]``; for maps
  ``[C, H, W]`` or ``[C]``), e.g. :func:`crmn_viz.gate_statistics` means over a data set;
* :class:`Patch`: the values another image produced, read from its trace (``source[name]
  [source_index]``).

Several interventions apply in list order. Like recording (:mod:`crmn_viz.tracing`), the active
set lives in a :class:`contextvars.ContextVar`, never on the model: threads sharing one model
each see only their own interventions, and nothing stays behind after the call, even when it
raises. With no interventions the forward pass is exactly the plain one.

The zero padding of ``lstm.input`` (steps of the first two stages have fewer features than the
largest block) is structure, not signal: it is never edited, so the reference implementation on
padded inputs and the fast path on unpadded columns agree under every intervention.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

__all__ = [
    "Clamp",
    "CompiledInterventions",
    "Intervention",
    "MeanAblate",
    "Patch",
    "Scale",
    "active_interventions",
    "applying",
    "compile_interventions",
]


def _selection(values: Iterable[int] | int | None, what: str) -> tuple[int, ...] | None:
    """None, or a sorted tuple of distinct non-negative integers (a single int is accepted)."""
    if values is None:
        return None
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [int(values)]
    if isinstance(values, torch.Tensor):
        values = values.flatten().tolist()
    chosen = []
    for value in values:  # type: ignore[union-attr]
        if not isinstance(value, (numbers.Integral, np.integer)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{what} must be non-negative integers, got {value!r}")
        chosen.append(int(value))
    if not chosen:
        raise ValueError(f"{what} is empty: pass None for all {what}, or at least one index")
    return tuple(sorted(set(chosen)))


@dataclasses.dataclass(frozen=True, eq=False)
class Clamp:
    """Set ``name`` to ``value`` at the chosen steps and units (``value=0``: ablation).

    Attributes:
        name: a trace name, e.g. ``"lstm.forget_gate"`` or ``"blocks.3.out"``.
        value: the constant.
        steps: LSTM steps (blocks) to edit; None: every step (names without steps: None).
        units: memory units (channels for maps); None: all.
    """

    name: str
    value: float
    steps: Sequence[int] | int | None = None
    units: Sequence[int] | int | None = None

    def describe(self) -> str:
        """E.g. ``"lstm.forget_gate := 1 (steps 3-8, units 0, 5)"``."""
        return f"{self.name} := {self.value:g}{_where(self.steps, self.units)}"


@dataclasses.dataclass(frozen=True, eq=False)
class Scale:
    """Multiply ``name`` by ``factor`` at the chosen steps and units.

    Attributes:
        factor: a number, or a tensor [B] with one factor per image of the batch (it may
            require gradients).
    """

    name: str
    factor: float | torch.Tensor
    steps: Sequence[int] | int | None = None
    units: Sequence[int] | int | None = None

    def describe(self) -> str:
        """E.g. ``"blocks.2.out *= 0.5"``."""
        factor = f"{self.factor:g}" if isinstance(self.factor, (int, float)) else "per-image factors"
        return f"{self.name} *= {factor}{_where(self.steps, self.units)}"


@dataclasses.dataclass(frozen=True, eq=False)
class MeanAblate:
    """Replace ``name`` by ``means`` at the chosen steps and units.

    Attributes:
        means: for LSTM names ``[T, U]`` (per step and unit, e.g. ``GateStatistics.mean``) or
            ``[U]`` (the same for every step); for ``lstm.input`` U is the padded size D; for
            maps ``[C, H, W]`` or ``[C]`` (per channel); array-like.
    """

    name: str
    means: Any
    steps: Sequence[int] | int | None = None
    units: Sequence[int] | int | None = None

    def describe(self) -> str:
        """E.g. ``"lstm.input := mean (steps 4)"``."""
        return f"{self.name} := mean{_where(self.steps, self.units)}"


@dataclasses.dataclass(frozen=True, eq=False)
class Patch:
    """Copy the values image ``source_index`` of ``source`` had at ``name`` (image B into image A).

    Attributes:
        source: a trace (any mapping name -> tensor [B', ...], e.g. from ``run_with_trace``) or
            the tensor itself, batch first.
        source_index: which image of the source batch.
    """

    name: str
    source: Mapping[str, torch.Tensor] | torch.Tensor
    source_index: int = 0
    steps: Sequence[int] | int | None = None
    units: Sequence[int] | int | None = None

    def describe(self) -> str:
        """E.g. ``"lstm.cell := source image 1 (steps 4)"``."""
        return f"{self.name} := source image {self.source_index}{_where(self.steps, self.units)}"


Intervention = Clamp | Scale | MeanAblate | Patch
"""Any of the four edits."""


def _ranges(values: Sequence[int] | int | None) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    chosen = _selection(values, "indices") or ()
    runs: list[list[int]] = []
    for value in chosen:
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _where(steps: Sequence[int] | int | None, units: Sequence[int] | int | None) -> str:
    parts = []
    if steps is not None:
        parts.append(f"steps {_ranges(steps)}")
    if units is not None:
        parts.append(f"units {_ranges(units)}")
    return f" ({', '.join(parts)})" if parts else ""


class InterventionTarget(Protocol):
    """What :func:`compile_interventions` asks of a model (a :class:`~crmn_viz.models.base.TracedModel`)."""

    def intervention_names(self) -> list[str]: ...

    def intervention_steps(self, name: str) -> int: ...

    def intervention_units(self, name: str) -> int | None: ...


@dataclasses.dataclass
class _Edit:
    """One validated intervention on one name.

    ``kind``: "clamp", "scale" or "replace" (mean ablation and patching: per-image values).
    ``payload``: the constant, the factor, or the per-image values (steps first for LSTM names).
    """

    name: str
    kind: str
    payload: Any
    steps: frozenset[int] | None
    units: tuple[int, ...] | None
    stepwise: bool

    def touches(self, step: int) -> bool:
        return self.steps is None or step in self.steps

    def _new_values(self, x: torch.Tensor, step: int | None) -> torch.Tensor:
        """The replacement for all of ``x`` (before the unit selection), broadcastable to ``x``."""
        if self.kind == "clamp":
            return torch.full_like(x, float(self.payload))
        if self.kind == "scale":
            factor = self.payload
            if isinstance(factor, torch.Tensor):
                if factor.shape[0] != x.shape[0]:
                    raise ValueError(
                        f"Scale on {self.name}: {factor.shape[0]} per-image factors "
                        f"for a batch of {x.shape[0]}"
                    )
                factor = factor.to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.dim() - 1)))
            return x * factor
        values = self.payload
        if self.stepwise and values.dim() == 2:  # [T, U]: this step's row
            values = values[step]
        if self.stepwise:
            values = values[: x.shape[-1]]  # lstm.input: only the step's unpadded features
            if values.shape[0] != x.shape[-1]:
                raise ValueError(
                    f"{self.name}: values for {values.shape[0]} units, the step has {x.shape[-1]}"
                )
        elif values.dim() == 1 and x.dim() > 2:  # per channel of a map
            values = values.view(-1, *([1] * (x.dim() - 2)))
        values = values.to(device=x.device, dtype=x.dtype)
        try:
            return torch.broadcast_to(values, x.shape[1:]).unsqueeze(0)
        except RuntimeError:
            raise ValueError(
                f"{self.name}: replacement values of shape {tuple(values.shape)} do not fit one image's "
                f"{tuple(x.shape[1:])}"
            ) from None

    def apply(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """``x`` [B, U, ...] (one step's [B, U] for LSTM names) with the selection replaced."""
        new = self._new_values(x, step)
        if self.units is None:
            return new if new.shape == x.shape else torch.empty_like(x).copy_(new)
        size = x.shape[1]
        if self.stepwise:  # checked when compiled; units past the step's size are lstm.input padding
            units = [u for u in self.units if u < size]
            if not units:
                return x
        else:
            units = list(self.units)
            if units[-1] >= size:
                raise ValueError(
                    f"unit {units[-1]} is out of range for {self.name}, which has {size} units: "
                    f"valid units are 0..{size - 1}"
                )
        mask = torch.zeros(size, dtype=torch.bool, device=x.device)
        mask[units] = True
        return torch.where(mask.view(1, size, *([1] * (x.dim() - 2))), new, x)


class CompiledInterventions:
    """Validated interventions grouped by trace name, as the forward pass applies them.

    Build with :func:`compile_interventions`; activate with :func:`applying` (or pass the list
    to ``run_with_trace``).
    """

    def __init__(self, edits: Sequence[_Edit]) -> None:
        self._by_name: dict[str, list[_Edit]] = {}
        for edit in edits:
            self._by_name.setdefault(edit.name, []).append(edit)

    @property
    def names(self) -> frozenset[str]:
        """The trace names that are edited."""
        return frozenset(self._by_name)

    def edits(self, name: str) -> list[_Edit]:
        """The edits of ``name`` in list order (empty when it is not edited)."""
        return self._by_name.get(name, [])

    def apply(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """A probe's value with every edit of ``name`` applied (``x`` itself when there are none)."""
        for edit in self._by_name.get(name, ()):
            x = edit.apply(x)
        return x

    def apply_step(self, name: str, step: int, x: torch.Tensor) -> torch.Tensor:
        """One LSTM step's value [B, U] of ``name`` with the edits that touch ``step`` applied."""
        for edit in self._by_name.get(name, ()):
            if edit.touches(step):
                x = edit.apply(x, step)
        return x

    def touches(self, name: str, step: int) -> bool:
        """Whether some edit of ``name`` applies at ``step``."""
        return any(edit.touches(step) for edit in self._by_name.get(name, ()))


def _as_tensor(values: Any, what: str) -> torch.Tensor:
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if tensor.dim() == 0:
        raise ValueError(f"{what} must be an array (use Clamp for one constant)")
    return tensor


def _compile_one(model: InterventionTarget, item: Intervention, valid: Sequence[str]) -> _Edit:
    if not isinstance(item, (Clamp, Scale, MeanAblate, Patch)):
        raise TypeError(f"interventions must be Clamp, Scale, MeanAblate or Patch, got {type(item).__name__}")
    name = item.name
    if name not in valid:
        raise ValueError(f"unknown intervention name {name!r}; valid names: {list(valid)}")
    step_count = model.intervention_steps(name)
    steps = _selection(item.steps, "steps")
    if steps is not None:
        if not step_count:
            raise ValueError(
                f"{name} has no steps (steps are the LSTM's, one per block; a block's output is named "
                f"by its index): pass steps=None"
            )
        if steps[-1] >= step_count:
            raise ValueError(
                f"step {steps[-1]} is out of range for {name}: valid steps are 0..{step_count - 1}"
            )
    units = _selection(item.units, "units")
    unit_count = model.intervention_units(name)
    if units is not None and unit_count is not None and units[-1] >= unit_count:
        raise ValueError(f"unit {units[-1]} is out of range for {name}: valid units are 0..{unit_count - 1}")
    stepwise = bool(step_count)
    chosen_steps = None if steps is None else frozenset(steps)
    if isinstance(item, Clamp):
        if not isinstance(item.value, numbers.Real):
            raise ValueError(f"Clamp value must be a number, got {item.value!r}")
        return _Edit(name, "clamp", float(item.value), chosen_steps, units, stepwise)
    if isinstance(item, Scale):
        factor = item.factor
        if isinstance(factor, torch.Tensor) and factor.dim() != 1:
            raise ValueError(
                f"Scale factor must be a number or a tensor [B] (one per image), got {tuple(factor.shape)}"
            )
        if not isinstance(factor, (numbers.Real, torch.Tensor)):
            raise ValueError(f"Scale factor must be a number or a tensor, got {factor!r}")
        return _Edit(name, "scale", factor, chosen_steps, units, stepwise)
    if isinstance(item, MeanAblate):
        values = _as_tensor(item.means, f"MeanAblate means of {name}")
    else:
        source = item.source
        if not isinstance(source, torch.Tensor):
            if name not in source:
                raise ValueError(f"Patch source has no {name!r}; record it in the source's trace")
            source = source[name]
        if not isinstance(source, torch.Tensor) or source.dim() < 2:
            raise ValueError(f"Patch source for {name} must be a batch tensor [B, ...]")
        index = item.source_index
        if not isinstance(index, numbers.Integral) or not -source.shape[0] <= index < source.shape[0]:
            raise ValueError(f"source_index must be in 0..{source.shape[0] - 1}, got {index!r}")
        values = source[int(index)].detach()
    if stepwise and (values.dim() not in (1, 2) or (values.dim() == 2 and values.shape[0] != step_count)):
        raise ValueError(
            f"values for {name} must be [{step_count}, units] (per step) or [units], "
            f"got {tuple(values.shape)}"
        )
    return _Edit(name, "replace", values, chosen_steps, units, stepwise)


def compile_interventions(
    model: InterventionTarget, interventions: Iterable[Intervention] | None
) -> CompiledInterventions | None:
    """Validate ``interventions`` against ``model``; None when there are none.

    Raises:
        ValueError: an unknown name (the message lists the valid ones), a step out of range
            (valid steps listed), steps on a name without steps, values that do not fit.
            Units are checked against the tensor's size when the forward pass reaches it.
        TypeError: something other than the four intervention classes.
    """
    items = list(interventions or ())
    if not items:
        return None
    valid = model.intervention_names()
    return CompiledInterventions([_compile_one(model, item, valid) for item in items])


_ACTIVE_INTERVENTIONS: contextvars.ContextVar[CompiledInterventions | None] = contextvars.ContextVar(
    "crmn_viz_active_interventions", default=None
)


def active_interventions() -> CompiledInterventions | None:
    """The interventions of the current thread/context's forward pass (None: none)."""
    return _ACTIVE_INTERVENTIONS.get()


@contextlib.contextmanager
def applying(
    model: InterventionTarget, interventions: Iterable[Intervention] | CompiledInterventions | None
) -> Iterator[CompiledInterventions | None]:
    """Apply ``interventions`` to every forward pass of ``model`` in this thread, inside the block.

    ``with applying(model, [Clamp("lstm.hidden", 0.0, steps=8)]): logits = model(x)`` is the
    cheapest way to run many batches under one experiment (nothing is recorded). Validated
    first (see :func:`compile_interventions`); restored on exit, even after an exception.
    """
    compiled = (
        interventions
        if isinstance(interventions, CompiledInterventions)
        else compile_interventions(model, interventions)
    )
    token = _ACTIVE_INTERVENTIONS.set(compiled)
    try:
        yield compiled
    finally:
        _ACTIVE_INTERVENTIONS.reset(token)
