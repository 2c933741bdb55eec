"""Linear probes: what the backbone holds at block l beside what the memory has gathered by step l.

For every step ``l`` (one per residual block) a linear classifier is trained on a training subset
and scored on test images, once on the *pooled block output* and, for a model with a memory (the
CRMN), once on the LSTM hidden state ``h_l`` (Moniz & Pal 2016, eq. 7). The probe is multinomial
logistic regression (Bishop 2006, *Pattern Recognition and Machine Learning*, sec. 4.3.4) with an
L2 penalty, the "linear classifier probe" of Alain & Bengio (2016, *Understanding intermediate
layers using linear classifier probes*, arXiv:1610.01644).

Features (:func:`probe_features`):

* ``"block"``: the pooled block output. For a CRMN this is exactly its LSTM input ``x_l``
  (``lstm.input``): the block output after the residual addition, mean-pooled in non-overlapping
  ``pool x pool`` windows, flattened in (channel, row, column) order and zero-padded to the
  largest step (2016 paper, sec. 3). For any other model with blocks (the ResNet, RiR, ...) the
  same pooling is applied to its block outputs (:func:`pool_block_output`, the CRMN's
  ``F.avg_pool2d(out, pool, pool)``), with the model's ``config.pool`` where it has one and
  otherwise the CRMN's default ``pool = 2`` (:data:`DEFAULT_POOL`, the 2x2 mean-pool of the 2016
  paper for 32 x 32 inputs), so that a CRMN and its own ResNet are probed on the same kind of
  features. A block is what :meth:`~crmn_viz.models.base.TracedModel.gradcam_layer` names (the
  block output after the addition, ``blocks.<k>.out``); RiR's two streams of a block are
  concatenated along the channels (``[r; m]``, as its head pools them) before pooling. ReNet,
  whose "blocks" are its layers (``layers.<k>.out``), is probed layer by layer: the per-layer
  analogue of a block output.
* ``"hidden"``: ``lstm.hidden`` ``h_l`` (models with ``has_memory`` only).

Probe fitting (:func:`linear_probes`, :func:`fit_linear_probe`):

* The zero padding is dropped (a step's own ``feature_dims`` columns are used: the padded zeros
  carry no information and standardise to 0). Features are standardised with the mean and
  standard deviation of the images the probe is trained on (constant features are centred only).
* Objective: mean cross-entropy + ``lambda / 2 * ||W||^2`` (the bias is not penalised), minimised
  by full-batch L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search, history 10) from zero
  weights in float32; it stops after ``max_iterations`` iterations (default 50) or when every
  gradient entry is below 1e-5. On crmn-cifar10 (2000 training, 1000 test images) the test
  accuracies after 50 iterations were within 0.002 of those after 300 at every step.
  Deterministic: no randomness in the fit itself. Each fit runs on one intra-op thread: an L-BFGS
  step is a chain of small, memory-bound products that a second thread only slows (on a busy
  2-core machine a 1600 x 4096 fit took 0.6 s on one thread and 3.4 s on two).
* The penalty ``lambda`` is chosen per feature (one value for every step of that feature, so the
  curve over steps compares probes of equal strength) from :data:`REGULARISATION_GRID` by the mean
  accuracy over all steps on a held-out 20% of the training subset (a seeded random split; the
  probes are trained on the other 80%, standardised with its statistics, the grid walked from the
  strongest penalty down with warm starts); ties go to the stronger penalty. Every probe is then
  refitted with that ``lambda`` on the whole training subset (starting from its held-out fit) and
  scored on the test images. Probes of different steps are fitted concurrently by ``workers``
  threads (default ``torch.get_num_threads()``, the cores torch may use); the results do not
  depend on it. On a machine whose cores are busy with other work, ``workers=1`` is faster.
* Accuracy intervals: percentile bootstrap 95% intervals over the test images
  (:func:`crmn_viz.analysis.bootstrap.bootstrap_mean`, the same seeded draws for every probe, so
  two curves are compared on the same resampled image sets).
* Chance level: the accuracy on the test images of always predicting the most frequent class of
  the training subset (ties: the lower class index), about 1/C for balanced data.
* Features of blocks with more dimensions than training images (D > N) are not reduced: no PCA,
  no random projection; the probes see every pooled value.

Images: the training subset is a seeded random sample (without replacement, read in index order)
of ``train_images`` items of the training source; the test images are ``test_images`` items spread
evenly over the test source (``round(k * N / n)``, as :func:`crmn_viz.views.test_images.test_subset`
picks them, so a test split sorted by class gives balanced classes); a source that cannot be
indexed (a ``DataLoader``, an iterable) is read in order up to the count. Pass training images
*without* augmentation (``build_dataset("cifar10", "train", train_augment=False)``). The network
was trained on its training images, so at the last blocks their features are more separable than
those of unseen images (the probes' training accuracy and held-out accuracy are then above their
test accuracy); a part of the test split disjoint from the test images may be passed as
``train_source`` instead.

Memory: the features of all images are kept (full-batch L-BFGS): ``N x sum_l D_l`` float32 values
per feature (about 260 MB for 3000 CIFAR-10 images of a depth-20 CRMN), never a full trace.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from crmn_viz.analysis.bootstrap import bootstrap_mean
from crmn_viz.analysis.inputs import class_names_for, evaluation_mode, model_device, model_dtype
from crmn_viz.analysis.statistics import _batches
from crmn_viz.models.base import TracedModel, one_intra_op_thread
from crmn_viz.models.crmn import CRMNConfig

__all__ = [
    "DEFAULT_POOL",
    "REGULARISATION_GRID",
    "ProbeResult",
    "fit_linear_probe",
    "linear_probes",
    "pool_block_output",
    "probe_feature_dims",
    "probe_features",
    "probe_summary",
]

DEFAULT_POOL: int = next(f.default for f in dataclasses.fields(CRMNConfig) if f.name == "pool")  # type: ignore[assignment]
"""Mean-pool window for the block features of a model without its own ``pool`` setting: the CRMN's
default (2, the 2016 paper's 2 x 2 mean-pool before the LSTM)."""

REGULARISATION_GRID: tuple[float, ...] = (10.0, 1.0, 0.1, 0.01)
"""L2 strengths ``lambda`` tried (objective: mean cross-entropy + ``lambda / 2 * ||W||^2`` on
standardised features), strongest first. On CIFAR-10 (2000 training images) the CRMN's and the
ResNet's probes chose 0.1 and RiR's 1; 0.001 was never better than 0.01 on the held-out images and
is the slowest to fit."""

VALIDATION_FRACTION = 0.2
"""Part of the training subset held out to choose ``lambda``."""

BOOTSTRAP_RESAMPLES = 1000
"""Resamples of the test images for the accuracy intervals."""

_GRADIENT_TOLERANCE = 1e-5
_CLASS_PAD = 16  # weight columns rounded up to a multiple of 16: MKL's skinny products run 2x faster

Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)`` after every batch of images and every fitted probe."""


@dataclasses.dataclass
class ProbeResult:
    """Linear-probe accuracy per step, for each feature of one model.

    Attributes:
        steps: T, one step per residual block (ReNet: per layer).
        feature_names: ``("block", "hidden")`` for a model with a memory, ``("block",)`` otherwise.
        accuracy: feature -> [T] test accuracy of the probe of each step.
        accuracy_ci: feature -> [T, 2] percentile bootstrap 95% interval over the test images.
        train_accuracy: feature -> [T] accuracy on the training subset the probe was fitted on.
        chance: accuracy on the test images of always predicting the majority class of the training
            subset (see :attr:`chance_rule`).
        class_names: the C class names.
        train_images: images in the training subset.
        test_images: test images scored.
        regularisation: feature -> the chosen L2 strength ``lambda`` (one per feature, shared by
            its steps; chosen on a held-out part of the training subset, see the module docstring).
        feature_dims: feature -> the dimension of each step's features (before zero padding).
        validation_accuracy: feature -> [G, T] held-out accuracy for every ``lambda`` of
            :attr:`regularisation_grid` (what the choice was made on).
        regularisation_grid: the ``lambda`` values tried, strongest first.
        predictions: feature -> [T, N_test] predicted class of every test image at every step.
        test_labels: [N_test] true classes of the test images.
        stages: stage index of every step (a new stage starts where the spatial size of the block
            output changes).
        chance_rule: how :attr:`chance` was computed, in words.
        pool: mean-pool window of the block features.
        seed: seed of the training subset, the held-out split and the bootstrap.
        max_iterations: L-BFGS iteration cap per fit.
    """

    steps: int
    feature_names: tuple[str, ...]
    accuracy: dict[str, np.ndarray]
    accuracy_ci: dict[str, np.ndarray]
    train_accuracy: dict[str, np.ndarray]
    chance: float
    class_names: list[str]
    train_images: int
    test_images: int
    regularisation: dict[str, float]
    feature_dims: dict[str, tuple[int, ...]]
    validation_accuracy: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    regularisation_grid: tuple[float, ...] = REGULARISATION_GRID
    predictions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    test_labels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stages: tuple[int, ...] = ()
    chance_rule: str = "always the majority class of the training subset"
    pool: int = DEFAULT_POOL
    seed: int = 0
    max_iterations: int = 50

    def best_step(self, feature: str) -> int:
        """0-based step with the highest test accuracy of ``feature`` (the earliest of ties)."""
        return int(np.argmax(self.accuracy[feature]))


# ---------------------------------------------------------------------------------------------
# Features


def pool_block_output(out: torch.Tensor, pool: int) -> torch.Tensor:
    """The CRMN's pooling of a block output, flattened: [B, C, H, W] -> [B, C * (H // pool) * (W // pool)].

    Non-overlapping ``pool x pool`` mean-pooling (floor at the border), then flattening in
    (channel, row, column) order: ``CRMN.pool_block_output`` followed by the flattening of
    ``CRMN.stack_stages`` (Moniz & Pal 2016, sec. 3: "we apply a 2 x 2 meanpool sub-sampling on
    the feature map").
    """
    pooled = F.avg_pool2d(out, pool, pool) if pool > 1 else out
    return pooled.reshape(pooled.shape[0], -1)


def _check_probe_model(model: TracedModel) -> None:
    if model.task != "classification":
        raise ValueError(
            f"linear probes classify images, and this {model.arch!r} model is a {model.task!r} model; "
            "probing it would need a regression probe (e.g. ridge regression from the block features "
            "to the keypoint coordinates, scored by NME) and keypoint targets"
        )
    if not _block_names(model):
        raise ValueError(
            f"probes read residual blocks; this model ({model.arch!r}) has none "
            "(no block outputs: block_count is 0 or no block trace names are known)"
        )


def _block_names(model: TracedModel) -> list[tuple[str, ...]]:
    """Per block, the trace names of its output (several streams for RiR), from the model's
    Grad-CAM layer capability (the block output after the addition)."""
    if not model.gradcam_layer_pattern or not model.block_count:
        return []
    streams: Sequence[str | None] = model.stream_names or (None,)
    return [
        tuple(model.gradcam_layer(block, stream) for stream in streams) for block in range(model.block_count)
    ]


def _uses_memory_input(model: TracedModel) -> bool:
    """A model whose memory reads the pooled block outputs: its ``block`` features are that input."""
    return bool(model.has_memory and model.memory_input_name)


def _hidden_name(model: TracedModel) -> str | None:
    """Trace name of the memory's hidden state h_l (``lstm.hidden``), or None."""
    if model.has_memory and "hidden" in model.memory_quantities:
        return "lstm.hidden"
    return None


def _pool_for(model: TracedModel, pool: int | None) -> int:
    own = getattr(model.config, "pool", None)
    if _uses_memory_input(model) and own is not None and pool is not None and int(pool) != int(own):
        raise ValueError(
            f"this model's block features are its memory's input, pooled with its own pool={own}; "
            f"pool={pool} cannot apply"
        )
    chosen = int(pool if pool is not None else own if own is not None else DEFAULT_POOL)
    if chosen < 1:
        raise ValueError(f"pool must be at least 1, got {chosen}")
    return chosen


def _trace_names(model: TracedModel) -> list[str]:
    names = [model.memory_input_name] if _uses_memory_input(model) else []
    if not names:
        names = [name for block in _block_names(model) for name in block]
    hidden = _hidden_name(model)
    return names + ([hidden] if hidden else [])


def _step_features(
    model: TracedModel, batch: torch.Tensor, pool: int, dims: Mapping[str, Sequence[int]]
) -> dict[str, list[torch.Tensor]]:
    """Feature -> per step [B, D_l] float32 CPU tensors (without zero padding) of one input batch."""
    _, trace = model.run_with_trace(batch, names=_trace_names(model), store_device="cpu")
    features: dict[str, list[torch.Tensor]] = {}
    if _uses_memory_input(model):
        steps = trace[model.memory_input_name]
        features["block"] = [steps[:, step, :size] for step, size in enumerate(dims["block"])]
    else:
        features["block"] = [
            pool_block_output(torch.cat([trace[name] for name in names], dim=1), pool)
            for names in _block_names(model)
        ]
    hidden = _hidden_name(model)
    if hidden:
        features["hidden"] = list(trace[hidden].unbind(1))
    return {name: [step.float().contiguous() for step in values] for name, values in features.items()}


def _block_shapes(model: TracedModel) -> list[tuple[int, int, int]]:
    """(C, H, W) of every block output (streams concatenated), from one zero image."""
    names = [name for block in _block_names(model) for name in block]
    zero = torch.zeros(1, *model.input_shape, device=model_device(model), dtype=model_dtype(model))
    with evaluation_mode(model), torch.no_grad():
        _, trace = model.run_with_trace(zero, names=names, store_device="cpu")
    shapes = []
    for block in _block_names(model):
        maps = [trace[name] for name in block]
        shapes.append((sum(int(m.shape[1]) for m in maps), int(maps[0].shape[2]), int(maps[0].shape[3])))
    return shapes


def probe_feature_dims(model: TracedModel, pool: int | None = None) -> dict[str, tuple[int, ...]]:
    """Feature -> the dimension of each step's probe features (before zero padding).

    ``block``: ``C * (H // pool) * (W // pool)`` of each block output (for a CRMN, the unpadded
    size of its LSTM input at that step); ``hidden``: the memory's H units at every step.

    Raises:
        ValueError: a keypoint model, or a model without blocks.
    """
    _check_probe_model(model)
    return _dims(model, _pool_for(model, pool), _block_shapes(model))


def _dims(
    model: TracedModel, pool: int, shapes: Sequence[tuple[int, int, int]]
) -> dict[str, tuple[int, ...]]:
    dims = {"block": tuple(c * (h // pool) * (w // pool) for c, h, w in shapes)}
    if _hidden_name(model):
        dims["hidden"] = (int(model.config.hidden_size),) * len(shapes)  # type: ignore[attr-defined]
    if min(dims["block"]) < 1:
        raise ValueError(f"pool={pool} is larger than a block output ({shapes})")
    return dims


def probe_features(
    model: TracedModel, images: torch.Tensor, pool: int | None = None
) -> dict[str, torch.Tensor]:
    """The features the probes read, for a batch of normalised images.

    Args:
        model: a classifier with blocks (CRMN, ResNet, RiR; ReNet per layer).
        images: [B, C, H, W] already normalised (``prepare_batch``).
        pool: mean-pool window of the block features of a model without memory (default: its
            ``config.pool``, else :data:`DEFAULT_POOL`); a CRMN's are its LSTM input.

    Returns:
        Feature -> [B, T, D] float32 CPU tensors, zero-padded where a step has fewer than D dims:
        ``"block"`` (a CRMN's ``lstm.input`` exactly; for other models the CRMN pooling of the block
        outputs) and, for a model with a memory, ``"hidden"`` (``lstm.hidden``, eq. 7).

    Raises:
        ValueError: a keypoint model, or a model without blocks.
    """
    dims = probe_feature_dims(model, pool)
    device, dtype = model_device(model), model_dtype(model)
    batch = images.to(device=device, dtype=dtype, memory_format=model.preferred_memory_format)
    with evaluation_mode(model), torch.no_grad():
        features = _step_features(model, batch, _pool_for(model, pool), dims)
    padded = {}
    for name, steps in features.items():
        width = max(int(step.shape[1]) for step in steps)
        padded[name] = torch.stack([F.pad(step, (0, width - int(step.shape[1]))) for step in steps], dim=1)
    return padded


# ---------------------------------------------------------------------------------------------
# The probe


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Subtract the training mean and divide by the training std (population) column-wise.

    Columns that are constant on the training rows (zero padding, dead units) are only centred.
    """
    mean = train.double().mean(dim=0)
    std = train.double().std(dim=0, unbiased=False)
    constant = std <= 1e-6 * mean.abs().clamp_min(1e-30)
    std = torch.where(constant, torch.ones_like(std), std)
    mean, std = mean.float(), std.float()
    return [((x - mean) / std).contiguous() for x in (train, *others)]


def _train_logistic(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    penalty: float,
    max_iterations: int,
    initial: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise mean cross-entropy + ``penalty / 2 * ||W||^2`` by full-batch L-BFGS.

    Args:
        features: [N, D] float32 (standardised).
        labels: [N] class indices in 0..C-1.
        initial: (weight [D, C], bias [C]) to start from (default: zeros).

    Returns:
        ``(weight [D, C], bias [C])``; logits are ``features @ weight + bias``.

    The gradient is written by hand (``W``: ``X^T (softmax - onehot) / N + penalty W``; bias:
    the column sums of ``(softmax - onehot) / N``), so no autograd graph is built.
    """
    count, dims = features.shape
    padded = -(-num_classes // _CLASS_PAD) * _CLASS_PAD
    theta = torch.zeros(dims + 1, padded, dtype=features.dtype)  # rows: weight, then bias
    if initial is not None:
        theta[:dims, :num_classes] = initial[0]
        theta[dims, :num_classes] = initial[1]
    theta.grad = torch.zeros_like(theta)
    onehot = F.one_hot(labels, num_classes).to(features.dtype)
    optimiser = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iterations,
        tolerance_grad=_GRADIENT_TOLERANCE,
        tolerance_change=1e-9,
        history_size=10,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        weight = theta[:dims]
        logits = torch.addmm(theta[dims], features, weight)[:, :num_classes]
        log_probabilities = torch.log_softmax(logits, dim=1)
        active = weight[:, :num_classes]
        loss = -(log_probabilities * onehot).sum() / count + 0.5 * penalty * (active * active).sum()
        residual = (log_probabilities.exp_() - onehot) / count  # softmax - onehot, [N, C]
        theta.grad[:dims, :num_classes] = (residual.t() @ features).t() + penalty * active
        theta.grad[dims, :num_classes] = residual.sum(dim=0)
        return loss

    with torch.no_grad(), one_intra_op_thread():
        optimiser.step(closure)  # type: ignore[arg-type]
    return theta[:dims, :num_classes].clone(), theta[dims, :num_classes].clone()


def _predict(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.addmm(bias, features, weight).argmax(dim=1)


def _as_features(values: Any) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    if tensor.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(tensor.shape)}")
    return tensor.float().contiguous()


def _as_labels(values: Any, count: int) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values).long()
    if tensor.shape != (count,):
        raise ValueError(f"labels must be [N] = [{count}], got shape {tuple(tensor.shape)}")
    return tensor


def fit_linear_probe(
    features_train: Any,
    labels_train: Any,
    features_test: Any,
    labels_test: Any,
    *,
    regularisation: float = 0.01,
    num_classes: int | None = None,
    max_iterations: int = 50,
) -> tuple[float, float, np.ndarray]:
    """Fit one L2-penalised multinomial logistic regression and score it.

    Features are standardised with the training rows' mean and std; the objective is mean
    cross-entropy + ``regularisation / 2 * ||W||^2`` (bias unpenalised), minimised by full-batch
    L-BFGS from zero weights (Bishop 2006, sec. 4.3.4; Alain & Bengio 2016).

    Args:
        features_train: [N, D] (numpy or torch).
        labels_train: [N] class indices.
        features_test: [M, D].
        labels_test: [M].
        regularisation: the L2 strength ``lambda``.
        num_classes: C (default: 1 + the largest label seen).
        max_iterations: L-BFGS iteration cap.

    Returns:
        ``(test_accuracy, train_accuracy, predictions [M])``.
    """
    train = _as_features(features_train)
    test = _as_features(features_test)
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"train and test features differ in width: {train.shape[1]} vs {test.shape[1]}")
    y_train = _as_labels(labels_train, train.shape[0])
    y_test = _as_labels(labels_test, test.shape[0])
    if regularisation <= 0:
        raise ValueError(f"regularisation must be positive, got {regularisation}")
    classes = int(num_classes if num_classes is not None else int(max(y_train.max(), y_test.max())) + 1)
    train, test = _standardise(train, test)
    weight, bias = _train_logistic(train, y_train, classes, float(regularisation), max_iterations)
    predictions = _predict(test, weight, bias)
    test_accuracy = float((predictions == y_test).double().mean()) if len(y_test) else float("nan")
    train_accuracy = float((_predict(train, weight, bias) == y_train).double().mean())
    return test_accuracy, train_accuracy, predictions.numpy()


# ---------------------------------------------------------------------------------------------
# Images


def _select(source: Any, count: int, how: str, seed: int) -> tuple[Any, int | None]:
    """(the chosen part of ``source``, max images for an unindexable source)."""
    if isinstance(source, torch.Tensor):
        raise ValueError(
            "probes need class labels: pass (images [N, C, H, W], labels [N]) or a labelled data set, "
            "not a bare image tensor"
        )
    if (
        isinstance(source, tuple)
        and len(source) == 2
        and all(isinstance(part, torch.Tensor) for part in source)
    ):
        indices = _indices(int(source[0].shape[0]), count, how, seed)
        return (source[0][indices], source[1][indices]), None
    if isinstance(source, DataLoader) or not isinstance(source, (Dataset, Sequence)):
        return source, count
    indices = _indices(len(source), count, how, seed)  # type: ignore[arg-type]
    return Subset(source, indices.tolist()), None  # type: ignore[arg-type]


def _indices(size: int, count: int, how: str, seed: int) -> np.ndarray:
    """``count`` of ``size`` indices: a seeded random sample in index order, or evenly spread."""
    count = min(count, size)
    if how == "random":
        return np.sort(np.random.default_rng(seed).choice(size, size=count, replace=False))
    return np.array([round(k * size / count) for k in range(count)], dtype=np.int64)


def _extract(
    model: TracedModel,
    source: Any,
    count: int,
    how: str,
    seed: int,
    batch_size: int,
    pool: int,
    dims: Mapping[str, Sequence[int]],
    progress: Progress | None,
    label: str,
) -> tuple[dict[str, list[torch.Tensor]], torch.Tensor]:
    """Feature -> per step [N, D_l] features and the labels [N] of the chosen images."""
    chosen, max_images = _select(source, count, how, seed)
    batches, total = _batches(model, chosen, batch_size, max_images, 0)
    device, dtype = model_device(model), model_dtype(model)
    parts: dict[str, list[list[torch.Tensor]]] = {name: [[] for _ in sizes] for name, sizes in dims.items()}
    labels: list[torch.Tensor] = []
    done = 0
    with evaluation_mode(model), torch.no_grad():
        for images, batch_labels in batches:
            if batch_labels is None:
                raise ValueError(f"probes need integer class labels; the {label} source yields none")
            batch = images.to(device=device, dtype=dtype, memory_format=model.preferred_memory_format)
            for name, steps in _step_features(model, batch, pool, dims).items():
                for store, values in zip(parts[name], steps):
                    store.append(values)
            labels.append(batch_labels.cpu().long())
            done += int(images.shape[0])
            if progress is not None:
                progress(done, int(total or 0), f"{label} features")
    if not labels:
        raise ValueError(f"no {label} images")
    features = {}
    for name, steps in parts.items():
        features[name] = []
        while steps:  # concatenate step by step, freeing each step's batches as it goes
            features[name].append(torch.cat(steps.pop(0)))
    return features, torch.cat(labels)


# ---------------------------------------------------------------------------------------------
# All probes of a model


def _stages(shapes: Sequence[tuple[int, int, int]]) -> tuple[int, ...]:
    stages, current = [], 0
    for index, (_, height, width) in enumerate(shapes):
        if index and (height, width) != shapes[index - 1][1:]:
            current += 1
        stages.append(current)
    return tuple(stages)


def _validation_path(
    features: torch.Tensor,
    labels: torch.Tensor,
    fit_rows: torch.Tensor,
    validation_rows: torch.Tensor,
    grid: Sequence[float],
    num_classes: int,
    max_iterations: int,
) -> tuple[np.ndarray, list[tuple[torch.Tensor, torch.Tensor]]]:
    """Held-out accuracy [G] of the probe at every grid value and the fitted (weight, bias) of each.

    Standardised with the fitting rows' statistics; the grid is walked from the strongest penalty
    down, each fit starting from the previous solution.
    """
    x_fit, x_validation = _standardise(features[fit_rows], features[validation_rows])
    accuracy, solutions = np.zeros(len(grid)), []
    initial = None
    for index, penalty in enumerate(grid):
        initial = _train_logistic(x_fit, labels[fit_rows], num_classes, penalty, max_iterations, initial)
        solutions.append(initial)
        accuracy[index] = float((_predict(x_validation, *initial) == labels[validation_rows]).double().mean())
    return accuracy, solutions


def _final_probe(
    train: torch.Tensor,
    labels_train: torch.Tensor,
    test: torch.Tensor,
    labels_test: torch.Tensor,
    penalty: float,
    num_classes: int,
    max_iterations: int,
    initial: tuple[torch.Tensor, torch.Tensor],
) -> tuple[np.ndarray, float]:
    """(test predictions [M], training accuracy) of the probe refitted on the whole training subset."""
    x_train, x_test = _standardise(train, test)
    weight, bias = _train_logistic(x_train, labels_train, num_classes, penalty, max_iterations, initial)
    train_accuracy = float((_predict(x_train, weight, bias) == labels_train).double().mean())
    return _predict(x_test, weight, bias).numpy(), train_accuracy


def linear_probes(
    model: TracedModel,
    train_source: Any,
    test_source: Any,
    *,
    train_images: int = 2000,
    test_images: int = 1000,
    batch_size: int = 128,
    seed: int = 0,
    progress: Progress | None = None,
    pool: int | None = None,
    regularisation_grid: Sequence[float] = REGULARISATION_GRID,
    max_iterations: int = 50,
    workers: int | None = None,
) -> ProbeResult:
    """Train a linear probe per step on the pooled block output (and on ``h_l``) and score it.

    One pass over each source records only the probe features (``lstm.input`` and
    ``lstm.hidden`` for a CRMN, the block outputs for other models, pooled batch by batch); then
    for every feature and step an L2-penalised multinomial logistic regression is fitted (see the
    module docstring for the features, the choice of ``lambda``, the intervals and the chance level).

    Args:
        model: a classifier with blocks (CRMN, ResNet, RiR; ReNet per layer).
        train_source: labelled images the probes are trained on: a ``Dataset`` of ``(image,
            label)`` (e.g. ``build_dataset("cifar10", "train", train_augment=False)``), a pair of
            tensors ``(images [N, C, H, W], labels [N])``, PIL images with labels in a data set, or
            a ``DataLoader`` (read in order); ``train_images`` of them are drawn at random (seeded).
        test_source: labelled images the probes are scored on (e.g.
            :func:`crmn_viz.views.test_images.test_subset`); ``test_images`` of them, evenly spread.
        train_images: size of the training subset (80% fit / 20% held out to choose ``lambda``).
        test_images: number of test images.
        batch_size: images per forward pass.
        seed: seed of the training subset, the held-out split and the bootstrap draws.
        progress: ``progress(done, total, label)`` after every batch and every fitted probe.
        pool: mean-pool window of a model without memory (default: see :data:`DEFAULT_POOL`).
        regularisation_grid: the ``lambda`` values to choose from.
        max_iterations: L-BFGS iteration cap per fit.
        workers: probes fitted at once, each on one thread (default ``torch.get_num_threads()``).

    Returns:
        A :class:`ProbeResult`.

    Raises:
        ValueError: a keypoint model, a model without blocks, sources without class labels, fewer
            than 5 training images, or an empty grid.
    """
    _check_probe_model(model)
    grid = tuple(sorted((float(value) for value in regularisation_grid), reverse=True))
    if not grid or grid[-1] <= 0:
        raise ValueError(f"regularisation_grid needs positive values, got {list(regularisation_grid)}")
    if batch_size < 1 or train_images < 5 or test_images < 1 or max_iterations < 1:
        raise ValueError("batch_size, test_images and max_iterations must be >= 1 and train_images >= 5")
    pool = _pool_for(model, pool)
    shapes = _block_shapes(model)
    dims = _dims(model, pool, shapes)
    train, y_train = _extract(
        model, train_source, train_images, "random", seed, batch_size, pool, dims, progress, "training"
    )
    test, y_test = _extract(
        model, test_source, test_images, "even", seed, batch_size, pool, dims, progress, "test"
    )
    num_classes = int(model.config.num_outputs)  # type: ignore[attr-defined]
    for name, labels in (("training", y_train), ("test", y_test)):
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise ValueError(f"{name} labels must be in 0..{num_classes - 1}")
    if len(y_train) < 5:
        raise ValueError(f"need at least 5 training images, got {len(y_train)}")

    # the held-out split that chooses lambda (seeded, the same for every feature and step)
    order = np.random.default_rng(seed).permutation(len(y_train))
    held_out = max(1, round(VALIDATION_FRACTION * len(y_train)))
    validation_rows, fit_rows = torch.from_numpy(order[:held_out]), torch.from_numpy(order[held_out:])
    majority = int(torch.bincount(y_train, minlength=num_classes).argmax())
    chance = float((y_test == majority).double().mean())

    steps = len(shapes)
    tasks = [(name, step) for name in dims for step in range(steps)]
    done = [0]

    def report(label: str) -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], 2 * len(tasks), label)

    threads = torch.get_num_threads() if workers is None else int(workers)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(tasks)))) as pool_of_fits:
        # 1. every probe along the grid on 80% of the training subset, scored on the other 20%
        paths = {}
        for (name, step), path in zip(
            tasks,
            pool_of_fits.map(
                lambda task: _validation_path(
                    train[task[0]][task[1]],
                    y_train,
                    fit_rows,
                    validation_rows,
                    grid,
                    num_classes,
                    max_iterations,
                ),
                tasks,
            ),
        ):
            paths[name, step] = path
            report(f"{name} probes (choosing lambda)")
        # 2. one lambda per feature: the best mean held-out accuracy over its steps (first of ties)
        validation = {
            name: np.stack([paths[name, step][0] for step in range(steps)], axis=1) for name in dims
        }
        chosen = {name: int(np.argmax(validation[name].mean(axis=1))) for name in dims}
        # 3. refit on the whole training subset, score on the test images
        finals = {}
        for (name, step), final in zip(
            tasks,
            pool_of_fits.map(
                lambda task: _final_probe(
                    train[task[0]][task[1]],
                    y_train,
                    test[task[0]][task[1]],
                    y_test,
                    grid[chosen[task[0]]],
                    num_classes,
                    max_iterations,
                    paths[task][1][chosen[task[0]]],
                ),
                tasks,
            ),
        ):
            finals[name, step] = final
            report(f"{name} probes")
    result: dict[str, dict[str, Any]] = {}
    for name in dims:
        predictions = np.stack([finals[name, step][0] for step in range(steps)]).astype(np.int64)
        intervals = [
            bootstrap_mean(row == y_test.numpy(), BOOTSTRAP_RESAMPLES, np.random.default_rng(seed))
            for row in predictions
        ]  # the same seeded draws for every probe: paired intervals
        result[name] = {
            "accuracy": np.array([mean for mean, _, _ in intervals]),
            "interval": np.array([(low, high) for _, low, high in intervals]).reshape(steps, 2),
            "train": np.array([finals[name, step][1] for step in range(steps)]),
            "validation": validation[name],
            "lambda": grid[chosen[name]],
            "predictions": predictions,
        }
    return ProbeResult(
        steps=steps,
        feature_names=tuple(dims),
        accuracy={name: entry["accuracy"] for name, entry in result.items()},
        accuracy_ci={name: entry["interval"] for name, entry in result.items()},
        train_accuracy={name: entry["train"] for name, entry in result.items()},
        chance=chance,
        class_names=class_names_for(model),
        train_images=len(y_train),
        test_images=len(y_test),
        regularisation={name: float(entry["lambda"]) for name, entry in result.items()},
        feature_dims={name: tuple(int(d) for d in sizes) for name, sizes in dims.items()},
        validation_accuracy={name: entry["validation"] for name, entry in result.items()},
        regularisation_grid=grid,
        predictions={name: entry["predictions"] for name, entry in result.items()},
        test_labels=y_test.numpy(),
        stages=_stages(shapes),
        chance_rule=f"always the majority class of the training subset ({_class_label(model, majority)})",
        pool=pool,
        seed=seed,
        max_iterations=max_iterations,
    )


def _class_label(model: TracedModel, index: int) -> str:
    names = class_names_for(model)
    return names[index] if 0 <= index < len(names) else f"class {index}"


def probe_summary(result: ProbeResult) -> dict[str, Any]:
    """JSON-ready numbers of a :class:`ProbeResult` (accuracies, intervals, choices), for a data file."""
    return {
        "steps": result.steps,
        "features": list(result.feature_names),
        "accuracy": {name: result.accuracy[name].tolist() for name in result.feature_names},
        "accuracy_ci": {name: result.accuracy_ci[name].tolist() for name in result.feature_names},
        "train_accuracy": {name: result.train_accuracy[name].tolist() for name in result.feature_names},
        "chance": result.chance,
        "chance_rule": result.chance_rule,
        "train_images": result.train_images,
        "test_images": result.test_images,
        "regularisation": dict(result.regularisation),
        "regularisation_grid": list(result.regularisation_grid),
        "feature_dims": {name: list(dims) for name, dims in result.feature_dims.items()},
        "pool": result.pool,
        "seed": result.seed,
        "max_iterations": result.max_iterations,
        "stages": list(result.stages),
    }
