"""Every model refuses an input that is not a float batch [N, C, H, W] of its input shape, in words."""

from __future__ import annotations

import re

import pytest
import torch

import crmn_viz
from crmn_viz import InputShapeError
from tests.conftest import TINY_CONFIGS, random_input, tiny_model

ARCHITECTURES = crmn_viz.list_architectures()


def expected_shape(model) -> str:  # type: ignore[no-untyped-def]
    channels, height, width = model.input_shape
    return f"[N, {channels}, {height}, {width}]"


def refusal(model, x) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputShapeError) as info, torch.no_grad():
        model(x)
    return str(info.value)


def test_the_error_is_a_value_error_exported_from_the_package():
    assert issubclass(InputShapeError, ValueError)
    assert issubclass(InputShapeError, RuntimeError)  # what torch raised before: old handlers still work
    assert "InputShapeError" in crmn_viz.__all__


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_correct_batch_still_runs(arch):
    model = tiny_model(arch)
    x = random_input(model, batch=3)
    with torch.no_grad():
        output = model(x)
        traced, trace = model.run_with_trace(x)
    assert output.shape[0] == 3 and torch.equal(output, traced)
    assert trace.names()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_wrong_channel_count_is_refused_with_the_expected_shape(arch):
    model = tiny_model(arch)
    channels, height, width = model.input_shape
    message = refusal(model, torch.randn(4, channels + 1, height, width))
    assert message.startswith(f"{arch} expects input of shape {expected_shape(model)}")
    assert f"got [4, {channels + 1}, {height}, {width}]" in message


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_wrong_image_size_is_refused_with_the_expected_shape(arch):
    model = tiny_model(arch)
    channels, height, width = model.input_shape
    message = refusal(model, torch.randn(2, channels, 2 * height, width + 3))
    assert expected_shape(model) in message
    assert f"{height} x {width} pixels" in message
    assert f"got [2, {channels}, {2 * height}, {width + 3}]" in message


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_single_image_without_batch_dimension_is_told_to_unsqueeze(arch):
    model = tiny_model(arch)
    channels, height, width = model.input_shape
    message = refusal(model, torch.randn(channels, height, width))
    assert expected_shape(model) in message
    assert f"got [{channels}, {height}, {width}]" in message
    assert "unsqueeze(0)" in message
    assert "unsqueeze(0)" in refusal(model, torch.randn(channels + 1, height, width))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_run_with_trace_refuses_the_same_way(arch):
    model = tiny_model(arch)
    channels, height, width = model.input_shape
    with pytest.raises(InputShapeError, match=re.escape(expected_shape(model))):
        model.run_with_trace(torch.randn(1, channels + 2, height, width))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_integer_pixels_and_other_types_are_refused(arch):
    model = tiny_model(arch)
    message = refusal(model, torch.zeros(2, *model.input_shape, dtype=torch.uint8))
    assert "torch.uint8" in message and "floating point" in message
    assert "not a torch.Tensor" in refusal(model, torch.randn(2, *model.input_shape).numpy())
    assert "got [2, " in refusal(model, torch.randn(2, *model.input_shape, 1))  # 5-D


def test_mnist_renet_given_a_cifar_batch_says_what_it_expects():
    model = tiny_model("renet", in_channels=1, input_size=28)
    message = refusal(model, torch.randn(4, 3, 32, 32))
    assert message.startswith(
        "renet expects input of shape [N, 1, 28, 28] (N images, 1 channel, 28 x 28 pixels); "
        "got [4, 3, 32, 32]"
    )
    assert "baddbmm" not in message and "batch2" not in message


def test_a_non_square_input_names_height_and_width():
    model = tiny_model("renet", input_size=[8, 12])
    message = refusal(model, torch.randn(2, 3, 12, 8))
    assert "[N, 3, 8, 12] (N images, 3 channels, 8 x 12 pixels (height x width))" in message
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 12)).shape == (2, 5)


def test_keypoint_models_check_their_input_too():
    model = tiny_model("crmn", task="keypoints", num_outputs=8)
    with torch.no_grad():
        assert model(random_input(model)).shape == (2, 4, 2)
    assert expected_shape(model) in refusal(model, torch.randn(2, 1, 16, 16))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_check_works_on_the_meta_device(arch):
    with torch.device("meta"):
        model = crmn_viz.create_model(arch, **TINY_CONFIGS[arch])
        output = model(torch.empty(2, *model.input_shape))
        assert output.device.type == "meta"
        channels, height, width = model.input_shape
        with pytest.raises(InputShapeError, match=re.escape(expected_shape(model))):
            model(torch.empty(2, channels + 1, height, width))


def test_the_check_is_not_a_hook_and_keeps_forward_inspectable():
    model = tiny_model("crmn")
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert type(model).forward.__name__ == "forward"
    assert type(model).forward.__wrapped__.__qualname__ == "CRMN.forward"


def test_compiled_model_traces_the_check_without_a_graph_break_and_still_refuses():
    model = tiny_model("resnet")
    with torch.no_grad():
        whole_graph = torch.compile(model, backend="eager", fullgraph=True)  # a graph break would raise
        x = random_input(model)
        assert torch.allclose(whole_graph(x), model(x), atol=1e-5)
        compiled = torch.compile(model, backend="eager")
        with pytest.raises(InputShapeError, match=re.escape(expected_shape(model))):
            compiled(torch.randn(2, 1, *model.input_shape[1:]))
