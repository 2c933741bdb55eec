"""Bidirectional recurrent sweeps for ReNet: two independent RNNs run as one batch.

Each sweep direction pair (top-down and bottom-up, or left-right and right-left) is
two RNNs with separate weights. The reverse RNN reads the flipped sequences, so both
run in the same time loop with batched matrix products over a leading direction
axis of size 2; every column (or row) of every image is a row of the batch. Only the
time loop (length = patches per column or row) is in Python, never a loop over
patches or images.

Cells follow the ReNet paper (Visin et al. 2015, section 4.2):

* GRU (Cho et al. 2014): ``[u_t; r_t] = s(W_g x_t + U_g h_{t-1} + b_g)``,
  ``h~_t = tanh(W x_t + U (r_t * h_{t-1}) + b)``,
  ``h_t = (1 - u_t) * h_{t-1} + u_t * h~_t``. The reset gate multiplies ``h_{t-1}``
  *before* ``U`` as in the paper, which differs from cuDNN's GRU; this is one reason
  for a custom loop (the other: the gates are exposed for tracing).
* LSTM (Hochreiter & Schmidhuber; no peepholes): ``i, f, o = s(.)``, ``g = tanh(.)``,
  ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``.

Initial states are zero. Input weights: Glorot uniform; recurrent weights:
orthogonal per gate; biases zero except an LSTM forget bias of 1 (Gers et al.).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GATES_BY_CELL", "BidirectionalSweep"]

GATES_BY_CELL = {
    "gru": ("update_gate", "reset_gate"),
    "lstm": ("input_gate", "forget_gate", "output_gate", "cell"),
}
_BLOCKS_BY_CELL = {"gru": 3, "lstm": 4}


class BidirectionalSweep(nn.Module):
    """Forward and reverse RNN over a batch of sequences.

    Parameters (leading axis: 0 = forward, 1 = reverse): ``input_weight`` [2, F, G*H],
    ``hidden_weight`` [2, H, G*H], ``bias`` [2, G*H], with G = 3 (GRU blocks u, r, h~)
    or 4 (LSTM blocks i, f, o, g).

    Shape:
        input [N, T, F] -> hidden states [2, N, T, H] (the reverse direction already
        flipped back, so index t is the state at position t for both) and, when
        ``keep_gates``, a dict gate name -> [2, N, T, H].
    """

    def __init__(self, input_size: int, hidden_size: int, cell: str = "gru") -> None:
        super().__init__()
        if cell not in _BLOCKS_BY_CELL:
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        self.cell = cell
        self.input_size = input_size
        self.hidden_size = hidden_size
        blocks = _BLOCKS_BY_CELL[cell]
        self.input_weight = nn.Parameter(torch.empty(2, input_size, blocks * hidden_size))
        self.hidden_weight = nn.Parameter(torch.empty(2, hidden_size, blocks * hidden_size))
        self.bias = nn.Parameter(torch.zeros(2, blocks * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform inputs, orthogonal recurrent blocks, LSTM forget bias 1."""
        hidden = self.hidden_size
        with torch.no_grad():
            for direction in range(2):
                for block in range(self.input_weight.shape[-1] // hidden):
                    cols = slice(block * hidden, (block + 1) * hidden)
                    nn.init.xavier_uniform_(self.input_weight[direction, :, cols])
                    nn.init.orthogonal_(self.hidden_weight[direction, :, cols])
            self.bias.zero_()
            if self.cell == "lstm":
                self.bias[:, hidden : 2 * hidden] = 1.0

    def forward(
        self, sequences: torch.Tensor, keep_gates: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        both = torch.stack([sequences, sequences.flip(1)])  # [2, N, T, F]
        n, steps, features = sequences.shape
        # one [2, N*T, F] x [2, F, G*H] product for all positions of both directions
        projected = torch.baddbmm(
            self.bias[:, None], both.reshape(2, n * steps, features), self.input_weight
        ).view(2, n, steps, -1)
        hidden_size = self.hidden_size
        hidden = projected.new_zeros(2, sequences.shape[0], hidden_size)
        cell = hidden
        states = []
        gate_history: dict[str, list[torch.Tensor]] = {g: [] for g in GATES_BY_CELL[self.cell]}
        # unbind once (a per-step index would make autograd allocate a full-size zero
        # gradient for every step) and split the recurrent weights into contiguous blocks
        per_step = projected.unbind(2)
        if self.cell == "gru":
            gate_weight = self.hidden_weight[:, :, : 2 * hidden_size].contiguous()
            candidate_weight = self.hidden_weight[:, :, 2 * hidden_size :].contiguous()
        for z_x in per_step:
            if self.cell == "gru":
                gates = torch.sigmoid(torch.baddbmm(z_x[..., : 2 * hidden_size], hidden, gate_weight))
                update, reset = gates.chunk(2, dim=-1)
                candidate = torch.tanh(
                    torch.baddbmm(z_x[..., 2 * hidden_size :], reset * hidden, candidate_weight)
                )
                hidden = hidden + update * (candidate - hidden)  # (1 - u) h + u h~
                values: tuple[torch.Tensor, ...] = (update, reset)
            else:
                z = torch.baddbmm(z_x, hidden, self.hidden_weight)
                z_i, z_f, z_o, z_g = z.chunk(4, dim=-1)
                input_gate, forget_gate, output_gate = (
                    torch.sigmoid(z_i),
                    torch.sigmoid(z_f),
                    torch.sigmoid(z_o),
                )
                cell = forget_gate * cell + input_gate * torch.tanh(z_g)
                hidden = output_gate * torch.tanh(cell)
                values = (input_gate, forget_gate, output_gate, cell)
            states.append(hidden)
            if keep_gates:
                for name, value in zip(gate_history, values):
                    gate_history[name].append(value)
        output = unflip_reverse(torch.stack(states, dim=2))
        gates = (
            {name: unflip_reverse(torch.stack(v, dim=2)) for name, v in gate_history.items()}
            if keep_gates
            else {}
        )
        return output, gates


def unflip_reverse(per_direction: torch.Tensor) -> torch.Tensor:
    """[2, N, T, H] with the reverse direction in reading order -> position order."""
    return torch.stack([per_direction[0], per_direction[1].flip(1)])
