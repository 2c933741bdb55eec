"""ResNet in ResNet: the generalized block, its reductions and ResNet Init."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crmn_viz import create_model
from tests.conftest import random_input, tiny_model


def zero_transient_stream(model) -> None:  # type: ignore[no-untyped-def]
    """Zero every path into and out of the transient stream (and its BN shift)."""
    with torch.no_grad():
        w0 = model.config.widths[0]
        model.stem.weight[w0:] = 0
        model.stem_bn.bias[w0:] = 0
        model.stem_bn.running_mean[w0:] = 0
        for block in model.blocks:
            out_w, in_w = block.out_width, block.in_width
            block.conv.weight[:out_w, in_w:] = 0  # m -> r
            block.conv.weight[out_w:] = 0  # r -> m and m -> m
            block.bn.bias[out_w:] = 0
            block.bn.running_mean[out_w:] = 0


def test_zeroed_transient_stream_reduces_to_a_single_layer_resnet():
    model = tiny_model("rir", blocks_per_stage=[2, 1])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # non-trivial eval statistics
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    zero_transient_stream(model)
    x = random_input(model)
    with torch.no_grad():
        logits, trace = model.run_with_trace(x)

        def bn(block, z):  # the residual half of the block's BatchNorm, eval mode
            n = block.out_width
            return F.batch_norm(
                z,
                block.bn.running_mean[:n],
                block.bn.running_var[:n],
                block.bn.weight[:n],
                block.bn.bias[:n],
                False,
                0.0,
                block.bn.eps,
            )

        w0 = model.config.widths[0]
        stem = model.stem_bn
        r = F.relu(
            F.batch_norm(
                F.conv2d(x, model.stem.weight[:w0], padding=1),
                stem.running_mean[:w0],
                stem.running_var[:w0],
                stem.weight[:w0],
                stem.bias[:w0],
                False,
                0.0,
                stem.eps,
            )
        )
        for group_index, group in enumerate(model.rir_groups):
            block_input = r
            for k in group:
                block = model.blocks[k]
                conv = F.conv2d(
                    r,
                    block.conv.weight[: block.out_width, : block.in_width],
                    stride=block.conv.stride,
                    padding=1,
                )
                z = bn(block, conv + block.inner_shortcut(r))  # r' = relu(bn(conv(r) + r))
                if k == group[-1]:
                    z = z + model.outer_shortcuts[group_index](block_input)
                r = F.relu(z)
                torch.testing.assert_close(trace[f"blocks.{k}.residual"], r)
                assert torch.count_nonzero(trace[f"blocks.{k}.transient"]) == 0
        expected = model.fc(torch.cat([r, torch.zeros_like(r)], dim=1).mean(dim=(2, 3)))
    torch.testing.assert_close(logits, expected)


def test_resnet_init_folds_the_identity_into_the_weights_equation_2():
    torch.manual_seed(1)
    rir = create_model("rir", widths=[4, 4], blocks_per_stage=[1, 1], layers_per_block=2).eval()
    init = create_model(
        "rir", widths=[4, 4], blocks_per_stage=[1, 1], layers_per_block=2, variant="resnet_init"
    ).eval()
    with torch.no_grad():
        for block_rir, block_init in zip(rir.blocks, init.blocks):
            identity = block_init.conv.weight.clone()
            identity.zero_()
            torch.nn.init.dirac_(identity[: block_rir.out_width, : block_rir.in_width])
            block_init.conv.weight.copy_(block_rir.conv.weight + identity)
        init.stem.weight.copy_(rir.stem.weight)
        init.fc.load_state_dict(rir.fc.state_dict())
        x = torch.randn(2, *rir.input_shape)
        _, trace_rir = rir.run_with_trace(x)
        _, trace_init = init.run_with_trace(x)
    # block 0 (not last in its RiR block, so no outer shortcut): explicit inner
    # shortcut == one conv with W + I (eq. 2)
    torch.testing.assert_close(trace_rir["blocks.0.residual"], trace_init["blocks.0.residual"])
    torch.testing.assert_close(trace_rir["blocks.0.transient"], trace_init["blocks.0.transient"])


def test_resnet_init_variant_starts_with_identity_in_the_residual_kernel():
    model = create_model("rir", widths=[4], blocks_per_stage=[1], variant="resnet_init")
    torch.manual_seed(3)
    plain = create_model("rir", widths=[4], blocks_per_stage=[1], variant="cnn")
    assert model.blocks[0].inner_shortcut is None and model.outer_shortcuts is None
    assert plain.blocks[0].inner_shortcut is None
    # same seed, same random part: the difference is exactly the Dirac identity on r -> r
    torch.manual_seed(3)
    again = create_model("rir", widths=[4], blocks_per_stage=[1], variant="resnet_init")
    torch.manual_seed(3)
    plain = create_model("rir", widths=[4], blocks_per_stage=[1], variant="cnn")
    difference = again.blocks[0].conv.weight - plain.blocks[0].conv.weight
    expected = torch.zeros_like(difference)
    torch.nn.init.dirac_(expected[:4, :4])
    torch.testing.assert_close(difference, expected)


def test_paper_18_layer_wide_configuration():
    with torch.device("meta"):
        model = create_model("rir")
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 18
    assert model.stem.out_channels == 96  # 48 residual + 48 transient
    assert [model.blocks[g[0]].out_width for g in model.rir_groups] == [48, 48, 96, 96, 96, 192, 192, 192]


def test_every_generalized_block_records_both_streams():
    model = tiny_model("rir", layers_per_block=3)
    _, trace = model.run_with_trace(random_input(model))
    assert len(model.blocks) == 6
    for k in range(6):
        assert trace[f"blocks.{k}.residual"].shape == trace[f"blocks.{k}.transient"].shape
