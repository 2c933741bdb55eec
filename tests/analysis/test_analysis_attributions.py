"""attribute(): Captum methods on every architecture, gate and keypoint targets, batching, limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.analysis import (
    ATTRIBUTION_METHODS,
    AttributionLimits,
    GateTarget,
    KeypointTarget,
    attribute,
    gradcam_layer_name,
    occlusion_positions,
    target_function,
)
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input

ARCHS = ("crmn", "resnet", "rir", "renet")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
def test_every_method_on_every_architecture(arch: str, method: str) -> None:
    model = tiny_analysis_model(arch).train()  # attribute() must switch to eval itself
    x = random_input(model, 1)
    options = {"gradient_shap": {"n_samples": 8}, "occlusion": {"window": 4, "stride": 4}}.get(method, {})
    result = attribute(model, x, method, **options)
    channels, height, width = model.input_shape
    expected_shape = (height, width) if method == "gradcam" else (channels, height, width)
    assert result.map.shape == expected_shape and np.isfinite(result.map).all()
    assert result.method == method and result.target.startswith("logit of class ")
    assert (result.convergence_delta is not None) == (method in ("integrated_gradients", "gradient_shap"))
    assert model.training
    model.eval()
    with torch.no_grad():
        predicted = int(model(x).argmax())
        assert result.target == f"logit of class {predicted}"
        assert result.target_value == pytest.approx(float(model(x)[0, predicted]), abs=1e-5)


@pytest.mark.parametrize("arch", ["crmn", "resnet", "renet"])
def test_integrated_gradients_completeness(arch: str) -> None:
    """Sum of attributions = f(x) - f(baseline) (Sundararajan et al. 2017, axiom of completeness)."""
    model = tiny_analysis_model(arch)
    x = random_input(model, 1)
    baseline = 0.5 * random_input(model, 1)
    result = attribute(
        model, x, "integrated_gradients", target=1, baseline=baseline, n_steps=256, precision="float64"
    )
    model64 = model.double()
    with torch.no_grad():
        difference = float(model64(x.double())[0, 1] - model64(baseline.double())[0, 1])
    assert abs(difference) > 1e-3
    # The reported delta is exactly the completeness gap ...
    assert result.convergence_delta == pytest.approx(result.map.sum() - difference, abs=1e-9)
    # ... and small: ReLU kinks make the integrand piecewise smooth, so quadrature error is O(1/n_steps).
    assert abs(result.convergence_delta) < 0.03 * abs(difference)
    assert result.options["n_steps"] == 256 and result.options["baseline"] == "tensor(1, 3, {0}, {0})".format(
        model.input_shape[1]
    )


def test_saliency_is_the_absolute_input_gradient() -> None:
    model = tiny_analysis_model("resnet")
    x = random_input(model, 1).requires_grad_(True)
    model(x)[0, 2].backward()
    result = attribute(model, x.detach()[0], "saliency", target=2)
    np.testing.assert_allclose(result.map, x.grad[0].abs().numpy(), rtol=1e-5, atol=1e-7)
    signed = attribute(model, x.detach(), "saliency", target=2, abs=False)
    np.testing.assert_allclose(signed.map, x.grad[0].numpy(), rtol=1e-5, atol=1e-7)


def test_occlusion_of_the_whole_image_is_the_output_difference() -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 1)
    result = attribute(model, x, "occlusion", target=3, window=16, stride=16, baseline="black")
    with torch.no_grad():
        difference = float(model(x)[0, 3] - model(torch.zeros_like(x))[0, 3])  # black = 0 (mean 0, std 1)
    np.testing.assert_allclose(result.map, np.full((3, 16, 16), difference), rtol=1e-4, atol=1e-6)
    assert result.options["positions"] == 1


def test_max_batch_caps_every_forward_pass_and_does_not_change_results(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = tiny_analysis_model("resnet")
    x = random_input(model, 1)
    sizes: list[int] = []
    original_forward = model.forward

    def counting_forward(inputs: torch.Tensor) -> torch.Tensor:
        sizes.append(int(inputs.shape[0]))
        return original_forward(inputs)

    monkeypatch.setattr(model, "forward", counting_forward)
    for method, options in (
        ("integrated_gradients", {"n_steps": 20}),
        ("occlusion", {"window": 8, "stride": 4}),
        ("gradient_shap", {"n_samples": 12}),
    ):
        sizes.clear()
        small = attribute(model, x, method, target=0, max_batch=8, **options)
        assert max(sizes) <= 8, (method, sizes)
        if method != "gradient_shap":  # random draws differ between chunkings
            large = attribute(model, x, method, target=0, max_batch=64, **options)
            np.testing.assert_allclose(small.map, large.map, rtol=1e-4, atol=1e-6)
        assert small.options["max_batch"] == 8


def test_gradient_shap_is_reproducible_with_its_seed() -> None:
    model = tiny_analysis_model("rir")
    x = random_input(model, 1)
    first = attribute(model, x, "gradient_shap", n_samples=6, seed=3)
    again = attribute(model, x, "gradient_shap", n_samples=6, seed=3)
    other = attribute(model, x, "gradient_shap", n_samples=6, seed=4)
    np.testing.assert_array_equal(first.map, again.map)
    assert not np.array_equal(first.map, other.map)
    numpy_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state()
    attribute(model, x, "gradient_shap", n_samples=2)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # callers' generators untouched
    assert torch.equal(torch.random.get_rng_state(), torch_state)


@pytest.mark.parametrize(
    "gate,unit,step",
    [("forget_gate", 4, 3), ("input_gate", 0, 0), ("output_gate", 5, 5), ("cell", 2, 4), ("hidden", 1, 2)],
)
def test_gate_target_recomputes_exactly_the_traced_gate(gate: str, unit: int, step: int) -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 3)
    with torch.no_grad():
        _, trace = model.run_with_trace(x)
    value = target_function(model, GateTarget(gate, unit=unit, step=step))(x)
    assert value.requires_grad is torch.is_grad_enabled()
    torch.testing.assert_close(value.detach(), trace[f"lstm.{gate}"][:, step, unit], atol=1e-6, rtol=1e-5)


def test_gate_attribution_of_the_issue_example() -> None:
    """GateTarget("forget_gate", unit=17, step=9): f_9 of unit 17 (depth 32: 15 blocks, 20 units)."""
    model = tiny_analysis_model("crmn", depth=32, hidden_size=20)
    x = random_input(model, 1)
    target = GateTarget(gate="forget_gate", unit=17, step=9)
    with torch.no_grad():
        _, trace = model.run_with_trace(x)
    result = attribute(model, x, "integrated_gradients", target=target, n_steps=32, precision="float64")
    assert result.target == "lstm.forget_gate unit 17 at step 9"
    assert next(model.parameters()).dtype == torch.float32  # float64 ran on a copy
    assert result.target_value == pytest.approx(float(trace["lstm.forget_gate"][0, 9, 17]), abs=1e-6)
    with torch.no_grad():
        zero_value = float(target_function(model.double(), target)(torch.zeros_like(x).double())[0])
    assert result.convergence_delta == pytest.approx(result.map.sum() - (result.target_value - zero_value))

    cam = attribute(model.float(), x, "gradcam", target=target, block=9)
    assert cam.map.shape == (16, 16) and cam.options["layer"] == "blocks.9.out"
    with pytest.raises(ValueError, match="only read blocks"):
        attribute(model, x, "gradcam", target=target, block=10)


def test_gate_targets_are_checked() -> None:
    crmn = tiny_analysis_model("crmn")
    x = random_input(crmn, 1)
    with pytest.raises(ValueError, match="unknown gate"):
        attribute(crmn, x, "saliency", target=GateTarget("forgot_gate", 0, 0))
    with pytest.raises(ValueError, match="step"):
        attribute(crmn, x, "saliency", target=GateTarget("forget_gate", 0, crmn.num_steps))
    with pytest.raises(ValueError, match="unit"):
        attribute(crmn, x, "saliency", target=GateTarget("forget_gate", 6, 0))
    resnet = tiny_analysis_model("resnet")
    with pytest.raises(ValueError, match="needs a CRMN"):
        attribute(resnet, random_input(resnet, 1), "saliency", target=GateTarget("forget_gate", 0, 0))


def test_keypoint_targets_on_the_keypoint_crmn() -> None:
    model = tiny_keypoint_crmn()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        keypoints = model(x)
    for target, expected in (
        (KeypointTarget(36, "x"), keypoints[0, 36, 0]),
        (KeypointTarget(8, 1), keypoints[0, 8, 1]),
    ):
        result = attribute(model, x, "saliency", target=target)
        assert result.map.shape == (3, 32, 32)
        assert result.target_value == pytest.approx(float(expected), abs=1e-6)
    assert result.target == "keypoint 8 y"
    cam = attribute(model, x, "gradcam", target=KeypointTarget(0, "y"), block=0)
    assert cam.map.shape == (32, 32)
    with pytest.raises(ValueError, match="KeypointTarget"):
        attribute(model, x, "saliency")
    with pytest.raises(ValueError, match="keypoint index"):
        attribute(model, x, "saliency", target=KeypointTarget(68, "x"))
    with pytest.raises(ValueError, match="axis"):
        attribute(model, x, "saliency", target=KeypointTarget(0, "z"))
    with pytest.raises(ValueError, match="keypoint model"):
        resnet = tiny_analysis_model("resnet")
        attribute(resnet, random_input(resnet, 1), "saliency", target=KeypointTarget(0, "x"))


def test_gradcam_layers_per_architecture() -> None:
    assert gradcam_layer_name(tiny_analysis_model("crmn"), 2) == "blocks.2.out"
    assert gradcam_layer_name(tiny_analysis_model("resnet"), -1) == "blocks.2.out"
    rir = tiny_analysis_model("rir")
    assert gradcam_layer_name(rir, 0) == "blocks.0.residual"
    assert gradcam_layer_name(rir, -1, stream="transient") == "blocks.3.transient"
    assert gradcam_layer_name(tiny_analysis_model("renet"), 0) == "layers.0.out"
    with pytest.raises(ValueError, match="block"):
        gradcam_layer_name(tiny_analysis_model("resnet"), 3)
    result = attribute(rir, random_input(rir, 1), "gradcam", block=1, stream="transient", relu=False)
    assert result.options["layer"] == "blocks.1.transient" and result.options["relu"] is False
    explicit = attribute(rir, random_input(rir, 1), "gradcam", layer="blocks.0.residual")
    assert explicit.map.min() >= 0 and explicit.options["layer_size"] == (16, 16)


def test_options_are_validated_and_limited() -> None:
    model = tiny_analysis_model("resnet")
    x = random_input(model, 1)
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute(model, x, "lime")
    with pytest.raises(ValueError, match="unknown option"):
        attribute(model, x, "saliency", n_steps=3)
    with pytest.raises(ValueError, match="max_steps"):
        attribute(model, x, "integrated_gradients", n_steps=513)
    with pytest.raises(ValueError, match="max_samples"):
        attribute(model, x, "gradient_shap", n_samples=9, limits=AttributionLimits(max_samples=8))
    with pytest.raises(ValueError, match="max_windows"):
        attribute(model, x, "occlusion", window=1, stride=1, limits=AttributionLimits(max_windows=100))
    with pytest.raises(ValueError, match="max_batch"):
        attribute(model, x, "occlusion", max_batch=10_000)
    with pytest.raises(ValueError, match="stride"):
        attribute(model, x, "occlusion", window=2, stride=3)
    assert [type(r).__name__ for r in attribute(model, random_input(model, 2), "saliency")] == [
        "AttributionResult",
        "AttributionResult",
    ]  # a batch gives one result per image (tests/analysis/test_attributions_batch.py)
    with pytest.raises(ValueError, match="class index"):
        attribute(model, x, "saliency", target=5)
    with pytest.raises(ValueError, match="baseline"):
        attribute(model, x, "integrated_gradients", baseline="grey")
    assert occlusion_positions(16, 16, (4, 4), (2, 2)) == 49
    assert occlusion_positions(9, 9, (4, 4), (3, 3)) == 3 * 3  # Captum's ceil rule


def test_pil_input_and_card_class_names() -> None:
    model = tiny_analysis_model("resnet")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8))
    model.card = {"class_names": ["cat", "dog", "frog", "ship", "truck"]}
    result = attribute(model, photo, "saliency", target=-2)
    assert result.map.shape == (3, 16, 16)
    assert result.target == "logit of class 3 (ship)"
