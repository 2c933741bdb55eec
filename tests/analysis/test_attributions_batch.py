"""attribute() on a batch: one batch through every method, maps equal to one image at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.analysis import (
    ATTRIBUTION_METHODS,
    AttributionResult,
    GateTarget,
    KeypointTarget,
    attribute,
    gradcam_layer_name,
    target_function,
)
from crmn_viz.analysis.attributions import seeded_random_state
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn

# Small settings per method; occlusion windows scale with the input side.
OPTIONS: dict[str, dict[str, Any]] = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 8},
    "gradient_shap": {"n_samples": 6},
    "occlusion": {"window": 4, "stride": 4},
    "gradcam": {},
}


def images_with_distinct_predictions(model: torch.nn.Module, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` normalised inputs whose predicted classes are as varied as a pool of 200 allows
    (at least two different classes): random images of varied contrast and brightness."""
    generator = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.2, 4, 200).view(-1, 1, 1, 1)
    shift = torch.linspace(-2, 2, 200).view(-1, 1, 1, 1)
    pool = torch.randn(200, *model.input_shape, generator=generator) * scale + shift
    with torch.no_grad():
        predicted = model(pool).argmax(dim=1).tolist()
    first = list({label: index for index, label in reversed(list(enumerate(predicted)))}.values())
    chosen = (first + [i for i in range(200) if i not in first])[:count]
    assert len({predicted[i] for i in chosen}) >= 2
    return pool[chosen]


def one_by_one(
    model: torch.nn.Module, x: torch.Tensor, method: str, targets: list[Any], **options: Any
) -> list[AttributionResult]:
    return [attribute(model, x[i], method, target, **options) for i, target in enumerate(targets)]


def assert_same_results(batch: list[AttributionResult], singles: list[AttributionResult]) -> None:
    """Every field of each image's result: maps within 1e-5 (float32), the rest equal."""
    assert isinstance(batch, list) and len(batch) == len(singles)
    for together, alone in zip(batch, singles):
        assert together.map.shape == alone.map.shape
        np.testing.assert_allclose(together.map, alone.map, rtol=1e-5, atol=1e-5)
        assert together.target_value == pytest.approx(alone.target_value, rel=1e-5, abs=1e-5)
        if alone.convergence_delta is None:
            assert together.convergence_delta is None
        else:
            assert together.convergence_delta == pytest.approx(alone.convergence_delta, rel=1e-4, abs=1e-5)
        assert together.method == alone.method and together.target == alone.target
        assert together.resolved_target == alone.resolved_target
        assert together.options == alone.options


# Untrained tiny models often predict one class for everything; these initial weights do not.
WEIGHT_SEEDS = {"crmn": 3, "resnet": 6, "renet": 3}


def classifier_case(arch: str, count: int = 3) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(WEIGHT_SEEDS[arch])  # weights that predict several classes, whatever ran before
    model = tiny_analysis_model(arch)
    return model, images_with_distinct_predictions(model, count)


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
@pytest.mark.parametrize("arch", ["resnet", "renet"])
def test_predicted_classes_differ_per_image_and_the_batch_equals_one_by_one(arch: str, method: str) -> None:
    model, x = classifier_case(arch)
    options = OPTIONS[method]
    batch = attribute(model, x, method, max_batch=8, **options)  # a tensor [3, C, H, W]
    with torch.no_grad():
        predicted = model(x).argmax(dim=1).tolist()
    assert [r.resolved_target for r in batch] == predicted and len(set(predicted)) >= 2
    assert_same_results(batch, one_by_one(model, x, method, [None] * 3, max_batch=8, **options))


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
def test_a_list_of_class_targets_one_per_image(method: str) -> None:
    model, x = classifier_case("crmn")
    targets = [0, 3, -1]
    batch = attribute(model, list(x), method, targets, max_batch=8, **OPTIONS[method])
    assert [r.resolved_target for r in batch] == targets
    assert [r.target for r in batch] == ["logit of class 0", "logit of class 3", "logit of class 4"]
    assert_same_results(batch, one_by_one(model, x, method, targets, max_batch=8, **OPTIONS[method]))


GATES = [GateTarget("forget_gate", 4, 3), GateTarget("cell", 2, 4), GateTarget("input_gate", 0, 2)]


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
@pytest.mark.parametrize("per_image", [False, True], ids=["one gate", "a gate per image"])
def test_gate_targets_on_a_crmn(method: str, per_image: bool) -> None:
    model = tiny_analysis_model("crmn")
    x = torch.randn(3, *model.input_shape, generator=torch.Generator().manual_seed(2))
    targets = GATES if per_image else [GATES[0]] * 3
    options = {**OPTIONS[method], **({"block": 2} if method == "gradcam" else {})}  # block <= every step
    batch = attribute(model, x, method, GATES if per_image else GATES[0], max_batch=8, **options)
    assert [r.resolved_target for r in batch] == targets
    with torch.no_grad():
        _, trace = model.run_with_trace(x)
    for row, (result, gate) in enumerate(zip(batch, targets)):
        traced = float(trace[f"lstm.{gate.gate}"][row, gate.step, gate.unit])
        assert result.target_value == pytest.approx(traced, abs=1e-5)
    assert_same_results(batch, one_by_one(model, x, method, targets, max_batch=8, **options))


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
@pytest.mark.parametrize("per_image", [False, True], ids=["one keypoint", "a keypoint per image"])
def test_keypoint_targets_on_the_keypoint_crmn(method: str, per_image: bool) -> None:
    model = tiny_keypoint_crmn()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    points = [KeypointTarget(36, "x"), KeypointTarget(8, 1), KeypointTarget(0, "y")]
    targets = points if per_image else [points[0]] * 3
    options = {**OPTIONS[method], **({"window": 8, "stride": 8} if method == "occlusion" else {})}
    batch = attribute(model, x, method, points if per_image else points[0], max_batch=8, **options)
    with torch.no_grad():
        keypoints = model(x)
    for row, (result, point) in enumerate(zip(batch, targets)):
        expected = float(keypoints[row, point.index, point.axis_index])
        assert result.target_value == pytest.approx(expected, abs=1e-6)
    assert_same_results(batch, one_by_one(model, x, method, targets, max_batch=8, **options))


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
def test_more_images_than_max_batch_are_split_and_every_pass_stays_under_it(method: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model, x = classifier_case("resnet", count=5)
    options = {**OPTIONS[method], **({"n_samples": 6} if method == "gradient_shap" else {})}
    singles = one_by_one(model, x, method, [None] * 5, max_batch=4, **options)
    sizes: list[int] = []
    original_forward = model.forward

    def counting_forward(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(int(inputs.shape[0]))
        return original_forward(inputs)

    monkeypatch.setattr(model, "forward", counting_forward)
    batch = attribute(model, x, method, max_batch=4, **options)
    assert max(sizes) <= 4, sizes
    assert_same_results(batch, singles)
    if method in ("saliency", "gradcam"):  # groups of 4 and 1 images: one pass each (Grad-CAM: one forward)
        assert sizes == ([4, 4, 1, 1] if method == "saliency" else [4, 1])


def test_gradcam_runs_one_forward_for_the_whole_batch(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The predicted class and the target value come from the Grad-CAM forward itself."""
    model, x = classifier_case("crmn", count=6)
    sizes: list[int] = []
    original_forward = model.forward
    counting = lambda inputs: sizes.append(len(inputs)) or original_forward(inputs)  # noqa: E731
    monkeypatch.setattr(model, "forward", counting)
    results = attribute(model, x, "gradcam")
    assert sizes == [6] and len(results) == 6
    with torch.no_grad():
        logits = model(x)
    for row, result in enumerate(results):
        assert result.target_value == pytest.approx(float(logits[row].max()), abs=1e-5)


def test_gradient_shap_draws_what_captum_drew_for_one_image() -> None:
    """A seeded map is what Captum's GradientShap gave for one image before batching (the same
    draws, chunk by chunk), and a batch reproduces it exactly: each image draws its noise,
    baseline choices and interpolation points from the seed alone. An unseeded batch (seed=None)
    draws one stream for all images, so its maps are random like any unseeded map."""
    from captum.attr import GradientShap

    model = tiny_analysis_model("rir")
    x = torch.randn(2, *model.input_shape, generator=torch.Generator().manual_seed(4))
    options = {"n_samples": 10, "baselines": ("zeros", "white"), "seed": 3, "max_batch": 4}
    batch = attribute(model, x, "gradient_shap", [1, 2], **options)
    for row, target in enumerate([1, 2]):
        image = x[row : row + 1]
        baselines = torch.cat([torch.zeros_like(image), torch.ones_like(image)])  # mean 0, std 1
        explainer = GradientShap(target_function(model, target))
        total, gap = torch.zeros_like(image), 0.0
        with seeded_random_state(3, torch.device("cpu")):
            for chunk in (4, 4, 2):  # max_batch samples at a time, as the one-image code did
                attribution, delta = explainer.attribute(
                    image.clone().requires_grad_(True),
                    baselines=baselines,
                    n_samples=chunk,
                    stdevs=0.1,
                    return_convergence_delta=True,
                )
                total += attribution.detach() * chunk
                gap += float(delta.sum())
        np.testing.assert_allclose(batch[row].map, (total / 10)[0].numpy(), rtol=1e-5, atol=1e-6)
        assert batch[row].convergence_delta == pytest.approx(gap / 10, rel=1e-4, abs=1e-6)
    other_seed = attribute(model, x, "gradient_shap", [1, 2], **{**options, "seed": 4})
    assert not np.allclose(batch[0].map, other_seed[0].map)


def test_what_comes_back_follows_the_input() -> None:
    model = tiny_analysis_model("resnet")
    x = torch.randn(2, *model.input_shape, generator=torch.Generator().manual_seed(5))
    assert isinstance(attribute(model, x[0], "saliency"), AttributionResult)  # [C, H, W]
    assert isinstance(attribute(model, x[:1], "saliency"), AttributionResult)  # [1, C, H, W]
    as_list = attribute(model, [x[0]], "saliency")  # a list of one image is a batch of one
    assert isinstance(as_list, list) and len(as_list) == 1
    np.testing.assert_allclose(as_list[0].map, attribute(model, x[0], "saliency").map, atol=1e-6)
    assert len(attribute(model, (x[0], x[1]), "saliency", target=torch.tensor([1, 2]))) == 2

    photos = [
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8))
        for seed in (0, 1)
    ]
    from_photos = attribute(model, photos, "gradcam")
    assert isinstance(attribute(model, photos[0], "gradcam"), AttributionResult)
    assert_same_results(from_photos, [attribute(model, photo, "gradcam") for photo in photos])
    mixed = attribute(model, [photos[0], x[1]], "saliency", target=[0, 1])
    np.testing.assert_allclose(mixed[1].map, attribute(model, x[1], "saliency", 1).map, atol=1e-6)


def test_bad_batches_and_target_lists_are_refused() -> None:
    model = tiny_analysis_model("crmn")
    x = torch.randn(3, *model.input_shape)
    with pytest.raises(ValueError, match="share one size"):
        attribute(model, [x[0], torch.randn(3, 12, 12)], "saliency")
    with pytest.raises(ValueError, match="at least one image"):
        attribute(model, [], "saliency")
    with pytest.raises(ValueError, match="at least one image"):
        attribute(model, x[:0], "saliency")
    with pytest.raises(ValueError, match="each element must be one image"):
        attribute(model, [x[:2]], "saliency")
    with pytest.raises(ValueError, match="2 targets for 3 image"):
        attribute(model, x, "saliency", target=[0, 1])
    with pytest.raises(ValueError, match="1 targets for 3 image"):
        attribute(model, list(x), "saliency", target=(0,))
    with pytest.raises(ValueError, match="one kind"):
        attribute(model, x, "saliency", target=[0, GateTarget("cell", 0, 0), None])
    with pytest.raises(ValueError, match="class index"):
        attribute(model, x, "saliency", target=[0, 1, 5])
    with pytest.raises(ValueError, match="only read blocks"):
        attribute(model, x, "gradcam", target=GATES, block=3)
    keypoints = tiny_keypoint_crmn()
    with pytest.raises(ValueError, match="KeypointTarget"):
        attribute(keypoints, torch.randn(2, 3, 32, 32), "saliency", target=[KeypointTarget(0), None])


def test_gradcam_maps_equal_pytorch_grad_cam() -> None:
    """Against pytorch-grad-cam's ``GradCAM`` on the same model, layer and classes.

    pytorch-grad-cam returns, per image, ``s(cv2.resize(s(relu(cam)), input size))`` with
    ``s(m) = (m - min m) / (1e-7 + max(m - min m))`` (its ``scale_cam_image``). What is compared:
    its map against ours (``relu(cam)`` upsampled with torch's bilinear) passed through ``s``
    twice, ``s(s(ours))``. They agree because a bilinear resize is a weighted mean (weights summing
    to 1), so it commutes with the affine scaling ``s``, and cv2's ``INTER_LINEAR`` upsampling
    samples at the same half-pixel centres as torch's bilinear with ``align_corners=False``.
    (Applying ``s`` once would leave a relative difference of 1e-7 / range: the raw CAMs of these
    untrained models span about 5e-4.) Block 0 is on the input grid (no resize on either side:
    the CAM itself is compared); the last block is 4 x 4 (resized 4x by both).
    """
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x = classifier_case("crmn", count=4)
    modules = dict(model.named_modules())
    for block, grid in ((0, (16, 16)), (-1, (4, 4))):
        ours = attribute(model, x, "gradcam", block=block)
        assert ours[0].options["layer_size"] == grid
        targets = [ClassifierOutputTarget(result.resolved_target) for result in ours]
        with GradCAM(model=model, target_layers=[modules[gradcam_layer_name(model, block)]]) as cam:
            theirs = cam(input_tensor=x, targets=targets)
        scaled = scale_cam_image(scale_cam_image(np.stack([result.map for result in ours])))
        assert theirs.shape == scaled.shape == (4, 16, 16)
        np.testing.assert_allclose(scaled, theirs, atol=1e-5)
        assert min(np.ptp(m) for m in theirs) > 0.5  # non-trivial maps


def test_integrated_gradients_deltas_are_each_images_completeness_gap() -> None:
    model, x = classifier_case("crmn")
    results = attribute(model, x, "integrated_gradients", [1, 2, 3], n_steps=16, precision="float64")
    model64 = model.double()
    with torch.no_grad():
        outputs = model64(x.double()) - model64(torch.zeros_like(x).double())
    rises = [float(outputs[row, c]) for row, c in enumerate([1, 2, 3])]
    for result, rise in zip(results, rises):
        assert result.convergence_delta == pytest.approx(result.map.sum() - rise, abs=1e-9)
        assert result.options["precision"] == "float64"
    assert len({r.convergence_delta for r in results}) == 3
