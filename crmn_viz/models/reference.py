"""Plain, slow reference implementations used to verify the fast paths and to benchmark.

They share parameters with the real modules and follow the papers' equations literally:
the CRMN LSTM on zero-padded step inputs, one full ``W_x x_l`` product per step; the
ReNet layer one patch at a time, one RNN cell step per patch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from crmn_viz.models.crmn import PeepholeLSTM
from crmn_viz.models.renet import ReNetLayer, split_into_patches
from crmn_viz.models.sweeps import BidirectionalSweep

__all__ = ["StepEdit", "reference_crmn_lstm", "reference_renet_layer"]


StepEdit = Callable[[str, int, torch.Tensor], torch.Tensor]
"""``edit(quantity, step, value [B, H]) -> value``: what an intervention makes of one step's value."""


def reference_crmn_lstm(
    lstm: PeepholeLSTM, padded_inputs: torch.Tensor, edit: StepEdit | None = None
) -> dict[str, torch.Tensor]:
    """CRMN eqs. 2-7, step by step on the zero-padded inputs [B, T, D].

    Args:
        edit: called on each quantity of each step right after its equation, in the order
            i, f, s, c, o, h (``"input_gate"``, ``"forget_gate"``, ``"cell_candidate"``,
            ``"cell"``, ``"output_gate"``, ``"hidden"``); what it returns is used from there on
            (the literal counterpart of :mod:`crmn_viz.interventions` on the fast path).

    Returns a dict with ``input_gate``, ``forget_gate``, ``output_gate``,
    ``cell_candidate``, ``cell`` and ``hidden``, each [B, T, H].
    """
    keep: StepEdit = edit if edit is not None else (lambda name, step, value: value)
    batch, steps, _ = padded_inputs.shape
    hidden = lstm.initial_hidden.expand(batch, -1)
    cell = padded_inputs.new_zeros(batch, lstm.hidden_size)
    peep = lstm.peephole if lstm.peephole is not None else torch.zeros(3, lstm.hidden_size)
    out_act = torch.sigmoid if lstm.output_gate_activation == "sigmoid" else torch.tanh
    names = ("input_gate", "forget_gate", "output_gate", "cell_candidate", "cell", "hidden")
    history: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for step in range(steps):
        x = padded_inputs[:, step]
        z = x @ lstm.input_weight.t() + hidden @ lstm.hidden_weight.t() + lstm.bias
        z_i, z_f, z_o, z_s = z.chunk(4, dim=1)
        i = keep("input_gate", step, torch.sigmoid(z_i + peep[0] * cell))
        f = keep("forget_gate", step, torch.sigmoid(z_f + peep[1] * cell))
        s = keep("cell_candidate", step, torch.tanh(z_s))
        cell = keep("cell", step, f * cell + i * s)
        o = keep("output_gate", step, out_act(z_o + peep[2] * cell))
        hidden = keep("hidden", step, o * torch.tanh(cell))
        for name, value in zip(names, (i, f, o, s, cell, hidden)):
            history[name].append(value)
    return {name: torch.stack(values, dim=1) for name, values in history.items()}


def _cell_step(
    sweep: BidirectionalSweep,
    direction: int,
    x: torch.Tensor,
    hidden: torch.Tensor,
    cell: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU/LSTM step of one direction's RNN for a single patch vector."""
    size = sweep.hidden_size
    w_x, w_h, b = (
        sweep.input_weight[direction],
        sweep.hidden_weight[direction],
        sweep.bias[direction],
    )
    if sweep.cell == "gru":
        gates = torch.sigmoid(x @ w_x[:, : 2 * size] + hidden @ w_h[:, : 2 * size] + b[: 2 * size])
        update, reset = gates[:size], gates[size:]
        candidate = torch.tanh(x @ w_x[:, 2 * size :] + (reset * hidden) @ w_h[:, 2 * size :] + b[2 * size :])
        return (1 - update) * hidden + update * candidate, cell
    z = x @ w_x + hidden @ w_h + b
    i, f, o = (torch.sigmoid(z[k * size : (k + 1) * size]) for k in range(3))
    cell = f * cell + i * torch.tanh(z[3 * size :])
    return o * torch.tanh(cell), cell


def _sweep_one(sweep: BidirectionalSweep, direction: int, sequence: list[torch.Tensor]) -> list[torch.Tensor]:
    order = range(len(sequence)) if direction == 0 else reversed(range(len(sequence)))
    hidden = sequence[0].new_zeros(sweep.hidden_size)
    cell = hidden
    states: list[torch.Tensor] = [hidden] * len(sequence)
    for position in order:
        hidden, cell = _cell_step(sweep, direction, sequence[position], hidden, cell)
        states[position] = hidden
    return states


def reference_renet_layer(layer: ReNetLayer, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One ReNet layer computed patch by patch (eval mode: no dropout).

    Returns ``vertical_fwd``, ``vertical_bwd``, ``horizontal_fwd``, ``horizontal_bwd``
    [B, d, rows, cols] and ``out`` [B, 2d, rows, cols].
    """
    patches = split_into_patches(x, layer.patch)
    batch, rows, cols, _ = patches.shape
    d = layer.hidden
    maps = {
        name: x.new_zeros(batch, d, rows, cols)
        for name in ("vertical_fwd", "vertical_bwd", "horizontal_fwd", "horizontal_bwd")
    }
    for b in range(batch):
        for c in range(cols):
            column = [patches[b, r, c] for r in range(rows)]
            for direction, name in enumerate(("vertical_fwd", "vertical_bwd")):
                for r, state in enumerate(_sweep_one(layer.vertical, direction, column)):
                    maps[name][b, :, r, c] = state
        v_map = torch.cat([maps["vertical_fwd"][b], maps["vertical_bwd"][b]], dim=0)
        for r in range(rows):
            row = [v_map[:, r, c] for c in range(cols)]
            for direction, name in enumerate(("horizontal_fwd", "horizontal_bwd")):
                for c, state in enumerate(_sweep_one(layer.horizontal, direction, row)):
                    maps[name][b, :, r, c] = state
    maps["out"] = torch.cat([maps["horizontal_fwd"], maps["horizontal_bwd"]], dim=1)
    return maps
