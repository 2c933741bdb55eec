"""Streaming statistics of the CRMN's LSTM gates and cell state over a data set.

For every step l (one per residual block) and every memory unit, :func:`gate_statistics`
accumulates the mean and standard deviation of the input, forget and output gates
(i_l, f_l, o_l, Moniz & Pal 2016 eqs. 2-4), the cell candidate s_l (eq. 6) and the cell
state c_l (eq. 5), over all images and per class. It answers questions such as "which
blocks does the memory keep (f_l close to 1) and which does it overwrite?".

Memory stays bounded whatever the data set size: each batch records only the requested
LSTM tensors (never full traces), is folded into float64 running moments (Chan, Golub &
LeVeque's pairwise form of Welford's update) and dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset
from tqdm.auto import tqdm

from crmn_viz.analysis.inputs import (
    class_names_for,
    evaluation_mode,
    model_device,
    model_dtype,
    preprocessor_for,
)
from crmn_viz.memory_quantities import MEMORY_QUANTITIES, MEMORY_QUANTITY_NAMES
from crmn_viz.models.base import TracedModel
from crmn_viz.preprocessing import Preprocessor

__all__ = [
    "GATE_QUANTITIES",
    "LSTM_QUANTITIES",
    "GateStatistics",
    "MomentTable",
    "RunningMoments",
    "gate_statistics",
]

LSTM_QUANTITIES = MEMORY_QUANTITY_NAMES
"""Every per-step LSTM quantity that can be summarised (:mod:`crmn_viz.memory_quantities`)."""
GATE_QUANTITIES = tuple(name for name, q in MEMORY_QUANTITIES.items() if q.kind != "hidden")
"""What :func:`gate_statistics` summarises by default: the gates, s_l and c_l (all but h_l)."""


class RunningMoments:
    """Mean and variance over a stream of batches, in float64 (Welford / Chan et al. 1979).

    ``update(values [N, *shape])`` folds N new samples in; memory is O(shape).
    """

    def __init__(self, shape: Sequence[int]) -> None:
        self.count = 0
        self.mean = torch.zeros(tuple(shape), dtype=torch.float64)
        self.sum_squared_deviations = torch.zeros(tuple(shape), dtype=torch.float64)

    def update(self, values: torch.Tensor) -> None:
        """Add samples ``values`` [N, *shape] (any float dtype, any device)."""
        values = values.detach().to(device="cpu", dtype=torch.float64)
        added = int(values.shape[0])
        if added == 0:
            return
        batch_mean = values.mean(dim=0)
        batch_deviations = ((values - batch_mean) ** 2).sum(dim=0)
        total = self.count + added
        delta = batch_mean - self.mean
        self.mean += delta * (added / total)
        self.sum_squared_deviations += batch_deviations + delta**2 * (self.count * added / total)
        self.count = total

    def std(self, ddof: int = 0) -> torch.Tensor:
        """Standard deviation (``ddof=0``: population, as ``numpy.std``'s default)."""
        if self.count - ddof <= 0:
            return torch.full_like(self.mean, float("nan"))
        return (self.sum_squared_deviations / (self.count - ddof)).clamp_min(0).sqrt()


@dataclasses.dataclass
class MomentTable:
    """Mean and std of each LSTM quantity for one group of images.

    Attributes:
        count: images in the group.
        mean: quantity name -> [T, H] mean per step and unit.
        std: quantity name -> [T, H] population standard deviation per step and unit.
    """

    count: int
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]


@dataclasses.dataclass
class GateStatistics:
    """Per-step, per-unit statistics of the CRMN's LSTM over a set of images.

    Attributes:
        quantities: names summarised (``lstm.<name>`` trace names), e.g. ``forget_gate``.
        overall: statistics over every image.
        per_class: class index -> statistics of the images of that class (classes that
            never occurred are absent); empty when not grouped by class.
        class_names: labels of all classes of the model (empty for keypoint models).
        label_source: ``"true"`` (labels from the data set), ``"predicted"`` (the model's
            arg-max) or ``"none"`` (not grouped by class).
    """

    quantities: tuple[str, ...]
    overall: MomentTable
    per_class: dict[int, MomentTable]
    class_names: list[str]
    label_source: str

    @property
    def count(self) -> int:
        """Number of images summarised."""
        return self.overall.count

    def _table(self, class_index: int | None) -> MomentTable:
        if class_index is None:
            return self.overall
        if class_index not in self.per_class:
            raise KeyError(f"no images of class {class_index}; classes seen: {sorted(self.per_class)}")
        return self.per_class[class_index]

    def mean(self, quantity: str, class_index: int | None = None) -> np.ndarray:
        """Mean [T, H] of ``quantity`` over all images, or over one class."""
        return self._table(class_index).mean[quantity]

    def std(self, quantity: str, class_index: int | None = None) -> np.ndarray:
        """Population std [T, H] of ``quantity`` over all images, or over one class."""
        return self._table(class_index).std[quantity]


class _CollateImages:
    """Collate data-set items (image, or (image, label, ...)) into (batch, labels or None).

    Images may be normalised tensors [C, H, W] or PIL images (then preprocessed). Labels
    are kept only when every item has an integer label.
    """

    def __init__(self, preprocess: Preprocessor) -> None:
        self.preprocess = preprocess

    def __call__(self, items: list[Any]) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = [], []
        for item in items:
            image, label = (
                (item[0], item[1]) if isinstance(item, (tuple, list)) and len(item) >= 2 else (item, None)
            )
            images.append(
                self.preprocess.to_tensor(image) if isinstance(image, Image.Image) else torch.as_tensor(image)
            )
            labels.append(_as_class_label(label))
        batch = torch.stack(images)
        if all(label is not None for label in labels):
            return batch, torch.tensor(labels, dtype=torch.long)
        return batch, None


def _as_class_label(label: Any) -> int | None:
    """An integer class label, or None for anything else (e.g. keypoint targets)."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    if isinstance(label, torch.Tensor) and label.dim() == 0 and not label.is_floating_point():
        return int(label)
    return None


def _batches(
    model: TracedModel, source: Any, batch_size: int, max_images: int | None, num_workers: int
) -> tuple[Iterator[tuple[torch.Tensor, torch.Tensor | None]], int | None]:
    """(iterator of (images [B, C, H, W], labels [B] or None), number of images if known)."""
    preprocess = preprocessor_for(model)
    if isinstance(source, torch.Tensor):
        tensor = source if source.dim() == 4 else source.unsqueeze(0)
        if max_images is not None:
            tensor = tensor[:max_images]
        return ((chunk, None) for chunk in tensor.split(batch_size)), int(tensor.shape[0])
    if (
        isinstance(source, tuple)
        and len(source) == 2
        and all(isinstance(part, torch.Tensor) for part in source)
        and source[0].dim() == 4
    ):  # (images [N, C, H, W], labels [N])
        source = TensorDataset(*source)
    if isinstance(source, Image.Image):
        source = [source]
    if isinstance(source, DataLoader):
        collate = _CollateImages(preprocess)
        return _loader_batches(source, collate, max_images), _known_length(source.dataset, max_images)
    if isinstance(source, Dataset) or (isinstance(source, Sequence) and not isinstance(source, (str, bytes))):
        dataset = source
        if max_images is not None and max_images < len(dataset):  # type: ignore[arg-type]
            dataset = Subset(dataset, range(max_images))  # type: ignore[arg-type]
        loader = DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_CollateImages(preprocess),
        )
        return iter(loader), len(dataset)  # type: ignore[arg-type]
    if isinstance(source, Iterable):
        return _loader_batches(source, _CollateImages(preprocess), max_images), max_images
    raise TypeError(
        "images_or_dataset must be a tensor [N, C, H, W], PIL images, a Dataset or a DataLoader; "
        f"got {type(source).__name__}"
    )


def _known_length(dataset: Any, max_images: int | None) -> int | None:
    try:
        length = len(dataset)
    except TypeError:
        return max_images
    return length if max_images is None else min(length, max_images)


def _loader_batches(
    loader: Iterable[Any], collate: _CollateImages, max_images: int | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Normalise batches from a DataLoader-like iterable into (images, labels or None)."""
    seen = 0
    for batch in loader:
        if isinstance(batch, torch.Tensor):
            images, labels = batch, None
        elif isinstance(batch, (tuple, list)) and len(batch) >= 2 and isinstance(batch[0], torch.Tensor):
            images = batch[0]
            labels = batch[1] if isinstance(batch[1], torch.Tensor) and batch[1].dim() == 1 else None
            if labels is not None and labels.is_floating_point():
                labels = None
        else:  # a list of items, e.g. from a loader with a no-op collate
            images, labels = collate(list(batch))
        if max_images is not None:
            images = images[: max_images - seen]
            labels = None if labels is None else labels[: max_images - seen]
        seen += int(images.shape[0])
        yield images, labels
        if max_images is not None and seen >= max_images:
            return


def gate_statistics(
    model: TracedModel,
    images_or_dataset: Any,
    by_class: bool = True,
    batch_size: int = 128,
    progress: bool = True,
    quantities: Sequence[str] = GATE_QUANTITIES,
    max_images: int | None = None,
    num_workers: int = 0,
) -> GateStatistics:
    """Mean and std of every LSTM gate and the cell state, per step and unit, over images.

    The model runs in eval mode under ``torch.no_grad()``; each batch records only
    ``lstm.<quantity>`` for the requested quantities (``run_with_trace(names=...)``), is
    folded into float64 running moments and then dropped, so memory does not grow with the
    number of images.

    Args:
        model: a CRMN.
        images_or_dataset: a normalised tensor [N, C, H, W]; a pair of tensors ``(images
            [N, C, H, W], labels [N])``; PIL image(s); a ``Dataset`` whose
            items are an image or ``(image, label)`` (tensor or PIL image; PIL images are
            preprocessed with the model's preprocessor); or a ``DataLoader`` / iterable of
            batches (``images`` or ``(images, labels)``).
        by_class: also group by class: the true label when the data set yields integer
            labels, else the model's predicted class. Ignored for keypoint models.
        batch_size: images per forward pass (for tensors, image lists and data sets).
        progress: show a tqdm progress bar.
        quantities: which of :data:`LSTM_QUANTITIES` to summarise.
        max_images: stop after this many images.
        num_workers: DataLoader workers when a ``Dataset`` is given.

    Returns:
        :class:`GateStatistics`; every mean/std is a float64 array [T, H] (T = 3n steps,
        H = hidden units).

    Raises:
        TypeError: the model is not a CRMN.
        ValueError: unknown quantity, bad batch size, or a label outside the classes.
    """
    if not model.has_memory:
        raise TypeError(
            "gate_statistics needs a CRMN (only the CRMN has the peephole LSTM over blocks); "
            f"got {model.arch!r}"
        )
    unknown = sorted(set(quantities) - set(LSTM_QUANTITIES))
    if unknown or not quantities:
        raise ValueError(f"unknown quantities {unknown}; choose from {list(LSTM_QUANTITIES)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    quantities = tuple(dict.fromkeys(quantities))
    group_by_class = by_class and model.task == "classification"
    num_classes = int(model.config.num_outputs) if group_by_class else 0  # type: ignore[attr-defined]
    shape = (model.num_steps, model.config.hidden_size)  # type: ignore[attr-defined]
    overall = {name: RunningMoments(shape) for name in quantities}
    per_class: dict[int, dict[str, RunningMoments]] = {}
    sources: set[str] = set()
    batches, total = _batches(model, images_or_dataset, batch_size, max_images, num_workers)
    device, dtype = model_device(model), model_dtype(model)
    names = [f"lstm.{name}" for name in quantities]
    with (
        evaluation_mode(model),
        torch.no_grad(),
        tqdm(total=total, unit="image", desc="gate statistics", disable=not progress) as bar,
    ):
        for images, labels in batches:
            # one copy to the device, dtype and layout the convolutions run in
            batch = images.to(device=device, dtype=dtype, memory_format=model.preferred_memory_format)
            output, trace = model.run_with_trace(batch, names=names, store_device="cpu")
            for name in quantities:
                overall[name].update(trace[f"lstm.{name}"])
            if group_by_class:
                if labels is None:
                    classes, source = output.argmax(dim=-1).cpu(), "predicted"
                else:
                    classes, source = labels.cpu().long(), "true"
                sources.add(source)
                if classes.numel() and (int(classes.min()) < 0 or int(classes.max()) >= num_classes):
                    raise ValueError(f"class labels must be in 0..{num_classes - 1}; got {classes.tolist()}")
                for class_index in classes.unique().tolist():
                    members = classes == class_index
                    moments = per_class.setdefault(
                        class_index, {name: RunningMoments(shape) for name in quantities}
                    )
                    for name in quantities:
                        moments[name].update(trace[f"lstm.{name}"][members])
            bar.update(int(images.shape[0]))
    if overall[quantities[0]].count == 0:
        raise ValueError("no images to summarise")
    label_source = "none" if not group_by_class else "+".join(sorted(sources)) or "none"
    return GateStatistics(
        quantities=quantities,
        overall=_table(overall),
        per_class={k: _table(per_class[k]) for k in sorted(per_class)},
        class_names=class_names_for(model) if model.task == "classification" else [],
        label_source=label_source,
    )


def _table(moments: dict[str, RunningMoments]) -> MomentTable:
    first = next(iter(moments.values()))
    return MomentTable(
        count=first.count,
        mean={name: m.mean.numpy().copy() for name, m in moments.items()},
        std={name: m.std().numpy() for name, m in moments.items()},
    )
