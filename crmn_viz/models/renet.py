"""ReNet (Visin et al. 2015): recurrent sweeps as an alternative to convolution+pooling.

Each layer splits its input into non-overlapping ``ph x pw`` patches, sweeps every
column of the patch grid with two independent RNNs (top-to-bottom and bottom-to-top),
concatenates them into ``V`` [B, 2d, rows, cols], then sweeps every row of ``V`` with
two more RNNs (left-to-right and right-to-left), giving ``H`` [B, 2d, rows, cols].
Layers stack; the last map is flattened into fully connected ReLU layers and a
linear output layer (softmax classifier).

Choices where the paper is silent (documented here):

* Inputs whose size is not a multiple of the patch size are zero-padded at the bottom
  and right before splitting.
* A patch is flattened in (channel, row, column) order.
* Dropout (``dropout``) is applied after the vertical and after the horizontal sweep
  of each layer and after every hidden fully connected layer; the input is corrupted
  with (rescaled) dropout ``input_dropout`` = 0.2 during training, as in section 4.3.
* The GRU follows the paper's equations exactly (see :mod:`crmn_viz.models.sweeps`).

Defaults are the paper's MNIST model (Table 1): two layers of 2x2 patches with 256
GRU units per direction, two fully connected layers of 4096 ReLU units.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from crmn_viz.models.base import ModelConfig, TracedModel
from crmn_viz.models.resnet import init_linear
from crmn_viz.models.sweeps import GATES_BY_CELL, BidirectionalSweep
from crmn_viz.tracing import Probe

__all__ = ["ReNet", "ReNetConfig", "ReNetLayer", "split_into_patches"]

SWEEP_DIRECTIONS = ("vertical_fwd", "vertical_bwd", "horizontal_fwd", "horizontal_bwd")


@dataclasses.dataclass
class ReNetConfig(ModelConfig):
    """Configuration of a ReNet (defaults: the paper's MNIST model)."""

    patch_sizes: list = dataclasses.field(
        default_factory=lambda: [[2, 2], [2, 2]]
    )  # per layer: int or [ph, pw]
    hidden_sizes: list = dataclasses.field(default_factory=lambda: [256, 256])  # units per RNN, per layer
    cell: str = "gru"  # "gru" or "lstm"
    fc_sizes: list = dataclasses.field(default_factory=lambda: [4096, 4096])  # hidden FC layers (ReLU)
    dropout: float = 0.2  # after each sweep and each hidden FC layer
    input_dropout: float = 0.2  # input corruption during training
    num_outputs: int = 10  # classes
    in_channels: int = 1  # 1 for MNIST, 3 for CIFAR-10 / SVHN
    input_size: int | tuple[int, int] = 28  # input height/width in pixels
    task: str = "classification"  # only classification heads are defined for ReNet

    def __post_init__(self) -> None:
        self.patch_sizes = [
            [int(p), int(p)] if isinstance(p, int) else [int(v) for v in p] for p in self.patch_sizes
        ]
        self.hidden_sizes = [int(h) for h in self.hidden_sizes]
        self.fc_sizes = [int(h) for h in self.fc_sizes]
        if not self.patch_sizes or len(self.patch_sizes) != len(self.hidden_sizes):
            raise ValueError("patch_sizes and hidden_sizes need one entry per ReNet layer")
        if len(self.patch_sizes) > 8:
            raise ValueError("at most 8 ReNet layers are supported")
        if any(len(p) != 2 or not 1 <= min(p) <= max(p) <= 32 for p in self.patch_sizes):
            raise ValueError(f"patch sizes must be 1..32 pixels, got {self.patch_sizes}")
        if any(not 1 <= h <= 4096 for h in self.hidden_sizes + self.fc_sizes):
            raise ValueError("hidden and fully connected sizes must be between 1 and 4096")
        if self.cell not in GATES_BY_CELL:
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        if not (0 <= self.dropout < 1 and 0 <= self.input_dropout < 1):
            raise ValueError("dropout probabilities must be in [0, 1)")
        if self.task != "classification":
            raise ValueError("ReNet supports task='classification' only")
        if not 1 <= self.in_channels <= 16 or not 1 <= self.num_outputs <= 100_000:
            raise ValueError("in_channels must be 1..16 and num_outputs 1..100000")
        sizes = (self.input_size,) * 2 if isinstance(self.input_size, int) else self.input_size
        if len(sizes) != 2 or not all(1 <= int(s) <= 4096 for s in sizes):
            raise ValueError(f"input_size must be 1..4096 pixels, got {self.input_size}")


def split_into_patches(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """Zero-pad to a multiple of the patch and split into non-overlapping patches.

    Shape: [B, C, H, W] -> [B, rows, cols, C * ph * pw], rows = ceil(H / ph).
    """
    ph, pw = patch
    batch, channels, height, width = x.shape
    rows, cols = math.ceil(height / ph), math.ceil(width / pw)
    if rows * ph != height or cols * pw != width:
        x = F.pad(x, (0, cols * pw - width, 0, rows * ph - height))
    x = x.reshape(batch, channels, rows, ph, cols, pw)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(batch, rows, cols, channels * ph * pw)


class ReNetLayer(nn.Module):
    """One ReNet layer: vertical then horizontal bidirectional sweeps (paper eqs. 1-2).

    Trace names (relative): ``vertical_fwd`` (top-to-bottom), ``vertical_bwd``
    (bottom-to-top), ``horizontal_fwd`` (left-to-right), ``horizontal_bwd``
    (right-to-left), each [B, d, rows, cols]; ``out`` [B, 2d, rows, cols];
    ``gates.{direction}.{gate}`` [B, d, rows, cols] (GRU: update_gate, reset_gate;
    LSTM: input_gate, forget_gate, output_gate, cell).

    Shape: [B, C, H, W] -> [B, 2d, ceil(H/ph), ceil(W/pw)].
    """

    def __init__(
        self, in_channels: int, patch: tuple[int, int], hidden: int, cell: str, dropout: float
    ) -> None:
        super().__init__()
        self.patch = tuple(patch)
        self.hidden = hidden
        self.vertical = BidirectionalSweep(in_channels * patch[0] * patch[1], hidden, cell)
        self.horizontal = BidirectionalSweep(2 * hidden, hidden, cell)
        self.dropout = nn.Dropout(dropout)
        for direction in SWEEP_DIRECTIONS:
            setattr(self, direction, Probe())
        self.out = Probe()
        self.gates = nn.ModuleDict(
            {
                # a view of gates already used: recorded, never edited (see Probe)
                direction: nn.ModuleDict({g: Probe(intervenable=False) for g in GATES_BY_CELL[cell]})
                for direction in SWEEP_DIRECTIONS
            }
        )

    def _gates_wanted(self, prefix: str) -> bool:
        return any(p.is_recording() for p in self.gates[f"{prefix}_fwd"].values()) or any(
            p.is_recording() for p in self.gates[f"{prefix}_bwd"].values()
        )

    def _record_gates(self, prefix: str, gates: dict[str, torch.Tensor], to_map) -> None:  # type: ignore[no-untyped-def]
        for name, value in gates.items():
            self.gates[f"{prefix}_fwd"][name].record_lazily(to_map, value[0])
            self.gates[f"{prefix}_bwd"][name].record_lazily(to_map, value[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = split_into_patches(x, self.patch)  # [B, R, C, F]
        batch, rows, cols, features = patches.shape
        hidden = self.hidden

        def columns_to_map(states: torch.Tensor) -> torch.Tensor:  # [B*C, R, d] -> [B, d, R, C]
            return states.reshape(batch, cols, rows, hidden).permute(0, 3, 2, 1)

        def rows_to_map(states: torch.Tensor) -> torch.Tensor:  # [B*R, C, d] -> [B, d, R, C]
            return states.reshape(batch, rows, cols, hidden).permute(0, 3, 1, 2)

        column_sequences = patches.transpose(1, 2).reshape(batch * cols, rows, features)
        vertical, gates = self.vertical(column_sequences, keep_gates=self._gates_wanted("vertical"))
        self._record_gates("vertical", gates, columns_to_map)
        v_fwd = self.vertical_fwd(columns_to_map(vertical[0]))
        v_bwd = self.vertical_bwd(columns_to_map(vertical[1]))
        v_map = self.dropout(torch.cat([v_fwd, v_bwd], dim=1))  # V: [B, 2d, R, C]

        row_sequences = v_map.permute(0, 2, 3, 1).reshape(batch * rows, cols, 2 * hidden)
        horizontal, gates = self.horizontal(row_sequences, keep_gates=self._gates_wanted("horizontal"))
        self._record_gates("horizontal", gates, rows_to_map)
        h_fwd = self.horizontal_fwd(rows_to_map(horizontal[0]))
        h_bwd = self.horizontal_bwd(rows_to_map(horizontal[1]))
        return self.out(self.dropout(torch.cat([h_fwd, h_bwd], dim=1)))


class ReNet(TracedModel):
    """Stacked ReNet layers, fully connected ReLU layers, linear classifier.

    Trace names: ``layers.{k}.{vertical_fwd, vertical_bwd, horizontal_fwd,
    horizontal_bwd}`` [B, d_k, rows_k, cols_k], ``layers.{k}.out`` [B, 2 d_k, rows_k,
    cols_k], ``layers.{k}.gates.{direction}.{gate}``, ``features`` [B, last FC size]
    (input of the output layer) and ``logits`` [B, num_outputs].
    """

    arch = "renet"
    title = "ReNet (Visin et al. 2015)"
    sweep_names = SWEEP_DIRECTIONS
    sweep_trace_pattern = "layers.{layer}.{sweep}"  # one direction's hidden states of one layer
    gradcam_layer_pattern = "layers.{block}.out"  # a layer's map after both sweeps

    @property
    def block_count(self) -> int:
        """The ReNet layers (each a vertical and a horizontal bidirectional sweep)."""
        return len(self.layers)

    def __init__(self, config: ReNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        self.config = config if config is not None else ReNetConfig(**overrides)  # type: ignore[arg-type]
        cfg = self.config
        self.input_dropout = nn.Dropout(cfg.input_dropout)
        layers = []
        channels = cfg.in_channels
        _, height, width = self.input_shape
        for patch, hidden in zip(cfg.patch_sizes, cfg.hidden_sizes):
            layers.append(ReNetLayer(channels, tuple(patch), hidden, cfg.cell, cfg.dropout))
            channels = 2 * hidden
            height, width = math.ceil(height / patch[0]), math.ceil(width / patch[1])
        self.layers = nn.ModuleList(layers)
        self.grid_sizes = self._grid_sizes()
        fc: list[nn.Module] = []
        size = channels * height * width
        for width_fc in cfg.fc_sizes:
            linear = nn.Linear(size, width_fc)
            init_linear(linear)
            fc += [linear, nn.ReLU(), nn.Dropout(cfg.dropout)]
            size = width_fc
        self.fc = nn.Sequential(*fc)
        self.classifier = nn.Linear(size, cfg.num_outputs)
        init_linear(self.classifier)
        self.features = Probe()
        self.logits = Probe()
        self.finalize()

    def randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The "output" group (fully connected layers and classifier), then "layer K" ... "layer 1"
        (each layer's vertical and horizontal sweeps)."""
        layers = [(f"layer {k + 1}", (f"layers.{k}",)) for k in reversed(range(len(self.layers)))]
        return [("output", ("fc", "classifier")), *layers]

    def _grid_sizes(self) -> list[tuple[int, int]]:
        """Patch-grid (rows, cols) of each layer."""
        _, height, width = self.input_shape
        sizes = []
        for patch in self.config.patch_sizes:
            height, width = math.ceil(height / patch[0]), math.ceil(width / patch[1])
            sizes.append((height, width))
        return sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.input_dropout(x)
        for layer in self.layers:
            x = layer(x)
        features = self.features(self.fc(x.flatten(1)))
        return self.logits(self.classifier(features))
