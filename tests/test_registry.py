"""Every architecture through the registry: shapes, gradients, config round trip."""

from __future__ import annotations

import pytest
import torch

from crmn_viz import create_model, list_architectures
from tests.conftest import TINY_CONFIGS, random_input, tiny_model


def test_the_four_architectures_are_registered():
    assert list_architectures() == ["resnet", "crmn", "renet", "rir"]


@pytest.mark.parametrize("arch", list_architectures())
def test_forward_backward_without_nans(arch):
    model = tiny_model(arch).train()
    x = random_input(model, 3)
    out = model(x)
    assert out.shape == (3, 5) and torch.isfinite(out).all()
    out.logsumexp(dim=1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("arch", list_architectures())
def test_config_round_trips_through_a_dict(arch):
    model = tiny_model(arch)
    rebuilt = create_model(arch, **model.config.to_dict())
    assert rebuilt.config == model.config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_unknown_option_and_architecture_are_explained():
    with pytest.raises(ValueError, match="unknown config option.*valid"):
        create_model("crmn", depht=20)
    with pytest.raises(ValueError, match="unknown architecture 'lenet'"):
        create_model("lenet")


def test_grey_scale_and_non_square_inputs():
    for arch in list_architectures():
        model = create_model(arch, **{**TINY_CONFIGS[arch], "in_channels": 1, "input_size": [16, 24]}).eval()
        assert model(torch.randn(2, 1, 16, 24)).shape == (2, 5)
