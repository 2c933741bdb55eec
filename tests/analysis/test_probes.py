"""Linear probes: the probe itself on planted data, the features against traces, and real data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from crmn_viz.analysis.probes import (
    DEFAULT_POOL,
    ProbeResult,
    _indices,
    fit_linear_probe,
    linear_probes,
    probe_feature_dims,
    probe_features,
)
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn


def _hand_pool(block_output: torch.Tensor, pool: int) -> np.ndarray:
    """Mean over non-overlapping pool x pool windows (floor at the border), flattened (C, row, col),
    written with numpy reshapes instead of a pooling layer."""
    values = block_output.numpy().astype(np.float64)
    batch, channels, height, width = values.shape
    rows, cols = height // pool, width // pool
    windows = values[:, :, : rows * pool, : cols * pool].reshape(batch, channels, rows, pool, cols, pool)
    return windows.mean(axis=(3, 5)).reshape(batch, -1)


def _labelled(model, count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, *model.input_shape, generator=generator)
    labels = torch.randint(0, int(model.config.num_outputs), (count,), generator=generator)
    return images, labels


# --------------------------------------------------------------------------- the probe


def test_linearly_separable_features_are_probed_to_accuracy_one() -> None:
    generator = np.random.default_rng(1)
    classes, dims = 4, 30
    centres = 6.0 * generator.standard_normal((classes, dims))
    train_labels = generator.integers(0, classes, 400)
    test_labels = generator.integers(0, classes, 200)
    train = centres[train_labels] + generator.standard_normal((400, dims))
    test = centres[test_labels] + generator.standard_normal((200, dims))
    test_accuracy, train_accuracy, predictions = fit_linear_probe(
        train, train_labels, test, test_labels, regularisation=0.01
    )
    assert test_accuracy >= 0.99
    assert train_accuracy >= 0.99
    assert predictions.shape == (200,)
    assert np.mean(predictions == test_labels) == pytest.approx(test_accuracy)


def test_random_labels_are_probed_near_chance() -> None:
    generator = np.random.default_rng(2)
    classes = 4
    train = generator.standard_normal((600, 50))
    test = generator.standard_normal((800, 50))
    test_labels = generator.integers(0, classes, 800)
    test_accuracy, _, _ = fit_linear_probe(
        train,
        generator.integers(0, classes, 600),
        test,
        test_labels,
        regularisation=0.01,
        num_classes=classes,
    )
    # chance 1/4; 800 test images give a binomial std of 0.015
    assert abs(test_accuracy - 1 / classes) < 0.07


def test_probe_ignores_the_scale_of_features() -> None:
    """Standardisation with the training statistics: rescaling a feature changes nothing."""
    generator = np.random.default_rng(3)
    train, test = generator.standard_normal((300, 8)), generator.standard_normal((100, 8))
    weights = generator.standard_normal((8, 3))
    train_labels, test_labels = (train @ weights).argmax(1), (test @ weights).argmax(1)
    scale = np.array([1e3, 1e-3, 1, 5, 1, 1, 1, 1])
    plain = fit_linear_probe(train, train_labels, test, test_labels, regularisation=0.1)
    scaled = fit_linear_probe(
        train * scale + 7, train_labels, test * scale + 7, test_labels, regularisation=0.1
    )
    assert plain[0] > 0.85
    assert np.mean(plain[2] == scaled[2]) > 0.97


# --------------------------------------------------------------------------- the features


def test_crmn_probe_features_are_its_lstm_input_and_hidden_state() -> None:
    model = tiny_analysis_model("crmn")
    images, _ = _labelled(model, 3)
    features = probe_features(model, images)
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["lstm.input", "lstm.hidden"])
    torch.testing.assert_close(features["block"], trace["lstm.input"])
    torch.testing.assert_close(features["hidden"], trace["lstm.hidden"])
    assert features["block"].shape == (3, model.num_steps, model.lstm.input_size)


def test_crmn_lstm_input_is_the_hand_pooling_of_its_block_outputs() -> None:
    """The pooling applied to other models is the CRMN's own: its LSTM input is the mean-pooled,
    flattened, zero-padded block outputs (2016 paper, sec. 3)."""
    model = tiny_analysis_model("crmn")
    images, _ = _labelled(model, 2)
    names = [f"blocks.{k}.out" for k in range(model.block_count)]
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["lstm.input", *names])
    dims = probe_feature_dims(model)["block"]
    for step, name in enumerate(names):
        expected = _hand_pool(trace[name], model.config.pool)
        assert expected.shape[1] == dims[step]
        np.testing.assert_allclose(trace["lstm.input"][:, step, : dims[step]].numpy(), expected, atol=1e-5)
        assert not trace["lstm.input"][:, step, dims[step] :].any()


def test_resnet_block_features_are_the_crmn_pooling_of_its_block_outputs() -> None:
    model = tiny_analysis_model("resnet")
    images, _ = _labelled(model, 3)
    features = probe_features(model, images)
    assert set(features) == {"block"}  # no memory, no hidden-state probe
    names = [f"blocks.{k}.out" for k in range(model.block_count)]
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=names)
    width = features["block"].shape[2]
    for step, name in enumerate(names):
        expected = _hand_pool(trace[name], DEFAULT_POOL)  # a ResNet has no pool: the CRMN default, 2
        size = expected.shape[1]
        np.testing.assert_allclose(features["block"][:, step, :size].numpy(), expected, atol=1e-5)
        assert not features["block"][:, step, size:width].any()
    assert DEFAULT_POOL == 2


def test_rir_block_features_pool_both_streams() -> None:
    model = tiny_analysis_model("rir")
    images, _ = _labelled(model, 2)
    features = probe_features(model, images, pool=4)
    with torch.no_grad():
        _, trace = model.run_with_trace(images)
    for step in range(model.block_count):
        joined = torch.cat([trace[f"blocks.{step}.residual"], trace[f"blocks.{step}.transient"]], dim=1)
        expected = _hand_pool(joined, 4)
        np.testing.assert_allclose(
            features["block"][:, step, : expected.shape[1]].numpy(), expected, atol=1e-5
        )


def test_renet_is_probed_layer_by_layer() -> None:
    model = tiny_analysis_model("renet")
    images, _ = _labelled(model, 2)
    features = probe_features(model, images)
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["layers.0.out", "layers.1.out"])
    for step in range(2):
        expected = _hand_pool(trace[f"layers.{step}.out"], DEFAULT_POOL)
        np.testing.assert_allclose(
            features["block"][:, step, : expected.shape[1]].numpy(), expected, atol=1e-5
        )


def test_keypoint_models_and_models_without_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="regression probe"):
        probe_features(tiny_keypoint_crmn(), torch.zeros(1, 3, 32, 32))
    model = tiny_analysis_model("resnet")
    model.gradcam_layer_pattern = ""  # as a model that names no blocks
    with pytest.raises(ValueError, match="probes read residual blocks; this model .* has none"):
        linear_probes(model, _labelled(model, 10), _labelled(model, 10))


def test_sources_without_labels_are_refused() -> None:
    model = tiny_analysis_model("resnet")
    images, labels = _labelled(model, 10)
    with pytest.raises(ValueError, match="class labels"):
        linear_probes(model, images, (images, labels))


# --------------------------------------------------------------------------- linear_probes


def test_training_subset_is_a_seeded_sample_and_test_images_are_evenly_spread() -> None:
    sample = _indices(100, 10, "random", seed=4)
    assert len(set(sample.tolist())) == 10 and list(sample) == sorted(sample)
    np.testing.assert_array_equal(sample, _indices(100, 10, "random", seed=4))
    assert list(_indices(100, 10, "random", seed=5)) != list(sample)
    assert _indices(100, 4, "even", seed=4).tolist() == [0, 25, 50, 75]
    assert _indices(3, 10, "even", seed=0).tolist() == [0, 1, 2]


def test_linear_probes_of_a_tiny_crmn() -> None:
    model = tiny_analysis_model("crmn")
    train, test = _labelled(model, 60, seed=1), _labelled(model, 40, seed=2)
    result = linear_probes(model, train, test, train_images=50, test_images=30, batch_size=16)
    steps = model.num_steps
    assert isinstance(result, ProbeResult)
    assert result.steps == steps and result.feature_names == ("block", "hidden")
    assert result.train_images == 50 and result.test_images == 30
    assert result.feature_dims["hidden"] == (model.config.hidden_size,) * steps
    assert result.stages == (0, 0, 1, 1, 2, 2)
    even = _indices(40, 30, "even", 0)
    np.testing.assert_array_equal(result.test_labels, test[1][even].numpy())
    for name in result.feature_names:
        assert result.accuracy[name].shape == (steps,)
        assert result.accuracy_ci[name].shape == (steps, 2)
        assert np.all(result.accuracy_ci[name][:, 0] <= result.accuracy[name] + 1e-12)
        assert np.all(result.accuracy[name] <= result.accuracy_ci[name][:, 1] + 1e-12)
        # the accuracy is the share of test predictions that equal the labels
        np.testing.assert_allclose(
            result.accuracy[name], (result.predictions[name] == result.test_labels).mean(axis=1)
        )
        grid = result.validation_accuracy[name]
        assert grid.shape == (len(result.regularisation_grid), steps)
        assert result.regularisation[name] == result.regularisation_grid[int(np.argmax(grid.mean(axis=1)))]
    majority = np.bincount(train[1][_indices(60, 50, "random", 0)].numpy(), minlength=5).argmax()
    assert result.chance == pytest.approx(np.mean(result.test_labels == majority))


def test_linear_probes_are_deterministic_given_the_seed() -> None:
    """The same seed gives the same probes, however many fits run at once."""
    model = tiny_analysis_model("resnet")
    train, test = _labelled(model, 40, seed=1), _labelled(model, 20, seed=2)
    first = linear_probes(model, train, test, train_images=30, test_images=20, seed=3, workers=1)
    second = linear_probes(model, train, test, train_images=30, test_images=20, seed=3, workers=2)
    for name in first.feature_names:
        np.testing.assert_array_equal(first.predictions[name], second.predictions[name])
        np.testing.assert_array_equal(first.accuracy_ci[name], second.accuracy_ci[name])
        np.testing.assert_array_equal(first.train_accuracy[name], second.train_accuracy[name])


def test_probes_find_a_planted_class_signal() -> None:
    """Images whose class sets the brightness of one channel: every block keeps it (a linear
    read-out of the block features separates the classes far above chance)."""
    model = tiny_analysis_model("resnet", num_outputs=2)
    generator = torch.Generator().manual_seed(5)
    labels = torch.randint(0, 2, (160,), generator=generator)
    images = 0.3 * torch.randn(160, *model.input_shape, generator=generator)
    images[:, 0] += (2.0 * labels - 1.0).view(-1, 1, 1)
    result = linear_probes(
        model, (images[:100], labels[:100]), (images[100:], labels[100:]), train_images=100
    )
    assert result.accuracy["block"].min() > 0.9
    assert result.chance < 0.7


# --------------------------------------------------------------------------- real data


def _cifar10(split: str):  # type: ignore[no-untyped-def]
    from crmn_viz.data import DatasetNotFoundError, build_dataset

    try:
        return build_dataset("cifar10", split, train_augment=False)
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 not found (set CRMN_VIZ_DATA_DIR)")


def test_probes_of_the_trained_crmn_beat_chance_on_cifar10() -> None:
    """The CI variant: 100 training and 80 test images, one L2 strength (no choice to make). Both
    come from the test split, in disjoint halves (odd and even indices): images the network never
    saw, and no index of the 50,000 training images to build (7 s on this machine)."""
    from crmn_viz import load

    full = _cifar10("test")
    odd, even = Subset(full, range(1, len(full), 2)), Subset(full, range(0, len(full), 2))
    result = linear_probes(
        load("crmn-cifar10"),
        odd,
        even,
        train_images=100,
        test_images=80,
        regularisation_grid=(0.1,),
        max_iterations=20,
    )
    assert result.regularisation == {"block": 0.1, "hidden": 0.1}
    assert result.feature_names == ("block", "hidden")
    assert all(result.accuracy[name].shape == (9,) for name in result.feature_names)
    assert result.chance < 0.2
    assert result.accuracy["block"][-1] > 0.5
    assert result.accuracy["hidden"][-1] > 0.5
    assert result.accuracy["block"][-1] > result.accuracy["block"][0]


@pytest.mark.slow
def test_probes_of_the_trained_crmn_beat_chance_on_more_cifar10_images() -> None:
    """The protocol of the issue: 500 images of the training split, 300 test images."""
    from crmn_viz import load
    from crmn_viz.views.test_images import test_subset

    train = _cifar10("train")
    result = linear_probes(
        load("crmn-cifar10"), train, test_subset("cifar10", 300), train_images=500, test_images=300
    )
    assert result.chance < 0.2
    assert np.all(np.isfinite(result.accuracy["hidden"]))
    assert result.accuracy["block"][-1] > 0.5 + result.chance
    assert result.accuracy["hidden"][-1] > 0.5 + result.chance
    assert result.accuracy_ci["hidden"][-1, 0] > 3 * result.chance
