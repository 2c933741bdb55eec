"""Unit x class selectivity: the index against hand computation, stratified bootstrap intervals,
unit orderings, dropped labels, and a class-selective unit planted in a tiny CRMN."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import pytest
import torch

from crmn_viz.analysis.selectivity import (
    selectivity_from_table,
    selectivity_index,
    unit_order,
    unit_selectivity,
)
from tests.conftest import tiny_model

NAMES = ["a", "b", "c"]


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """Two images per class; unit 0 as below, unit 1 = 10 * unit 0 - 3, unit 2 = -unit 0."""
    labels = np.array([0, 0, 1, 1, 2, 2])
    unit = np.array([1.0, 3.0, 5.0, 7.0, 0.0, 2.0])
    return np.stack([unit, 10 * unit - 3, -unit], axis=1), labels


def test_index_matches_d_prime_computed_by_hand() -> None:
    values, labels = hand_made()
    result = unit_selectivity(values, labels, NAMES, bootstrap=0)
    # unit 0: class means 2, 6, 1 -> preferred b; others' mean (2 + 1) / 2 = 1.5; within-class
    # squared deviations 1 + 1 per class = 6 over N - C = 3 degrees of freedom -> s = sqrt(2)
    np.testing.assert_allclose(result.class_means[0], [2.0, 6.0, 1.0])
    assert result.preferred_class[0] == 1
    assert result.selectivity[0] == pytest.approx(4.5 / math.sqrt(2))
    # scale-free: 10 x - 3 has the same index and preference
    assert result.selectivity[1] == pytest.approx(4.5 / math.sqrt(2))
    assert result.preferred_class[1] == 1
    # signed values: -x has means -2, -6, -1 -> prefers c; others' mean -4; (-1 + 4) / sqrt(2)
    assert result.preferred_class[2] == 2
    assert result.selectivity[2] == pytest.approx(3 / math.sqrt(2))
    assert result.count == 6
    np.testing.assert_array_equal(result.class_counts, [2, 2, 2])
    # no resamples: the intervals are the estimates themselves
    np.testing.assert_allclose(result.selectivity_ci, np.repeat(result.selectivity[:, None], 2, axis=1))


def test_most_selective_lists_units_in_descending_index_with_class_names() -> None:
    values, labels = hand_made()
    result = unit_selectivity(values, labels, NAMES, bootstrap=0)
    top = result.most_selective(2)
    assert [unit for unit, _, _ in top] == [0, 1]  # tied: the lower unit first
    assert top[0][1] == "b"
    assert top[0][2] == pytest.approx(result.selectivity[0])
    assert [unit for unit, _, _ in result.most_selective(10)] == [0, 1, 2]


def test_a_constant_unit_has_index_0_and_a_class_determined_unit_infinity() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    constant = np.full(6, 0.7)
    determined = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])  # no spread within a class
    noisy = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 0.3])
    values = np.stack([constant, determined, noisy, constant], axis=1)
    for ordering in ("cluster", "selectivity"):
        result = unit_selectivity(values, labels, NAMES, bootstrap=50, ordering=ordering)
        assert result.selectivity[0] == 0.0
        assert result.selectivity[1] == np.inf
        assert sorted(result.order.tolist()) == [0, 1, 2, 3]


def test_images_of_unknown_label_are_dropped() -> None:
    values, labels = hand_made()
    unknown = np.array([[100.0, -50.0, 7.0], [-80.0, 20.0, 3.0]])
    with_unknown = unit_selectivity(
        np.concatenate([values, unknown]), np.concatenate([labels, [-1, -1]]), NAMES, bootstrap=100, seed=4
    )
    without = unit_selectivity(values, labels, NAMES, bootstrap=100, seed=4)
    assert with_unknown.count == 6
    np.testing.assert_allclose(with_unknown.class_means, without.class_means)
    np.testing.assert_allclose(with_unknown.selectivity, without.selectivity)
    np.testing.assert_allclose(with_unknown.selectivity_ci, without.selectivity_ci)


def test_a_class_without_images_is_kept_as_nan_and_left_out_of_the_index() -> None:
    values, labels = hand_made()
    names = [*NAMES, "empty"]
    result = unit_selectivity(values, labels, names, bootstrap=20)
    assert result.empty_classes == ["empty"]
    assert result.class_counts[3] == 0
    assert np.isnan(result.class_means[:, 3]).all()
    assert np.isnan(result.class_mean_ci[:, 3]).all()
    assert result.preferred_class[0] == 1
    assert result.selectivity[0] == pytest.approx(4.5 / math.sqrt(2))  # as with three classes


def test_bad_inputs_are_refused() -> None:
    values, labels = hand_made()
    with pytest.raises(ValueError, match="labels"):
        unit_selectivity(values, np.array([0, 0, 1, 1, 2, 3]), NAMES)
    with pytest.raises(ValueError, match="finite"):
        unit_selectivity(np.where(values > 6, np.nan, values), labels, NAMES)
    with pytest.raises(ValueError, match=r"\[N, U\]"):
        unit_selectivity(values[:4], labels, NAMES)
    with pytest.raises(ValueError, match="ordering"):
        unit_selectivity(values, labels, NAMES, ordering="alphabetical")  # type: ignore[arg-type]


def test_bootstrap_intervals_cover_the_true_class_means_about_95_percent_of_the_time() -> None:
    # 300 independent units (independent experiments), N(true mean, 1) in 3 classes of 60 images
    rng = np.random.default_rng(11)
    per_class, units = 60, 300
    labels = np.repeat(np.arange(3), per_class)
    true = rng.normal(0.0, 1.0, size=(units, 3))
    values = true[:, labels].T + rng.normal(size=(3 * per_class, units))
    result = unit_selectivity(values, labels, NAMES, bootstrap=400, seed=1, ordering="selectivity")
    low, high = result.class_mean_ci[..., 0], result.class_mean_ci[..., 1]
    coverage = float(((low <= true) & (true <= high)).mean())
    assert 0.91 <= coverage <= 0.98
    # the interval's width is about 2 x 1.96 standard errors
    np.testing.assert_allclose(np.median(high - low), 2 * 1.96 / math.sqrt(per_class), rtol=0.1)


def test_the_bootstrap_is_stratified_and_seeded() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 30 + [2])  # class c: one image
    values = rng.normal(size=(61, 4))
    result = unit_selectivity(values, labels, NAMES, bootstrap=200, seed=3)
    # stratified: every resample holds class c's one image, so its mean never moves
    np.testing.assert_array_equal(result.class_mean_ci[:, 2, 0], values[60])
    np.testing.assert_array_equal(result.class_mean_ci[:, 2, 1], values[60])
    assert (result.class_mean_ci[:, 0, 1] > result.class_mean_ci[:, 0, 0]).all()
    again = unit_selectivity(values, labels, NAMES, bootstrap=200, seed=3)
    other = unit_selectivity(values, labels, NAMES, bootstrap=200, seed=4)
    np.testing.assert_array_equal(result.selectivity_ci, again.selectivity_ci)
    assert not np.array_equal(result.selectivity_ci, other.selectivity_ci)
    assert (result.selectivity_ci[:, 0] <= result.selectivity_ci[:, 1]).all()


def test_bootstrap_resamples_equal_a_loop_over_explicit_resamples() -> None:
    """The vectorised resampling gives exactly the class means of resampled image sets."""
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(3), 8)
    values = rng.normal(size=(24, 2))
    result = unit_selectivity(values, labels, NAMES, bootstrap=64, seed=9)
    generator = np.random.default_rng(9)  # the same draws, class by class, as the code documents
    draws = [generator.integers(0, 8, size=(64, 8)) for _ in range(3)]
    means = np.stack([values[labels == c][draws[c]].mean(axis=1) for c in range(3)], axis=-1)  # [B, U, C]
    within = sum(((values[labels == c][draws[c]] - means[:, None, :, c]) ** 2).sum(axis=1) for c in range(3))
    index = selectivity_index(means, np.sqrt(within / (24 - 3)), result.preferred_class)
    np.testing.assert_allclose(
        result.class_mean_ci, np.moveaxis(np.percentile(means, [2.5, 97.5], axis=0), 0, -1), atol=1e-6
    )
    np.testing.assert_allclose(result.selectivity_ci, np.percentile(index, [2.5, 97.5], axis=0).T, atol=1e-5)


def test_a_thousand_resamples_of_ten_thousand_images_take_a_few_seconds_at_most() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=10_000)
    values = rng.normal(size=(10_000, 100)).astype(np.float32)
    start = time.perf_counter()
    result = unit_selectivity(values, labels, list("abcdefghij"), bootstrap=1000, ordering="selectivity")
    assert time.perf_counter() - start < 8.0  # ~1 s on two busy cores; a loop over resamples: minutes
    assert result.selectivity_ci.shape == (100, 2)


def test_selectivity_ordering_is_descending_and_nan_last() -> None:
    means = np.zeros((4, 3))
    index = np.array([0.5, np.nan, 2.0, 1.0])
    assert unit_order(means, index, "selectivity").tolist() == [2, 3, 0, 1]


def test_cluster_ordering_puts_units_of_the_same_preference_together() -> None:
    rng = np.random.default_rng(2)
    preference = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])  # interleaved on purpose
    means = np.eye(3)[preference] * rng.uniform(1, 3, size=(12, 1)) + 0.05 * rng.normal(size=(12, 3))
    order = unit_order(means, np.zeros(12), "cluster")
    assert sorted(order.tolist()) == list(range(12))
    groups = preference[order]
    assert (np.diff(groups) != 0).sum() == 2  # three runs: each preference contiguous
    # constant profiles (e.g. a saturated gate) and an empty class do not break the tree
    flat = np.concatenate([means, np.ones((3, 3))])
    flat = np.concatenate([flat, np.full((15, 1), np.nan)], axis=1)
    assert sorted(unit_order(flat, np.zeros(15), "cluster").tolist()) == list(range(15))


class FakeQuantity:
    def __init__(self, units: list[int]) -> None:
        self.units = units


class FakeTable:
    """What :func:`selectivity_from_table` reads of a PopulationTable."""

    def __init__(self, values: np.ndarray, labels: np.ndarray, units: list[int]) -> None:
        self._values = values
        self.labels = labels
        self.class_names = NAMES
        self.quantities = {"lstm.cell": FakeQuantity(units)}
        self.image_names = [f"test/{k:04d}.png" for k in range(len(labels))]
        self.dataset = "synthetic"

    def values(self, quantity: str) -> np.ndarray:
        return self._values


def test_from_table_reads_the_step_and_only_the_units_it_has() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 2, 5)).astype(np.float32)
    values[:, 1, 3:] = np.nan  # step 1 has 3 units
    labels = np.repeat([0, 1, 2, -1, 0, 1], 5)
    table = FakeTable(values, labels, [5, 3])
    result = selectivity_from_table(table, "lstm.cell", 1, bootstrap=30, seed=2)
    expected = unit_selectivity(values[:, 1, :3], labels, NAMES, bootstrap=30, seed=2)
    assert (result.quantity, result.step, result.units) == ("lstm.cell", 1, 3)
    np.testing.assert_allclose(result.selectivity, expected.selectivity)
    np.testing.assert_allclose(result.selectivity_ci, expected.selectivity_ci)


# --------------------------------------------------------------------------- a planted unit

CLASSES, PER_CLASS = 5, 40
PLANTED_UNIT, PLANTED_CLASS = 4, 2
AMPLITUDE = 0.3


def class_images(seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Noise images; class c adds a faint fixed +-1 pattern of its own (amplitude 0.3, noise sd 1),
    so a random network's units tell the classes apart only weakly."""
    patterns = torch.randn(CLASSES, 3, 16, 16, generator=torch.Generator().manual_seed(1)).sign()
    labels = torch.arange(CLASSES).repeat_interleave(PER_CLASS)
    noise = torch.randn(CLASSES * PER_CLASS, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    return noise + AMPLITUDE * patterns[labels], labels.numpy()


def plant_selective_unit(model: torch.nn.Module, unit: int, target: int) -> torch.nn.Module:
    """A copy of ``model`` whose memory unit ``unit`` reads, at step 1, whether an image is of class
    ``target``: its cell candidate (eq. 6) projects the step input ``lstm.input`` onto the
    difference of class means (class ``target`` minus the rest, measured on fresh images of the
    model's own pooled inputs), thresholded halfway; its input and output gates are held open,
    so ``h = o tanh(i s)`` is high for class ``target`` and low for every other class."""
    images, labels = class_images(seed=3)  # not the images the test measures
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["lstm.input"])
    inputs = trace["lstm.input"][:, 0].double()
    inside, outside = inputs[labels == target], inputs[labels != target]
    direction = inside.mean(0) - outside.mean(0)
    projected_in, projected_out = inside @ direction, outside @ direction
    threshold = (projected_in.mean() + projected_out.mean()) / 2
    spread = torch.cat([projected_in - projected_in.mean(), projected_out - projected_out.mean()]).std()
    gain = 3.0 / spread
    planted = copy.deepcopy(model)
    lstm, hidden = planted.lstm, planted.lstm.hidden_size
    with torch.no_grad():
        for gate in (0, 2):  # input and output gates: open
            lstm.input_weight[gate * hidden + unit] = 0.0
            lstm.hidden_weight[gate * hidden + unit] = 0.0
            lstm.bias[gate * hidden + unit] = 6.0
        lstm.peephole[:, unit] = 0.0
        lstm.input_weight[3 * hidden + unit] = (gain * direction).float()
        lstm.bias[3 * hidden + unit] = float(-gain * threshold)
    return planted


def hidden_at_first_step(model: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["lstm.hidden"])
    return trace["lstm.hidden"][:, 0].numpy()


def test_selectivity_finds_a_class_selective_unit_planted_in_a_tiny_crmn() -> None:
    model = tiny_model("crmn", num_outputs=CLASSES)
    names = [f"class {c}" for c in range(CLASSES)]
    images, labels = class_images(seed=2)
    planted = plant_selective_unit(model, PLANTED_UNIT, PLANTED_CLASS)
    with_plant = unit_selectivity(
        hidden_at_first_step(planted, images), labels, names, quantity="lstm.hidden", bootstrap=300
    )
    without = unit_selectivity(hidden_at_first_step(model, images), labels, names, bootstrap=300)

    assert with_plant.most_selective(1)[0][:2] == (PLANTED_UNIT, f"class {PLANTED_CLASS}")
    assert with_plant.preferred_class[PLANTED_UNIT] == PLANTED_CLASS
    low, _ = with_plant.selectivity_ci[PLANTED_UNIT]
    assert low > 0
    # the planted unit's hidden state: high for its class, low for each of the others
    means = with_plant.class_means[PLANTED_UNIT]
    assert means[PLANTED_CLASS] > 0.3 > -0.3 > np.delete(means, PLANTED_CLASS).max()
    # the model without the plant has no unit anywhere near as selective
    assert np.nanmax(without.selectivity) < 1.0
    assert low > 2 * np.nanmax(without.selectivity)
    # the other units are untouched: their indices are those of the model without the plant
    others = np.arange(with_plant.units) != PLANTED_UNIT
    np.testing.assert_allclose(with_plant.selectivity[others], without.selectivity[others], rtol=1e-5)
