"""Two classifiers on the same images: the comparison against hand computations, scipy and real data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from PIL import Image

from crmn_viz.analysis import classify
from crmn_viz.analysis import comparison as cmp_module
from crmn_viz.analysis.bootstrap import bootstrap_mean
from crmn_viz.analysis.comparison import (
    ModelPair,
    compare_models,
    exact_mcnemar_p,
    paired_bootstrap_difference,
    stepwise_readout_accuracy,
    summarise_predictions,
    wilson_interval,
    zoo_pairs,
)
from crmn_viz.analysis.readouts import stepwise_readout
from crmn_viz.checkpoints import checkpoint_dir
from tests.analysis.conftest import tiny_analysis_model

REPO = Path(__file__).resolve().parents[2]
CLASSES = 5


def labelled_images(count: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random normalised images [N, 3, 16, 16] and random labels [N] in 0..4."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(count, 3, 16, 16, generator=generator)
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    return images, labels


def decisive(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """An untrained tiny model whose output layer is large enough that its prediction varies
    from image to image (a fresh one gives every random image the class of its largest bias)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.fc.weight.copy_(3.0 * torch.randn(model.fc.weight.shape, generator=generator))
        model.fc.bias.zero_()
    return model


@pytest.fixture(scope="module")
def crmn() -> torch.nn.Module:
    torch.manual_seed(1)
    return decisive(tiny_analysis_model("crmn", num_outputs=CLASSES), 11)


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(2)
    return decisive(tiny_analysis_model("resnet", num_outputs=CLASSES), 12)


def argmax_predictions(model: torch.nn.Module, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class [N], softmax probability of it [N]) from one unbatched forward pass."""
    with torch.no_grad():
        probabilities = torch.softmax(model(images), dim=-1)
    confidence, prediction = probabilities.max(dim=-1)
    return prediction.numpy(), confidence.numpy()


# --------------------------------------------------------------------------- the comparison itself


def test_a_model_compared_with_itself_agrees_on_every_image(crmn):
    images, labels = labelled_images()
    result = compare_models(crmn, crmn, (images, labels), batch_size=16, name_a="same", name_b="same")
    assert result.agreement == 1.0
    assert result.accuracy_a == result.accuracy_b
    assert result.mcnemar_p == 1.0
    assert result.accuracy_difference_ci == (0.0, 0.0)
    off_diagonal = result.agreement_matrix - np.diag(np.diag(result.agreement_matrix))
    assert not off_diagonal.any() and result.agreement_matrix.sum() == len(labels)
    assert result.correctness[0, 1] == result.correctness[1, 0] == 0
    assert result.disagreements() == []
    np.testing.assert_array_equal(result.confidence_a, result.confidence_b)


def test_two_models_match_a_hand_computation_on_the_same_images(crmn, resnet):
    images, labels = labelled_images(60)
    result = compare_models(crmn, resnet, (images, labels), batch_size=16, name_a="crmn", name_b="resnet")
    names = result.class_names
    # predictions as crmn_viz.analysis.classify makes them, image by image batch
    expected_a = np.array([names.index(top[0][0]) for top in classify(crmn, images, top_k=1)])
    expected_b = np.array([names.index(top[0][0]) for top in classify(resnet, images, top_k=1)])
    assert len(set(expected_a)) > 1 and len(set(expected_b)) > 1  # the models are not constant
    assert (expected_a != expected_b).any()  # and they do disagree somewhere
    np.testing.assert_array_equal(result.predictions_a, expected_a)
    np.testing.assert_array_equal(result.predictions_b, expected_b)
    np.testing.assert_allclose(result.confidence_a, argmax_predictions(crmn, images)[1], atol=1e-5)
    np.testing.assert_allclose(result.confidence_b, argmax_predictions(resnet, images)[1], atol=1e-5)
    truth = labels.numpy()
    assert result.accuracy_a == pytest.approx(np.mean(expected_a == truth))
    assert result.accuracy_b == pytest.approx(np.mean(expected_b == truth))
    assert result.agreement == pytest.approx(np.mean(expected_a == expected_b))
    matrix = np.zeros((CLASSES, CLASSES), dtype=int)
    for a, b in zip(expected_a, expected_b):
        matrix[a, b] += 1
    np.testing.assert_array_equal(result.agreement_matrix, matrix)
    for k, row in enumerate(result.per_class):
        members = truth == k
        assert row["class"] == names[k] and row["n"] == members.sum()
        if members.any():
            assert row["accuracy_a"] == pytest.approx(np.mean(expected_a[members] == k))
            assert row["accuracy_b"] == pytest.approx(np.mean(expected_b[members] == k))
    right_a, right_b = expected_a == truth, expected_b == truth
    assert result.correctness.tolist() == [
        [np.sum(right_a & right_b), np.sum(right_a & ~right_b)],
        [np.sum(~right_a & right_b), np.sum(~right_a & ~right_b)],
    ]
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    expected_p = scipy.stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert result.mcnemar_p == pytest.approx(expected_p, rel=1e-9)
    low, high = result.accuracy_difference_ci
    assert low <= result.accuracy_a - result.accuracy_b <= high
    summary = result.to_json()
    json.dumps(summary)  # JSON-ready
    assert {"accuracy_a", "accuracy_b", "agreement", "per_class"} <= set(summary)
    assert summary["per_class"][0].keys() >= {"class", "n", "accuracy_a", "accuracy_b"}


def test_the_pass_accepts_a_dataset_a_dataloader_and_tensors_alike(crmn, resnet):
    images, labels = labelled_images(20)
    dataset = torch.utils.data.TensorDataset(images, labels)
    from_tensors = compare_models(crmn, resnet, (images, labels), batch_size=7)
    from_dataset = compare_models(crmn, resnet, dataset, batch_size=7)
    from_loader = compare_models(crmn, resnet, torch.utils.data.DataLoader(dataset, batch_size=6))
    for other in (from_dataset, from_loader):
        np.testing.assert_array_equal(other.predictions_a, from_tensors.predictions_a)
        np.testing.assert_array_equal(other.predictions_b, from_tensors.predictions_b)
        np.testing.assert_array_equal(other.labels, labels.numpy())


def test_progress_is_reported_after_every_batch(crmn, resnet):
    images, labels = labelled_images(20)
    calls = []
    compare_models(crmn, resnet, (images, labels), batch_size=8, progress=lambda *a: calls.append(a[:2]))
    assert calls == [(8, 20), (16, 20), (20, 20)]


# --------------------------------------------------------------------------- each model's own preprocessing


def with_card(model: torch.nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.nn.Module:
    """The same model with a card that normalises with ``mean``/``std``."""
    import copy

    copied = copy.deepcopy(model)
    copied.card = {
        "normalization": {"mean": list(mean), "std": list(std)},
        "class_names": [f"c{k}" for k in range(CLASSES)],
    }
    return copied


def test_normalised_tensors_are_renormalised_to_each_models_own_card(crmn, resnet):
    generator = torch.Generator().manual_seed(3)
    pixels = torch.rand(24, 3, 16, 16, generator=generator)
    labels = torch.randint(0, CLASSES, (24,), generator=generator)
    mean_a, std_a = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)
    mean_b, std_b = (0.1, 0.2, 0.6), (0.5, 0.1, 0.2)
    mean_data, std_data = (0.45, 0.45, 0.45), (0.22, 0.24, 0.26)
    model_a, model_b = with_card(crmn, mean_a, std_a), with_card(resnet, mean_b, std_b)

    def normalised(mean, std):
        return (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]

    data_tensors = normalised(mean_data, std_data)  # as build_dataset normalises with the data set's stats
    result = compare_models(
        model_a, model_b, (data_tensors, labels), tensor_normalization=(mean_data, std_data)
    )
    np.testing.assert_array_equal(
        result.predictions_a, argmax_predictions(model_a, normalised(mean_a, std_a))[0]
    )
    np.testing.assert_array_equal(
        result.predictions_b, argmax_predictions(model_b, normalised(mean_b, std_b))[0]
    )
    # fed the data set's tensors as they are, model A would see other inputs: the rule matters here
    assert (argmax_predictions(model_a, data_tensors)[0] != result.predictions_a).any() or (
        argmax_predictions(model_b, data_tensors)[0] != result.predictions_b
    ).any()
    with pytest.raises(ValueError, match="normalise differently"):
        compare_models(model_a, model_b, (data_tensors, labels))
    # cards that agree: the tensors are taken as both models' input
    same_b = with_card(resnet, mean_a, std_a)
    shared = compare_models(model_a, same_b, (normalised(mean_a, std_a), labels))
    np.testing.assert_array_equal(
        shared.predictions_b, argmax_predictions(same_b, normalised(mean_a, std_a))[0]
    )


def test_pil_images_go_through_each_models_own_preprocessor(crmn, resnet):
    rng = np.random.default_rng(4)
    pictures = [Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)) for _ in range(10)]
    labels = [int(v) for v in rng.integers(0, CLASSES, 10)]
    model_a = with_card(crmn, (0.5, 0.4, 0.3), (0.25, 0.2, 0.3))
    model_b = with_card(resnet, (0.1, 0.2, 0.6), (0.5, 0.1, 0.2))
    result = compare_models(model_a, model_b, list(zip(pictures, labels)), batch_size=4)
    names = result.class_names
    assert result.predictions_a.tolist() == [names.index(t[0][0]) for t in classify(model_a, pictures, 1)]
    assert result.predictions_b.tolist() == [names.index(t[0][0]) for t in classify(model_b, pictures, 1)]


def test_models_of_different_tasks_or_classes_are_refused(crmn, resnet):
    from tests.analysis.conftest import tiny_keypoint_crmn

    images, labels = labelled_images(4)
    with pytest.raises(ValueError, match="only classifiers"):
        compare_models(crmn, tiny_keypoint_crmn(), (images, labels))
    other = with_card(resnet, (0.0,) * 3, (1.0,) * 3)
    with pytest.raises(ValueError, match="different classes"):
        compare_models(crmn, other, (images, labels))
    with pytest.raises(ValueError, match="integer class label"):
        compare_models(crmn, resnet, [(images[0], 0.5)])
    # a CIFAR-10 comparison of 5-class models is refused before any image is read
    with pytest.raises(ValueError, match="cifar10"):
        cmp_module.test_set_comparison(crmn, resnet, "cifar10", 10)


# --------------------------------------------------------------------------- the statistics


@pytest.mark.parametrize("only_a, only_b", [(0, 0), (0, 7), (3, 10), (9, 8), (50, 50), (1000, 1100), (17, 2)])
def test_the_exact_mcnemar_p_is_scipys_two_sided_binomial_test(only_a, only_b):
    expected = 1.0 if only_a + only_b == 0 else scipy.stats.binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert exact_mcnemar_p(only_a, only_b) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_the_multinomial_bootstrap_is_the_paired_resampling_bootstrap():
    rng = np.random.default_rng(5)
    count = 300
    right_a = rng.random(count) < 0.8
    right_b = np.where(rng.random(count) < 0.7, right_a, rng.random(count) < 0.7)
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    low, high = paired_bootstrap_difference(only_a, only_b, count, resamples=20_000, seed=1)
    point, expected_low, expected_high = bootstrap_mean(
        right_a.astype(float) - right_b.astype(float), 20_000, np.random.default_rng(2)
    )
    assert low <= point <= high
    assert low == pytest.approx(expected_low, abs=0.006) and high == pytest.approx(expected_high, abs=0.006)


@pytest.mark.parametrize("successes, trials", [(0, 10), (7, 10), (10, 10), (480, 1000)])
def test_wilson_intervals_are_scipys(successes, trials):
    expected = scipy.stats.binomtest(successes, trials).proportion_ci(method="wilson")
    assert wilson_interval(successes, trials) == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_disagreements_split_into_who_was_right_most_differently_sure_first():
    rng = np.random.default_rng(6)
    count = 200
    labels = rng.integers(0, 4, count)
    predictions_a = np.where(rng.random(count) < 0.7, labels, rng.integers(0, 4, count))
    predictions_b = np.where(rng.random(count) < 0.6, labels, rng.integers(0, 4, count))
    confidence_a, confidence_b = rng.random(count).astype(np.float32), rng.random(count).astype(np.float32)
    result = summarise_predictions(
        labels, predictions_a, predictions_b, confidence_a, confidence_b, ["w", "x", "y", "z"]
    )
    differ = predictions_a != predictions_b
    expected = {
        "a_right": differ & (predictions_a == labels),
        "b_right": differ & (predictions_b == labels),
        "both_wrong": differ & (predictions_a != labels) & (predictions_b != labels),
    }
    listed = {kind: result.disagreements(kind) for kind in expected}
    for kind, mask in expected.items():
        assert sorted(d.index for d in listed[kind]) == np.flatnonzero(mask).tolist()
        assert all(d.kind == kind for d in listed[kind])
    assert len(result.disagreements("any")) == differ.sum() == sum(len(v) for v in listed.values())
    assert len(listed["a_right"]) == result.correctness[0, 1]
    assert len(listed["b_right"]) == result.correctness[1, 0]
    gaps = [d.confidence_gap for d in result.disagreements("any")]
    assert gaps == sorted(gaps, reverse=True)
    first = result.disagreements("any")[0]
    assert first.confidence_gap == pytest.approx(np.max(np.abs(confidence_a - confidence_b)[differ]))
    with pytest.raises(ValueError, match="kind"):
        result.disagreements("neither")


# --------------------------------------------------------------------------- the step-wise read-out


def test_the_stepwise_readout_accuracy_ends_at_the_models_own_accuracy(crmn, resnet):
    images, labels = labelled_images(40)
    steps = stepwise_readout_accuracy(crmn, (images, labels), batch_size=16)
    assert steps.shape == (crmn.num_steps,)
    # the last step decodes h_T, which is what the model's own output layer reads
    own = argmax_predictions(crmn, images)[0]
    assert steps[-1] == pytest.approx(np.mean(own == labels.numpy()))
    # every step equals the unbatched readout of readouts.stepwise_readout
    decoded = stepwise_readout(crmn, images).predicted_classes().numpy()  # [N, T]
    np.testing.assert_allclose(steps, (decoded == labels.numpy()[:, None]).mean(axis=0))
    assert len(set(steps.tolist())) > 1  # the read-out does change over the blocks
    # the comparison's pass counts the same, for the model that has a read-out only
    result = compare_models(crmn, resnet, (images, labels), batch_size=16)
    np.testing.assert_allclose(result.stepwise_accuracy_a, steps)
    assert result.stepwise_accuracy_b is None
    with pytest.raises(ValueError, match="no step-wise read-out"):
        stepwise_readout_accuracy(resnet, (images, labels))


# --------------------------------------------------------------------------- pairs of the zoo

SHIPPED_PAIRS = {
    ("crmn-cifar10", "resnet-cifar10"),
    ("crmn32-cifar10", "resnet32-cifar10"),
    ("crmn-cifar10-swa", "resnet-cifar10-swa"),
}


def test_the_zoo_pairs_are_the_shipped_crmn_resnet_pairs():
    pairs = zoo_pairs()
    assert {(p.name_a, p.name_b) for p in pairs} == SHIPPED_PAIRS
    labels = {p.name_a: p.label for p in pairs}
    assert labels["crmn-cifar10"] == "depth 20, 135 epochs"
    assert labels["crmn32-cifar10"] == "depth 32, 90 epochs"
    assert labels["crmn-cifar10-swa"].startswith("depth 20, 135 + 35 epochs")


def card_with_recipe(source: str, name: str, recipe: dict, **changes: object) -> dict:
    """A copy of the shipped card ``source`` with another training recipe (and other fields)."""
    card = json.loads((checkpoint_dir() / f"{source}.json").read_text())
    card.pop("weights_sha256", None)
    card["training"] = {**card["training"], "recipe": {**recipe, "name": name}}
    card.update(changes)
    return card


def test_zoo_pairs_finds_a_rir_trained_with_a_resnets_recipe(tmp_path):
    from crmn_viz.training import load_recipe

    for card in checkpoint_dir().glob("*.json"):
        shutil.copy(card, tmp_path / card.name)
        (tmp_path / f"{card.stem}.safetensors").write_bytes(b"")  # only the cards are read
    rir_recipe = dataclasses.asdict(load_recipe(REPO / "configs" / "rir-cifar10-90ep.toml"))
    resnet32 = json.loads((checkpoint_dir() / "resnet32-cifar10.json").read_text())["training"]["recipe"]
    fakes = {
        # the RiR of configs/rir-cifar10-90ep.toml: the depth-32 pair's recipe, another model
        "rir-cifar10-90ep": card_with_recipe("rir-cifar10", "rir-cifar10-90ep", rir_recipe),
        # the same ResNet and recipe but another seed: a different recipe, no pair
        "resnet32-seed1": card_with_recipe("resnet32-cifar10", "resnet32-seed1", {**resnet32, "seed": 1}),
        # a depth-20 CRMN on the depth-32 recipe: the backbones differ, no pair
        "crmn20-90ep": card_with_recipe(
            "crmn-cifar10", "crmn20-90ep", {**resnet32, "arch": "crmn", "model": {"depth": 20}}
        ),
        # a ReNet on the depth-32 recipe: no residual network with an addition, no pair
        "renet-90ep": card_with_recipe("renet-cifar10", "renet-90ep", {**resnet32, "arch": "renet"}),
        # an SWA run whose parent is not in the folder: nothing to match its parent with
        "crmn-orphan-swa": card_with_recipe(
            "crmn-cifar10-swa",
            "crmn-orphan-swa",
            {
                **json.loads((checkpoint_dir() / "crmn-cifar10-swa.json").read_text())["training"]["recipe"],
                "init_from": "crmn-missing",
            },
        ),
    }
    for name, card in fakes.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(card))
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    pairs = zoo_pairs(tmp_path)
    assert {(p.name_a, p.name_b) for p in pairs} == SHIPPED_PAIRS | {("rir-cifar10-90ep", "resnet32-cifar10")}
    assert ModelPair("rir-cifar10-90ep", "resnet32-cifar10", "depth 32, 90 epochs") in pairs
    # the RiR trained with the old 8-epoch recipe pairs with nothing
    assert all(p.name_a != "rir-cifar10" for p in pairs)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def cifar_pair():
    from crmn_viz.checkpoints import load
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.views.test_images import test_subset

    try:
        test_subset("cifar10", 1)
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 not found (set CRMN_VIZ_DATA_DIR)")
    return load("crmn-cifar10", device="cpu"), load("resnet-cifar10", device="cpu")


def check_real_comparison(crmn_model, resnet_model, count: int) -> None:
    from crmn_viz.views.test_images import test_subset

    result = cmp_module.test_set_comparison(crmn_model, resnet_model, "cifar10", count)
    assert result.count == count and result.name_a == "crmn-cifar10" and result.dataset == "cifar10"
    assert result.image_names[0].startswith("test/airplane/")
    subset = test_subset("cifar10", count)
    images = torch.stack([subset[i][0] for i in range(count)])
    labels = np.array([subset[i][1] for i in range(count)])
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.predictions_a, argmax_predictions(crmn_model, images)[0])
    np.testing.assert_array_equal(result.predictions_b, argmax_predictions(resnet_model, images)[0])
    # both trained models are far above chance and agree on most images
    assert result.accuracy_a > 0.7 and result.accuracy_b > 0.7 and result.agreement > 0.7
    assert result.stepwise_accuracy_a[-1] == pytest.approx(result.accuracy_a)
    assert result.stepwise_accuracy_b is None


def test_the_crmn_beside_its_resnet_on_a_few_cifar10_test_images(cifar_pair):
    check_real_comparison(*cifar_pair, 30)


@pytest.mark.slow
def test_the_crmn_beside_its_resnet_on_200_cifar10_test_images(cifar_pair):
    check_real_comparison(*cifar_pair, 200)
