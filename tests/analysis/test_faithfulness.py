"""faithfulness(): deletion, insertion and ROAD curves; analytic, Quantus and batching checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from crmn_viz.analysis import GateTarget, KeypointTarget, attribute
from crmn_viz.analysis.faithfulness import (
    FAITHFULNESS_KINDS,
    MAX_FAITHFULNESS_STEPS,
    ROAD_NEIGHBOUR_WEIGHTS,
    FaithfulnessCurve,
    deletion_and_insertion,
    faithfulness,
    gaussian_blur,
    noisy_linear_imputation,
    perturbation_scores,
    random_attribution,
    ranking,
)
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input


def probabilities(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(x).double(), dim=-1).numpy()


def linear_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """x [1, 3, 8, 8], weights w like x, and the exact per-pixel attribution sum_c w * x."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(1, 3, 8, 8, generator=generator, dtype=torch.float64)
    w = torch.randn(1, 3, 8, 8, generator=generator, dtype=torch.float64)
    return x, w, (w * x)[0].sum(0).numpy()


# --- the core against closed forms -----------------------------------------------------------------


@pytest.mark.parametrize("steps", [16, 7, 64])
@pytest.mark.parametrize("order", ["most", "least"])
def test_deletion_and_insertion_of_a_linear_score_are_analytic(steps: int, order: str) -> None:
    """score(x) = <w, x> with a zero baseline: deleting pixel set S leaves total - sum_S r, inserting
    gives sum_S r, with r = sum_c w x the exact attribution."""
    x, w, relevance = linear_problem()
    score_fn = lambda batch: (batch * w).sum((1, 2, 3))  # noqa: E731
    total = float((w * x).sum())
    ordered = np.sort(relevance.ravel())[::-1] if order == "most" else np.sort(relevance.ravel())
    cumulative = np.concatenate([[0.0], np.cumsum(ordered)])
    counts = [int(np.floor(k * 64 / steps + 0.5)) for k in range(steps + 1)]  # round half up
    zero = torch.zeros_like(x)
    deletion = perturbation_scores(
        score_fn, x, relevance, kind="deletion", baseline=zero, steps=steps, order=order
    )
    insertion = perturbation_scores(
        score_fn, x, relevance, kind="insertion", baseline=zero, steps=steps, order=order
    )
    np.testing.assert_allclose(deletion, total - cumulative[counts], atol=1e-5)
    np.testing.assert_allclose(insertion, cumulative[counts], atol=1e-5)
    assert counts[0] == 0 and counts[-1] == 64


def test_exact_attribution_beats_random_ones_on_a_linear_score() -> None:
    """Removing the k largest terms of a sum lowers it at least as much as any other k terms, so the
    exact attribution's deletion curve lies below every other ranking's curve at every step."""
    x, w, relevance = linear_problem(seed=3)
    score_fn = lambda batch: (batch * w).sum((1, 2, 3))  # noqa: E731
    zero = torch.zeros_like(x)

    def area(map_: np.ndarray, kind: str) -> float:
        scores = perturbation_scores(score_fn, x, map_, kind=kind, baseline=zero, steps=16)
        return float(np.trapezoid(scores, np.linspace(0, 1, 17)))

    exact_deletion, exact_insertion = area(relevance, "deletion"), area(relevance, "insertion")
    for seed in range(10):
        random_map = random_attribution((8, 8), seed=seed)
        assert exact_deletion < area(random_map, "deletion")
        assert exact_insertion > area(random_map, "insertion")


def test_random_attribution_and_ranking() -> None:
    first, again = random_attribution((3, 5, 4), seed=7), random_attribution((3, 5, 4), seed=7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (3, 5, 4) and first.min() >= 0 and first.max() < 1
    assert not np.array_equal(first, random_attribution((3, 5, 4), seed=8))
    # channel sum, descending, ties in row-major order
    relevance = np.array([[1.0, 3.0, 1.0], [3.0, 0.0, 2.0]])
    np.testing.assert_array_equal(ranking(relevance), [1, 3, 5, 0, 2, 4])
    split = np.stack([relevance - 1.0, np.ones_like(relevance)])  # sums back to `relevance`
    np.testing.assert_array_equal(ranking(split), [1, 3, 5, 0, 2, 4])


def test_gaussian_blur_matches_scipy() -> None:
    x = torch.randn(1, 3, 16, 12, dtype=torch.float64)
    for sigma in (1.0, 2.0, 1.6):
        expected = gaussian_filter(x[0].numpy(), sigma=(0, sigma, sigma), mode="mirror", truncate=3.0)
        np.testing.assert_allclose(gaussian_blur(x, sigma)[0].numpy(), expected, atol=1e-12)


# --- Quantus cross-checks --------------------------------------------------------------------------


@pytest.mark.parametrize("channels,fraction", [(3, 0.5), (1, 0.9), (3, 0.05)])
def test_road_imputation_matches_quantus(channels: int, fraction: float) -> None:
    perturb = pytest.importorskip("quantus.functions.perturb_func")
    rng = np.random.default_rng(channels)
    image = rng.normal(size=(channels, 11, 9))
    removed = rng.permutation(99)[: int(fraction * 99)]  # corners and borders included at 0.9
    expected = perturb.noisy_linear_imputation(image.copy(), removed, noise=0.0)
    np.testing.assert_allclose(noisy_linear_imputation(image, removed, noise=0.0), expected, atol=1e-6)
    mask = np.zeros((11, 9), dtype=bool)
    mask.flat[removed] = True
    np.testing.assert_allclose(noisy_linear_imputation(image, mask, noise=0.0), expected, atol=1e-6)


def test_road_imputation_equations_and_noise() -> None:
    """Independently of Quantus: an isolated removed pixel is the weighted mean of its 8 neighbours,
    and the noise is seeded, additive and only on removed pixels."""
    image = np.random.default_rng(0).normal(size=(2, 5, 5))
    imputed = noisy_linear_imputation(image, np.array([12]), noise=0.0)  # the centre (2, 2)
    expected = sum(weight * image[:, 2 + dr, 2 + dc] for (dr, dc), weight in ROAD_NEIGHBOUR_WEIGHTS)
    np.testing.assert_allclose(imputed[:, 2, 2], expected, atol=1e-12)
    assert sum(weight for _, weight in ROAD_NEIGHBOUR_WEIGHTS) == pytest.approx(1.0)
    removed = np.array([0, 6, 12, 24])
    noisy = noisy_linear_imputation(image, removed, noise=0.5, rng=np.random.default_rng(4))
    clean = noisy_linear_imputation(image, removed, noise=0.0)
    drawn = np.random.default_rng(4).standard_normal((2, 4))
    np.testing.assert_allclose(
        noisy.reshape(2, -1)[:, removed] - clean.reshape(2, -1)[:, removed], 0.5 * drawn
    )
    kept = np.setdiff1d(np.arange(25), removed)
    np.testing.assert_array_equal(noisy.reshape(2, -1)[:, kept], image.reshape(2, -1)[:, kept])
    everything = noisy_linear_imputation(image, np.arange(25), noise=0.0)
    np.testing.assert_allclose(everything, np.broadcast_to(image.mean((1, 2), keepdims=True), image.shape))


def test_deletion_matches_quantus_pixel_flipping() -> None:
    """Quantus's PixelFlipping flips ``features_in_step`` of the C*H*W values per step (a [1, H, W]
    map broadcast over channels, so equal-valued channel triples stay adjacent in its sort) but
    asserts that ``features_in_step`` divides H*W, and its curve omits the unperturbed point.
    Whole-pixel steps therefore need a multiple of C dividing H*W: a 12 x 12 RGB input, 24 values
    = 8 pixels per step, 18 steps; our curve from step 1 must equal Quantus's. Its ``normalise`` and
    ``abs`` are off (they would not change the order), ``perturb_baseline=0.0`` is our "zeros"."""
    quantus = pytest.importorskip("quantus")
    model = tiny_analysis_model("resnet", input_size=12)
    x = random_input(model, 1)
    relevance = np.random.default_rng(1).normal(size=(12, 12))
    for order, quantus_map in (("most", relevance), ("least", -relevance)):
        ours = faithfulness(model, x, relevance, target=2, kind="deletion", steps=18, order=order)
        metric = quantus.PixelFlipping(
            features_in_step=24, perturb_baseline=0.0, normalise=False, abs=False, disable_warnings=True
        )
        theirs = metric(
            model=model,
            x_batch=x.numpy(),
            y_batch=np.array([2]),
            a_batch=quantus_map[None, None].astype(np.float32),
            softmax=True,
            device="cpu",
            channel_first=True,
        )
        np.testing.assert_allclose(ours.scores[1:], np.asarray(theirs[0]), atol=1e-6)


# --- the public function end to end ----------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet", "crmn"])
def test_end_points_of_every_kind(arch: str) -> None:
    model = tiny_analysis_model(arch)
    x = random_input(model, 1)
    attribution = attribute(model, x, "saliency", abs=False)
    target = attribution.resolved_target
    assert isinstance(target, int)
    p_image = probabilities(model, x)[0, target]
    p_zeros = probabilities(model, torch.zeros_like(x))[0, target]
    blurred = gaussian_filter(x[0].numpy(), sigma=(0, 1, 1), mode="mirror", truncate=3.0)  # 16 px: sigma 1
    p_blur = probabilities(model, torch.from_numpy(blurred)[None])[0, target]

    curves = {kind: faithfulness(model, x, attribution, kind=kind, steps=8) for kind in FAITHFULNESS_KINDS}
    for kind, curve in curves.items():
        assert isinstance(curve, FaithfulnessCurve) and curve.kind == kind
        assert curve.scores.shape == curve.fractions.shape == (9,)
        np.testing.assert_allclose(curve.fractions, np.linspace(0, 1, 9))
        assert curve.auc == pytest.approx(np.trapezoid(curve.scores, curve.fractions), abs=1e-12)
        assert curve.order == "most_relevant_first"
        assert curve.score_name == f"probability of class {target}"
        assert curve.target == f"logit of class {target}"
        assert curve.options["steps"] == 8 and curve.options["seed"] == 0
    assert curves["deletion"].scores[0] == pytest.approx(p_image, abs=1e-6)
    assert curves["deletion"].scores[-1] == pytest.approx(p_zeros, abs=1e-6)
    assert curves["insertion"].scores[0] == pytest.approx(p_blur, abs=1e-6)
    assert curves["insertion"].scores[-1] == pytest.approx(p_image, abs=1e-6)
    assert curves["road"].scores[0] == pytest.approx(p_image, abs=1e-6)
    assert curves["insertion"].options["blur_sigma"] == 1.0 and curves["road"].options["noise"] == 0.01


def test_defaults_options_and_reproducibility() -> None:
    model = tiny_analysis_model("resnet").train()  # must be scored in eval mode, and left in training
    x = random_input(model, 1)
    relevance = np.random.default_rng(2).normal(size=(3, 16, 16))
    first = faithfulness(model, x, relevance, kind="road", steps=6, seed=5)
    assert model.training
    model.eval()
    again = faithfulness(model, x, relevance, kind="road", steps=6, seed=5)
    other = faithfulness(model, x, relevance, kind="road", steps=6, seed=6)
    np.testing.assert_array_equal(first.scores, again.scores)
    assert not np.array_equal(first.scores[1:], other.scores[1:])
    quiet = [
        faithfulness(model, x, relevance, kind="road", steps=6, seed=s, noise=0.0).scores for s in (1, 2)
    ]
    np.testing.assert_array_equal(quiet[0], quiet[1])

    # target=None with a plain map: the predicted class; 'logit' scores the logit itself
    predicted = int(probabilities(model, x)[0].argmax())
    logit = faithfulness(model, x, relevance, score="logit", steps=4, baseline="black", order="least")
    with torch.no_grad():
        assert logit.scores[0] == pytest.approx(float(model(x)[0, predicted]), abs=1e-5)
        assert logit.scores[-1] == pytest.approx(float(model(torch.zeros_like(x))[0, predicted]), abs=1e-5)
    assert logit.score_name == f"logit of class {predicted}" and logit.order == "least_relevant_first"
    assert logit.options["baseline"] == "black" and logit.options["relevance"] == "channel_sum"
    np.testing.assert_array_equal(
        faithfulness(model, x, relevance, kind="insertion", steps=5).scores,
        faithfulness(model, x, relevance, kind="insertion", steps=5).scores,
    )
    # ROAD with every pixel removed and no noise: the image's mean colour
    mean_colour = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    road = faithfulness(model, x, relevance, 1, kind="road", steps=3, noise=0.0)
    assert road.scores[-1] == pytest.approx(probabilities(model, mean_colour)[0, 1], abs=1e-6)


def test_gradcam_maps_keypoints_and_gate_targets() -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 1)
    cam = attribute(model, x, "gradcam", target=3)
    curve = faithfulness(model, x, cam, kind="deletion", steps=4)
    assert curve.options["relevance"] == "map" and curve.score_name == "probability of class 3"

    gate = GateTarget("forget_gate", unit=2, step=5)
    with torch.no_grad():
        _, trace = model.run_with_trace(x)
    gate_curve = faithfulness(model, x, cam.map, gate, kind="insertion", steps=4)
    assert (
        gate_curve.options["score"] == "value"
        and gate_curve.score_name == "lstm.forget_gate unit 2 at step 5"
    )
    assert gate_curve.scores[-1] == pytest.approx(float(trace["lstm.forget_gate"][0, 5, 2]), abs=1e-6)

    keypoints = tiny_keypoint_crmn()
    image = random_input(keypoints, 1)
    with pytest.raises(ValueError, match="KeypointTarget"):
        faithfulness(keypoints, image, np.ones((32, 32)))
    point = faithfulness(keypoints, image, np.ones((32, 32)), KeypointTarget(7, "y"), steps=2)
    with torch.no_grad():
        assert point.scores[0] == pytest.approx(float(keypoints(image)[0, 7, 1]), abs=1e-6)
    assert point.score_name == "keypoint 7 y"


# --- batching --------------------------------------------------------------------------------------


def test_one_forward_per_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_analysis_model("resnet")
    x = random_input(model, 1)
    relevance = np.random.default_rng(0).normal(size=(16, 16))
    sizes: list[int] = []
    original_forward = model.forward

    def counting_forward(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(int(inputs.shape[0]))
        return original_forward(inputs)

    monkeypatch.setattr(model, "forward", counting_forward)
    for kind in FAITHFULNESS_KINDS:  # the predicted class (target=None) comes from the same batch
        sizes.clear()
        whole = faithfulness(model, x, relevance, kind=kind, steps=32, max_batch=64)
        assert sizes == [33], (kind, sizes)
        sizes.clear()
        chunked = faithfulness(model, x, relevance, kind=kind, steps=32, max_batch=10)
        assert sizes == [10, 10, 10, 3], (kind, sizes)
        np.testing.assert_allclose(chunked.scores, whole.scores, atol=1e-6)


@pytest.mark.parametrize("arch", ["resnet", "crmn"])
def test_deletion_and_insertion_share_one_batch_and_equal_two_calls(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_analysis_model(arch)
    x = random_input(model, 1)
    attribution = attribute(model, x, "saliency", abs=False)
    separate = [
        faithfulness(model, x, attribution, kind=kind, steps=32) for kind in ("deletion", "insertion")
    ]
    sizes: list[int] = []
    original_forward = model.forward

    def counting_forward(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(int(inputs.shape[0]))
        return original_forward(inputs)

    monkeypatch.setattr(model, "forward", counting_forward)
    together = deletion_and_insertion(model, x, attribution, steps=32)
    assert sizes == [65]  # 33 deleted + 32 inserted; the unperturbed image once
    for one, other in zip(separate, together):
        assert (one.kind, one.order, one.score_name) == (other.kind, other.order, other.score_name)
        np.testing.assert_allclose(other.scores, one.scores, atol=1e-6)
        assert other.auc == pytest.approx(one.auc, abs=1e-6)
        assert other.options["baseline"] == one.options["baseline"]


# --- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options,attribution_shape,message",
    [
        ({"kind": "flip"}, (16, 16), "unknown faithfulness kind 'flip'"),
        ({"order": "middle"}, (16, 16), "order must be 'most' or 'least'"),
        ({"score": "margin"}, (16, 16), "unknown score 'margin'"),
        ({"score": "value"}, (16, 16), "score 'value' is for keypoint and gate targets"),
        ({"baseline": "grey"}, (16, 16), "unknown baseline 'grey'"),
        ({"baseline": torch.zeros(2, 2)}, (16, 16), "baseline must be one of"),
        ({"kind": "road", "baseline": "zeros"}, (16, 16), "it takes no baseline"),
        ({"steps": 0}, (16, 16), "steps must be an integer in 1..256"),
        ({"steps": MAX_FAITHFULNESS_STEPS + 1}, (16, 16), "steps must be an integer in 1..256"),
        ({"steps": 2.5}, (16, 16), "steps must be an integer"),
        ({"max_batch": 0}, (16, 16), "max_batch must be an integer"),
        ({"noise": -0.1, "kind": "road"}, (16, 16), "noise must be a finite number"),
        ({}, (16, 8), "the attribution is 16x8 pixels, the image 16x16"),
        ({}, (2, 16, 16), "the attribution has 2 channel"),
        ({}, (1, 3, 16, 16), r"must be \[C, H, W\] or \[H, W\]"),
    ],
)
def test_bad_inputs_raise_clear_errors(
    options: dict, attribution_shape: tuple[int, ...], message: str
) -> None:
    model = tiny_analysis_model("resnet")
    with pytest.raises(ValueError, match=message):
        faithfulness(model, random_input(model, 1), np.ones(attribution_shape), **options)


def test_bad_images_and_targets_raise() -> None:
    model = tiny_analysis_model("resnet")
    with pytest.raises(ValueError, match="one image at a time; got a batch of 2"):
        faithfulness(model, random_input(model, 2), np.ones((16, 16)))
    with pytest.raises(ValueError, match="class index"):
        faithfulness(model, random_input(model, 1), np.ones((16, 16)), target=9)
    with pytest.raises(ValueError, match="non-finite"):
        faithfulness(model, random_input(model, 1), np.full((16, 16), np.nan))
    with pytest.raises(ValueError, match="needs a class target"):
        faithfulness(
            tiny_analysis_model("crmn"),
            random_input(model, 1),
            np.ones((16, 16)),
            GateTarget("cell", 0, 0),
            score="logit",
        )
