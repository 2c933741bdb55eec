"""Two classifiers on the same images: the CRMN beside its own ResNet (and any matched pair).

The zoo ships matched pairs, a model with a memory (or another addition to the residual
network) and the plain residual network of the same depth and width trained with the same
recipe (:func:`zoo_pairs`). :func:`compare_models` runs both over one data set in a single
streaming pass and keeps, per image, only the true label, each model's predicted class and its
confidence (O(N) small numbers; no logits, no traces), from which it derives:

* each model's accuracy, per class with Wilson score intervals (Wilson 1927);
* the agreement (fraction of images on which the two predict the same class) and the
  agreement matrix (A's prediction x B's prediction counts);
* the 2 x 2 correctness table and the exact McNemar test of "both models are equally accurate"
  (McNemar 1947, in its exact conditional binomial form: Fagerland, Lydersen & Laake 2013,
  "The McNemar test for binary matched-pairs data", BMC Med. Res. Methodol. 13:91);
* a paired percentile bootstrap 95% interval of accuracy A - accuracy B (Efron & Tibshirani
  1993, ch. 13);
* for a model whose output layer can read the memory after every block (the CRMN,
  ``has_stepwise_readout``), the accuracy of that step-wise read-out (:mod:`crmn_viz.analysis.readouts`)
  at every step, from the same pass.

Each model sees the images through its own preprocessing: PIL images go through each model's
own :func:`~crmn_viz.analysis.inputs.preprocessor_for`; tensors that a data set normalised
(``build_dataset`` normalises with the data set's mean/std) are re-normalised to each model's
card when their normalisation is given (``tensor_normalization``), and are otherwise accepted only
when both models' cards normalise alike.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from crmn_viz.analysis.inputs import (
    class_names_for,
    evaluation_mode,
    model_device,
    model_dtype,
    preprocessor_for,
)
from crmn_viz.checkpoints import (
    CheckpointError,
    build_skeleton,
    checkpoint_dir,
    list_checkpoints,
    load_card,
)
from crmn_viz.models.base import TracedModel

__all__ = [
    "DISAGREEMENT_KINDS",
    "Disagreement",
    "ModelComparison",
    "ModelPair",
    "compare_models",
    "exact_mcnemar_p",
    "paired_bootstrap_difference",
    "stepwise_readout_accuracy",
    "summarise_predictions",
    "test_set_comparison",
    "wilson_interval",
    "zoo_pairs",
]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)`` after every batch (``total`` 0 when unknown)."""
Normalization = tuple[Sequence[float], Sequence[float]]
"""``(mean, std)`` per channel on the [0, 1] pixel scale."""

DISAGREEMENT_KINDS = ("any", "a_right", "b_right", "both_wrong")
"""What :meth:`ModelComparison.disagreements` can list: every image on which the two predict
different classes (``"any"``), or one part of them: A right and B wrong, B right and A wrong, or
both wrong with different wrong classes."""

RECIPE_IDENTITY_FIELDS = ("name", "arch", "model", "init_from")
"""Recipe fields that name the model rather than how it was trained; :func:`zoo_pairs` ignores
them (``init_from`` is replaced by the recipe of the checkpoint it names)."""


# --------------------------------------------------------------------------- pairs of the zoo


@dataclasses.dataclass(frozen=True)
class ModelPair:
    """Two zoo checkpoints that differ in the model only.

    Attributes:
        name_a: the model with the addition (a memory, a second stream, ...), e.g. ``"crmn-cifar10"``.
        name_b: the plain residual network it adds to, e.g. ``"resnet-cifar10"``.
        label: what they share, e.g. ``"depth 20, 135 epochs"``.
    """

    name_a: str
    name_b: str
    label: str


def _is_plain_backbone(model: TracedModel) -> bool:
    """A plain residual network: blocks, and none of the additions (memory, sweeps, streams)."""
    return model.block_count > 0 and not (model.has_memory or model.sweep_names or model.stream_names)


def _adds_to_backbone(model: TracedModel) -> bool:
    """A residual network with an addition: a memory over its blocks (CRMN) or a second stream (RiR)."""
    return model.block_count > 0 and (model.has_memory or bool(model.stream_names))


def _recipe_defaults() -> dict[str, Any]:
    """Every recipe field's default (an older card leaves out fields added since)."""
    from crmn_viz.training import TrainRecipe

    defaults = {}
    for field in dataclasses.fields(TrainRecipe):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory()
    return defaults


def _recipe_key(
    name: str, cards: Mapping[str, Mapping[str, Any]], defaults: Mapping[str, Any], seen: tuple[str, ...] = ()
) -> str | None:
    """The checkpoint's training recipe without what names the model, as canonical JSON.

    ``init_from`` (the parent checkpoint a run started from) is replaced by the parent's own key,
    so that two runs continuing two parents trained alike are alike; a parent that is not in the
    folder keeps its name (and so matches nothing). None: the card records no recipe.
    """
    card = cards.get(name)
    training = card.get("training") if card is not None else None
    recipe = training.get("recipe") if isinstance(training, Mapping) else None
    if not isinstance(recipe, Mapping):
        return None
    filled = {**defaults, **recipe}
    parent = filled.get("init_from") or ""
    key: dict[str, Any] = {k: v for k, v in filled.items() if k not in RECIPE_IDENTITY_FIELDS}
    if parent:
        parent_key = None if parent in seen else _recipe_key(parent, cards, defaults, (*seen, name))
        key["parent"] = parent_key if parent_key is not None else {"unresolved": parent}
    key["dataset"] = card.get("dataset", filled.get("dataset"))  # type: ignore[union-attr]
    return json.dumps(key, sort_keys=True, default=str)


def _same_backbone(config_a: Mapping[str, Any], config_b: Mapping[str, Any]) -> bool:
    """Every model option the two configs share has the same value (depth, width, shortcut...)."""
    return all(config_a[key] == config_b[key] for key in set(config_a) & set(config_b))


def _total_epochs(name: str, cards: Mapping[str, Mapping[str, Any]]) -> list[int]:
    """Epochs of the run and of every parent it continued, oldest first."""
    chain: list[int] = []
    while name in cards and len(chain) < 16:
        recipe = cards[name].get("training", {}).get("recipe", {})
        chain.insert(0, int(recipe.get("epochs", 0)))
        name = recipe.get("init_from") or ""
    return chain


def _pair_label(name_b: str, cards: Mapping[str, Mapping[str, Any]]) -> str:
    """``"depth 20, 135 epochs"``; a continued run ``"depth 20, 135 + 35 epochs, SWA"``."""
    card = cards[name_b]
    parts = []
    depth = card.get("config", {}).get("depth")
    if depth is not None:
        parts.append(f"depth {depth}")
    parts.append(" + ".join(str(epochs) for epochs in _total_epochs(name_b, cards)) + " epochs")
    if int(card.get("training", {}).get("recipe", {}).get("swa_from_epoch", 0) or 0) > 0:
        parts.append("SWA")
    return ", ".join(parts)


def zoo_pairs(directory: str | Path | None = None) -> list[ModelPair]:
    """The matched pairs among the checkpoints of a folder (default: the shipped zoo).

    Matching rule: checkpoints A and B form a pair when

    1. both are classifiers of the same data set with the same class names;
    2. B is a plain residual network and A a residual network with an addition, as their
       capabilities say (asked of :func:`build_skeleton`): B has blocks and no memory, recurrent
       sweeps or second stream; A has blocks and a memory over them (the CRMN, ``has_memory``) or
       a second stream (RiR, ``stream_names``);
    3. every model option both configs have is equal (depth, width, shortcut, input size...);
    4. their training recipes (``card["training"]["recipe"]``, missing fields at their
       :class:`~crmn_viz.training.TrainRecipe` defaults) are equal apart from the fields that
       name the model (:data:`RECIPE_IDENTITY_FIELDS`); a run continued from a parent
       (``init_from``) matches only a run continued from a parent that itself matches.

    Checkpoints without a recorded recipe, or whose card fails validation, pair with nothing.

    Returns:
        The pairs sorted by ``name_a`` then ``name_b``; A is the model with the addition.
    """
    folder = Path(directory) if directory is not None else checkpoint_dir()
    entries = list_checkpoints(folder)
    cards: dict[str, dict[str, Any]] = {}
    plain: dict[str, bool] = {}
    extended: dict[str, bool] = {}
    classifier: dict[str, bool] = {}
    for entry in entries:
        try:
            card = load_card(folder / f"{entry['name']}.json")
            skeleton = build_skeleton(card)
        except CheckpointError:
            continue
        cards[entry["name"]] = card
        plain[entry["name"]] = _is_plain_backbone(skeleton)
        extended[entry["name"]] = _adds_to_backbone(skeleton)
        classifier[entry["name"]] = skeleton.task == "classification"
    defaults = _recipe_defaults()
    keys = {name: _recipe_key(name, cards, defaults) for name in cards}
    pairs = []
    for name_a, card_a in cards.items():
        if not extended[name_a] or not classifier[name_a] or keys[name_a] is None:
            continue
        for name_b, card_b in cards.items():
            if (
                plain[name_b]
                and classifier[name_b]
                and keys[name_b] == keys[name_a]
                and card_b.get("dataset") == card_a.get("dataset")
                and card_b.get("class_names") == card_a.get("class_names")
                and _same_backbone(card_a.get("config", {}), card_b.get("config", {}))
            ):
                pairs.append(ModelPair(name_a, name_b, _pair_label(name_b, cards)))
    return sorted(pairs, key=lambda pair: (pair.name_a, pair.name_b))


# --------------------------------------------------------------------------- statistics


def exact_mcnemar_p(only_a_right: int, only_b_right: int) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes.

    Under the null hypothesis that both models are equally accurate, each of the
    ``n = b + c`` discordant images (``b`` = A right and B wrong, ``c`` = B right and A wrong) is
    equally likely to favour either model, so ``b ~ Binomial(n, 1/2)`` and

        p = min(1, 2 * sum_{k=0}^{min(b, c)} C(n, k) / 2^n)

    (McNemar 1947; the exact conditional form, Fagerland, Lydersen & Laake 2013). Computed in
    log space (cumulative sums of log C(n, k)), so it stays finite for millions of images.
    ``n = 0`` gives 1.
    """
    b, c = int(only_a_right), int(only_b_right)
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got {b} and {c}")
    n, smaller = b + c, min(b, c)
    if n == 0:
        return 1.0
    k = np.arange(smaller, dtype=np.float64)
    # log C(n, k) for k = 0..smaller: log C(n, 0) = 0, then log C(n, k+1) = log C(n, k) + log((n-k)/(k+1))
    log_binomial = np.concatenate([[0.0], np.cumsum(np.log(n - k) - np.log(k + 1))])
    log_terms = log_binomial - n * math.log(2.0)
    peak = float(log_terms.max())
    log_tail = peak + math.log(float(np.exp(log_terms - peak).sum()))
    return float(min(1.0, 2.0 * math.exp(log_tail)))


def paired_bootstrap_difference(
    only_a_right: int, only_b_right: int, count: int, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of accuracy A - accuracy B over the same ``count`` images.

    The paired nonparametric bootstrap (Efron & Tibshirani 1993, ch. 13) resamples images with
    replacement and takes the mean of d_i = right_A,i - right_B,i, which is +1 on the ``b``
    images only A gets right, -1 on the ``c`` only B gets right and 0 elsewhere. A resample's mean
    therefore depends only on how many of each it drew, and those counts are
    Multinomial(count, (b, c, count - b - c) / count): drawing them gives exactly the bootstrap
    distribution in O(resamples) memory, whatever the number of images.

    Returns:
        ``(low, high)``: the 2.5th and 97.5th percentiles; both the point difference when
        ``count < 2`` or ``resamples < 1``.
    """
    if count < 1:
        raise ValueError("no images")
    point = (only_a_right - only_b_right) / count
    if count < 2 or resamples < 1:
        return point, point
    probabilities = np.array([only_a_right, only_b_right, count - only_a_right - only_b_right]) / count
    draws = np.random.default_rng(seed).multinomial(count, probabilities, size=resamples)
    differences = (draws[:, 0] - draws[:, 1]) / count
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (Wilson 1927), 95% by default.

        centre = (p + z^2 / 2n) / (1 + z^2 / n),
        half width = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),   p = successes / n.

    ``trials == 0`` gives ``(nan, nan)``.
    """
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    scale = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


# --------------------------------------------------------------------------- the comparison


@dataclasses.dataclass(frozen=True)
class Disagreement:
    """One image on which the two models predict different classes.

    Attributes:
        index: the image's position in the compared data (0-based).
        image: its name (file name inside the data set where known).
        label: the true class index; ``label_name`` its name.
        prediction_a, prediction_b: each model's predicted class index (``name_a``/``name_b``: names).
        confidence_a, confidence_b: each model's softmax probability of its own prediction.
        kind: ``"a_right"``, ``"b_right"`` or ``"both_wrong"``.
    """

    index: int
    image: str
    label: int
    label_name: str
    prediction_a: int
    prediction_name_a: str
    confidence_a: float
    prediction_b: int
    prediction_name_b: str
    confidence_b: float
    kind: str

    @property
    def confidence_gap(self) -> float:
        """|confidence A - confidence B|: how differently sure the two are."""
        return abs(self.confidence_a - self.confidence_b)


@dataclasses.dataclass
class ModelComparison:
    """Two classifiers' predictions on the same N images, and what follows from them.

    Attributes:
        name_a, name_b: the checkpoints (or given names).
        dataset: the data set compared on.
        count: N, the number of images.
        class_names: the C classes (the same for both models).
        labels: true class per image [N] (int64).
        predictions_a, predictions_b: predicted class per image [N] (int64).
        confidence_a, confidence_b: softmax probability of the predicted class [N] (float32).
        image_names: one name per image (N).
        accuracy_a, accuracy_b: fraction of images classified correctly.
        agreement: fraction of images on which both predict the same class.
        accuracy_difference_ci: paired bootstrap 95% interval of ``accuracy_a - accuracy_b``
            (:func:`paired_bootstrap_difference`).
        mcnemar_p: exact McNemar p-value of equal accuracy (:func:`exact_mcnemar_p`).
        per_class: one dict per class: ``{"class", "n", "accuracy_a", "accuracy_b", "interval_a",
            "interval_b"}`` (Wilson 95% intervals; accuracies NaN for a class with no image).
        agreement_matrix: [C, C] counts, row = A's prediction, column = B's prediction.
        correctness: [2, 2] counts, rows A right / wrong, columns B right / wrong.
        stepwise_accuracy_a, stepwise_accuracy_b: [T] accuracy of the step-wise read-out after
            every block, for a model that has one (else None).
        resamples, seed: of the bootstrap.
    """

    name_a: str
    name_b: str
    dataset: str
    count: int
    class_names: list[str]
    labels: np.ndarray
    predictions_a: np.ndarray
    predictions_b: np.ndarray
    confidence_a: np.ndarray
    confidence_b: np.ndarray
    image_names: list[str]
    accuracy_a: float
    accuracy_b: float
    agreement: float
    accuracy_difference_ci: tuple[float, float]
    mcnemar_p: float
    per_class: list[dict[str, Any]]
    agreement_matrix: np.ndarray
    correctness: np.ndarray
    stepwise_accuracy_a: np.ndarray | None = None
    stepwise_accuracy_b: np.ndarray | None = None
    resamples: int = 10_000
    seed: int = 0

    @property
    def accuracy_difference(self) -> float:
        """``accuracy_a - accuracy_b``."""
        return self.accuracy_a - self.accuracy_b

    @property
    def discordant(self) -> tuple[int, int]:
        """(images only A gets right, images only B gets right): McNemar's b and c."""
        return int(self.correctness[0, 1]), int(self.correctness[1, 0])

    def disagreements(self, kind: str = "any") -> list[Disagreement]:
        """The images on which the two predict different classes, the most differently sure first.

        Args:
            kind: one of :data:`DISAGREEMENT_KINDS`; ``"a_right"``, ``"b_right"`` and
                ``"both_wrong"`` partition ``"any"``.

        Returns:
            Sorted by :attr:`Disagreement.confidence_gap`, largest first (ties: by index).
        """
        if kind not in DISAGREEMENT_KINDS:
            raise ValueError(f"kind must be one of {DISAGREEMENT_KINDS}, got {kind!r}")
        right_a = self.predictions_a == self.labels
        right_b = self.predictions_b == self.labels
        differ = self.predictions_a != self.predictions_b
        kinds = np.where(right_a, "a_right", np.where(right_b, "b_right", "both_wrong"))
        chosen = differ if kind == "any" else differ & (kinds == kind)
        indices = np.flatnonzero(chosen)
        gap = np.abs(self.confidence_a[indices].astype(np.float64) - self.confidence_b[indices])
        order = indices[np.lexsort((indices, -gap))]
        names = self.class_names
        return [
            Disagreement(
                index=int(i),
                image=self.image_names[i],
                label=int(self.labels[i]),
                label_name=names[int(self.labels[i])],
                prediction_a=int(self.predictions_a[i]),
                prediction_name_a=names[int(self.predictions_a[i])],
                confidence_a=float(self.confidence_a[i]),
                prediction_b=int(self.predictions_b[i]),
                prediction_name_b=names[int(self.predictions_b[i])],
                confidence_b=float(self.confidence_b[i]),
                kind=str(kinds[i]),
            )
            for i in order
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-image arrays).

        Keys: ``accuracy_a``, ``accuracy_b``, ``agreement``, ``per_class`` (what ``crmn-viz compare
        --json`` writes) and ``name_a``, ``name_b``, ``dataset``, ``count``, ``class_names``,
        ``accuracy_difference``, ``accuracy_difference_ci``, ``mcnemar_p``, ``discordant``,
        ``agreement_matrix``, ``correctness``, ``stepwise_accuracy_a``, ``stepwise_accuracy_b``,
        ``bootstrap`` (NaN becomes null).
        """

        def finite(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        per_class = [
            {
                "class": row["class"],
                "n": int(row["n"]),
                "accuracy_a": finite(row["accuracy_a"]),
                "accuracy_b": finite(row["accuracy_b"]),
                "interval_a": [finite(v) for v in row["interval_a"]],
                "interval_b": [finite(v) for v in row["interval_b"]],
            }
            for row in self.per_class
        ]

        def steps(values: np.ndarray | None) -> list[float] | None:
            return None if values is None else [float(v) for v in values]

        return {
            "accuracy_a": float(self.accuracy_a),
            "accuracy_b": float(self.accuracy_b),
            "agreement": float(self.agreement),
            "per_class": per_class,
            "name_a": self.name_a,
            "name_b": self.name_b,
            "dataset": self.dataset,
            "count": int(self.count),
            "class_names": list(self.class_names),
            "accuracy_difference": float(self.accuracy_difference),
            "accuracy_difference_ci": [float(v) for v in self.accuracy_difference_ci],
            "mcnemar_p": float(self.mcnemar_p),
            "discordant": list(self.discordant),
            "agreement_matrix": self.agreement_matrix.astype(int).tolist(),
            "correctness": self.correctness.astype(int).tolist(),
            "stepwise_accuracy_a": steps(self.stepwise_accuracy_a),
            "stepwise_accuracy_b": steps(self.stepwise_accuracy_b),
            "bootstrap": {"resamples": self.resamples, "seed": self.seed},
        }


def summarise_predictions(
    labels: np.ndarray,
    predictions_a: np.ndarray,
    predictions_b: np.ndarray,
    confidence_a: np.ndarray,
    confidence_b: np.ndarray,
    class_names: Sequence[str],
    *,
    name_a: str = "A",
    name_b: str = "B",
    dataset: str = "",
    image_names: Sequence[str] | None = None,
    stepwise_accuracy_a: np.ndarray | None = None,
    stepwise_accuracy_b: np.ndarray | None = None,
    resamples: int = 10_000,
    seed: int = 0,
) -> ModelComparison:
    """A :class:`ModelComparison` from per-image labels, predictions and confidences [N].

    :func:`compare_models` calls this after its pass; it is public so that predictions made
    elsewhere (another process, a saved run) are summarised the same way.
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions_a = np.asarray(predictions_a, dtype=np.int64)
    predictions_b = np.asarray(predictions_b, dtype=np.int64)
    count, classes = len(labels), len(class_names)
    if count == 0:
        raise ValueError("no images to compare")
    if not (len(predictions_a) == len(predictions_b) == len(confidence_a) == len(confidence_b) == count):
        raise ValueError("labels, predictions and confidences must all have one entry per image")
    for what, values in (
        ("labels", labels),
        ("predictions_a", predictions_a),
        ("predictions_b", predictions_b),
    ):
        if values.min() < 0 or values.max() >= classes:
            raise ValueError(f"{what} must be class indices in 0..{classes - 1}")
    names = list(image_names) if image_names is not None else [f"image {i}" for i in range(count)]
    if len(names) != count:
        raise ValueError(f"{len(names)} image names for {count} images")
    right_a, right_b = predictions_a == labels, predictions_b == labels
    correctness = np.array(
        [
            [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
            [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
        ],
        dtype=np.int64,
    )
    agreement_matrix = np.bincount(predictions_a * classes + predictions_b, minlength=classes * classes)
    per_class_count = np.bincount(labels, minlength=classes)
    per_class_right_a = np.bincount(labels[right_a], minlength=classes)
    per_class_right_b = np.bincount(labels[right_b], minlength=classes)
    per_class = []
    for index, name in enumerate(class_names):
        n = int(per_class_count[index])
        per_class.append(
            {
                "class": str(name),
                "n": n,
                "accuracy_a": per_class_right_a[index] / n if n else float("nan"),
                "accuracy_b": per_class_right_b[index] / n if n else float("nan"),
                "interval_a": wilson_interval(int(per_class_right_a[index]), n),
                "interval_b": wilson_interval(int(per_class_right_b[index]), n),
            }
        )
    only_a, only_b = int(correctness[0, 1]), int(correctness[1, 0])
    return ModelComparison(
        name_a=name_a,
        name_b=name_b,
        dataset=dataset,
        count=count,
        class_names=[str(name) for name in class_names],
        labels=labels,
        predictions_a=predictions_a,
        predictions_b=predictions_b,
        confidence_a=np.asarray(confidence_a, dtype=np.float32),
        confidence_b=np.asarray(confidence_b, dtype=np.float32),
        image_names=names,
        accuracy_a=float(right_a.mean()),
        accuracy_b=float(right_b.mean()),
        agreement=float(np.mean(predictions_a == predictions_b)),
        accuracy_difference_ci=paired_bootstrap_difference(only_a, only_b, count, resamples, seed),
        mcnemar_p=exact_mcnemar_p(only_a, only_b),
        per_class=per_class,
        agreement_matrix=agreement_matrix.reshape(classes, classes),
        correctness=correctness,
        stepwise_accuracy_a=stepwise_accuracy_a,
        stepwise_accuracy_b=stepwise_accuracy_b,
        resamples=resamples,
        seed=seed,
    )


# --------------------------------------------------------------------------- the streaming pass


def _class_label(label: Any) -> int:
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    if isinstance(label, torch.Tensor) and label.dim() == 0 and not label.is_floating_point():
        return int(label)
    raise ValueError(
        f"comparing classifiers needs an integer class label per image, got {type(label).__name__}"
    )


def _collate_labelled(items: list[Any]) -> tuple[torch.Tensor | list[Image.Image], torch.Tensor]:
    """``(image, label, ...)`` items -> (stacked tensors [B, C, H, W] or a list of PIL images, labels [B])."""
    images, labels = [], []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) >= 2):
            raise ValueError("comparing classifiers needs (image, label) items")
        images.append(item[0])
        labels.append(_class_label(item[1]))
    label_tensor = torch.tensor(labels, dtype=torch.long)
    if all(isinstance(image, Image.Image) for image in images):
        return images, label_tensor
    if all(isinstance(image, torch.Tensor) for image in images):
        return torch.stack(images), label_tensor
    raise TypeError("every image of a batch must be a PIL image, or every one a tensor [C, H, W]")


def _labelled_batches(
    source: Any, batch_size: int
) -> tuple[Iterator[tuple[torch.Tensor | list[Image.Image], torch.Tensor]], int]:
    """(iterator of (images, labels [B]), number of images or 0 when unknown)."""
    if (
        isinstance(source, tuple)
        and len(source) == 2
        and all(isinstance(part, torch.Tensor) for part in source)
    ):  # (images [N, C, H, W], labels [N])
        source = TensorDataset(*source)
    if isinstance(source, DataLoader):
        return _loader_batches(source), _length(source.dataset)
    if isinstance(source, Dataset) or (isinstance(source, Sequence) and not isinstance(source, (str, bytes))):
        loader = DataLoader(
            source,  # type: ignore[arg-type]
            batch_size=batch_size,
            shuffle=False,
            collate_fn=_collate_labelled,
        )
        return iter(loader), _length(source)
    raise TypeError(
        "source must be a Dataset or sequence of (image, label) items, a DataLoader of (images, labels) "
        f"batches, or a pair of tensors (images [N, C, H, W], labels [N]); got {type(source).__name__}"
    )


def _length(dataset: Any) -> int:
    try:
        return len(dataset)
    except TypeError:
        return 0


def _loader_batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor | list[Image.Image], torch.Tensor]]:
    for batch in loader:
        if (
            isinstance(batch, (tuple, list))
            and len(batch) >= 2
            and isinstance(batch[0], torch.Tensor)
            and isinstance(batch[1], torch.Tensor)
        ):
            if batch[1].dim() != 1 or batch[1].is_floating_point():
                raise ValueError("comparing classifiers needs integer class labels [B] in every batch")
            yield batch[0], batch[1].long()
        else:  # a loader with a pass-through collate: a list of items
            yield _collate_labelled(list(batch))


class _ModelInputs:
    """Turns one batch of images into one model's input, with that model's own preprocessing.

    PIL images go through the model's :func:`preprocessor_for`. Tensors are taken as normalised
    with ``source`` (``(mean, std)``) and re-normalised to the model's mean/std (left alone when
    they are the same); with ``source=None`` they are taken as the model's input as they are.
    """

    def __init__(self, model: TracedModel, source: Normalization | None) -> None:
        self.model = model
        self.preprocess = preprocessor_for(model)
        self.device, self.dtype = model_device(model), model_dtype(model)
        self.affine: tuple[torch.Tensor, torch.Tensor] | None = None
        if source is not None:
            channels = model.input_shape[0]
            mean_in, std_in = (torch.tensor(tuple(v), dtype=torch.float64) for v in source)
            mean_out = torch.tensor(self.preprocess.mean, dtype=torch.float64)
            std_out = torch.tensor(self.preprocess.std, dtype=torch.float64)
            if not (len(mean_in) == len(std_in) == channels):
                raise ValueError(
                    f"tensor_normalization must give {channels} means and stds, "
                    f"got {len(mean_in)} and {len(std_in)}"
                )
            if not (torch.allclose(mean_in, mean_out) and torch.allclose(std_in, std_out)):
                # x_model = (x_in * std_in + mean_in - mean_out) / std_out = x_in * scale + shift
                scale = (std_in / std_out).float()[:, None, None]
                shift = ((mean_in - mean_out) / std_out).float()[:, None, None]
                self.affine = (scale, shift)

    def __call__(self, images: torch.Tensor | list[Image.Image]) -> torch.Tensor:
        if isinstance(images, list):
            batch = self.preprocess(images)
        else:
            batch = images.float()
            if self.affine is not None:
                batch = batch * self.affine[0] + self.affine[1]
        return batch.to(
            device=self.device, dtype=self.dtype, memory_format=self.model.preferred_memory_format
        )


@dataclasses.dataclass
class _Predictions:
    """What one model's pass keeps: per-image predictions and confidences, per-step right counts."""

    predictions: list[torch.Tensor] = dataclasses.field(default_factory=list)
    confidences: list[torch.Tensor] = dataclasses.field(default_factory=list)
    step_right: torch.Tensor | None = None

    def add(self, model: TracedModel, batch: torch.Tensor, labels: torch.Tensor, stepwise: bool) -> None:
        """Run ``model`` on ``batch`` (eval, no_grad by the caller) and keep the small results."""
        if stepwise:
            output, trace = model.run_with_trace(batch, names=["lstm.hidden", "pooled"])
            step_outputs = model.head(trace["lstm.hidden"], trace["pooled"])  # type: ignore[operator]  # [B, T, C]
            right = (step_outputs.argmax(dim=-1).cpu() == labels[:, None]).sum(dim=0)
            self.step_right = right if self.step_right is None else self.step_right + right
        else:
            output = model(batch)
        confidence, prediction = torch.softmax(output.float(), dim=-1).max(dim=-1)
        self.predictions.append(prediction.cpu())
        self.confidences.append(confidence.cpu())

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return torch.cat(self.predictions).numpy(), torch.cat(self.confidences).numpy()


def _model_name(model: TracedModel, given: str, fallback: str) -> str:
    if given:
        return given
    identity = getattr(model, "checkpoint", None)
    name = getattr(identity, "name", None)
    return str(name) if name else f"{fallback} ({model.arch})"


def _card_dataset(model: TracedModel) -> str | None:
    card = getattr(model, "card", None)
    value = card.get("dataset") if isinstance(card, Mapping) else None
    return value if isinstance(value, str) else None


def _check_comparable(model_a: TracedModel, model_b: TracedModel) -> list[str]:
    """The shared class names; ValueError when the two cannot be compared on the same images."""
    for label, model in (("A", model_a), ("B", model_b)):
        if model.task != "classification":
            raise ValueError(f"model {label} predicts {model.task}: only classifiers can be compared")
    names_a, names_b = class_names_for(model_a), class_names_for(model_b)
    if names_a != names_b:
        raise ValueError(
            f"the two models classify into different classes: A {names_a[:10]} vs B {names_b[:10]}"
        )
    return names_a


def _check_same_tensor_input(model_a: TracedModel, model_b: TracedModel) -> None:
    """Without ``tensor_normalization`` one tensor feeds both models: their inputs must agree."""
    first, second = preprocessor_for(model_a), preprocessor_for(model_b)
    if model_a.input_shape != model_b.input_shape:
        raise ValueError(
            f"the models expect different inputs ({model_a.input_shape} vs {model_b.input_shape}): "
            "give PIL images, which each model resizes with its own preprocessing"
        )
    if not (np.allclose(first.mean, second.mean) and np.allclose(first.std, second.std)):
        raise ValueError(
            "the data set yields normalised tensors, but the two models normalise differently (A: mean "
            f"{first.mean}, std {first.std}; B: mean {second.mean}, std {second.std}); pass "
            "tensor_normalization=(mean, std) of the tensors so that each model gets its own, or PIL images"
        )


def compare_models(
    model_a: TracedModel,
    model_b: TracedModel,
    source: Any,
    *,
    image_names: Sequence[str] | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    name_a: str = "",
    name_b: str = "",
    dataset: str = "",
    tensor_normalization: Normalization | None = None,
    stepwise: bool = True,
    resamples: int = 10_000,
    seed: int = 0,
) -> ModelComparison:
    """Run two classifiers over the same labelled images in one pass and compare them.

    Each batch is read once and given to both models (eval mode, ``torch.no_grad()``), each in
    its own preprocessing; only per-image labels, predicted classes and confidences are kept, so
    memory grows by a few bytes per image.

    Args:
        model_a, model_b: classifiers with the same class names (A: e.g. the CRMN, B: its ResNet).
        source: a ``Dataset`` (or sequence) of ``(image, label)`` items, images PIL or tensors
            [C, H, W]; a ``DataLoader`` of ``(images [B, C, H, W], labels [B])`` batches; or a pair
            of tensors ``(images [N, C, H, W], labels [N])``.
        image_names: one name per image (default ``"image <index>"``).
        batch_size: images per forward pass (ignored for a ``DataLoader``).
        progress: ``progress(done, total, label)`` after every batch.
        name_a, name_b: names to report (default: the checkpoint names).
        dataset: the data set's name to report (default: the cards' data set when both agree).
        tensor_normalization: ``(mean, std)`` the source's tensors were normalised with
            (:func:`crmn_viz.data.dataset_info`'s for ``build_dataset``; ``((0,)*C, (1,)*C)`` for
            pixels in [0, 1]); each model then gets them re-normalised to its own card. None:
            tensors go to both models unchanged, which needs the two cards to normalise alike.
        stepwise: also count, per step, how often the step-wise read-out of a model that has one
            is right (``has_stepwise_readout``; costs recording ``lstm.hidden`` and ``pooled``).
        resamples, seed: of the paired bootstrap of the accuracy difference.

    Returns:
        :class:`ModelComparison`.

    Raises:
        ValueError: a model is not a classifier, the class names differ, the tensors cannot feed
            both models, the source has no integer labels, or it is empty.
    """
    class_names = _check_comparable(model_a, model_b)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    inputs_a = _ModelInputs(model_a, tensor_normalization)
    inputs_b = _ModelInputs(model_b, tensor_normalization)
    stepwise_a = stepwise and model_a.has_stepwise_readout
    stepwise_b = stepwise and model_b.has_stepwise_readout
    name_a, name_b = _model_name(model_a, name_a, "model A"), _model_name(model_b, name_b, "model B")
    if not dataset and _card_dataset(model_a) == _card_dataset(model_b):
        dataset = _card_dataset(model_a) or ""
    batches, total = _labelled_batches(source, batch_size)
    kept_a, kept_b, labels = _Predictions(), _Predictions(), []
    checked_tensor_input = tensor_normalization is not None
    done = 0
    with evaluation_mode(model_a), evaluation_mode(model_b), torch.no_grad():
        for images, batch_labels in batches:
            if isinstance(images, torch.Tensor) and not checked_tensor_input:
                _check_same_tensor_input(model_a, model_b)
                checked_tensor_input = True
            kept_a.add(model_a, inputs_a(images), batch_labels, stepwise_a)
            kept_b.add(model_b, inputs_b(images), batch_labels, stepwise_b)
            labels.append(batch_labels)
            done += len(batch_labels)
            if progress is not None:
                progress(done, total, f"comparing {name_a} with {name_b}")
    if not labels:
        raise ValueError("no images to compare")
    predictions_a, confidence_a = kept_a.arrays()
    predictions_b, confidence_b = kept_b.arrays()
    all_labels = torch.cat(labels).numpy()
    count = len(all_labels)
    return summarise_predictions(
        all_labels,
        predictions_a,
        predictions_b,
        confidence_a,
        confidence_b,
        class_names,
        name_a=name_a,
        name_b=name_b,
        dataset=dataset,
        image_names=image_names,
        stepwise_accuracy_a=None if kept_a.step_right is None else kept_a.step_right.numpy() / count,
        stepwise_accuracy_b=None if kept_b.step_right is None else kept_b.step_right.numpy() / count,
        resamples=resamples,
        seed=seed,
    )


def test_set_comparison(
    model_a: TracedModel,
    model_b: TracedModel,
    dataset: str,
    count: int | None = None,
    data_dir: str | Path | None = None,
    progress: Progress | None = None,
    *,
    batch_size: int = 256,
    name_a: str = "",
    name_b: str = "",
) -> ModelComparison:
    """:func:`compare_models` on ``count`` test images spread evenly over the test split.

    The images are :func:`crmn_viz.views.test_images.test_subset`'s (named by
    :func:`~crmn_viz.views.test_images.test_image_names`, e.g. ``test/cat/0001.jpg``); the data
    set normalises them with its own mean/std, and each model gets them re-normalised to its own
    card's. ``count=None`` compares on the whole test split.

    Raises:
        ValueError: the models' class names are not the data set's (when it states them), or as
            :func:`compare_models`.
        crmn_viz.data.DatasetNotFoundError: the data is not on disk.
    """
    from crmn_viz.data import dataset_info
    from crmn_viz.views.test_images import test_image_names, test_subset

    info = dataset_info(dataset, data_dir if dataset.lower() == "imagefolder" else None)
    class_names = _check_comparable(model_a, model_b)
    if info.class_names is not None and list(info.class_names) != class_names:
        raise ValueError(
            f"the models' classes {class_names[:10]} are not {dataset}'s {list(info.class_names)[:10]}"
        )
    subset = test_subset(
        dataset, count if count is not None else sys.maxsize, data_dir
    )  # clamped to the split
    return compare_models(
        model_a,
        model_b,
        subset,
        image_names=test_image_names(subset),
        batch_size=batch_size,
        progress=progress,
        name_a=name_a,
        name_b=name_b,
        dataset=dataset,
        tensor_normalization=(info.mean, info.std),
    )


test_set_comparison.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


def stepwise_readout_accuracy(
    model: TracedModel,
    source: Any,
    *,
    batch_size: int = 256,
    tensor_normalization: Normalization | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Accuracy over labelled images of the CRMN's prediction decoded after every block.

    The batched form of :func:`crmn_viz.analysis.readouts.stepwise_readout`: each batch records
    only ``lstm.hidden`` [B, T, H] and ``pooled`` [B, C] and applies the output layer
    ``model.head`` to every step's hidden state h_l ("iterative inference"); the last step is the
    model's own output, so its accuracy is the model's.

    Args:
        model: a classifier with ``has_stepwise_readout`` (the CRMN).
        source: as :func:`compare_models`'s.
        tensor_normalization: ``(mean, std)`` the source's tensors were normalised with (then
            re-normalised to the model's card); None: they are the model's input as they are.

    Returns:
        [T] accuracies in [0, 1], one per step (= residual block).

    Raises:
        ValueError: the model has no step-wise read-out, is not a classifier, or there are no images.
    """
    if not model.has_stepwise_readout:
        raise ValueError(
            f"a {model.arch!r} model has no step-wise read-out: only a model whose output layer can read "
            "its memory after every block (the CRMN) has one"
        )
    if model.task != "classification":
        raise ValueError(f"accuracy needs a classifier; this model predicts {model.task}")
    inputs = _ModelInputs(model, tensor_normalization)
    batches, total = _labelled_batches(source, batch_size)
    kept, done = _Predictions(), 0
    with evaluation_mode(model), torch.no_grad():
        for images, labels in batches:
            kept.add(model, inputs(images), labels, True)
            done += len(labels)
            if progress is not None:
                progress(done, total, "step-wise read-out")
    if kept.step_right is None or done == 0:
        raise ValueError("no images")
    return kept.step_right.numpy() / done
