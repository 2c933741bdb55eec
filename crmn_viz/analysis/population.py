"""One streaming pass over a data set: every unit's value on every image, exemplars, class sums.

Researchers study populations of units: which images drive a memory unit, which classes a block
channel prefers. :func:`population_pass` runs a model once over a data set and keeps, for every
*population quantity* (:func:`population_quantities`: the CRMN's LSTM gates, cell and hidden state
per step, Moniz & Pal 2016 eqs. 2-7; the channel means of every block's output; ReNet's sweeps and
their gates; RiR's two streams), for every step ``t`` and unit ``u``:

* per-class float64 sums and sums of squares (class-conditional means and variances),
* the top-k and bottom-k images (dataset exemplars; ties broken by the lower image index),
* optionally every value ``[N, T, U]``, written batch by batch into ``.npy`` memory maps.

Memory stays flat in N: each batch records only the trace names it needs, is reduced (block maps
``[B, C, H, W]`` to channel means ``[B, C]`` on the model's device), folded into the running
statistics and written to disk, then dropped.

The pass is cached on disk (:func:`population_cache_dir`) under a key made of the weights digest
actually read (:func:`crmn_viz.checkpoints.checkpoint_key`), the identity of the images, ``top_k``,
``keep_values`` and :data:`POPULATION_FORMAT_VERSION`. A cache folder is written under a temporary
name and renamed when complete; only ``.npy``/``.npz`` (``allow_pickle=False``) and JSON are read
back, and a folder that does not load is rebuilt.

Under ``torchrun --nproc_per_node N`` (``torch.distributed`` initialised, or ``WORLD_SIZE > 1``
in the environment: then this module initialises it, gloo for CPU models, nccl for CUDA ones) the
images are sharded with ``DistributedSampler(shuffle=False, drop_last=False)`` (its padding
repeats dropped), the class sums and counts all-reduced, the per-rank top-k lists all-gathered and
merged, and each rank writes its own rows into the memory maps that rank 0 created. The result
equals the one-process result. With several machines the cache folder must be shared.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from crmn_viz.analysis.inputs import class_names_for, evaluation_mode, model_device, model_dtype
from crmn_viz.analysis.statistics import _batches
from crmn_viz.checkpoints import checkpoint_key
from crmn_viz.memory_quantities import MEMORY_QUANTITIES
from crmn_viz.models.base import TracedModel, one_intra_op_thread

__all__ = [
    "POPULATION_FORMAT_VERSION",
    "Exemplar",
    "PopulationQuantity",
    "PopulationSummary",
    "PopulationTable",
    "exemplars",
    "nearest_trajectories",
    "population_cache_dir",
    "population_pass",
    "population_quantities",
    "test_set_population",
]

POPULATION_FORMAT_VERSION = 1
"""Version of the on-disk layout; part of every cache key (a change rebuilds old caches)."""

ALL_IMAGES_CLASS = "all images"
"""The one group of a model without classes (keypoint models)."""

_DISTANCE_CHUNK = 4096  # images per chunk when nearest_trajectories reads the memory map


@dataclasses.dataclass(frozen=True)
class PopulationQuantity:
    """One quantity with a value per image, step and unit.

    Attributes:
        name: ``"forget_gate"``, ``"input_gate"``, ``"output_gate"``, ``"cell_candidate"``,
            ``"cell"``, ``"hidden"`` (the CRMN's ``lstm.*``); ``"block"`` (channel means of each
            block's output: CRMN, ResNet, ReNet layers); ``"residual"`` / ``"transient"`` (RiR's
            streams); ``"<sweep>"`` (e.g. ``"vertical_fwd"``) and ``"<sweep>.<gate>"`` (e.g.
            ``"vertical_fwd.update_gate"``) for ReNet's sweeps.
        trace_names: the trace names it is read from: one per step for per-block quantities, the
            single ``lstm.<name>`` (``[B, T, H]``) for the LSTM's.
        steps: T.
        units: units (channels or hidden units) at each step.
        description: what value is stored, in one line.
        stacked: True when ``trace_names[0]`` records every step at once (``[B, T, U]``, the
            LSTM's); False when each step has its own trace name (maps reduced to channel means).
    """

    name: str
    trace_names: tuple[str, ...]
    steps: int
    units: tuple[int, ...]
    description: str
    stacked: bool = False

    @property
    def max_units(self) -> int:
        """U_max, the unit axis of every ``[.., T, U_max]`` array (NaN beyond ``units[t]``)."""
        return max(self.units)

    def valid_cells(self) -> np.ndarray:
        """Bool ``[T, U_max]``: True where step ``t`` has unit ``u``."""
        return np.arange(self.max_units)[None, :] < np.asarray(self.units)[:, None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "name": self.name,
            "trace_names": list(self.trace_names),
            "steps": self.steps,
            "units": list(self.units),
            "description": self.description,
            "stacked": self.stacked,
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> PopulationQuantity:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(fields["name"]),
            trace_names=tuple(str(name) for name in fields["trace_names"]),
            steps=int(fields["steps"]),
            units=tuple(int(count) for count in fields["units"]),
            description=str(fields["description"]),
            stacked=bool(fields["stacked"]),
        )


def _probe_shapes(model: TracedModel, names: Sequence[str]) -> tuple[dict[str, tuple[int, ...]], int]:
    """(per-image shapes of ``names``, length O of the flattened output), from one forward pass
    of a zero image."""
    image = torch.zeros(1, *model.input_shape, device=model_device(model), dtype=model_dtype(model))
    with evaluation_mode(model), torch.no_grad():
        output, trace = model.run_with_trace(image, names=list(names))
        shapes = {name: tuple(int(size) for size in trace[name].shape[1:]) for name in names}
    return shapes, int(output.reshape(1, -1).shape[1])


def _stepwise_families(model: TracedModel, available: list[str]) -> dict[str, tuple[list[str], str]]:
    """Quantity name -> (one trace name per step, description) for the per-block quantities."""
    families: dict[str, tuple[list[str], str]] = {}
    if model.gradcam_layer_pattern and model.block_count:
        for stream in model.stream_names or (None,):
            names = [
                model.gradcam_layer_pattern.format(block=block, stream=stream)
                for block in range(model.block_count)
            ]
            if all(name in available for name in names):
                per_step = model.gradcam_layer_pattern.format(block="t", stream=stream)
                families[stream or "block"] = (names, f"mean over positions of channel u of {per_step}")
    pattern = model.sweep_trace_pattern
    for sweep in model.sweep_names if pattern else ():
        layers = []
        while pattern.format(layer=len(layers), sweep=sweep) in available:
            layers.append(pattern.format(layer=len(layers), sweep=sweep))
        if not layers:
            continue
        per_step = pattern.format(layer="t", sweep=sweep)
        families[sweep] = (layers, f"mean over positions of hidden unit u of {per_step} (sweep of layer t)")
        # the sweep's gates are recorded where the pattern puts "gates.<sweep>.<gate>" for the sweep
        gate_prefix = pattern.format(layer=0, sweep=f"gates.{sweep}.")
        gates = [name[len(gate_prefix) :] for name in available if name.startswith(gate_prefix)]
        for gate in gates:
            names = [
                pattern.format(layer=layer, sweep=f"gates.{sweep}.{gate}") for layer in range(len(layers))
            ]
            if all(name in available for name in names):
                per_step = pattern.format(layer="t", sweep=f"gates.{sweep}.{gate}")
                families[f"{sweep}.{gate}"] = (names, f"mean over positions of unit u of {per_step}")
    return families


def population_quantities(model: TracedModel) -> dict[str, PopulationQuantity]:
    """Every quantity a population pass of ``model`` records, derived from its trace names.

    Read from the model's capabilities and :meth:`~crmn_viz.models.base.TracedModel.trace_names`
    (never from ``arch``), with unit counts from one forward pass of a zero image:

    * ``lstm.<q>`` for each of ``model.memory_quantities`` (``[B, T, H]``): the value itself;
      ``lstm.input`` (the padded block input, not a population of units) is left out;
    * ``model.gradcam_layer_pattern`` over ``block_count`` blocks (and each of ``stream_names``):
      ``"block"`` (or the stream's name), the channel mean over positions of each block's output;
    * ``model.sweep_trace_pattern`` over ``sweep_names``: each sweep, and each gate recorded
      for it, as channel means over positions, one step per layer.

    Returns:
        Quantity name -> :class:`PopulationQuantity`, LSTM quantities first (in
        :data:`crmn_viz.memory_quantities.MEMORY_QUANTITIES` order).
    """
    return _describe(model)[0]


def _describe(model: TracedModel) -> tuple[dict[str, PopulationQuantity], int]:
    """(:func:`population_quantities`, length O of one image's flattened output)."""
    available = model.trace_names()  # module order
    memory = [
        name for name in MEMORY_QUANTITIES if name in model.memory_quantities and f"lstm.{name}" in available
    ]
    families = _stepwise_families(model, available)
    wanted = [f"lstm.{name}" for name in memory] + [name for names, _ in families.values() for name in names]
    shapes, output_size = _probe_shapes(model, wanted)
    quantities: dict[str, PopulationQuantity] = {}
    for name in memory:
        steps, units = shapes[f"lstm.{name}"][:2]
        quantity = MEMORY_QUANTITIES[name]
        quantities[name] = PopulationQuantity(
            name,
            (f"lstm.{name}",),
            steps,
            (units,) * steps,
            f"{quantity.label} of memory unit u at step t (lstm.{name}, Moniz & Pal 2016 eq. "
            f"{quantity.equation})",
            stacked=True,
        )
    for label, (names, description) in families.items():
        units_per_step = tuple(shapes[name][0] for name in names)
        quantities[label] = PopulationQuantity(label, tuple(names), len(names), units_per_step, description)
    return quantities, output_size


@dataclasses.dataclass
class PopulationSummary:
    """What a streaming or distributed pass keeps: memory independent of N.

    Attributes:
        class_counts: ``[C]`` images per group: the classes for a classification model (true
            labels where known, else the predicted class), one group ``"all images"`` otherwise.
        class_sums: quantity -> ``[C, T, U_max]`` float64 sums of the values per group.
        class_sum_squares: quantity -> ``[C, T, U_max]`` float64 sums of squared values.
        top_k: how many exemplars were kept per cell (the arrays hold ``min(top_k, N)``).
        top_values, top_indices: quantity -> ``[T, U_max, K]`` the highest values in descending
            order and their image indices (ties: lower index first).
        bottom_values, bottom_indices: the lowest, ascending.

    Cells beyond a step's units hold NaN (values, sums) and -1 (indices).
    """

    class_counts: np.ndarray
    class_sums: dict[str, np.ndarray]
    class_sum_squares: dict[str, np.ndarray]
    top_k: int
    top_values: dict[str, np.ndarray]
    top_indices: dict[str, np.ndarray]
    bottom_values: dict[str, np.ndarray]
    bottom_indices: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        """Images summarised."""
        return int(self.class_counts.sum())

    def class_means(self, quantity: str) -> np.ndarray:
        """``[C, T, U_max]`` mean per group (NaN for a group without images)."""
        counts = self.class_counts.astype(np.float64)[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, self.class_sums[quantity] / counts, np.nan)

    def class_variances(self, quantity: str) -> np.ndarray:
        """``[C, T, U_max]`` population variance per group, ``E[x^2] - E[x]^2`` (clamped at 0)."""
        counts = self.class_counts.astype(np.float64)[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.class_sums[quantity] / counts
            variance = self.class_sum_squares[quantity] / counts - mean**2
        return np.where(counts > 0, np.maximum(variance, 0.0), np.nan)

    def mean(self, quantity: str) -> np.ndarray:
        """``[T, U_max]`` mean over every image."""
        return self.class_sums[quantity].sum(axis=0) / max(self.count, 1)


@dataclasses.dataclass
class PopulationTable:
    """The result of :func:`population_pass`: per-image outputs and values, and the summary.

    Attributes:
        checkpoint_key: :func:`crmn_viz.checkpoints.checkpoint_key` of the model.
        dataset, split: what the images are (as the caller named them).
        image_names: ``[N]`` file names in the data set (for an archive, the member name such as
            ``test/cat/0001.jpg``).
        labels: ``[N]`` int64 true labels, -1 where unknown.
        outputs: ``[N, O]`` float32 model outputs (logits, or flattened keypoints).
        class_names: names of the summary's groups (``["all images"]`` for keypoint models).
        quantities: name -> :class:`PopulationQuantity`.
        directory: the on-disk cache folder, None when not cached.
        summary: :class:`PopulationSummary`.
        task: the model's task (``"classification"`` or ``"keypoints"``).
        value_arrays: quantity -> ``[N, T, U_max]`` read-only memory map (empty without
            ``keep_values``); read it through :meth:`values`.
    """

    checkpoint_key: str
    dataset: str
    split: str
    image_names: list[str]
    labels: np.ndarray
    outputs: np.ndarray
    class_names: list[str]
    quantities: dict[str, PopulationQuantity]
    directory: Path | None
    summary: PopulationSummary
    task: str = "classification"
    value_arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.image_names)

    def _quantity(self, quantity: str) -> PopulationQuantity:
        if quantity not in self.quantities:
            raise KeyError(f"unknown quantity {quantity!r}; this table has {list(self.quantities)}")
        return self.quantities[quantity]

    def values(self, quantity: str) -> np.ndarray:
        """``[N, T, U_max]`` float32 values (a read-only ``np.memmap``), NaN beyond a step's units.

        Raises:
            KeyError: unknown quantity.
            ValueError: the pass ran with ``keep_values=False``.
        """
        self._quantity(quantity)
        if quantity not in self.value_arrays:
            raise ValueError("this population pass kept no per-image values (keep_values=False)")
        return self.value_arrays[quantity]

    def unit_values(self, quantity: str, step: int, unit: int) -> np.ndarray:
        """``[N]`` float32 values of one unit at one step over every image."""
        _check_cell(self._quantity(quantity), step, unit)
        return np.asarray(self.values(quantity)[:, step, unit])

    @property
    def predictions(self) -> np.ndarray:
        """``[N]`` int64 predicted classes (arg-max of the outputs).

        Raises:
            ValueError: a keypoint model (no classes).
        """
        if self.task != "classification":
            raise ValueError(f"a {self.task} model predicts no classes")
        return np.asarray(self.outputs).argmax(axis=1).astype(np.int64)


def _check_cell(quantity: PopulationQuantity, step: int, unit: int) -> None:
    if not 0 <= step < quantity.steps:
        raise ValueError(f"step must be in 0..{quantity.steps - 1} for {quantity.name}, got {step}")
    if not 0 <= unit < quantity.units[step]:
        raise ValueError(
            f"unit must be in 0..{quantity.units[step] - 1} for {quantity.name} at step {step}, got {unit}"
        )


def population_cache_dir() -> Path:
    """Where population passes are cached: ``$CRMN_VIZ_CACHE_DIR/populations``, else
    ``~/.cache/crmn-viz/populations`` (never inside the repository or the data folder)."""
    root = os.environ.get("CRMN_VIZ_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "crmn-viz"
    return base / "populations"


# ---------------------------------------------------------------------------------------------
# Running statistics


_INDEX_BITS = 32  # image indices below 2**32 share an int64 ranking key with the value's 32 bits
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_EMPTY_KEY = {True: torch.iinfo(torch.int64).min, False: torch.iinfo(torch.int64).max}  # never chosen


def _ranking_keys(values: torch.Tensor, indices: torch.Tensor, largest: bool) -> torch.Tensor:
    """Unique int64 keys whose order is (value, then the lower index first) for the top
    (``largest``: higher key = better) or the bottom (lower key = better) of float32 ``values``.

    The float's bits are mapped to an int32 of the same order (negative floats have their
    magnitude bits flipped; -0.0 is first made +0.0) in the high 32 bits; the index (for the top:
    ``2**32 - 1 - index``, so that the lower index ranks higher) fills the low 32 bits. Sorting or
    ``topk`` on these keys is therefore exact and the same for any split of the images into
    batches or ranks. NaN (a step's missing units) ranks last: as -inf for the top, +inf for the
    bottom.
    """
    fill = -torch.inf if largest else torch.inf
    # NaN -> the worst end; adding 0.0 turns -0.0 into +0.0 (one key for the value zero)
    clean = (torch.where(values.isnan(), fill, values.to(torch.float32)) + 0.0).contiguous()
    bits = clean.view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    low = (_INDEX_MASK - indices) if largest else indices
    return (ordered << _INDEX_BITS) | low


def _keys_to_values(keys: torch.Tensor, largest: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Invert :func:`_ranking_keys`: (float32 values, int64 indices)."""
    ordered = (keys >> _INDEX_BITS).to(torch.int32)
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    low = keys & _INDEX_MASK
    return bits.view(torch.float32), (_INDEX_MASK - low) if largest else low


def _keep_best(keys: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """The ``k`` best keys along the last axis (unordered: order only matters at the end)."""
    if keys.shape[-1] <= k:
        return keys
    return keys.topk(k, dim=-1, largest=largest, sorted=False).values


class _RunningPopulation:
    """Class sums, sums of squares, counts and the top/bottom-k keys of every quantity, in torch."""

    def __init__(self, quantities: dict[str, PopulationQuantity], groups: int, top_k: int) -> None:
        self.quantities = quantities
        self.top_k = top_k
        self.counts = torch.zeros(groups, dtype=torch.float64)
        self.valid = {name: torch.from_numpy(q.valid_cells()) for name, q in quantities.items()}
        self.sums = {
            name: torch.zeros(groups, q.steps * q.max_units, dtype=torch.float64)
            for name, q in quantities.items()
        }
        self.sum_squares = {name: torch.zeros_like(sums) for name, sums in self.sums.items()}
        # (quantity, largest) -> [T, U_max, <= top_k] ranking keys of the best images so far
        self.best: dict[tuple[str, bool], torch.Tensor] = {
            (name, largest): torch.empty(q.steps, q.max_units, 0, dtype=torch.int64)
            for name, q in quantities.items()
            for largest in (True, False)
        }

    def update(self, values: dict[str, torch.Tensor], groups: torch.Tensor, indices: torch.Tensor) -> None:
        """Fold in a batch: ``values[q]`` ``[B, T, U_max]`` float32, ``groups``/``indices`` ``[B]``.

        Runs on one intra-op thread: these operations are too small to share between threads
        (on a busy CPU a second thread made them 10-100x slower).
        """
        if int(indices.max()) > _INDEX_MASK:
            raise ValueError(f"population passes index at most {_INDEX_MASK + 1} images")
        with one_intra_op_thread():
            self.counts.index_add_(0, groups, torch.ones(len(groups), dtype=torch.float64))
            for name, batch in values.items():
                exact = torch.where(self.valid[name], batch, 0.0).to(torch.float64).flatten(1)
                self.sums[name].index_add_(0, groups, exact)
                self.sum_squares[name].index_add_(0, groups, exact * exact)
                by_cell = batch.permute(1, 2, 0)  # [T, U, B]
                cell_indices = indices.expand(*by_cell.shape)
                for largest in (True, False):
                    keys = _ranking_keys(by_cell, cell_indices, largest)
                    merged = torch.cat([self.best[name, largest], keys], dim=-1)
                    self.best[name, largest] = _keep_best(merged, self.top_k, largest)

    def padded_keys(self, name: str, largest: bool) -> torch.Tensor:
        """The kept keys padded to ``top_k`` slots with empty ones (for all-gather)."""
        keys = self.best[name, largest]
        missing = self.top_k - keys.shape[-1]
        if missing > 0:
            keys = torch.cat([keys, keys.new_full((*keys.shape[:-1], missing), _EMPTY_KEY[largest])], dim=-1)
        return keys

    def merge(self, name: str, largest: bool, gathered: list[torch.Tensor]) -> None:
        """Replace the kept keys by the best of every rank's (``gathered``, padded keys)."""
        self.best[name, largest] = _keep_best(torch.cat(gathered, dim=-1), self.top_k, largest)

    def summary(self, total: int) -> PopulationSummary:
        """The finished :class:`PopulationSummary` (call after any distributed reduction)."""
        kept = min(self.top_k, total)
        arrays: dict[str, dict[str, np.ndarray]] = {
            key: {} for key in ("sums", "squares", "top_v", "top_i", "bottom_v", "bottom_i")
        }
        for name, quantity in self.quantities.items():
            invalid = ~quantity.valid_cells()
            shape = (-1, quantity.steps, quantity.max_units)
            for key, source in (("sums", self.sums), ("squares", self.sum_squares)):
                array = source[name].numpy().reshape(shape).copy()
                array[:, invalid] = np.nan
                arrays[key][name] = array
            for largest, prefix in ((True, "top"), (False, "bottom")):
                keys = self.padded_keys(name, largest).sort(dim=-1, descending=largest).values[..., :kept]
                values, indices = (tensor.numpy().copy() for tensor in _keys_to_values(keys, largest))
                values[invalid], indices[invalid] = np.nan, -1
                arrays[f"{prefix}_v"][name], arrays[f"{prefix}_i"][name] = values, indices
        return PopulationSummary(
            class_counts=self.counts.numpy().round().astype(np.int64),
            class_sums=arrays["sums"],
            class_sum_squares=arrays["squares"],
            top_k=self.top_k,
            top_values=arrays["top_v"],
            top_indices=arrays["top_i"],
            bottom_values=arrays["bottom_v"],
            bottom_indices=arrays["bottom_i"],
        )


def _reduce_trace(
    trace: Any, quantities: dict[str, PopulationQuantity], batch_size: int
) -> dict[str, torch.Tensor]:
    """Quantity -> ``[B, T, U_max]`` float32 on the CPU: LSTM values as recorded, block maps as
    channel means over positions (computed where the trace lies), NaN beyond a step's units."""
    reduced = {}
    for name, quantity in quantities.items():
        if quantity.stacked:
            reduced[name] = trace[quantity.trace_names[0]].detach().to(device="cpu", dtype=torch.float32)
            continue
        steps = []
        for trace_name, units in zip(quantity.trace_names, quantity.units):
            tensor = trace[trace_name].detach()
            means = tensor.flatten(2).mean(dim=2) if tensor.dim() > 2 else tensor
            if units < quantity.max_units:
                means = torch.cat(
                    [means, means.new_full((batch_size, quantity.max_units - units), torch.nan)], 1
                )
            steps.append(means)
        reduced[name] = torch.stack(steps, dim=1).to(device="cpu", dtype=torch.float32)
    return reduced


# ---------------------------------------------------------------------------------------------
# Distributed helpers


@dataclasses.dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))  # nccl: CUDA

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return tensor
        moved = tensor.to(self.device)
        torch.distributed.all_reduce(moved)
        return moved.cpu()

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        if self.size == 1:
            return [tensor]
        moved = tensor.to(self.device).contiguous()
        gathered = [torch.empty_like(moved) for _ in range(self.size)]
        torch.distributed.all_gather(gathered, moved)
        return [part.cpu() for part in gathered]

    def broadcast_token(self) -> str:
        """A random hex token chosen by rank 0 and known to every rank."""
        token = torch.tensor([secrets.randbits(62)], dtype=torch.int64)
        if self.size > 1:
            moved = token.to(self.device)
            torch.distributed.broadcast(moved, src=0)
            token = moved.cpu()
        return f"{int(token.item()):016x}"


def _distributed_world(model: TracedModel) -> _World:
    """The process group in use: initialised already, or from ``WORLD_SIZE`` > 1 (torchrun)."""
    distributed = torch.distributed
    if not distributed.is_available():
        return _World()
    if not distributed.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return _World()
        backend = "nccl" if model_device(model).type == "cuda" else "gloo"
        distributed.init_process_group(backend=backend)
    size = distributed.get_world_size()
    if size == 1:
        return _World()
    backend = distributed.get_backend()
    device = model_device(model) if backend == "nccl" else torch.device("cpu")
    return _World(distributed.get_rank(), size, device)


def _shard_indices(total: int, world: _World) -> list[int]:
    """This rank's image indices: ``DistributedSampler(shuffle=False, drop_last=False)``, without
    the repeats it pads the last round with (position ``rank + j * size`` beyond ``total``)."""
    sampler = DistributedSampler(range(total), num_replicas=world.size, rank=world.rank, shuffle=False)
    return [index for position, index in enumerate(sampler) if world.rank + position * world.size < total]


# ---------------------------------------------------------------------------------------------
# Sources: length, names, identity, shards


def _as_dataset(source: Any) -> Any:
    """A map-style view of ``source`` (tensor -> TensorDataset, DataLoader -> its dataset)."""
    if isinstance(source, torch.Tensor):
        return TensorDataset(source if source.dim() == 4 else source.unsqueeze(0))
    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(p, torch.Tensor) for p in source):
        return TensorDataset(*source)
    if isinstance(source, Image.Image):
        return [source]
    if isinstance(source, DataLoader):
        return source.dataset
    return source


def _source_length(source: Any) -> int:
    """How many images ``source`` yields (needed up front for the memory maps)."""
    if isinstance(source, torch.Tensor):
        return int(source.shape[0]) if source.dim() == 4 else 1
    if isinstance(source, DataLoader):
        if source.batch_size is not None and source.drop_last:
            return len(source) * source.batch_size
        try:
            return len(source.sampler)  # type: ignore[arg-type]
        except TypeError:
            pass
    try:
        return len(_as_dataset(source))
    except TypeError:
        raise ValueError(
            "population_pass needs to know the number of images: pass a tensor, a Dataset or a "
            "DataLoader over a sized Dataset"
        ) from None


def _dataset_samples(dataset: Any) -> tuple[Any, list[int] | None]:
    """(innermost data set, the indices into it that ``dataset`` reads, None for all)."""
    indices: list[int] | None = None
    while isinstance(dataset, Subset):
        inner = [int(index) for index in dataset.indices]
        indices = inner if indices is None else [inner[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def _default_image_names(source: Any, total: int) -> list[str]:
    """The data set's file names where it keeps them (``samples``), else ``"image <index>"``."""
    base, indices = _dataset_samples(_as_dataset(source))
    samples = getattr(base, "samples", None)
    in_order = not isinstance(source, DataLoader) or isinstance(source.sampler, SequentialSampler)
    if isinstance(samples, Sequence) and in_order:
        chosen = range(len(samples)) if indices is None else indices
        names = [str(samples[i][0]) for i in chosen]
        if len(names) == total:
            return names
    return [f"image {index}" for index in range(total)]


def _source_digest(source: Any) -> str:
    """A digest of tensor sources' bytes; the type name for anything else (its identity is the
    caller's ``dataset``, ``split``, ``image_names`` and ``identity``)."""
    tensors = [source] if isinstance(source, torch.Tensor) else None
    if isinstance(source, tuple) and all(isinstance(part, torch.Tensor) for part in source):
        tensors = list(source)
    if tensors is None:
        return type(source).__name__
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str((tuple(tensor.shape), str(tensor.dtype))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _shard(source: Any, indices: list[int], batch_size: int, num_workers: int) -> Any:
    """The images ``indices`` of ``source``, in that order, as something :func:`_batches` reads."""
    if isinstance(source, torch.Tensor):
        return (source if source.dim() == 4 else source.unsqueeze(0))[indices]
    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(p, torch.Tensor) for p in source):
        return (source[0][indices], source[1][indices])
    dataset = Subset(_as_dataset(source), indices)
    if isinstance(source, DataLoader):
        return DataLoader(
            dataset,
            batch_size=source.batch_size or batch_size,
            shuffle=False,
            num_workers=source.num_workers,
            collate_fn=source.collate_fn,
        )
    return dataset


# ---------------------------------------------------------------------------------------------
# The on-disk folder


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:40] or "images"


def _npy_path(folder: Path, quantity: str) -> Path:
    return folder / "values" / f"{quantity}.npy"


def _create_arrays(
    folder: Path, quantities: dict[str, PopulationQuantity], total: int, outputs: int, keep_values: bool
) -> None:
    """Allocate the ``.npy`` memory maps a pass fills (rank 0 only)."""
    (folder / "values").mkdir(parents=True, exist_ok=True)
    labels = np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.int64, shape=(total,))
    labels[:] = -1
    labels.flush()
    del labels
    np.lib.format.open_memmap(folder / "outputs.npy", mode="w+", dtype=np.float32, shape=(total, outputs))
    if keep_values:
        for name, quantity in quantities.items():
            np.lib.format.open_memmap(
                _npy_path(folder, name),
                mode="w+",
                dtype=np.float32,
                shape=(total, quantity.steps, quantity.max_units),
            )


def _write_summary(folder: Path, summary: PopulationSummary) -> None:
    arrays: dict[str, np.ndarray] = {"class_counts": summary.class_counts}
    for field, prefix in (
        ("class_sums", "sums"),
        ("class_sum_squares", "sum_squares"),
        ("top_values", "top_values"),
        ("top_indices", "top_indices"),
        ("bottom_values", "bottom_values"),
        ("bottom_indices", "bottom_indices"),
    ):
        for name, array in getattr(summary, field).items():
            arrays[f"{prefix}__{name}"] = array
    np.savez(folder / "summary.npz", **arrays)  # type: ignore[arg-type]


def _read_summary(folder: Path, names: Sequence[str], top_k: int) -> PopulationSummary:
    with np.load(folder / "summary.npz", allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}

    def by_quantity(prefix: str) -> dict[str, np.ndarray]:
        return {name: arrays[f"{prefix}__{name}"] for name in names}

    return PopulationSummary(
        class_counts=arrays["class_counts"],
        class_sums=by_quantity("sums"),
        class_sum_squares=by_quantity("sum_squares"),
        top_k=top_k,
        top_values=by_quantity("top_values"),
        top_indices=by_quantity("top_indices"),
        bottom_values=by_quantity("bottom_values"),
        bottom_indices=by_quantity("bottom_indices"),
    )


def _load_table(
    folder: Path,
    key: str | None = None,
    directory: Path | None = None,
    image_names: list[str] | None = None,
) -> PopulationTable:
    """Read a complete folder (memory maps, read-only); ``key``: the cache key it must carry;
    ``image_names``: the names just written there (not read back).

    Raises:
        ValueError, OSError, KeyError, zipfile.BadZipFile: the folder is incomplete or damaged.
    """
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("format") != POPULATION_FORMAT_VERSION or (key is not None and meta.get("key") != key):
        raise ValueError("population cache of another version or key")
    total = int(meta["count"])
    quantities = {name: PopulationQuantity.from_dict(fields) for name, fields in meta["quantities"].items()}
    if image_names is None:
        with open(folder / "image_names.json") as handle:
            image_names = [str(name) for name in json.load(handle)]
    labels = np.load(folder / "labels.npy", mmap_mode="r", allow_pickle=False)
    outputs = np.load(folder / "outputs.npy", mmap_mode="r", allow_pickle=False)
    if len(image_names) != total or labels.shape != (total,) or outputs.shape[0] != total:
        raise ValueError("population cache arrays of the wrong length")
    values = {}
    if meta["keep_values"]:
        for name, quantity in quantities.items():
            array = np.load(_npy_path(folder, name), mmap_mode="r", allow_pickle=False)
            if array.shape != (total, quantity.steps, quantity.max_units) or array.dtype != np.float32:
                raise ValueError(f"population cache values of {name} have the wrong shape")
            values[name] = array
    summary = _read_summary(folder, list(quantities), int(meta["top_k"]))
    groups = len(meta["class_names"])
    kept = min(int(meta["top_k"]), total)
    for name, quantity in quantities.items():
        cells = (quantity.steps, quantity.max_units)
        sums_shape, top_shape = summary.class_sums[name].shape, summary.top_indices[name].shape
        if sums_shape != (groups, *cells) or top_shape != (*cells, kept):
            raise ValueError(f"population cache summary of {name} has the wrong shape")
    return PopulationTable(
        checkpoint_key=str(meta["checkpoint_key"]),
        dataset=str(meta["dataset"]),
        split=str(meta["split"]),
        image_names=image_names,
        labels=labels,
        outputs=outputs,
        class_names=[str(name) for name in meta["class_names"]],
        quantities=quantities,
        directory=directory,
        summary=summary,
        task=str(meta["task"]),
        value_arrays=values,
    )


_DAMAGED_CACHE = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError)


def _try_load(folder: Path, key: str) -> PopulationTable | None:
    """The cached table in ``folder``, or None (a damaged folder is removed)."""
    if not folder.is_dir():
        return None
    try:
        return _load_table(folder, key, directory=folder)
    except _DAMAGED_CACHE:
        shutil.rmtree(folder, ignore_errors=True)
        return None


# ---------------------------------------------------------------------------------------------
# The pass


def _progress_callback(
    progress: Callable[[int, int], None] | bool, total: int, enabled: bool
) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """(per-batch callback, closer) for ``progress``: a callable, True (tqdm) or False."""
    if callable(progress):
        return progress, lambda: None
    if not progress or not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="image", desc="population pass")

    def advance(done: int, _total: int) -> None:
        bar.update(done - bar.n)

    return advance, bar.close


def _cache_fields(
    model_key: str,
    source: Any,
    *,
    dataset: str,
    split: str,
    image_names: Sequence[str],
    identity: dict[str, Any] | None,
    top_k: int,
    keep_values: bool,
) -> dict[str, Any]:
    return {
        "format": POPULATION_FORMAT_VERSION,
        "checkpoint_key": model_key,
        "dataset": dataset,
        "split": split,
        "count": len(image_names),
        "image_names": hashlib.sha256("\n".join(image_names).encode()).hexdigest(),
        "source": _source_digest(source),
        "identity": identity or {},
        "top_k": top_k,
        "keep_values": keep_values,
    }


def population_pass(
    model: TracedModel,
    source: Any,
    *,
    dataset: str = "",
    split: str = "test",
    image_names: Sequence[str] | None = None,
    batch_size: int = 128,
    top_k: int = 32,
    keep_values: bool = True,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | bool = False,
    num_workers: int = 0,
    identity: dict[str, Any] | None = None,
) -> PopulationTable:
    """Run ``model`` once over ``source`` and keep every population quantity's values and summary.

    Each batch runs under eval mode and ``torch.no_grad()`` with ``run_with_trace(names=...)``
    restricted to the trace names of :func:`population_quantities`; block maps are reduced to
    channel means on the model's device before they reach the CPU. The batch is folded into
    float64 per-group sums and sums of squares (groups: true labels where known, else the
    predicted class; one group for keypoint models), into the running top-k / bottom-k of every
    (quantity, step, unit), and, with ``keep_values``, written into ``.npy`` memory maps. Nothing
    of size N is held in memory besides the memory maps and the ``image_names`` list.

    Args:
        model: any crmn-viz model.
        source: what ``crmn_viz.analysis.statistics._batches`` reads: a normalised tensor
            ``[N, C, H, W]``, ``(images, labels)`` tensors, PIL image(s), a ``Dataset`` of images or
            ``(image, label)``, or a ``DataLoader`` (its length must be known).
        dataset, split: names recorded in the table (and in the cache key).
        image_names: ``[N]`` file names; default: the data set's ``samples`` names where it
            keeps them, else ``"image <index>"``.
        batch_size: images per forward pass (a DataLoader keeps its own).
        top_k: exemplars kept per (quantity, step, unit), at each end.
        keep_values: also keep every value ``[N, T, U_max]`` (needed by :func:`nearest_trajectories`
            and by exemplar queries with ``k > top_k``).
        cache_dir: cache the table in a folder below this one (and answer from it when present).
            The key is the weights digest, ``dataset``, ``split``, the image names, the bytes of a
            tensor source, ``identity``, ``top_k``, ``keep_values`` and the format version; for a
            non-tensor source the caller vouches that these identify the images.
        progress: ``progress(done, total)`` after every batch (this rank's images), or True for a
            tqdm bar (rank 0 only).
        num_workers: DataLoader workers for a ``Dataset`` source.
        identity: more JSON-ready facts that identify the images (e.g. the archive's signature).

    Returns:
        :class:`PopulationTable` (memory-mapped values; ``directory`` set when cached).

    Raises:
        ValueError: bad ``batch_size``/``top_k``, an unsized source, a label outside the classes,
            or a source that yields another number of images than it announced.
    """
    if batch_size < 1 or top_k < 1:
        raise ValueError(f"batch_size and top_k must be at least 1, got {batch_size} and {top_k}")
    total = _source_length(source)
    if total < 1:
        raise ValueError("no images to pass")
    names = list(image_names) if image_names is not None else _default_image_names(source, total)
    if len(names) != total:
        raise ValueError(f"{len(names)} image names for {total} images")
    world = _distributed_world(model)
    model_key = checkpoint_key(model)

    final: Path | None = None
    key = ""
    fields: dict[str, Any] | None = None
    if cache_dir is not None:
        fields = _cache_fields(
            model_key,
            source,
            dataset=dataset,
            split=split,
            image_names=names,
            identity=identity,
            top_k=top_k,
            keep_values=keep_values,
        )
        key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        final = Path(cache_dir) / f"{_slug(dataset)}-{_slug(split)}-{total}-{key[:24]}"
        found = _try_load(final, key) if world.rank == 0 else None
        hit = world.all_reduce_sum(torch.tensor([float(found is not None)]))
        if hit.item() > 0:
            world.barrier()
            return found if found is not None else _load_table(final, key, directory=final)

    quantities, output_size = _describe(model)  # after the cache: a cache hit runs no model
    token = world.broadcast_token()
    if final is not None:
        work = final.parent / f".partial-{final.name}-{token}"
    else:
        owner = os.getpid() if world.size == 1 else "world"
        work = Path(tempfile.gettempdir()) / f"crmn-viz-population-{owner}-{token}"
    classification = model.task == "classification"
    groups = int(model.config.num_outputs) if classification else 1  # type: ignore[attr-defined]
    try:
        if world.rank == 0:
            _create_arrays(work, quantities, total, output_size, keep_values)
        world.barrier()
        running = _fill(
            model,
            source,
            work,
            quantities,
            world=world,
            total=total,
            groups=groups,
            batch_size=batch_size,
            top_k=top_k,
            keep_values=keep_values,
            progress=progress,
            num_workers=num_workers,
        )
        world.barrier()
        _reduce_across_ranks(running, world)
        if world.rank == 0:
            summary = running.summary(total)
            _write_summary(work, summary)
            with open(work / "image_names.json", "w") as handle:
                json.dump(names, handle)  # written in chunks, not as one string
            meta = {
                "format": POPULATION_FORMAT_VERSION,
                "key": key,
                "checkpoint_key": model_key,
                "dataset": dataset,
                "split": split,
                "count": total,
                "task": model.task,
                "class_names": class_names_for(model) if classification else [ALL_IMAGES_CLASS],
                "quantities": {name: q.to_dict() for name, q in quantities.items()},
                "top_k": top_k,
                "keep_values": keep_values,
                "fields": fields,
            }
            (work / "meta.json").write_text(json.dumps(meta, indent=1))  # written last
            if final is not None:
                _publish(work, final, key)
        world.barrier()
    except BaseException:
        if world.rank == 0:
            shutil.rmtree(work, ignore_errors=True)
        raise
    table = _load_table(work if final is None else final, key or None, directory=final, image_names=names)
    world.barrier()  # every rank has mapped the files before rank 0 may delete a scratch folder
    if final is None and world.rank == 0:  # the scratch folder goes with the table
        weakref.finalize(table, shutil.rmtree, str(work), True)  # open maps keep their pages
    return table


def _publish(work: Path, final: Path, key: str) -> None:
    """Rename the finished ``work`` folder to ``final`` (a valid folder already there wins)."""
    try:
        os.replace(work, final)
    except OSError:
        if _try_load(final, key) is not None:  # another process finished the same pass first
            shutil.rmtree(work, ignore_errors=True)
            return
        os.replace(work, final)


def _fill(
    model: TracedModel,
    source: Any,
    work: Path,
    quantities: dict[str, PopulationQuantity],
    *,
    world: _World,
    total: int,
    groups: int,
    batch_size: int,
    top_k: int,
    keep_values: bool,
    progress: Callable[[int, int], None] | bool,
    num_workers: int,
) -> _RunningPopulation:
    """Run this rank's images, write their rows into ``work``'s memory maps, return the statistics."""
    own: Sequence[int] = range(total) if world.size == 1 else _shard_indices(total, world)
    readable = source if world.size == 1 else _shard(source, own, batch_size, num_workers)
    batches, _ = _batches(model, readable, batch_size, None, num_workers)
    labels_map = np.load(work / "labels.npy", mmap_mode="r+")
    outputs_map = np.load(work / "outputs.npy", mmap_mode="r+")
    value_maps = (
        {name: np.load(_npy_path(work, name), mmap_mode="r+") for name in quantities} if keep_values else {}
    )
    running = _RunningPopulation(quantities, groups, top_k)
    trace_names = [name for quantity in quantities.values() for name in quantity.trace_names]
    device, dtype = model_device(model), model_dtype(model)
    classification = model.task == "classification"
    report, close = _progress_callback(progress, len(own), world.rank == 0)
    done = 0
    try:
        with evaluation_mode(model), torch.no_grad():
            for images, labels in _checked(batches, len(own)):
                count = int(images.shape[0])
                if count == 0:
                    continue
                rows = own[done : done + count]
                batch = images.to(device=device, dtype=dtype, memory_format=model.preferred_memory_format)
                output, trace = model.run_with_trace(batch, names=trace_names)
                values = _reduce_trace(trace, quantities, count)
                output = output.detach().reshape(count, -1).to(device="cpu", dtype=torch.float32)
                true = None if labels is None else labels.detach().cpu().long()
                if classification:
                    grouping = output.argmax(dim=1) if true is None else true
                    if int(grouping.min()) < 0 or int(grouping.max()) >= groups:
                        raise ValueError(f"class labels must be in 0..{groups - 1}; got {grouping.tolist()}")
                else:
                    grouping = torch.zeros(count, dtype=torch.long)
                indices = torch.as_tensor(list(rows), dtype=torch.int64)
                running.update(values, grouping, indices)
                where = slice(rows[0], rows[-1] + 1) if world.size == 1 else np.asarray(rows)
                outputs_map[where] = output.numpy()
                if true is not None:
                    labels_map[where] = true.numpy()
                for name, array in value_maps.items():
                    array[where] = values[name].numpy()
                done += count
                if report is not None:
                    report(done, len(own))
    finally:
        close()
    for array in (labels_map, outputs_map, *value_maps.values()):
        array.flush()
    return running


def _checked(
    batches: Iterator[tuple[torch.Tensor, torch.Tensor | None]], expected: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """The batches, failing if they add up to another number of images than ``expected``."""
    seen = 0
    for images, labels in batches:
        seen += int(images.shape[0])
        if seen > expected:
            raise ValueError(f"the source yielded more than the {expected} images it announced")
        yield images, labels
    if seen != expected:
        raise ValueError(f"the source yielded {seen} images, not the {expected} it announced")


def _reduce_across_ranks(running: _RunningPopulation, world: _World) -> None:
    """All-reduce sums and counts, all-gather and merge every rank's top/bottom-k (in place)."""
    if world.size == 1:
        return
    running.counts = world.all_reduce_sum(running.counts)
    for name in running.quantities:
        running.sums[name] = world.all_reduce_sum(running.sums[name])
        running.sum_squares[name] = world.all_reduce_sum(running.sum_squares[name])
        for largest in (True, False):
            running.merge(name, largest, world.all_gather(running.padded_keys(name, largest)))


def test_set_population(
    model: TracedModel,
    dataset: str,
    count: int | None = None,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> PopulationTable:
    """:func:`population_pass` over the test split of ``dataset`` (or ``count`` images spread
    evenly over it), named by their file names, cached in :func:`population_cache_dir`.

    The cache key adds the chosen indices and, for an archive data set, the archive's signature
    (resolved path, size, modification time), so a replaced archive is passed again.

    Args:
        model: any crmn-viz model of the data set.
        dataset: a :func:`crmn_viz.data.list_datasets` name.
        count: images to pass (None: all), chosen as ``crmn_viz.views.test_images.test_subset``.
        data_dir: data root (default ``$CRMN_VIZ_DATA_DIR``, else ``./data``).
        cache_dir: cache root (default :func:`population_cache_dir`).
        **kwargs: passed to :func:`population_pass` (``batch_size``, ``top_k``, ``progress`` ...).

    Raises:
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    from crmn_viz.data import build_dataset
    from crmn_viz.views.test_images import for_model, test_image_names, test_subset

    if count is None:
        full = build_dataset(dataset, "test", data_dir)
        subset = Subset(full, range(len(full)))  # type: ignore[arg-type]
    else:
        subset = test_subset(dataset, count, data_dir)  # type: ignore[assignment]
    return population_pass(
        model,
        for_model(subset, dataset, model),  # the model's own normalisation (its card's)
        dataset=dataset,
        split="test",
        image_names=test_image_names(subset),
        cache_dir=population_cache_dir() if cache_dir is None else cache_dir,
        identity=_data_identity(subset),
        **kwargs,
    )


test_set_population.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _data_identity(subset: Dataset) -> dict[str, Any]:
    """What identifies a test subset's images beyond the data set's name: the chosen indices and
    the files they are read from."""
    base, indices = _dataset_samples(subset)
    chosen = list(range(len(base))) if indices is None else indices  # type: ignore[arg-type]
    identity: dict[str, Any] = {
        "indices": hashlib.sha256(np.asarray(chosen, dtype=np.int64).tobytes()).hexdigest(),
        "class": type(base).__name__,
    }
    reader = getattr(base, "reader", None)
    signature = getattr(reader, "signature", None)
    if callable(signature):
        identity["archive"] = signature().to_dict()
    elif reader is not None and hasattr(reader, "root"):
        identity["folder"] = str(Path(reader.root).resolve())
    elif hasattr(base, "root"):
        identity["root"] = str(Path(str(base.root)).resolve())
    return identity


# ---------------------------------------------------------------------------------------------
# Queries


@dataclasses.dataclass(frozen=True)
class Exemplar:
    """One exemplar image of a unit: its index in the table, file name, value and true label."""

    index: int
    image: str
    value: float
    label: int


def exemplars(
    table: PopulationTable, quantity: str, step: int, unit: int, k: int = 9, *, lowest: bool = False
) -> list[Exemplar]:
    """The ``k`` images with the highest (or ``lowest``) value of one unit at one step.

    Dataset exemplars (the images that drive a unit most, as Zeiler & Fergus 2014 and Olah et al.
    2017 show them). Ordered by value, descending (ascending with ``lowest``); equal values by
    the lower index. Answered from the summary's top-k when ``k <= top_k`` (no values read), else
    from the stored values.

    Raises:
        KeyError: unknown quantity.
        ValueError: step or unit out of range, ``k < 1``, or ``k > top_k`` without stored values.
    """
    spec = table._quantity(quantity)
    _check_cell(spec, step, unit)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if k <= table.summary.top_k:
        kept = table.summary.bottom_values if lowest else table.summary.top_values
        kept_indices = table.summary.bottom_indices if lowest else table.summary.top_indices
        values, indices = kept[quantity][step, unit, :k], kept_indices[quantity][step, unit, :k]
    else:
        column = table.unit_values(quantity, step, unit)
        order = np.lexsort((np.arange(len(column)), column if lowest else -column))[:k]
        values, indices = column[order], order
    return [
        Exemplar(int(index), table.image_names[int(index)], float(value), int(table.labels[int(index)]))
        for value, index in zip(values, indices)
    ]


def nearest_trajectories(
    table: PopulationTable,
    quantity: str,
    query: int | np.ndarray,
    k: int = 9,
    *,
    units: Sequence[int] | None = None,
) -> list[tuple[int, str, float]]:
    """The images whose trajectory of ``quantity`` lies nearest to the query's.

    LSTMVis's match view (Strobelt et al. 2018, "LSTMVis", IEEE TVCG 24(1)) finds the text spans
    whose hidden-state pattern matches a selection; here the pattern is an image's trajectory
    ``x[t, u]`` over every step t and the chosen units, and "nearest" is the Euclidean distance
    ``d(i, q) = sqrt(sum_{t, u} (x_i[t, u] - q[t, u])^2)`` over the cells that exist (a step's
    missing units are left out).

    Args:
        table: a :class:`PopulationTable` with values (``keep_values=True``).
        quantity: a quantity name.
        query: an image index (that image is left out of the answer) or a trajectory
            ``[T, len(units)]`` (``[T, U_max]`` when ``units`` is None).
        k: how many images.
        units: the units to compare (default: all).

    Returns:
        ``(index, image name, distance)`` by increasing distance (ties: the lower index).
    """
    spec = table._quantity(quantity)
    values = table.values(quantity)
    chosen = np.arange(spec.max_units) if units is None else np.asarray(list(units), dtype=np.int64)
    if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= spec.max_units:
        raise ValueError(f"units must be in 0..{spec.max_units - 1}, got {chosen.tolist()}")
    valid = spec.valid_cells()[:, chosen]
    excluded = None
    if isinstance(query, (int, np.integer)):
        if not 0 <= int(query) < len(values):
            raise ValueError(f"query image must be in 0..{len(values) - 1}, got {query}")
        excluded = int(query)
        target = np.asarray(values[excluded][:, chosen], dtype=np.float64)
    else:
        target = np.asarray(query, dtype=np.float64)
        if target.shape != valid.shape:
            raise ValueError(f"a query trajectory must have shape {valid.shape}, got {target.shape}")
    target = np.where(valid, target, 0.0)
    distances = np.empty(len(values), dtype=np.float64)
    for start in range(0, len(values), _DISTANCE_CHUNK):
        block = np.asarray(values[start : start + _DISTANCE_CHUNK][:, :, chosen], dtype=np.float64)
        difference = np.where(valid, block - target, 0.0)
        distances[start : start + len(block)] = np.sqrt((difference * difference).sum(axis=(1, 2)))
    if excluded is not None:
        distances[excluded] = np.inf
    order = np.lexsort((np.arange(len(distances)), distances))[
        : min(k, len(distances) - (excluded is not None))
    ]
    return [(int(index), table.image_names[int(index)], float(distances[index])) for index in order]
