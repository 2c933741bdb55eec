"""Can a method's maps be trusted for this model and target? Faithfulness and randomisation
checks of one image, and the same checks over many images with bootstrap intervals.

For one image and one method, :func:`check_image` computes the attribution map and

* its deletion and insertion curves (Petsiuk et al. 2018; :func:`crmn_viz.analysis.faithfulness.faithfulness`)
  with their areas under the curve, beside the curves of a seeded random attribution of the same
  shape (the reference a map must beat: deletion lower, insertion higher);
* optionally, the Spearman rank correlation of |map| between the trained model and the model
  with every parameter group randomised (the last stage of the cascading model-parameter
  randomisation test of Adebayo et al. 2018; :func:`crmn_viz.analysis.sanity_checks.sanity_check`).
  A map that depends on what the model learned drops towards 0; one that survives full
  randomisation (near 1) is explaining the image, not the model.

:func:`trust_table` runs :func:`check_image` over many images for several methods and summarises
each method with bootstrap 95% intervals (:func:`crmn_viz.analysis.bootstrap.bootstrap_mean`),
paired against the random attribution on the same images. Which method is *most faithful* is
decided by the mean of ``insertion AUC - deletion AUC`` per image (higher is better; both curves
measured on the same score, e.g. the class probability): the method with the highest mean, and
whether its paired interval against the runner-up excludes 0 (if not, the table says the two
cannot be told apart on these images).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from crmn_viz.analysis.attributions import AttributionTarget, attribute
from crmn_viz.analysis.bootstrap import bootstrap_mean
from crmn_viz.analysis.faithfulness import deletion_and_insertion, random_attribution
from crmn_viz.analysis.inputs import ImageBatch
from crmn_viz.models.base import TracedModel

__all__ = [
    "MethodSummary",
    "TrustRow",
    "TrustTable",
    "check_image",
    "trust_table",
    "trust_table_from_rows",
]

Interval = tuple[float, float, float]
"""``(mean, low, high)``: a mean over images and its bootstrap 95% interval."""


@dataclasses.dataclass(frozen=True)
class TrustRow:
    """The checks of one method's map of one image (the rows ``crmn-viz attribution-check`` writes).

    Attributes:
        image: the image's name (file name, or the member name inside a data set's archive).
        method: the attribution method.
        target: what was attributed, e.g. ``"logit of class 3 (cat)"``.
        deletion_auc, insertion_auc: areas under the map's deletion and insertion curves.
        random_deletion_auc, random_insertion_auc: the same for a seeded random map.
        randomisation_similarity: Spearman correlation of |map| between the trained and the fully
            randomised model (cascading test, last stage); None when not computed.
    """

    image: str
    method: str
    target: str
    deletion_auc: float
    insertion_auc: float
    random_deletion_auc: float
    random_insertion_auc: float
    randomisation_similarity: float | None

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict with exactly the fields above."""
        return dataclasses.asdict(self)


def check_image(
    model: TracedModel,
    image: ImageBatch,
    method: str,
    target: AttributionTarget = None,
    *,
    name: str = "image",
    steps: int = 32,
    seed: int = 0,
    randomisation: bool = True,
    options: dict[str, Any] | None = None,
) -> TrustRow:
    """Faithfulness (and, with ``randomisation``, the full-randomisation similarity) of one map.

    Args:
        model: any crmn-viz model.
        image: one PIL image or normalised tensor [C, H, W].
        method: an attribution method (:data:`crmn_viz.analysis.ATTRIBUTION_METHODS`).
        target: as :func:`crmn_viz.attribute` (None: the predicted class).
        name: how the row names the image.
        steps: points of each faithfulness curve beyond the first.
        seed: seeds the random attribution and the randomised weights.
        randomisation: also run the cascading randomisation test (one attribution per stage).
        options: the method's options (see :func:`crmn_viz.attribute`).
    """
    options = dict(options or {})
    result = attribute(model, image, method, target, **options)
    resolved = result.resolved_target
    reference = random_attribution(np.shape(result.map), seed=seed)
    curves = {}
    for source, values in (("map", result.map), ("random", reference)):
        pair = deletion_and_insertion(model, image, values, resolved, steps=steps)  # one batch each
        curves["deletion", source], curves["insertion", source] = pair
    similarity = None
    if randomisation:
        from crmn_viz.analysis.sanity_checks import sanity_check

        check = sanity_check(model, image, method, resolved, mode="cascading", seed=seed, **options)
        similarity = float(check.spearman[-1])
    return TrustRow(
        image=name,
        method=method,
        target=result.target,
        deletion_auc=curves["deletion", "map"].auc,
        insertion_auc=curves["insertion", "map"].auc,
        random_deletion_auc=curves["deletion", "random"].auc,
        random_insertion_auc=curves["insertion", "random"].auc,
        randomisation_similarity=similarity,
    )


@dataclasses.dataclass(frozen=True)
class MethodSummary:
    """One method over the images: means with bootstrap 95% intervals ``(mean, low, high)``.

    Attributes:
        deletion_gain: random deletion AUC - the map's (paired; > 0: the map finds what matters).
        insertion_gain: the map's insertion AUC - random's (paired; > 0 is better than random).
        faithfulness: insertion AUC - deletion AUC per image (the ranking score).
        randomisation_similarity: None when the randomisation test was not run.
    """

    method: str
    images: int
    deletion_auc: Interval
    insertion_auc: Interval
    random_deletion_auc: Interval
    random_insertion_auc: Interval
    deletion_gain: Interval
    insertion_gain: Interval
    faithfulness: Interval
    randomisation_similarity: Interval | None

    @property
    def beats_random(self) -> bool:
        """Both paired intervals against the random map exclude 0 on the good side."""
        return self.deletion_gain[1] > 0 and self.insertion_gain[1] > 0


@dataclasses.dataclass(frozen=True)
class TrustTable:
    """Every method's checks over the same images.

    Attributes:
        rows: one :class:`TrustRow` per image and method (image-major).
        summaries: one :class:`MethodSummary` per method, in the order asked.
        most_faithful: the method with the highest mean ``insertion - deletion`` AUC.
        separated: whether its paired 95% interval against the runner-up excludes 0 (False with
            one method).
        steps, resamples, seed: how the curves and intervals were made.
    """

    rows: list[TrustRow]
    summaries: list[MethodSummary]
    most_faithful: str
    separated: bool
    steps: int
    resamples: int
    seed: int

    @property
    def verdict(self) -> str:
        """One sentence for a front end: which method is most faithful here, and how sure."""
        return self.describe()

    def describe(self, labels: Mapping[str, str] | None = None) -> str:
        """:attr:`verdict` with the methods named by ``labels`` (default: their keys)."""
        labels = dict(labels or {})

        def name(method: str) -> str:
            return labels.get(method, method)

        best = next(s for s in self.summaries if s.method == self.most_faithful)
        images = best.images
        if len(self.summaries) == 1:
            sentence = f"{name(best.method)} on {images} image{'s' * (images != 1)}"
        elif self.separated:
            sentence = (
                f"Most faithful on these {images} images: {name(best.method)} (its insertion - deletion AUC "
                "is higher than every other method's, paired 95% interval excluding 0)"
            )
        else:
            sentence = (
                f"Highest mean insertion - deletion AUC on these {images} images: {name(best.method)}, "
                "but the paired 95% interval against the runner-up includes 0: more images are needed "
                "to tell them apart"
            )
        beaten = [name(s.method) for s in self.summaries if not s.beats_random]
        if beaten:
            sentence += f". Not clearly better than a random map: {', '.join(beaten)}"
        return sentence + "."

    def to_rows(self) -> list[dict[str, Any]]:
        """Every per-image row as a JSON-ready dict."""
        return [row.to_dict() for row in self.rows]


def trust_table(
    model: TracedModel,
    images: Sequence[tuple[str, ImageBatch]],
    methods: Sequence[str],
    target: AttributionTarget = None,
    *,
    steps: int = 32,
    seed: int = 0,
    resamples: int = 1000,
    randomisation: bool = False,
    options: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> TrustTable:
    """:func:`check_image` for every ``(name, image)`` and method, summarised per method.

    Args:
        images: named images (PIL or normalised [C, H, W] tensors).
        methods: attribution methods, in the order the table lists them.
        target: one target for every image (None: each image's predicted class).
        options: per method, its options for :func:`crmn_viz.attribute`.
        progress: ``progress(done, total, label)`` after every image and method.

    Raises:
        ValueError: no images or no methods.
    """
    if not images:
        raise ValueError("trust_table needs at least one image")
    if not methods:
        raise ValueError("trust_table needs at least one attribution method")
    options = options or {}
    rows: list[TrustRow] = []
    total = len(images) * len(methods)
    for name, image in images:
        for method in methods:
            rows.append(
                check_image(
                    model,
                    image,
                    method,
                    target,
                    name=name,
                    steps=steps,
                    seed=seed,
                    randomisation=randomisation,
                    options=options.get(method),
                )
            )
            if progress is not None:
                progress(len(rows), total, f"{method} on {name}")
    return trust_table_from_rows(rows, methods, steps, resamples, seed)


def trust_table_from_rows(
    rows: Sequence[TrustRow], methods: Sequence[str], steps: int, resamples: int = 1000, seed: int = 0
) -> TrustTable:
    """Summarise per-image rows (e.g. read back from ``crmn-viz attribution-check --json``).

    Args:
        rows: :class:`TrustRow` of the same images for every method, image-major.
        methods: the methods, in the order the table lists them (each must have rows).
        steps: the curves' steps (recorded); resamples, seed: of the bootstrap.

    Raises:
        ValueError: a method without rows, or methods with different images.
    """
    chosen = {method: [r for r in rows if r.method == method] for method in methods}
    empty = [method for method, found in chosen.items() if not found]
    if empty:
        raise ValueError(f"no rows for {empty}")
    images = {method: [r.image for r in found] for method, found in chosen.items()}
    if len({tuple(names) for names in images.values()}) != 1:
        raise ValueError("every method must have rows for the same images, in the same order")
    summaries = [_summary(method, chosen[method], resamples, seed) for method in methods]
    ranking = sorted(summaries, key=lambda s: s.faithfulness[0], reverse=True)
    separated = False
    if len(ranking) > 1:
        first, second = chosen[ranking[0].method], chosen[ranking[1].method]
        gap = np.array([_faithfulness(a) - _faithfulness(b) for a, b in zip(first, second)])
        separated = bootstrap_mean(gap, resamples, np.random.default_rng(seed))[1] > 0
    return TrustTable(list(rows), summaries, ranking[0].method, bool(separated), steps, resamples, seed)


def _faithfulness(row: TrustRow) -> float:
    return row.insertion_auc - row.deletion_auc


def _summary(method: str, rows: Sequence[TrustRow], resamples: int, seed: int) -> MethodSummary:
    """Bootstrap intervals of every column; one seed, so every interval resamples the same images."""

    def interval(values: Sequence[float]) -> Interval:
        return bootstrap_mean(np.asarray(values, dtype=np.float64), resamples, np.random.default_rng(seed))

    similarity = [r.randomisation_similarity for r in rows]
    return MethodSummary(
        method=method,
        images=len(rows),
        deletion_auc=interval([r.deletion_auc for r in rows]),
        insertion_auc=interval([r.insertion_auc for r in rows]),
        random_deletion_auc=interval([r.random_deletion_auc for r in rows]),
        random_insertion_auc=interval([r.random_insertion_auc for r in rows]),
        deletion_gain=interval([r.random_deletion_auc - r.deletion_auc for r in rows]),
        insertion_gain=interval([r.insertion_auc - r.random_insertion_auc for r in rows]),
        faithfulness=interval([_faithfulness(r) for r in rows]),
        randomisation_similarity=None
        if any(s is None for s in similarity)
        else interval([float(s) for s in similarity]),  # type: ignore[arg-type]
    )
