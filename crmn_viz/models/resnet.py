"""CIFAR-style residual networks (He et al. 2015, 2016) with 6n+2 layers.

The same backbone is the convolutional half of a CRMN (Moniz & Pal 2016, eq. 1):
``x_l = x_{l-1} + f(x_{l-1}, W_l)``. Every block output ``x_l`` (after the addition
and, for post-activation blocks, the ReLU) passes through the probe ``blocks.{k}.out``.

Choices where the papers are silent, all matching He et al.'s CIFAR networks:
convolutions have no bias (each is followed by BatchNorm, whose shift plays that
role: "the biases of each convolutional layer are initialised to 0" in the CRMN paper
is then vacuous); this reproduces Table 1 of the CRMN paper to two decimals.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from crmn_viz.models.base import ModelConfig, TracedModel
from crmn_viz.tracing import Probe

__all__ = ["ResNet", "ResNetConfig", "ResNetTrunk", "blocks_per_stage", "init_linear", "validate_task"]


@dataclasses.dataclass
class ResNetConfig(ModelConfig):
    """Configuration of a CIFAR-style ResNet."""

    depth: int = 20  # 6n + 2 layers: n residual blocks per stage, 3 stages
    width: int = 16  # feature maps of the first conv (16, 24, 32, 64, 160 ...)
    num_outputs: int = 10  # classes
    in_channels: int = 3  # 3 for RGB, 1 for grey-scale
    input_size: int | tuple[int, int] = 32  # input height/width in pixels
    shortcut: str = "A"  # "A": identity + zero-padding (He et al.); "B": 1x1 projection
    preact: bool = False  # pre-activation blocks (He et al. 2016)
    task: str = "classification"  # "classification" (softmax) or "keypoints" (sigmoid, 2017 paper)

    def __post_init__(self) -> None:
        validate_backbone_config(self)
        validate_task(self.task, self.num_outputs)


def validate_task(task: str, num_outputs: int) -> None:
    """Raise ``ValueError`` unless ``task`` is known and a keypoint head has an even ``num_outputs``."""
    if task not in ("classification", "keypoints"):
        raise ValueError(f"task must be 'classification' or 'keypoints', got {task!r}")
    if task == "keypoints" and num_outputs % 2:
        raise ValueError("a keypoint model needs num_outputs = 2 x number of keypoints")


def validate_backbone_config(config: ResNetConfig) -> None:
    """Raise ``ValueError`` for impossible or absurd ResNet settings."""
    if config.depth < 8 or (config.depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 with n >= 1 (8, 14, 20, 32 ...), got {config.depth}")
    if config.depth > 2000:
        raise ValueError(f"depth {config.depth} is unreasonably large (max 2000)")
    if not 1 <= config.width <= 1024:
        raise ValueError(f"width must be between 1 and 1024, got {config.width}")
    if config.shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' or 'B', got {config.shortcut!r}")
    if not 1 <= config.in_channels <= 16:
        raise ValueError(f"in_channels must be between 1 and 16, got {config.in_channels}")
    if not 1 <= config.num_outputs <= 100_000:
        raise ValueError(f"num_outputs must be between 1 and 100000, got {config.num_outputs}")
    sizes = (config.input_size,) * 2 if isinstance(config.input_size, int) else config.input_size
    if len(sizes) != 2 or not all(4 <= int(s) <= 4096 for s in sizes):
        raise ValueError(f"input_size must be between 4 and 4096 pixels, got {config.input_size}")


def blocks_per_stage(depth: int) -> int:
    """``n`` in depth = 6n + 2."""
    return (depth - 2) // 6


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: subsample by ``stride`` and zero-pad the new channels.

    Shape: [B, C_in, H, W] -> [B, C_out, ceil(H/stride), ceil(W/stride)]. No parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x


# 128 KiB of float32: glibc serves smaller blocks from its heap, larger ones from fresh pages.
_IN_PLACE_MIN_VALUES = 1 << 15


def batch_norm_(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``bn(x)``, written into ``x`` itself during inference (eval mode, autograd off).

    The affine map of PyTorch's inference kernel, ``x * alpha + beta`` with
    ``alpha = weight / sqrt(running_var + eps)`` and ``beta = bias - running_mean * alpha``
    (equal to ``bn(x)`` to a rounding step), without a fresh output tensor: on CPU the page
    faults of a fresh batch-sized tensor cost more than the arithmetic. Small tensors (below
    ``_IN_PLACE_MIN_VALUES``, where the allocator reuses memory and a single call is cheaper),
    training mode, autograd and BatchNorms without running statistics or affine parameters
    use ``bn(x)``. Only for an ``x`` that nothing else holds (a convolution's output), never a
    block output, which a trace may keep.
    """
    if (
        x.numel() < _IN_PLACE_MIN_VALUES
        or bn.training
        or torch.is_grad_enabled()
        or bn.running_var is None
        or bn.weight is None
    ):
        return bn(x)
    alpha = torch.rsqrt(bn.running_var + bn.eps).mul_(bn.weight)
    beta = torch.addcmul(bn.bias, bn.running_mean, alpha, value=-1)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.addcmul(beta.view(shape), x, alpha.view(shape), out=x)


def make_shortcut(in_channels: int, out_channels: int, stride: int, kind: str) -> nn.Module:
    """Identity when shapes match, else option A (zero-pad) or B (1x1 conv + BN)."""
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (He et al. 2015, CRMN eq. 1).

    Post-activation: ``out = relu(bn2(conv2(relu(bn1(conv1 x)))) + shortcut(x))``.
    Pre-activation (He et al. 2016): ``out = conv2(relu(bn2(conv1(relu(bn1 x))))) + shortcut(x)``.
    The probe ``out`` sees the block output after the addition (and ReLU, post-act).

    Shape: [B, C_in, H, W] -> [B, C_out, H/stride, W/stride].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str, preact: bool) -> None:
        super().__init__()
        self.preact = preact
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(in_channels if preact else out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, shortcut)
        self.out = Probe()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLU and addition on tensors this block just made (never on ``x``, which the
        # trace may hold): the same values without allocating a fresh output for each.
        if self.preact:
            pre = F.relu(self.bn1(x), inplace=True)
            residual = self.conv2(F.relu(batch_norm_(self.bn2, self.conv1(pre)), inplace=True))
            return self.out(residual.add_(self.shortcut(x)))
        hidden = F.relu(batch_norm_(self.bn1, self.conv1(x)), inplace=True)
        residual = batch_norm_(self.bn2, self.conv2(hidden))
        return self.out(F.relu(residual.add_(self.shortcut(x)), inplace=True))


class ResNetTrunk(TracedModel):
    """Stem conv + 3 stages of ``n`` blocks (widths w, 2w, 4w; stride 2 between stages).

    Shared by :class:`ResNet` and the CRMN. ``blocks`` is one flat list of the 3n
    blocks so that block ``k`` is traced as ``blocks.{k}.out`` in both;
    ``stage_of_block[k]`` tells its stage (0, 1, 2).

    Shape: [B, C_in, H, W] -> (list of 3n block outputs, final map
    [B, 4w, ceil(H/4), ceil(W/4)]); for pre-activation nets the final map is after
    the closing BN+ReLU of He et al. (2016).
    """

    config: ResNetConfig
    preferred_memory_format = torch.channels_last
    gradcam_layer_pattern = "blocks.{block}.out"  # the block output after the addition (eq. 1)

    @property
    def block_count(self) -> int:
        """The 3n residual blocks."""
        return len(self.blocks)

    def build_trunk(self, config: ResNetConfig) -> None:
        """Create the trunk's layers on ``self`` (call from a subclass ``__init__``)."""
        n = blocks_per_stage(config.depth)
        widths = [config.width, 2 * config.width, 4 * config.width]
        self.stem = conv3x3(config.in_channels, widths[0])
        # Post-activation: BN+ReLU after the stem. Pre-activation: the first block's
        # own BN+ReLU pre-activates the stem output (He et al. 2016).
        self.stem_bn = nn.Identity() if config.preact else nn.BatchNorm2d(widths[0])
        blocks: list[nn.Module] = []
        self.stage_of_block: list[int] = []
        in_channels = widths[0]
        for stage, out_channels in enumerate(widths):
            for index in range(n):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_channels, out_channels, stride, config.shortcut, config.preact))
                self.stage_of_block.append(stage)
                in_channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.final_bn = nn.BatchNorm2d(widths[-1]) if config.preact else nn.Identity()
        self.trunk_channels = widths[-1]
        self.stage_widths = widths

    def trunk_randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The trunk's :meth:`randomisation_groups`, output side first: "stage 3" ... "stage 1", "stem".

        Stage ``s`` holds its residual blocks (``stage_of_block``: n blocks of the 6n+2
        network each). The pre-activation closing BatchNorm ``final_bn`` normalises the
        stage 3 output and is put with stage 3; ``stem_bn`` goes with the stem conv.
        """
        groups = []
        for stage in reversed(range(len(self.stage_widths))):
            blocks = tuple(f"blocks.{k}" for k, owner in enumerate(self.stage_of_block) if owner == stage)
            closing = ("final_bn",) if stage == len(self.stage_widths) - 1 else ()
            groups.append((f"stage {stage + 1}", blocks + closing))
        return [*groups, ("stem", ("stem", "stem_bn"))]

    def run_trunk(
        self, x: torch.Tensor, each_block: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Return every block output (eq. 1, after the addition) and the final map.

        Args:
            x: input batch [B, C, H, W]; the convolutions run on it in channels-last layout
                (:attr:`preferred_memory_format`), so the block outputs are channels-last
                tensors with the usual [B, C, H, W] shape and values.
            each_block: applied to each block output as soon as it is made; the list then
                holds its results, and each block output can be freed once the next block has
                read it (the CRMN pools them this way).
        """
        x = self.stem(x.contiguous(memory_format=self.preferred_memory_format))
        if not self.config.preact:
            x = F.relu(batch_norm_(self.stem_bn, x), inplace=True)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x if each_block is None else each_block(x))
        if self.config.preact:
            x = F.relu(self.final_bn(x), inplace=True)
        return outputs, x


def init_resnet_weights(module: nn.Module) -> None:
    """He et al. (2015) init: Kaiming-normal (fan_out) convs, BN weight 1 / bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(ResNetTrunk):
    """Plain CIFAR ResNet: trunk, global average pooling, linear layer.

    Classification (``task="classification"``): softmax logits. Keypoints
    (``task="keypoints"``, the ResNet baselines of Moniz & Pal 2017, Table 1): the same head
    as the CRMN's keypoint model, a sigmoid over the linear layer's ``2K`` outputs read as
    ``K`` normalised ``(x, y)`` pairs in [0, 1]. The CRMN's 4x4 mean-pool is the pooling of its
    LSTM input; a ResNet has no LSTM, so its head sees only the global average pool, which is
    what reproduces the table's ResNet parameter counts (``tests/models/test_param_counts.py``).

    Trace names: ``blocks.{k}.out`` [B, C_k, H_k, W_k] for k < 3n, ``features``
    [B, 4w] (global average pooled), then ``logits`` [B, num_outputs] or ``keypoints``
    [B, K, 2].
    """

    arch = "resnet"
    title = "ResNet, CIFAR 6n+2 variant (He et al. 2015/2016)"

    def __init__(self, config: ResNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        self.config = config if config is not None else ResNetConfig(**overrides)  # type: ignore[arg-type]
        self.build_trunk(self.config)
        self.fc = nn.Linear(self.trunk_channels, self.config.num_outputs)
        self.features = Probe()
        if self.config.task == "keypoints":
            self.keypoints = Probe()
        else:
            self.logits = Probe()
        init_resnet_weights(self)
        init_linear(self.fc)
        self.finalize()

    def randomisation_groups(self) -> list[tuple[str, tuple[str, ...]]]:
        """The "output" group (the linear layer), then the trunk's stages 3, 2, 1 and the stem."""
        return [("output", ("fc",)), *self.trunk_randomisation_groups()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, final = self.run_trunk(x)
        features = self.features(final.mean(dim=(2, 3)))
        out = self.fc(features)
        if self.config.task == "keypoints":
            return self.keypoints(torch.sigmoid(out).unflatten(-1, (-1, 2)))
        return self.logits(out)


def init_linear(layer: nn.Linear) -> None:
    """Uniform(+-1/sqrt(fan_in)) weights, zero bias (Glorot-style scale of Lasagne)."""
    bound = 1 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.zeros_(layer.bias)
