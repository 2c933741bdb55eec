"""The fast memory layout changes no number: channels-last vs contiguous, every architecture.

The convolutional models run their convolutions in ``channels_last`` (their
``preferred_memory_format``); setting that attribute to ``torch.contiguous_format`` on an
instance runs the same model in the plain NCHW layout, which is what these tests compare with.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

import crmn_viz
from crmn_viz.models.resnet import batch_norm_
from tests.conftest import tiny_model

ARCHITECTURES = crmn_viz.list_architectures()
CONVOLUTIONAL = {"resnet", "crmn", "rir"}


def with_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)
    return model


def layouts(arch: str, **overrides: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(plain NCHW model, the same weights in the fast layout)."""
    fast = with_statistics(tiny_model(arch, **overrides))
    plain = copy.deepcopy(fast)
    plain.preferred_memory_format = torch.contiguous_format
    return plain, fast.use_fast_layout()


def assert_same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    assert a.shape == b.shape, what
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=what)


def test_the_convolutional_models_prefer_channels_last():
    for arch in ARCHITECTURES:
        expected = torch.channels_last if arch in CONVOLUTIONAL else torch.contiguous_format
        assert tiny_model(arch).preferred_memory_format == expected, arch


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("batch", [2, 48])  # 48: large enough for the in-place BatchNorm
def test_logits_and_every_trace_entry_equal_in_both_layouts(arch, batch):
    plain, fast = layouts(arch)
    x = torch.randn(batch, *plain.input_shape)
    with torch.no_grad():
        plain_out, plain_trace = plain.run_with_trace(x)
        fast_out, fast_trace = fast.run_with_trace(x.contiguous(memory_format=torch.channels_last))
        assert_same(fast(x), plain(x), f"{arch} forward")
    assert_same(fast_out, plain_out, f"{arch} output")
    assert fast_trace.names() == plain_trace.names()
    for name in plain_trace:
        assert_same(fast_trace[name], plain_trace[name], f"{arch} {name}")


@pytest.mark.parametrize("arch", sorted(CONVOLUTIONAL))
def test_the_fast_layout_is_what_runs(arch):
    plain, fast = layouts(arch)
    with torch.no_grad():
        _, fast_trace = fast.run_with_trace(torch.randn(2, *fast.input_shape))
        _, plain_trace = plain.run_with_trace(torch.randn(2, *plain.input_shape))
    block = next(name for name in fast_trace if name.startswith("blocks.0."))
    assert fast_trace[block].is_contiguous(memory_format=torch.channels_last)
    assert plain_trace[block].is_contiguous()


def test_crmn_lstm_input_keeps_the_nchw_flattening_order():
    plain, fast = layouts("crmn", pool=1)
    x = torch.randn(3, *plain.input_shape)
    with torch.no_grad():
        _, trace = fast.run_with_trace(x)
    last = fast.num_steps - 1
    block = trace[f"blocks.{last}.out"]  # channels-last in memory, a smaller map than the first
    assert block.is_contiguous(memory_format=torch.channels_last)
    size = block[0].numel()
    step_input = trace["lstm.input"][:, last]
    torch.testing.assert_close(step_input[:, :size], block.contiguous().reshape(3, -1), rtol=0, atol=0)
    assert size < step_input.shape[1]
    assert step_input[:, size:].abs().max() == 0


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_gradients_and_a_training_step_agree_in_both_layouts(arch):
    plain, fast = layouts(arch, **({"dropout": 0.0, "input_dropout": 0.0} if arch == "renet" else {}))
    x = torch.randn(48, *plain.input_shape)
    y = torch.randint(0, 5, (48,))
    losses, grads, steps = [], [], []
    for model in (plain, fast):
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        inputs = x.clone().requires_grad_()
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        grads.append(inputs.grad)
        with torch.no_grad():
            steps.append(model.eval()(x))
    assert_same(losses[1], losses[0], f"{arch} loss")
    assert_same(grads[1], grads[0], f"{arch} input gradient")
    torch.testing.assert_close(steps[1], steps[0], rtol=1e-4, atol=1e-4)


def test_input_gradients_in_eval_mode_do_not_use_the_in_place_batchnorm():
    plain, fast = layouts("crmn")
    x = torch.randn(48, *plain.input_shape)
    results = []
    for model in (plain, fast):
        inputs = x.clone().requires_grad_()
        model(inputs)[:, 0].sum().backward()
        results.append(inputs.grad)
    assert_same(results[1], results[0], "input gradient")


def test_in_place_batchnorm_equals_the_module():
    bn = with_statistics(torch.nn.Sequential(torch.nn.BatchNorm2d(8))).eval()[0]
    x = torch.randn(64, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = bn(x)
        work = x.clone()
        result = batch_norm_(bn, work)
    assert result.data_ptr() == work.data_ptr()  # written in place
    torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)
    with torch.enable_grad():
        assert batch_norm_(bn, x).data_ptr() != x.data_ptr()  # autograd on: the module itself


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_load_returns_the_fast_layout(arch, tmp_path):
    model = with_statistics(tiny_model(arch))
    crmn_viz.save(model, tmp_path / f"tiny-{arch}", dataset="cifar10")
    loaded = crmn_viz.load(tmp_path / f"tiny-{arch}", device="cpu")
    weights = [p for p in loaded.parameters() if p.dim() == 4]
    assert bool(weights) == (arch in CONVOLUTIONAL)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        assert_same(loaded(x), model(x), f"{arch} loaded")
