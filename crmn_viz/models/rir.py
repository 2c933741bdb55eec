"""ResNet in ResNet (Targ, Almeida & Lyman 2016): generalized residual blocks.

A generalized residual block (paper eq. 1) carries a residual stream ``r`` and a
transient stream ``m``::

    r_{l+1} = s(conv(r_l, W_{l,1}) + conv(m_l, W_{l,2}) + shortcut(r_l))
    m_{l+1} = s(conv(r_l, W_{l,3}) + conv(m_l, W_{l,4}))

with ``s`` = BatchNorm then ReLU applied to the sum (the paper: "same-stream and
cross-stream activations are summed (along with the shortcut connection for the
residual stream) before applying batch normalization and ReLU"). The four kernels are
implemented as one convolution over ``[r; m]`` (paper eq. 2). An RiR block is
``layers_per_block`` generalized blocks wrapped in an outer ResNet shortcut from the
block's input residual stream.

Variants (paper Figure 2):

* ``"rir"``: inner shortcuts on the residual stream and outer shortcuts per RiR block.
* ``"resnet_init"``: no shortcut connections; the identity is folded into the
  initialisation of the r->r kernel (``W_{l,1} + I``, eq. 2), so at initialisation a
  block computes exactly what the ``"rir"`` inner shortcut computes.
* ``"cnn"``: the same network with no shortcuts and standard initialisation.

Choices where the paper is silent (documented here): the outer shortcut joins the last
generalized block of an RiR block after its BatchNorm and before its ReLU, where He et
al.'s ResNet block adds its shortcut; the head is global average pooling of ``[r; m]``
and a linear layer. With the transient stream zeroed, each generalized block reduces to
``r' = relu(bn(conv(r) + r))``: the paper's "single layer ResNet".

Defaults are the paper's "18-layer + wide" network: a 3x3 stem to 96 maps (48 residual
+ 48 transient), 8 RiR blocks of 2 generalized blocks (16 layers) with 48/96/192 maps
per stream in three stages of 2/3/3 blocks (stride 2 into stages 2 and 3), and the
output layer: 18 weight layers.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from crmn_viz.models.base import ModelConfig, TracedModel
from crmn_viz.models.resnet import batch_norm_, init_linear, make_shortcut
from crmn_viz.tracing import Probe

__all__ = ["GeneralizedResidualBlock", "RiR", "RiRConfig"]


@dataclasses.dataclass
class RiRConfig(ModelConfig):
    """Configuration of a ResNet in ResNet (defaults: the paper's 18-layer + wide)."""

    widths: list = dataclasses.field(default_factory=lambda: [48, 96, 192])  # maps per stream, per stage
    blocks_per_stage: list = dataclasses.field(default_factory=lambda: [2, 3, 3])  # RiR blocks per stage
    layers_per_block: int = 2  # generalized residual blocks inside each RiR block
    variant: str = "rir"  # "rir", "resnet_init" or "cnn" (paper Figure 2)
    shortcut: str = "A"  # when shapes change: "A" zero-pad identity, "B" 1x1 projection
    num_outputs: int = 10  # classes
    in_channels: int = 3  # input channels
    input_size: int | tuple[int, int] = 32  # input height/width in pixels
    task: str = "classification"  # only classification is defined for RiR

    def __post_init__(self) -> None:
        self.widths = [int(w) for w in self.widths]
        self.blocks_per_stage = [int(b) for b in self.blocks_per_stage]
        if not self.widths or len(self.widths) != len(self.blocks_per_stage):
            raise ValueError("widths and blocks_per_stage need one entry per stage")
        if any(not 1 <= w <= 2048 for w in self.widths) or any(
            not 0 <= b <= 200 for b in self.blocks_per_stage
        ):
            raise ValueError("widths must be 1..2048 and blocks_per_stage 0..200")
        if not 1 <= self.layers_per_block <= 50:
            raise ValueError("layers_per_block must be 1..50")
        if self.variant not in ("rir", "resnet_init", "cnn"):
            raise ValueError(f"variant must be 'rir', 'resnet_init' or 'cnn', got {self.variant!r}")
        if self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
        if self.task != "classification":
            raise ValueError("RiR supports task='classification' only")
        if not 1 <= self.in_channels <= 16 or not 1 <= self.num_outputs <= 100_000:
            raise ValueError("in_channels must be 1..16 and num_outputs 1..100000")
        sizes = (self.input_size,) * 2 if isinstance(self.input_size, int) else self.input_size
        if len(sizes) != 2 or not all(4 <= int(s) <= 4096 for s in sizes):
            raise ValueError(f"input_size must be 4..4096 pixels, got {self.input_size}")


class GeneralizedResidualBlock(nn.Module):
    """One generalized residual block (RiR paper eqs. 1-2).

    ``conv`` maps [r; m] (2 * in_width maps) to [r'; m'] (2 * out_width maps); its
    weight blocks are W_{l,1} = conv.weight[:out, :in] (r->r), W_{l,2} =
    conv.weight[:out, in:] (m->r), W_{l,3} = [out:, :in] (r->m), W_{l,4} = [out:, in:].

    Trace names (relative): ``residual`` and ``transient``, each [B, out_width, H', W'].
    """

    def __init__(self, in_width: int, out_width: int, stride: int, variant: str, shortcut: str) -> None:
        super().__init__()
        self.in_width, self.out_width = in_width, out_width
        self.conv = nn.Conv2d(2 * in_width, 2 * out_width, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * out_width)
        self.inner_shortcut = (
            make_shortcut(in_width, out_width, stride, shortcut) if variant == "rir" else None
        )
        self.residual = Probe()
        self.transient = Probe()
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if variant == "resnet_init":
            with torch.no_grad():  # W_{l,1} + I (eq. 2); with stride 2 this is option A
                identity = torch.zeros(out_width, in_width, 3, 3)
                nn.init.dirac_(identity)
                self.conv.weight[:out_width, :in_width] += identity

    def pre_activation(
        self, residual: torch.Tensor, transient: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """BN of the summed stream convolutions (+ inner shortcut), before the ReLU."""
        z = self.conv(torch.cat([residual, transient], dim=1))
        if self.inner_shortcut is not None:  # onto the residual half only (the other gets + 0)
            z[:, : self.out_width] += self.inner_shortcut(residual)
        z = batch_norm_(self.bn, z)  # in place: z is this block's own tensor
        return z[:, : self.out_width], z[:, self.out_width :]

    def finish(
        self, z_residual: torch.Tensor, z_transient: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ReLU both streams and record them."""
        return self.residual(F.relu(z_residual)), self.transient(F.relu(z_transient))


class RiR(TracedModel):
    """ResNet in ResNet classifier.

    Trace names: ``blocks.{k}.residual`` and ``blocks.{k}.transient`` for every
    generalized block k (numbered through the whole network), ``features``
    [B, 2 * widths[-1]] (global average pool of [r; m]) and ``logits``.
    ``rir_groups`` lists, for every RiR block, the generalized blocks it wraps.
    """

    arch = "rir"
    title = "ResNet in ResNet (Targ et al. 2016)"
    preferred_memory_format = torch.channels_last
    stream_names = ("residual", "transient")
    removable_streams = ("transient",)  # zeroed everywhere: the paper's reduction to a ResNet
    gradcam_layer_pattern = "blocks.{block}.{stream}"  # one stream of a generalized block

    @property
    def block_count(self) -> int:
        """The generalized residual blocks, numbered through the whole network."""
        return len(self.blocks)

    def __init__(self, config: RiRConfig | None = None, **overrides: object) -> None:
        super().__init__()
        self.config = config if config is not None else RiRConfig(**overrides)  # type: ignore[arg-type]
        cfg = self.config
        self.stem = nn.Conv2d(cfg.in_channels, 2 * cfg.widths[0], 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(2 * cfg.widths[0])
        nn.init.kaiming_normal_(self.stem.weight, mode="fan_out", nonlinearity="relu")
        blocks: list[nn.Module] = []
        outer: list[nn.Module] = []
        self.rir_groups: list[list[int]] = []
        width = cfg.widths[0]
        for stage, (out_width, count) in enumerate(zip(cfg.widths, cfg.blocks_per_stage)):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                group = []
                outer.append(make_shortcut(width, out_width, stride, cfg.shortcut))
                for layer in range(cfg.layers_per_block):
                    group.append(len(blocks))
                    blocks.append(
                        GeneralizedResidualBlock(
                            width if layer == 0 else out_width,
                            out_width,
                            stride if layer == 0 else 1,
                            cfg.variant,
                            cfg.shortcut,
                        )
                    )
                width = out_width
                self.rir_groups.append(group)
        self.blocks = nn.ModuleList(blocks)
        self.outer_shortcuts = nn.ModuleList(outer) if cfg.variant == "rir" else None
        self.fc = nn.Linear(2 * width, cfg.num_outputs)
        init_linear(self.fc)
        self.features = Probe()
        self.logits = Probe()
        self.finalize()

    def randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The "output" group (the linear layer), the stages last first, then "stem" (conv and BN).

        Stage ``s`` holds the generalized blocks of its ``blocks_per_stage[s]`` RiR blocks
        and their outer shortcuts; a stage without blocks has no group.
        """
        stages = []
        first = 0
        for stage, count in enumerate(self.config.blocks_per_stage):
            prefixes: list[str] = []
            for group in range(first, first + count):
                prefixes += [f"blocks.{k}" for k in self.rir_groups[group]]
                if self.outer_shortcuts is not None:
                    prefixes.append(f"outer_shortcuts.{group}")
            first += count
            if prefixes:
                stages.append((f"stage {stage + 1}", tuple(prefixes)))
        return [("output", ("fc",)), *reversed(stages), ("stem", ("stem", "stem_bn"))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.preferred_memory_format)  # same values, faster convolutions
        streams = F.relu(batch_norm_(self.stem_bn, self.stem(x)), inplace=True)
        width0 = self.config.widths[0]
        residual, transient = streams[:, :width0], streams[:, width0:]
        for group_index, group in enumerate(self.rir_groups):
            block_input = residual
            for k in group:
                block = self.blocks[k]
                z_residual, z_transient = block.pre_activation(residual, transient)
                if k == group[-1] and self.outer_shortcuts is not None:
                    z_residual = z_residual + self.outer_shortcuts[group_index](block_input)
                residual, transient = block.finish(z_residual, z_transient)
        features = self.features(torch.cat([residual, transient], dim=1).mean(dim=(2, 3)))
        return self.logits(self.fc(features))
