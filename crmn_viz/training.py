"""Training and evaluation of zoo models from small TOML recipes (``configs/*.toml``).

A recipe names the architecture and its options, the dataset, and the optimisation:
the papers' schedules (SGD with momentum 0.9, weight decay 1e-4 and step decays for
CRMN/ResNet/RiR; Adam for ReNet; the 2017 paper's round-robin schedule, which decays the
ResNet, LSTM and output layer in turn, see :func:`round_robin_factor`) and one-cycle for CPU
budgets, optionally with warm restarts (:class:`OneCycleWithRestarts`), so that a finished
run can be extended by resuming it under a recipe with one more cycle. A recipe can also start
from a shipped checkpoint's weights (``init_from``) and average the weights of its last epochs
(stochastic weight averaging, ``swa_from_epoch``, Izmailov et al. 2018), which is how a
finished zoo model is continued when only its shipped weights remain. Training is
resumable (``<out>/last_state.pt`` after every epoch, loaded with
``torch.load(weights_only=True)``), logs one JSON line per epoch to
``<out>/metrics.jsonl``, and finally writes the checkpoint (safetensors + model card).

Data that fits in memory (CIFAR-10 from the JPEG archive, MNIST) is augmented in
batches on tensors (pad-and-crop, flips, shifts), which on a 2-core CPU is several
times faster than per-image transforms in DataLoader workers. Under ``torchrun`` the
same command trains with DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from crmn_viz.checkpoints import save
from crmn_viz.models import create_model, model_class
from crmn_viz.models.base import TracedModel

__all__ = [
    "OneCycleWithRestarts",
    "TrainRecipe",
    "evaluate_model",
    "load_recipe",
    "override_epochs",
    "train",
    "training_step",
]


@dataclasses.dataclass
class TrainRecipe:
    """One zoo model's training recipe (a TOML file's top-level keys)."""

    name: str  # checkpoint name, e.g. "crmn-cifar10"
    arch: str  # "crmn", "resnet", "renet" or "rir"
    dataset: str  # "cifar10", "mnist", "faces68", ...
    model: dict = dataclasses.field(default_factory=dict)  # create_model options
    epochs: int = 30  # passes over the training set
    batch_size: int = 128  # per process
    optimizer: str = "sgd"  # "sgd" (momentum, nesterov off) or "adam"
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9  # SGD momentum (CRMN papers: 0.9); "onecycle" cycles 0.95 -> 0.85 -> 0.95 instead
    weight_decay: float = 1e-4  # L2 penalty (CRMN papers: 1e-4)
    # "onecycle", "step", "cosine", "constant" (lr held, SWA's schedule) or "round_robin" (CRMN 2017)
    schedule: str = "onecycle"
    # onecycle only: warm restarts, e.g. [{ at_epoch = 40, lr = 0.05 }] starts a new one-cycle
    # peaking at 0.05 after epoch 40, running to the next restart or to ``epochs``
    restarts: list = dataclasses.field(default_factory=list)
    milestones: list = dataclasses.field(default_factory=lambda: [0.5, 0.75])  # step / round_robin shifts
    gamma: float = 0.1  # step decay factor
    round_robin_factors: list = dataclasses.field(default_factory=lambda: [0.1, 0.5, 0.2])  # per round
    label_smoothing: float = 0.0  # classification only
    keypoint_loss: str = "mse"  # keypoints only: "mse" (squared error) or "l1", on normalised (x, y)
    seed: int = 0  # for the model init, shuffling and augmentation
    # a checkpoint (zoo name or path) whose weights start the run instead of a random init; its
    # architecture, model options and dataset must be the recipe's (the card records the parent)
    init_from: str = ""
    # >0: stochastic weight averaging (Izmailov et al. 2018, "Averaging Weights Leads to Wider
    # Optima"): the weights after every epoch from this one (1-based) on are averaged with equal
    # weight; the shipped model is that average, its BatchNorm statistics recomputed on one pass
    # over (augmented) training batches
    swa_from_epoch: int = 0
    num_workers: int = 0  # DataLoader workers for datasets that are not held in memory
    amp: bool = False  # bfloat16 autocast for the training step (CUDA; a CPU only with AVX512-BF16/AMX)
    channels_last: bool = False  # NHWC memory format for the training step (faster convolutions)
    compile: bool = False  # torch.compile the model on CUDA
    half_storage: bool = True  # store the shipped weights as float16
    max_train_batches: int = 0  # >0: stop each epoch early (smoke tests)
    max_eval_batches: int = 0  # >0: evaluate on the first batches only (smoke tests)

    @property
    def task(self) -> str:
        return self.model.get("task", "classification")


SCHEDULES = ("onecycle", "step", "cosine", "constant", "round_robin")


def load_recipe(path: str | os.PathLike[str]) -> TrainRecipe:
    """Parse a TOML recipe; unknown keys are an error naming the valid ones."""
    values = tomllib.loads(Path(path).read_text())
    valid = {f.name for f in dataclasses.fields(TrainRecipe)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"unknown recipe keys {unknown}; valid: {sorted(valid)}")
    recipe = TrainRecipe(**values)
    if recipe.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {recipe.schedule!r}")
    if not isinstance(recipe.swa_from_epoch, int) or not 0 <= recipe.swa_from_epoch <= recipe.epochs:
        raise ValueError(
            f"swa_from_epoch must be 0 (off) or an epoch in 1..epochs={recipe.epochs}, "
            f"got {recipe.swa_from_epoch!r}"
        )
    if recipe.schedule == "round_robin" and not model_class(recipe.arch).has_memory:
        raise ValueError(
            "the round_robin schedule cycles over a CRMN's ResNet, LSTM and head: arch must be crmn"
        )
    if recipe.keypoint_loss not in ("mse", "l1"):
        raise ValueError(f"keypoint_loss must be 'mse' or 'l1', got {recipe.keypoint_loss!r}")
    cycle_starts(recipe)  # validates ``restarts``
    return recipe


def override_epochs(recipe: TrainRecipe, epochs: int) -> list[dict]:
    """Set ``recipe.epochs`` (``crmn-viz train --epochs``), dropping warm restarts at or past
    the new end, which would otherwise make the recipe invalid; returns the dropped ones."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    dropped = [restart for restart in recipe.restarts if restart["at_epoch"] >= epochs]
    recipe.restarts = [restart for restart in recipe.restarts if restart["at_epoch"] < epochs]
    recipe.epochs = epochs
    return dropped


def cycle_starts(recipe: TrainRecipe) -> list[tuple[int, float]]:
    """``(first epoch, peak learning rate)`` of each one-cycle: ``(0, lr)``, then the restarts.

    Raises:
        ValueError: restarts on a schedule other than onecycle, a restart without ``at_epoch``
            and a positive ``lr``, or restart epochs not increasing inside ``(0, epochs)``.
    """
    cycles = [(0, float(recipe.lr))]
    if recipe.restarts and recipe.schedule != "onecycle":
        raise ValueError(f"restarts need schedule = 'onecycle', got {recipe.schedule!r}")
    for restart in recipe.restarts:
        if not isinstance(restart, dict) or set(restart) != {"at_epoch", "lr"}:
            raise ValueError(f"each restart is {{ at_epoch = N, lr = X }}, got {restart!r}")
        at_epoch, lr = restart["at_epoch"], restart["lr"]
        if not isinstance(at_epoch, int) or not cycles[-1][0] < at_epoch < recipe.epochs:
            raise ValueError(
                f"restart epochs must increase inside (0, epochs={recipe.epochs}), got {at_epoch!r}"
            )
        if not isinstance(lr, int | float) or lr <= 0:
            raise ValueError(f"a restart's lr must be positive, got {lr!r}")
        cycles.append((at_epoch, float(lr)))
    return cycles


# ----------------------------------------------------------------------------- data


class InMemoryBatches:
    """Shuffled, augmented batches from uint8 images held in one tensor.

    Args:
        images: uint8 [N, H, W, C]; labels: int64 [N].
        mean, std: per-channel normalisation on the [0, 1] scale.
        pad: pad-and-random-crop margin in pixels (0: none); flip: random h-flip.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        pad: int,
        flip: bool,
    ) -> None:
        self.images = images.permute(0, 3, 1, 2).contiguous()
        self.labels = labels
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)
        self.pad, self.flip = pad, flip

    def __len__(self) -> int:
        return len(self.labels)

    def normalise(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        return (batch_uint8.float() / 255.0 - self.mean) / self.std

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Zero-pad by ``pad``, random crop back, random flip (CIFAR recipe of He et al.)."""
        n, _, h, w = batch.shape
        if self.pad:
            padded = F.pad(batch, (self.pad,) * 4)
            dy = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * self.pad + 1, (n,), generator=generator)
            rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(-1, batch.shape[1], -1, w)
            cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(-1, batch.shape[1], h, -1)
            batch = padded[
                torch.arange(n)[:, None, None, None],
                torch.arange(batch.shape[1])[None, :, None, None],
                rows,
                cols,
            ]
        if self.flip:
            flips = torch.rand(n, generator=generator) < 0.5
            batch = torch.where(flips[:, None, None, None], batch.flip(3), batch)
        return batch

    def epoch(
        self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, augment: bool = True
    ):  # type: ignore[no-untyped-def]
        """Yield (images float [B, C, H, W], labels) for one epoch (sharded across ranks)."""
        generator = torch.Generator().manual_seed(seed * 1000 + epoch)
        order = torch.randperm(len(self), generator=generator) if augment else torch.arange(len(self))
        order = order[rank::world]
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            batch = self.normalise(self.images[index])
            if augment:
                batch = self.augment(batch, generator)
            yield batch, self.labels[index]


def in_memory_data(dataset_name: str, split: str, data_dir: str | None) -> InMemoryBatches | None:
    """CIFAR-10 (JPEG archive) or MNIST as :class:`InMemoryBatches`; None for others."""
    from crmn_viz.data import build_dataset, dataset_info

    info = dataset_info(dataset_name)
    if dataset_name == "cifar10":
        dataset = build_dataset("cifar10", split, data_dir, preload=True)
        images = dataset.preloaded_images  # type: ignore[attr-defined]
        labels = torch.tensor(dataset.targets)  # type: ignore[attr-defined]
        return InMemoryBatches(images, labels, info.mean, info.std, pad=4, flip=True)
    if dataset_name == "mnist":
        dataset = build_dataset("mnist", split, data_dir)
        images = dataset.data.unsqueeze(-1)  # type: ignore[attr-defined]
        labels = dataset.targets.clone()  # type: ignore[attr-defined]
        return InMemoryBatches(images, labels, info.mean, info.std, pad=2, flip=False)
    return None


# ----------------------------------------------------------------------------- loop


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


ROUND_ROBIN_COMPONENTS = ("resnet", "lstm", "head")


def model_component(parameter_name: str) -> str:
    """The CRMN component a parameter belongs to, for the round-robin schedule.

    ``lstm.*`` is the LSTM, ``fc.*`` the output (softmax / sigmoid) layer, everything else the
    ResNet (stem, blocks, BatchNorm).
    """
    if parameter_name.startswith("lstm."):
        return "lstm"
    if parameter_name.startswith("fc."):
        return "head"
    return "resnet"


def _make_optimizer(recipe: TrainRecipe, model: nn.Module) -> torch.optim.Optimizer:
    """Parameter groups: (component, decay / no decay); biases, norms and the LSTM's initial
    state get no weight decay. Components matter only to the round-robin schedule."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        decays = not (param.ndim <= 1 or name.endswith("initial_hidden"))
        component = model_component(name) if recipe.schedule == "round_robin" else "all"
        groups.setdefault((component, decays), []).append(param)
    param_groups = [
        {
            "params": params,
            "weight_decay": recipe.weight_decay if decays else 0.0,
            "component": component,
        }
        for (component, decays), params in groups.items()
    ]
    if recipe.optimizer == "adam":
        return torch.optim.AdamW(param_groups, lr=recipe.lr)
    return torch.optim.SGD(param_groups, lr=recipe.lr, momentum=recipe.momentum)


def round_robin_factor(component: str, step: int, shift_steps: list[int], factors: list[float]) -> float:
    """Learning-rate multiplier of ``component`` after ``step`` steps (CRMN 2017, section 4).

    The 2017 paper decays the learning rate of one component at a time, "starting with the
    ResNet, then the LSTM, then the sigmoid layer", by "a factor of 0.1, 0.5 and 0.2
    successively". Our reading (the paper gives no more detail): shift ``j`` (at
    ``shift_steps[j]``) decays component ``j mod 3`` in the order of
    :data:`ROUND_ROBIN_COMPONENTS`, and the factor is ``factors[(j // 3) mod len(factors)]``:
    the first round of three shifts uses 0.1, the second 0.5, the third 0.2.
    """
    index = ROUND_ROBIN_COMPONENTS.index(component)
    factor = 1.0
    for shift, at_step in enumerate(shift_steps):
        if step >= at_step and shift % len(ROUND_ROBIN_COMPONENTS) == index:
            factor *= factors[(shift // len(ROUND_ROBIN_COMPONENTS)) % len(factors)]
    return factor


class OneCycleWithRestarts:
    """One-cycle learning rate (Smith & Topin 2018) with warm restarts (Loshchilov & Hutter 2017).

    Cycle ``k`` spans ``epochs[k] * steps_per_epoch`` optimiser steps and is a
    ``torch.optim.lr_scheduler.OneCycleLR`` (linear, 25% warm-up from ``peak / 25``, annealed
    to ``peak / 25e4``; momentum cycled 0.95 -> 0.85 -> 0.95) over that many steps + 1, so a
    single cycle is exactly the plain ``OneCycleLR`` used before restarts existed. At a
    restart the next cycle's ``OneCycleLR`` is built, which sets its initial learning rate.

    The state is the global step count; ``load_state_dict`` also takes the state of a plain
    ``OneCycleLR`` (runs saved before restarts existed), whose ``last_epoch`` is that count.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cycles: list[tuple[int, float]],
        epochs: int,
        steps_per_epoch: int,
    ) -> None:
        self.optimizer = optimizer
        ends = [start for start, _ in cycles[1:]] + [epochs]
        self.cycle_steps = [(start * steps_per_epoch, peak) for start, peak in cycles]
        self.cycle_lengths = [
            (end - start) * steps_per_epoch for (start, _), end in zip(cycles, ends, strict=True)
        ]
        self.step_count = 0
        self._build(0)

    def _cycle_of(self, step: int) -> int:
        return max(k for k, (start, _) in enumerate(self.cycle_steps) if start <= step)

    def _build(self, cycle: int) -> None:
        self.cycle = cycle
        self.inner = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer,
            max_lr=self.cycle_steps[cycle][1],
            total_steps=self.cycle_lengths[cycle] + 1,  # +1: OneCycleLR must not step past its end
            pct_start=0.25,
            anneal_strategy="linear",
        )

    def step(self) -> None:
        """Advance one optimiser step (restarting when a new cycle begins)."""
        self.step_count += 1
        cycle = self._cycle_of(self.step_count)
        if cycle != self.cycle:
            self._build(cycle)
        else:
            self.inner.step()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group for the next step."""
        return self.inner.get_last_lr()

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a global step count (ours, or a plain ``OneCycleLR``'s ``last_epoch``)."""
        target = int(state["step"] if "step" in state else state["last_epoch"])
        cycle = self._cycle_of(target)
        self._build(cycle)
        for _ in range(target - self.cycle_steps[cycle][0]):
            self.inner.step()
        self.step_count = target


def _make_schedule(recipe: TrainRecipe, optimizer: torch.optim.Optimizer, steps_per_epoch: int):  # type: ignore[no-untyped-def]
    total = recipe.epochs * steps_per_epoch + 1  # +1: OneCycleLR must not step past its end
    if recipe.schedule == "onecycle":
        return OneCycleWithRestarts(optimizer, cycle_starts(recipe), recipe.epochs, steps_per_epoch)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    if recipe.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    milestones = [int(m * total) for m in recipe.milestones]
    if recipe.schedule == "round_robin":
        factors = list(recipe.round_robin_factors)
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            [
                lambda step, c=group["component"]: round_robin_factor(c, step, milestones, factors)
                for group in optimizer.param_groups
            ],
        )
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, recipe.gamma)


def _loss(recipe: TrainRecipe, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if recipe.task == "keypoints":
        if recipe.keypoint_loss == "l1":
            return F.l1_loss(output.flatten(1), target.flatten(1))
        return F.mse_loss(output.flatten(1), target.flatten(1))
    return F.cross_entropy(output, target, label_smoothing=recipe.label_smoothing)


def autocast_pays(amp: bool, device: torch.device) -> bool:
    """Whether a recipe's ``amp`` runs: always on CUDA, on a CPU only with bfloat16 arithmetic.

    A CPU without AVX512-BF16 or AMX-BF16 emulates bfloat16 through float32 conversions:
    ``crmn-viz bench`` row 10 measured the zoo's CIFAR-10 training steps 5-11x slower with
    autocast than in float32 on such a CPU (AVX2), against 1.5-1.8x faster on one with
    AVX512-BF16. There the steps run in float32 instead, with a warning; the recipe keeps
    ``amp`` as written and the card's ``training.autocast`` records what ran.
    """
    if not amp or device.type != "cpu":
        return amp
    from crmn_viz.benchmarks import cpu_has_bfloat16_arithmetic, cpu_instruction_sets

    sets = cpu_instruction_sets()
    if cpu_has_bfloat16_arithmetic(sets):
        return True
    warnings.warn(
        f"amp = true, but this CPU ({', '.join(sets) or 'no AVX2'}) has no bfloat16 arithmetic "
        "(AVX512-BF16 or AMX): autocast would be emulated and slower than float32 (5-11x for the "
        "zoo's CIFAR-10 steps, crmn-viz bench row 10), so the training steps run in float32",
        stacklevel=2,
    )
    return False


def training_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    amp: bool = False,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step: forward, ``loss_fn(output.float(), y)``, backward, update.

    Args:
        x: input batch [B, C, H, W]; y: its targets.
        amp: run the forward pass and loss in bfloat16 autocast on ``x``'s device. Mixed
            precision covers the training step only; validation, card metrics and the
            shipped weights stay float32 (stored as float16).
        channels_last: feed ``x`` in NHWC layout (the model should have been converted too).

    Returns:
        ``(output, loss)``, the loss still attached to its (already used) graph.
    """
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
        out = net(x)
        loss = loss_fn(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return out, loss


def command_line() -> str:
    """This process's command as a user would type it (``crmn-viz ...``, not the full path)."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join(shlex.quote(a) for a in [program, *sys.argv[1:]])


@torch.no_grad()
def round_to_storage_precision(model: nn.Module) -> None:
    """Round every floating-point parameter and buffer through float16, in place.

    The zoo stores weights as float16 and loading restores float32; measuring the card's test
    metrics after this rounding makes them exactly what ``crmn-viz eval`` measures on the file.
    """
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().float())


@torch.no_grad()
def evaluate_model(
    model: TracedModel,
    dataset_name: str,
    split: str = "test",
    data_dir: str | None = None,
    batch_size: int = 256,
    max_batches: int = 0,
) -> dict[str, float]:
    """Test metrics: ``accuracy`` for classifiers, ``nme`` (crop-level) for keypoints."""
    from crmn_viz.analysis.keypoint_evaluation import normalised_mean_errors

    model.eval()
    device = next(model.parameters()).device
    data = in_memory_data(dataset_name, split, data_dir)
    correct = total = 0
    nme_sum = 0.0
    if data is not None:
        batches = data.epoch(0, batch_size, 0, augment=False)
    else:
        from crmn_viz.data import build_dataset

        dataset = build_dataset(dataset_name, split, data_dir, train_augment=False)
        batches = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for index, (x, y) in enumerate(batches):
        if max_batches and index >= max_batches:
            break
        out = model(x.to(device))
        y = y.to(device)
        if model.task == "keypoints":
            nme_sum += normalised_mean_errors(out, y).sum().item()
        else:
            correct += (out.argmax(1) == y).sum().item()
        total += len(y)
    if model.task == "keypoints":
        return {"nme_crop": nme_sum / max(total, 1), "num_images": total}
    return {"accuracy": correct / max(total, 1), "num_images": total}


def test_metrics(
    model: TracedModel, dataset_name: str, data_dir: str | None = None, max_batches: int = 0
) -> dict[str, float]:
    """The card's test metrics: accuracy, or for faces68 the crop-level NME plus the NME
    through :func:`crmn_viz.predict_keypoints` on the original photos, face box given
    and face found by the default detector and refined (``test_nme_detector``; after each
    round ``test_nme_detector_round{r}``), photos with no face found (and of those, scored on
    the whole photo), and the NME of each landmark group (jaw, brows, nose, eyes, mouth) for
    both protocols (see :mod:`crmn_viz.analysis.keypoint_evaluation`)."""
    metrics = {
        f"test_{k}": v
        for k, v in evaluate_model(model, dataset_name, "test", data_dir, max_batches=max_batches).items()
    }
    if dataset_name == "faces68" and model.task == "keypoints":
        from crmn_viz.analysis.keypoint_evaluation import evaluate_keypoints_on_photos

        photos = max_batches * 8 if max_batches else 0
        given = evaluate_keypoints_on_photos(model, data_dir, "test", detector=False, max_photos=photos)
        found = evaluate_keypoints_on_photos(model, data_dir, "test", detector=True, max_photos=photos)
        metrics.update(
            {
                "test_nme_box_given": given["nme"],
                "test_nme_detector": found["nme"],
                "test_detector_no_face_found": found["no_face_found"],
                "test_detector_whole_photo": found["whole_photo"],
                "test_num_photos": given["num_photos"],
                **{f"test_nme_detector_round{k}": v for k, v in enumerate(found["nme_by_round"])},
                **{f"test_nme_box_given_{group}": v for group, v in given["nme_by_group"].items()},
                **{f"test_nme_detector_{group}": v for group, v in found["nme_by_group"].items()},
            }
        )
        metrics["test_detector"] = found["detector"]
    return metrics


def initialise_from_checkpoint(model: TracedModel, recipe: TrainRecipe) -> dict[str, Any]:
    """Copy the weights (and BatchNorm statistics) of ``recipe.init_from`` into ``model``.

    The checkpoint is read through :func:`crmn_viz.checkpoints.load` (safetensors, never
    pickle). Its architecture, model config and dataset must equal the recipe's.

    Returns:
        The parent's record for the new card: name, weights hash, epochs, command, metrics.

    Raises:
        ValueError: a checkpoint of another architecture, configuration or dataset.
    """
    from crmn_viz.checkpoints import load

    parent = load(recipe.init_from, device="cpu")
    card = parent.card  # type: ignore[attr-defined]  # a ModelCard
    if card.arch != recipe.arch or card.dataset != recipe.dataset:
        raise ValueError(
            f"init_from {recipe.init_from!r} is a {card.arch} model on {card.dataset}, "
            f"but the recipe trains a {recipe.arch} model on {recipe.dataset}"
        )
    theirs, ours = parent.config.to_dict(), model.config.to_dict()
    if theirs != ours:
        differ = {
            k: (theirs.get(k), ours.get(k))
            for k in theirs.keys() | ours.keys()
            if theirs.get(k) != ours.get(k)
        }
        raise ValueError(
            f"init_from {recipe.init_from!r}: model options differ (checkpoint, recipe): {differ}"
        )
    with torch.no_grad():
        ours_state = model.state_dict()
        for key, tensor in parent.state_dict().items():
            ours_state[key].copy_(tensor)
    training = card.get("training", {})
    return {
        "checkpoint": Path(str(recipe.init_from)).stem,
        "weights_sha256": parent.checkpoint.weights_sha256,  # type: ignore[attr-defined]  # as read
        "epochs": training.get("epochs"),
        "command": training.get("command"),
        "metrics": card.get("metrics", {}),
    }


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, batches, device: torch.device) -> None:  # type: ignore[no-untyped-def]
    """Reset every BatchNorm's running mean and variance and re-estimate them as the equal-weight
    average over ``batches`` (``(x, y)`` pairs) in training mode: the last step of stochastic
    weight averaging, whose averaged weights never produced the statistics they carry
    (``torch.optim.swa_utils.update_bn``)."""
    torch.optim.swa_utils.update_bn(batches, model, device=device)  # takes x of each (x, y), moves it
    model.eval()


def _batchnorm_batches(recipe: TrainRecipe, data: InMemoryBatches | None, loader, rank: int, world: int):  # type: ignore[no-untyped-def]
    """One pass of augmented training batches for :func:`recompute_batchnorm_statistics`
    (the shuffle of epoch index ``epochs``, which no training epoch uses: fixed, so the shipped
    statistics do not depend on when the run was resumed)."""
    if data is not None:
        return data.epoch(recipe.epochs, recipe.batch_size, recipe.seed, rank, world)
    return iter(loader)


def train(
    recipe: TrainRecipe,
    data_dir: str | None = None,
    out_dir: str | os.PathLike[str] = "runs",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    device: str = "auto",
    progress: bool = True,
    stop_after_epoch: int = 0,
) -> dict[str, Any]:
    """Train (or resume) a recipe, evaluate on the test split, write the checkpoint.

    Args:
        stop_after_epoch: >0: save the resumable state after this epoch and return
            ``{"stopped_at_epoch": ...}`` without writing a checkpoint (to split a long
            run over several sessions; the schedule still spans ``recipe.epochs``).

    Returns the final metrics dict (also stored in the model card).
    """
    from crmn_viz.data import build_dataset, dataset_info, make_loader

    rank, world = _distributed()
    target = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    torch.manual_seed(recipe.seed)
    np.random.seed(recipe.seed)
    info = dataset_info(recipe.dataset)
    model_options = {
        "num_outputs": info.num_outputs,
        "in_channels": info.channels,
        "input_size": list(info.input_size),
        **recipe.model,
    }
    model = create_model(recipe.arch, **model_options).to(target)
    parent = initialise_from_checkpoint(model, recipe) if recipe.init_from else None
    if recipe.channels_last:  # before the optimizer, so its state shares the parameters' layout
        model = model.to(memory_format=torch.channels_last)
    run_dir = Path(out_dir) / recipe.name
    run_dir.mkdir(parents=True, exist_ok=True)
    data = in_memory_data(recipe.dataset, "train", data_dir)
    loader = None
    if data is None:
        dataset = build_dataset(recipe.dataset, "train", data_dir)
        loader = make_loader(
            dataset,
            recipe.batch_size,
            shuffle=True,
            num_workers=recipe.num_workers,
            seed=recipe.seed,
            distributed=world > 1,
        )
        steps_per_epoch = len(loader)
    else:
        steps_per_epoch = math.ceil(len(data) / world / recipe.batch_size)
    if recipe.max_train_batches:
        steps_per_epoch = min(steps_per_epoch, recipe.max_train_batches)
    optimizer = _make_optimizer(recipe, model)
    schedule = _make_schedule(recipe, optimizer, steps_per_epoch)
    averaged = torch.optim.swa_utils.AveragedModel(model) if recipe.swa_from_epoch else None
    start_epoch, wall_before = 0, 0.0
    state_path = run_dir / "last_state.pt"
    if resume and state_path.exists():
        state = torch.load(state_path, map_location=target, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if averaged is not None and "averaged_model" in state:
            averaged.load_state_dict(state["averaged_model"])
        start_epoch, wall_before = int(state["epoch"]), float(state["wall_time_s"])

    batchnorm_fresh_for = 0  # the average (count of epochs) whose BatchNorm statistics are current

    def shipped_model() -> nn.Module:
        """The model the card describes: the weight average with fresh BatchNorm statistics
        under SWA (once it has averaged an epoch), else the current weights. The statistics are
        recomputed only when the average has changed (the last validation and the shipping
        share one pass)."""
        nonlocal batchnorm_fresh_for
        if averaged is None or int(averaged.n_averaged) == 0:
            return model
        if batchnorm_fresh_for != int(averaged.n_averaged):
            recompute_batchnorm_statistics(
                averaged.module,
                itertools.islice(
                    _batchnorm_batches(recipe, data, loader, rank, world), recipe.max_train_batches or None
                ),
                target,
            )
            batchnorm_fresh_for = int(averaged.n_averaged)
        return averaged.module

    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)
    if recipe.compile and target.type == "cuda":
        net = torch.compile(net)  # type: ignore[assignment]
    amp = autocast_pays(recipe.amp, target)
    started = time.time()
    metrics_path = run_dir / "metrics.jsonl"
    for epoch in range(start_epoch, recipe.epochs):
        net.train()
        if loader is not None:
            from crmn_viz.data import set_loader_epoch

            set_loader_epoch(loader, epoch)
            batches = iter(loader)
        else:
            batches = data.epoch(epoch, recipe.batch_size, recipe.seed, rank, world)  # type: ignore[union-attr]
        bar = tqdm(
            total=steps_per_epoch,
            desc=f"{recipe.name} epoch {epoch + 1}/{recipe.epochs}",
            unit="batch",
            disable=not progress or rank != 0,
            dynamic_ncols=True,
        )
        loss_sum, seen, correct = 0.0, 0, 0
        epoch_start = time.time()
        for step, (x, y) in enumerate(batches):
            if step >= steps_per_epoch:
                break
            x, y = x.to(target, non_blocking=True), y.to(target, non_blocking=True)
            out, loss = training_step(
                net,
                optimizer,
                x,
                y,
                functools.partial(_loss, recipe),
                amp=amp,
                channels_last=recipe.channels_last,
            )
            schedule.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
            if recipe.task != "keypoints":
                correct += (out.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", img_s=f"{seen / (time.time() - epoch_start):.0f}")
            bar.update(1)
        bar.close()
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "lr": schedule.get_last_lr()[0],
            "epoch_time_s": time.time() - epoch_start,
            "images_per_s": seen / max(time.time() - epoch_start, 1e-9),
        }
        if recipe.task != "keypoints":
            record["train_accuracy"] = correct / max(seen, 1)
        if averaged is not None and epoch + 1 >= recipe.swa_from_epoch:
            averaged.update_parameters(model)
            record["swa_epochs_averaged"] = int(averaged.n_averaged)
        if rank == 0:
            if epoch + 1 == recipe.epochs or (epoch + 1) % 5 == 0:
                # test_* is the model that would ship now (under SWA: the average); the
                # current SGD weights are logged beside it as iterate_test_*
                evaluated = shipped_model()
                record.update(
                    {
                        f"test_{k}": v
                        for k, v in evaluate_model(
                            evaluated, recipe.dataset, "test", data_dir, max_batches=recipe.max_eval_batches
                        ).items()
                    }
                )
                if evaluated is not model:
                    record.update(
                        {
                            f"iterate_test_{k}": v
                            for k, v in evaluate_model(
                                model, recipe.dataset, "test", data_dir, max_batches=recipe.max_eval_batches
                            ).items()
                            if k != "num_images"
                        }
                    )
            with metrics_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    **({"averaged_model": averaged.state_dict()} if averaged is not None else {}),
                    "epoch": epoch + 1,
                    "wall_time_s": wall_before + time.time() - started,
                },
                state_path,
            )
            if progress:
                print(json.dumps(record), flush=True)
        if stop_after_epoch and epoch + 1 >= stop_after_epoch and epoch + 1 < recipe.epochs:
            return {"stopped_at_epoch": epoch + 1}
    wall = wall_before + time.time() - started
    model = shipped_model()  # type: ignore[assignment]
    if recipe.half_storage:
        round_to_storage_precision(model)  # the card's numbers are those of the shipped weights
    normalization = {"mean": list(info.mean), "std": list(info.std)}
    # What load() attaches: photo-level evaluation (predict_keypoints) preprocesses with the
    # card's normalisation; without it the photos would be fed un-normalised.
    model.card = {"dataset": recipe.dataset, "normalization": normalization}  # type: ignore[attr-defined]
    metrics = test_metrics(model, recipe.dataset, data_dir, max_batches=recipe.max_eval_batches)
    if rank == 0:
        destination = Path(checkpoint_dir) if checkpoint_dir else Path("checkpoints")
        save(
            model,
            destination / recipe.name,
            half=recipe.half_storage,
            dataset=recipe.dataset,
            class_names=list(info.class_names) if info.class_names else None,
            normalization=normalization,
            metrics=metrics,
            training={
                "command": command_line(),
                "recipe": dataclasses.asdict(recipe),
                "epochs": recipe.epochs,
                "wall_time_s": round(wall, 1),
                "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"
                + (f", {torch.cuda.get_device_name()}" if target.type == "cuda" else ", no GPU"),
                "processes": world,
                "threads_per_process": torch.get_num_threads(),
                "autocast": amp,  # what the steps ran: a CPU without bfloat16 arithmetic ignores amp
                **({"initialised_from": parent} if parent else {}),
                "torch": torch.__version__,
            },
            license_note="Trained on research datasets; weights are for research and demos.",
        )
    if world > 1:
        dist.barrier()
    return metrics
