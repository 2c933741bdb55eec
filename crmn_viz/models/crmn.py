"""Convolutional Residual Memory Network (Moniz & Pal 2016; 2017 structured prediction).

A CIFAR-style ResNet (6n+2 layers) whose 3n block outputs (eq. 1, after the residual
addition) are mean-pooled, flattened, zero-padded to the largest size and fed, one
block per step, to a peephole LSTM (eqs. 2-7). The LSTM never feeds back into the
ResNet. The final hidden state and the ResNet's global-average-pooled features feed a
linear layer: softmax logits (classification) or a sigmoid over normalised x, y
coordinates (keypoints, 2017 paper).

Choices where the papers are ambiguous or silent (documented here, used everywhere):

* Gate non-linearities: eqs. 2-4 of both papers use the logistic function for the
  input, forget and output gates, while section 4 of the 2016 paper says the output
  gate "uses tanh". We follow the equations (``output_gate_activation="sigmoid"``);
  ``"tanh"`` is available for the other reading.
* "High negative biases tend to be favourable": we give the forget gate a negative
  initial bias (``forget_bias=-2``), other gate biases start at 0.
* The learned initial state is the hidden state ``h_0``; the initial cell ``c_0`` is 0.
* Peephole weights start at N(0, 0.1), Lasagne's default for ``Gate.W_cell``.
* Input and recurrent gate weights: orthogonal (Saxe et al. 2013), one block per gate.
* Mean pooling uses non-overlapping ``pool x pool`` windows (floor at the border).
* The keypoint head outputs [B, K, 2] in [0, 1] with ``num_outputs = 2K``.

Fast path: since the LSTM input never depends on the LSTM, all input projections
``W_x x_l`` are computed before the recurrence, one matrix product per stage using only
the first ``D_stage`` columns of ``W_x`` (the zero padding contributes exactly 0). The
zero-padded step input is only materialised when ``lstm.input`` is being recorded.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from crmn_viz.interventions import CompiledInterventions, active_interventions
from crmn_viz.memory_quantities import MEMORY_QUANTITY_NAMES
from crmn_viz.models.resnet import (
    ResNetConfig,
    ResNetTrunk,
    blocks_per_stage,
    init_linear,
    init_resnet_weights,
)
from crmn_viz.tracing import Probe

__all__ = ["CRMN", "CRMNConfig", "PeepholeLSTM"]

GATE_NAMES = ("input_gate", "forget_gate", "output_gate", "cell_candidate")


@dataclasses.dataclass
class CRMNConfig(ResNetConfig):
    """Configuration of a CRMN: the ResNet's fields plus the memory's."""

    hidden_size: int = 100  # LSTM cell and hidden size (100 in both papers)
    pool: int = 2  # mean-pool window before the LSTM: 2 for 32x32, 4 for 80x80 faces
    task: str = "classification"  # "classification" (softmax) or "keypoints" (sigmoid)
    peephole: bool = True  # peephole terms w_c * c in eqs. 2-4
    forget_bias: float = -2.0  # initial forget-gate bias (negative: favour recent blocks)
    output_gate_activation: str = "sigmoid"  # "sigmoid" (eq. 4) or "tanh" (2016 sec. 4 text)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.hidden_size <= 8192:
            raise ValueError(f"hidden_size must be between 1 and 8192, got {self.hidden_size}")
        if not 1 <= self.pool <= 64:
            raise ValueError(f"pool must be between 1 and 64, got {self.pool}")
        if self.output_gate_activation not in ("sigmoid", "tanh"):
            raise ValueError("output_gate_activation must be 'sigmoid' or 'tanh'")


def step_input_sizes(config: CRMNConfig) -> list[int]:
    """Flattened pooled size D_s of a block output in each of the 3 stages."""
    size = config.input_size
    height, width = (size, size) if isinstance(size, int) else size
    sizes = []
    for stage in range(3):
        channels = config.width * 2**stage
        sizes.append(channels * (height // config.pool) * (width // config.pool))
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    return sizes


def _stack_steps(values: list[torch.Tensor]) -> torch.Tensor:
    """Per-step [B, H] tensors -> [B, T, H]."""
    return torch.stack(values, dim=1)


class PeepholeLSTM(nn.Module):
    """Peephole LSTM over the block sequence, CRMN eqs. 2-7.

    ``i_l = s(W_xi x_l + W_hi h_{l-1} + w_ci * c_{l-1} + b_i)``   (2)
    ``f_l = s(W_xf x_l + W_hf h_{l-1} + w_cf * c_{l-1} + b_f)``   (3)
    ``o_l = s(W_xo x_l + W_ho h_{l-1} + w_co * c_l + b_o)``       (4)
    ``c_l = f_l * c_{l-1} + i_l * s_l``                          (5)
    ``s_l = tanh(W_xc x_l + W_hc h_{l-1} + b_c)``                (6)
    ``h_l = o_l * tanh(c_l)``                                    (7)

    Parameters: ``input_weight`` [4H, D] and ``hidden_weight`` [4H, H] with gate
    blocks in the order (i, f, o, s); ``bias`` [4H]; ``peephole`` [3, H] for (i, f, o);
    ``initial_hidden`` [H].

    Trace names (relative to this module): ``input`` [B, T, D] (pooled, flattened,
    zero-padded step inputs), ``input_gate``, ``forget_gate``, ``output_gate``,
    ``cell_candidate`` (s_l), ``cell`` (c_l), ``hidden`` (h_l), each [B, T, H].
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        peephole: bool = True,
        forget_bias: float = -2.0,
        output_gate_activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_gate_activation = output_gate_activation
        self.input_weight = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.hidden_weight = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.zeros(4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(3, hidden_size)) if peephole else None
        self.initial_hidden = nn.Parameter(torch.zeros(hidden_size))
        for name in ("input", *MEMORY_QUANTITY_NAMES):
            setattr(self, name, Probe())
        self.reset_parameters(forget_bias)

    def reset_parameters(self, forget_bias: float) -> None:
        """Orthogonal gate blocks (Saxe et al.), negative forget bias, N(0, .1) peepholes."""
        hidden = self.hidden_size
        with torch.no_grad():
            for gate in range(4):
                rows = slice(gate * hidden, (gate + 1) * hidden)
                nn.init.orthogonal_(self.input_weight[rows])
                nn.init.orthogonal_(self.hidden_weight[rows])
            self.bias.zero_()
            self.bias[hidden : 2 * hidden] = forget_bias
            if self.peephole is not None:
                nn.init.normal_(self.peephole, std=0.1)
            self.initial_hidden.zero_()

    def project_inputs(self, stage_inputs: list[torch.Tensor]) -> torch.Tensor:
        """``W_x x_l + b`` for all steps: one product per stage on the unpadded columns.

        Args:
            stage_inputs: per stage, [B, n_s, D_s] with D_s <= D.
        Returns:
            [B, T, 4H] with T = sum of n_s.
        """
        projected = [x @ self.input_weight[:, : x.shape[-1]].t() for x in stage_inputs if x.shape[1]]
        return torch.cat(projected, dim=1) + self.bias

    def padded_inputs(self, stage_inputs: list[torch.Tensor]) -> torch.Tensor:
        """The zero-padded step inputs x_l as one tensor [B, T, D]."""
        first = stage_inputs[0]
        steps = sum(x.shape[1] for x in stage_inputs)
        padded = first.new_empty(first.shape[0], steps, self.input_size)
        start = 0
        for x in stage_inputs:  # every value written once: each stage's values, then its zeros
            stop, size = start + x.shape[1], x.shape[-1]
            padded[:, start:stop, :size] = x
            padded[:, start:stop, size:] = 0
            start = stop
        return padded

    def step_probes(self) -> dict[str, Probe]:
        """Short name (``input``, ``forget_gate`` ...) -> probe of every per-step quantity."""
        return {name: getattr(self, name) for name in ("input", *MEMORY_QUANTITY_NAMES)}

    def edit_inputs(
        self, stage_inputs: list[torch.Tensor], edits: CompiledInterventions
    ) -> list[torch.Tensor]:
        """The per-stage step inputs [B, n_s, D_s] with the interventions on ``lstm.input`` applied.

        Step ``l`` is the ``l``-th row over the stages; only the unpadded columns are edited.
        """
        name = self.input.trace_name
        edited, step = [], 0
        for x in stage_inputs:
            steps = list(x.unbind(1))
            changed = False
            for index in range(len(steps)):
                if edits.touches(name, step + index):
                    steps[index] = edits.apply_step(name, step + index, steps[index])
                    changed = True
            edited.append(torch.stack(steps, dim=1) if changed else x)
            step += len(steps)
        return edited

    def forward(self, stage_inputs: list[torch.Tensor]) -> torch.Tensor:
        """Run eqs. 2-7 over all steps; returns the hidden states h_l [B, T, H].

        Interventions (:mod:`crmn_viz.interventions`) on ``lstm.<quantity>`` are applied inside
        the recurrence, each right where eqs. 2-7 compute it, so later equations and later
        steps use the edited value; on ``lstm.input`` before the input projection.
        """
        active = active_interventions()
        edits = None
        if active is not None and any(p.trace_name in active.names for p in self.step_probes().values()):
            edits = active
            stage_inputs = self.edit_inputs(stage_inputs, edits)
        self.input.record_lazily(self.padded_inputs, stage_inputs)
        projected = self.project_inputs(stage_inputs)
        batch = projected.shape[0]
        hidden = self.initial_hidden.expand(batch, -1)
        cell = projected.new_zeros(batch, self.hidden_size)
        out_act = torch.sigmoid if self.output_gate_activation == "sigmoid" else torch.tanh
        history: dict[str, list[torch.Tensor]] = {name: [] for name in (*GATE_NAMES, "cell")}
        hiddens = []
        hidden_weight_t = self.hidden_weight.t()
        size = self.hidden_size
        # the input and forget gates are computed together, as [B, 2, H] (one op each)
        peephole_if = None if self.peephole is None else self.peephole[:2]
        names = {} if edits is None else {short: p.trace_name for short, p in self.step_probes().items()}
        for step, projected_step in enumerate(projected.unbind(1)):  # unbind once: cheaper backward
            z = torch.addmm(projected_step, hidden, hidden_weight_t)
            z_if = z[:, : 2 * size].view(batch, 2, size)
            if peephole_if is not None:
                z_if = torch.addcmul(z_if, peephole_if, cell.unsqueeze(1))  # w_ci * c, w_cf * c
            input_gate, forget_gate = torch.sigmoid(z_if).unbind(1)  # eqs. 2, 3
            candidate = torch.tanh(z[:, 3 * size :])  # eq. 6
            if edits is not None:
                input_gate = edits.apply_step(names["input_gate"], step, input_gate)
                forget_gate = edits.apply_step(names["forget_gate"], step, forget_gate)
                candidate = edits.apply_step(names["cell_candidate"], step, candidate)
            cell = torch.addcmul(forget_gate * cell, input_gate, candidate)  # eq. 5
            if edits is not None:
                cell = edits.apply_step(names["cell"], step, cell)
            z_o = z[:, 2 * size : 3 * size]
            if self.peephole is not None:
                z_o = torch.addcmul(z_o, self.peephole[2], cell)
            output_gate = out_act(z_o)  # eq. 4 (peephole on the new cell c_l)
            if edits is not None:
                output_gate = edits.apply_step(names["output_gate"], step, output_gate)
            hidden = output_gate * torch.tanh(cell)  # eq. 7
            if edits is not None:
                hidden = edits.apply_step(names["hidden"], step, hidden)
            hiddens.append(hidden)
            for name, value in zip(
                (*GATE_NAMES, "cell"), (input_gate, forget_gate, output_gate, candidate, cell)
            ):
                history[name].append(value)
        hidden_seq = torch.stack(hiddens, dim=1)
        for name, values in history.items():
            getattr(self, name).record_lazily(_stack_steps, values)
        return self.hidden.record(hidden_seq)  # its interventions were applied step by step


class CRMN(ResNetTrunk):
    """CRMN classifier or keypoint regressor.

    Trace names: ``blocks.{k}.out`` (k < 3n), ``lstm.input`` [B, T, D],
    ``lstm.{input_gate, forget_gate, output_gate, cell_candidate, cell, hidden}``
    [B, T, H] with T = 3n, ``pooled`` [B, 4w] (global average pool of the ResNet),
    ``features`` [B, H + 4w] (= [h_T, pooled], what feeds the head) and ``logits``
    [B, classes] or ``keypoints`` [B, K, 2] in [0, 1].
    """

    arch = "crmn"
    title = "Convolutional Residual Memory Network (Moniz & Pal 2016/2017)"
    has_memory = True
    memory_quantities = MEMORY_QUANTITY_NAMES  # lstm.<name>, eqs. 2-7 (crmn_viz.memory_quantities)
    has_stepwise_readout = True
    memory_input_name = "lstm.input"

    def __init__(self, config: CRMNConfig | None = None, **overrides: object) -> None:
        super().__init__()
        self.config = config if config is not None else CRMNConfig(**overrides)  # type: ignore[arg-type]
        cfg = self.config
        self.build_trunk(cfg)
        self.step_sizes = step_input_sizes(cfg)
        if min(self.step_sizes) < 1:
            raise ValueError(f"pool={cfg.pool} is too large for input_size={cfg.input_size}")
        self.lstm = PeepholeLSTM(
            max(self.step_sizes),
            cfg.hidden_size,
            peephole=cfg.peephole,
            forget_bias=cfg.forget_bias,
            output_gate_activation=cfg.output_gate_activation,
        )
        self.fc = nn.Linear(cfg.hidden_size + self.trunk_channels, cfg.num_outputs)
        self.pooled = Probe()
        self.features = Probe()
        if cfg.task == "keypoints":
            self.keypoints = Probe()
        else:
            self.logits = Probe()
        init_resnet_weights(self)
        init_linear(self.fc)
        self.finalize()

    @property
    def num_steps(self) -> int:
        """T = 3n LSTM steps, one per residual block."""
        return 3 * blocks_per_stage(self.config.depth)

    def randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The "output" group (the linear head), "lstm" (the whole memory, eqs. 2-7), then the trunk's
        stages 3, 2, 1 and the stem (see :meth:`trunk_randomisation_groups`)."""
        return [("output", ("fc",)), ("lstm", ("lstm",)), *self.trunk_randomisation_groups()]

    def intervention_steps(self, name: str) -> int:
        """T = 3n for the LSTM's per-step quantities (``lstm.input``, ``lstm.forget_gate`` ...)."""
        stepwise = {probe.trace_name for probe in self.lstm.step_probes().values()}
        return self.num_steps if name in stepwise else 0

    def intervention_units(self, name: str) -> int | None:
        """H memory units for the LSTM quantities, the padded size D for ``lstm.input``."""
        if name == self.lstm.input.trace_name:
            return self.lstm.input_size
        if self.intervention_steps(name):
            return self.config.hidden_size
        return None

    def pool_block_output(self, out: torch.Tensor) -> torch.Tensor:
        """Mean-pool one block output: [B, C, H, W] -> [B, C, H // pool, W // pool]."""
        pool = self.config.pool
        return F.avg_pool2d(out, pool, pool) if pool > 1 else out

    def stack_stages(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        """Pooled block outputs (the first ``len(pooled)`` blocks) stacked per stage and
        flattened in (channel, row, column) order: [B, n_s, D_s]."""
        per_stage: list[list[torch.Tensor]] = [[], [], []]
        for stage, item in zip(self.stage_of_block, pooled):
            per_stage[stage].append(item)
        # one copy per stage; the stacked tensor is contiguous, so flatten is a view even
        # when the block outputs are channels-last
        return [torch.stack(items, dim=1).flatten(2) for items in per_stage if items]

    def pool_block_outputs(self, block_outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Mean-pool and flatten each block output, stacked per stage: [B, n_s, D_s]."""
        return self.stack_stages([self.pool_block_output(out) for out in block_outputs])

    def head(self, hidden: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Final layer on [h, pooled]; works for [B, H] or per-step [B, T, H] hidden.

        Returns logits, or keypoints [..., K, 2] in [0, 1] for the keypoint task.
        Used by the per-step readout to decode the prediction after every block.
        """
        if hidden.dim() == 3:
            pooled = pooled.unsqueeze(1).expand(-1, hidden.shape[1], -1)
        out = self.fc(torch.cat([hidden, pooled], dim=-1))
        if self.config.task == "keypoints":
            out = torch.sigmoid(out).unflatten(-1, (-1, 2))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pool each block output as it is made, so that it can be freed (unless traced)
        pooled_blocks, final = self.run_trunk(x, each_block=self.pool_block_output)
        hidden_seq = self.lstm(self.stack_stages(pooled_blocks))
        pooled = self.pooled(final.mean(dim=(2, 3)))
        features = self.features(torch.cat([hidden_seq[:, -1], pooled], dim=1))
        out = self.fc(features)
        if self.config.task == "keypoints":
            return self.keypoints(torch.sigmoid(out).unflatten(-1, (-1, 2)))
        return self.logits(out)
