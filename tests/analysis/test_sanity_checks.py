"""Model-parameter randomisation (Adebayo et al. 2018) and random-logit sanity checks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import skimage.metrics
import torch
import torch.nn.functional as F
from scipy import ndimage

from crmn_viz.analysis.attributions import GateTarget, KeypointTarget, attribute
from crmn_viz.analysis.sanity_checks import (
    SANITY_MODES,
    randomised_copy,
    sanity_check,
    spearman_similarity,
    ssim_similarity,
)
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input

CRMN_STAGES = ["output", "lstm", "stage 3", "stage 2", "stage 1", "stem"]


@pytest.fixture(scope="module")
def trained_crmn() -> torch.nn.Module:
    """A tiny CRMN (depth 14: 3 stages of 2 blocks) fitted for 15 SGD steps on 8 random images."""
    torch.manual_seed(0)
    model = tiny_analysis_model("crmn").train()
    images, labels = torch.randn(8, *model.input_shape), torch.arange(8) % 5
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster (tenfold on a busy machine)
    try:
        for _ in range(15):  # the loss falls from 1.6 to about 0.2
            optimiser.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))


def edge_filter(model, x, target):  # type: ignore[no-untyped-def]
    """An "attribution" that ignores the model and the target: the Sobel edge strength of the image."""
    grey = x[0].detach().cpu().numpy().sum(axis=0)
    return np.hypot(ndimage.sobel(grey, axis=0), ndimage.sobel(grey, axis=1))


def channel_summed_abs(result_map: np.ndarray) -> np.ndarray:
    return np.abs(result_map).sum(axis=0)


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in model.state_dict().items()}


# --- the similarity measures -------------------------------------------------------------


def test_equal_maps_have_similarity_one() -> None:
    rng = np.random.default_rng(0)
    for shape in [(16, 16), (9, 13), (5, 6)]:
        values = rng.random(shape)
        assert spearman_similarity(values, values.copy()) == 1.0
        assert ssim_similarity(values, values.copy()) == 1.0


@pytest.mark.parametrize("shape", [(16, 16), (9, 13), (32, 7)])
def test_ssim_matches_scikit_image(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    for _ in range(3):
        a = rng.random(shape)
        b = np.clip(a + 0.3 * rng.standard_normal(shape), 0, 1)
        expected = skimage.metrics.structural_similarity(a, b, data_range=1.0)
        assert ssim_similarity(a, b) == pytest.approx(expected, abs=1e-6)
        assert ssim_similarity(a, rng.random(shape)) < 0.5


def test_ssim_of_small_maps_uses_the_largest_odd_window() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random((5, 6)), rng.random((5, 6))
    expected = skimage.metrics.structural_similarity(a, b, data_range=1.0, win_size=5)
    assert ssim_similarity(a, b) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="at least 3 x 3"):
        ssim_similarity(rng.random((2, 8)), rng.random((2, 8)))
    with pytest.raises(ValueError, match="same shape"):
        ssim_similarity(rng.random((8, 8)), rng.random((8, 9)))
    with pytest.raises(ValueError, match="2-D"):
        ssim_similarity(rng.random((3, 8, 8)), rng.random((3, 8, 8)))


def test_spearman_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.integers(0, 6, size=(12, 10)).astype(float)  # many ties: average ranks
        b = a + rng.integers(-3, 4, size=a.shape)
        expected = scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
        assert spearman_similarity(a, b) == pytest.approx(expected, abs=1e-6)
    c = rng.random((7, 7))
    assert spearman_similarity(c, -c) == pytest.approx(-1.0, abs=1e-12)
    assert spearman_similarity(c, np.exp(3 * c)) == pytest.approx(1.0, abs=1e-12)  # monotone: rank 1


def test_spearman_of_constant_maps_is_defined() -> None:
    zeros, ones = np.zeros((4, 4)), np.ones((4, 4))
    assert spearman_similarity(zeros, zeros) == 1.0
    assert spearman_similarity(zeros, ones) == 0.0
    assert spearman_similarity(zeros, np.arange(16.0).reshape(4, 4)) == 0.0


def test_similarities_agree_with_quantus_where_the_definitions_match() -> None:
    from quantus.functions.similarity_func import correlation_spearman, ssim

    rng = np.random.default_rng(4)
    a, b = rng.random((16, 16)), rng.random((16, 16))
    b = 0.5 * a + 0.5 * b
    # Quantus's ssim sets data_range = max - min over both maps; ours is fixed at 1, which is
    # the same for maps on [0, 1] that reach both 0 and 1 (as [0, 1]-scaled |maps| that touch 0).
    a[0, 0], a[-1, -1] = 0.0, 1.0
    assert ssim(a, b) == pytest.approx(ssim_similarity(a, b), abs=1e-6)
    # Quantus's correlation_spearman hands its arrays to scipy.stats.spearmanr as they are: for
    # 2-D maps scipy would treat every column as a variable, so it agrees only on flattened maps.
    assert correlation_spearman(a.ravel(), b.ravel()) == pytest.approx(spearman_similarity(a, b), abs=1e-6)


# --- the randomisation -------------------------------------------------------------------


def test_randomised_copy_redraws_only_the_named_groups(trained_crmn) -> None:  # type: ignore[no-untyped-def]
    before = state(trained_crmn)
    copy = randomised_copy(trained_crmn, ["lstm", "stem"], seed=5)
    assert all(torch.equal(before[k], v) for k, v in trained_crmn.state_dict().items())  # caller untouched
    params = dict(copy.named_parameters())
    for name, value in params.items():
        redrawn = name.startswith(("lstm.", "stem.", "stem_bn."))
        trained = before[name]
        if redrawn and trained.numel() > 1 and trained.std() > 0:
            assert not torch.equal(value, trained), name
            assert value.dtype == trained.dtype and value.shape == trained.shape
        elif not redrawn:
            assert torch.equal(value, trained), name
    for name, buffer in copy.named_buffers():  # BatchNorm running statistics are kept
        assert torch.equal(buffer, before[name]), name
    # N(mean, std) of the trained tensor: the scale survives, the values do not
    trained, drawn = before["lstm.input_weight"].double(), params["lstm.input_weight"].detach().double()
    assert float(drawn.mean()) == pytest.approx(float(trained.mean()), abs=4 * float(trained.std()) / 30)
    assert float(drawn.std()) == pytest.approx(float(trained.std()), rel=0.05)
    assert abs(np.corrcoef(trained.ravel(), drawn.ravel())[0, 1]) < 0.1
    with pytest.raises(ValueError, match="unknown randomisation group"):
        randomised_copy(trained_crmn, ["stage 4"], seed=0)


def test_the_same_seed_redraws_a_parameter_the_same_way_in_any_company(trained_crmn) -> None:  # type: ignore[no-untyped-def]
    alone = randomised_copy(trained_crmn, ["lstm"], seed=7)
    together = randomised_copy(trained_crmn, ["output", "lstm", "stage 3"], seed=7)
    other_seed = randomised_copy(trained_crmn, ["lstm"], seed=8)
    assert torch.equal(alone.lstm.input_weight, together.lstm.input_weight)
    assert not torch.equal(alone.lstm.input_weight, other_seed.lstm.input_weight)


# --- the sanity check --------------------------------------------------------------------


def test_full_cascading_randomisation_destroys_saliency_but_not_an_edge_filter(trained_crmn, image) -> None:  # type: ignore[no-untyped-def]
    saliency = sanity_check(trained_crmn, image, "saliency", mode="cascading", seed=0)
    assert saliency.stages == CRMN_STAGES
    assert saliency.spearman[-1] < 0.6 and saliency.ssim[-1] < 0.6
    assert saliency.spearman.shape == saliency.ssim.shape == (len(CRMN_STAGES),)
    edges = sanity_check(trained_crmn, image, edge_filter, mode="cascading", seed=0)
    assert edges.method == "edge_filter"
    assert np.all(edges.spearman == 1.0) and np.all(edges.ssim == 1.0)  # the check can fail
    assert all(np.array_equal(m, edges.trained_map) for m in edges.maps)


def test_cascading_stages_accumulate_and_independent_stages_do_not(trained_crmn, image) -> None:  # type: ignore[no-untyped-def]
    target = 2
    cascading = sanity_check(trained_crmn, image, "saliency", target, mode="cascading", seed=4)
    independent = sanity_check(trained_crmn, image, "saliency", target, mode="independent", seed=4)
    stages = cascading.stages
    for index in (1, 3, len(stages) - 1):
        model = randomised_copy(trained_crmn, stages[: index + 1], seed=4)
        expected = channel_summed_abs(attribute(model, image, "saliency", target).map)
        np.testing.assert_array_equal(cascading.maps[index], expected)
        model = randomised_copy(trained_crmn, [stages[index]], seed=4)
        expected = channel_summed_abs(attribute(model, image, "saliency", target).map)
        np.testing.assert_array_equal(independent.maps[index], expected)
    np.testing.assert_array_equal(cascading.maps[0], independent.maps[0])  # the same first stage
    trained = channel_summed_abs(attribute(trained_crmn, image, "saliency", target).map)
    np.testing.assert_array_equal(cascading.trained_map, trained)
    assert cascading.spearman[2] == pytest.approx(spearman_similarity(cascading.maps[2], trained))
    scaled = cascading.maps[2] / cascading.maps[2].max()
    assert cascading.ssim[2] == pytest.approx(ssim_similarity(scaled, trained / trained.max()))


def test_the_output_layer_cannot_change_an_lstm_gate_map(trained_crmn, image) -> None:  # type: ignore[no-untyped-def]
    # step 1 is block 1, in stage 1: neither the output layer nor the later stages feed it
    target = GateTarget(gate="forget_gate", unit=0, step=1)
    result = sanity_check(trained_crmn, image, "saliency", target, mode="independent", seed=0)
    assert result.target == "lstm.forget_gate unit 0 at step 1" and result.random_logit is None
    similarity = dict(zip(result.stages, zip(result.spearman, result.ssim)))
    maps = dict(zip(result.stages, result.maps))
    for unused in ("output", "stage 3", "stage 2"):
        np.testing.assert_array_equal(maps[unused], result.trained_map)
        assert similarity[unused] == (1.0, 1.0)
    for used in ("lstm", "stage 1", "stem"):
        assert not np.array_equal(maps[used], result.trained_map)
        assert similarity[used][0] < 1.0


def test_a_keypoint_target_on_a_keypoint_crmn() -> None:
    model = tiny_keypoint_crmn()
    x = random_input(model, 1)
    result = sanity_check(model, x, "saliency", KeypointTarget(36, "y"), seed=1)
    assert result.stages == CRMN_STAGES and result.random_logit is None
    assert result.target == "keypoint 36 y"
    assert result.trained_map.shape == (32, 32) and all(m.shape == (32, 32) for m in result.maps)
    assert np.isfinite(result.spearman).all() and np.isfinite(result.ssim).all()
    with pytest.raises(ValueError, match="KeypointTarget"):
        sanity_check(model, x, "saliency")


def test_the_callers_model_is_untouched(trained_crmn, image) -> None:  # type: ignore[no-untyped-def]
    model = tiny_analysis_model("resnet").train()
    before = state(model)
    for mode in SANITY_MODES:
        sanity_check(model, torch.randn(1, *model.input_shape), "saliency", mode=mode)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_same_seed_repeats_the_numbers_and_another_seed_does_not() -> None:
    model = tiny_analysis_model("resnet")
    x = random_input(model, 1)

    def run(seed: int):  # type: ignore[no-untyped-def]
        return sanity_check(model, x, "gradient_shap", seed=seed, n_samples=2)

    first, again, other = run(3), run(3), run(4)
    for field in ("spearman", "ssim"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert all(np.array_equal(a, b) for a, b in zip(first.maps, again.maps))
    np.testing.assert_array_equal(first.trained_map, again.trained_map)
    assert first.random_logit == again.random_logit
    assert first.options["seed"] == 3 and first.options["n_samples"] == 2  # SHAP noise seeded too
    assert not np.array_equal(first.spearman, other.spearman)


def test_the_predicted_class_is_the_target_and_the_random_logit_another(trained_crmn, image) -> None:  # type: ignore[no-untyped-def]
    result = sanity_check(trained_crmn, image, "saliency", seed=2)
    with torch.no_grad():
        predicted = int(trained_crmn(image).argmax())
    assert result.target == f"logit of class {predicted}"
    other = result.random_logit["other_class"]
    assert other != predicted and 0 <= other < 5
    target_map = channel_summed_abs(attribute(trained_crmn, image, "saliency", predicted).map)
    other_map = channel_summed_abs(attribute(trained_crmn, image, "saliency", other).map)
    expected = scipy.stats.spearmanr(other_map.ravel(), target_map.ravel()).statistic
    assert result.random_logit["spearman"] == pytest.approx(expected, abs=1e-6)
    expected_ssim = skimage.metrics.structural_similarity(
        other_map / other_map.max(), target_map / target_map.max(), data_range=1.0
    )
    assert result.random_logit["ssim"] == pytest.approx(expected_ssim, abs=1e-6)
    assert sanity_check(trained_crmn, image, "saliency", seed=2, random_logit=False).random_logit is None


@pytest.mark.parametrize("arch", ["resnet", "rir", "renet"])
def test_every_architecture_and_grad_cam(arch: str) -> None:
    model = tiny_analysis_model(arch)
    x = random_input(model, 1)
    result = sanity_check(model, x, "gradcam", 1, mode="independent")
    assert result.stages == [stage for stage, _ in model.randomisation_groups()]
    assert result.trained_map.shape == model.input_shape[1:] and result.target == "logit of class 1"
    assert np.all(result.trained_map >= 0) and result.random_logit is not None


def test_clear_errors(image) -> None:  # type: ignore[no-untyped-def]
    model = tiny_analysis_model("resnet")
    with pytest.raises(ValueError, match="unknown sanity-check mode"):
        sanity_check(model, image, "saliency", mode="sequential")
    with pytest.raises(ValueError, match="unknown attribution method"):
        sanity_check(model, image, "lrp")
    single = tiny_analysis_model("resnet", num_outputs=1)
    with pytest.raises(ValueError, match="at least 2 classes"):
        sanity_check(single, image, "saliency")
    assert sanity_check(single, image, "saliency", random_logit=False).random_logit is None
    with pytest.raises(ValueError, match="function method takes"):
        sanity_check(model, image, edge_filter, n_samples=4)
    with pytest.raises(ValueError, match="one image at a time"):
        sanity_check(model, torch.randn(2, 3, 16, 16), "saliency")
