"""The per-step quantities of the CRMN's peephole LSTM: one ordered list, with symbols and labels.

The CRMN (Moniz & Pal 2016, eqs. 2-7) feeds one residual block per step to a peephole LSTM and
records, for every step ``l`` and memory unit, the input gate ``i_l`` (eq. 2), forget gate
``f_l`` (eq. 3), output gate ``o_l`` (eq. 4), cell candidate ``s_l`` (eq. 6), cell state ``c_l``
(eq. 5) and hidden state ``h_l`` (eq. 7). A trace holds each as ``lstm.<name>`` [B, T, H].

This module is the one place that names them: the model's probes, the statistics, the figures'
axis labels, the report and every front end read :data:`MEMORY_QUANTITIES` (a page shows
``quantity.label``; a figure file names ``quantity.name``). It imports nothing of crmn-viz.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "GATE_NAMES",
    "MEMORY_QUANTITIES",
    "MEMORY_QUANTITY_LABELS",
    "MEMORY_QUANTITY_NAMES",
    "MemoryQuantity",
    "memory_quantity",
]

QuantityKind = Literal["gate", "candidate", "cell", "hidden"]


@dataclass(frozen=True)
class MemoryQuantity:
    """One per-step LSTM quantity of the CRMN.

    Attributes:
        name: its trace name under ``lstm.`` (``"forget_gate"`` is recorded as ``lstm.forget_gate``).
        symbol: the papers' letter (``"f"``).
        label: what a person reads on an axis or in a menu (``"forget gate f"``).
        equation: the equation of Moniz & Pal (2016) that defines it.
        kind: ``"gate"`` (logistic, in [0, 1] with the default activations), ``"candidate"``
            (``tanh``, in [-1, 1]), ``"cell"`` (unbounded) or ``"hidden"`` (``o * tanh(c)``).
    """

    name: str
    symbol: str
    label: str
    equation: int
    kind: QuantityKind

    @property
    def trace_name(self) -> str:
        """The name under which a trace records it, e.g. ``"lstm.forget_gate"``."""
        return f"lstm.{self.name}"


MEMORY_QUANTITIES: Mapping[str, MemoryQuantity] = MappingProxyType(
    {
        quantity.name: quantity
        for quantity in (
            MemoryQuantity("input_gate", "i", "input gate i", 2, "gate"),
            MemoryQuantity("forget_gate", "f", "forget gate f", 3, "gate"),
            MemoryQuantity("output_gate", "o", "output gate o", 4, "gate"),
            MemoryQuantity("cell_candidate", "s", "cell candidate s", 6, "candidate"),
            MemoryQuantity("cell", "c", "cell state c", 5, "cell"),
            MemoryQuantity("hidden", "h", "hidden state h", 7, "hidden"),
        )
    }
)
"""Every per-step LSTM quantity, by name, in the order pages and figures list them."""

MEMORY_QUANTITY_NAMES: tuple[str, ...] = tuple(MEMORY_QUANTITIES)
"""The names in order: ``input_gate, forget_gate, output_gate, cell_candidate, cell, hidden``."""

MEMORY_QUANTITY_LABELS: Mapping[str, str] = MappingProxyType(
    {name: quantity.label for name, quantity in MEMORY_QUANTITIES.items()}
)
"""Name -> label (``"forget_gate"`` -> ``"forget gate f"``), e.g. for a select box's ``format_func``."""

GATE_NAMES: tuple[str, ...] = tuple(name for name, q in MEMORY_QUANTITIES.items() if q.kind == "gate")
"""The three gates ``input_gate, forget_gate, output_gate`` (eqs. 2-4)."""


def memory_quantity(name: str) -> MemoryQuantity:
    """The quantity called ``name`` (the ``lstm.`` prefix of a trace name is accepted).

    Raises:
        ValueError: not one of :data:`MEMORY_QUANTITY_NAMES`; the message lists them.
    """
    short = name.removeprefix("lstm.") if isinstance(name, str) else name
    if short not in MEMORY_QUANTITIES:
        raise ValueError(f"unknown LSTM quantity {name!r}; choose from {list(MEMORY_QUANTITY_NAMES)}")
    return MEMORY_QUANTITIES[short]
