"""Parameter counts against the papers' own tables."""

from __future__ import annotations

import pytest

from crmn_viz import create_model

# CRMN 2016, Table 1 (CIFAR-100, 100 outputs): (arch, layers, feature-map multiple of 16, M params)
CRMN_2016_TABLE_1 = [
    ("resnet", 134, 1, 2.12),
    ("resnet", 104, 1.5, 3.67),
    ("resnet", 92, 2, 5.74),
    ("resnet", 62, 4, 15.16),
    ("resnet", 32, 1, 0.47),
    ("resnet", 32, 1.5, 1.05),
    ("resnet", 32, 2, 1.86),
    ("resnet", 32, 4, 7.41),
    ("crmn", 32, 1, 2.16),
    ("crmn", 32, 1.5, 3.56),
    ("crmn", 32, 2, 5.19),
    ("crmn", 32, 4, 14.01),
]

# CRMN 2017, Table 1 (68 keypoints = 136 outputs, 80x80 inputs, 4x4 pooling):
# (arch, n, feature-map multiple of 16, M params). Projection shortcuts (option B)
# reproduce the ResNet rows; the table prints three significant digits.
CRMN_2017_KEYPOINT_TABLE = [
    ("crmn", 5, 4, 17.76),
    ("resnet", 18, 4, 27.63),
    ("resnet", 9, 8, 54.55),
    ("resnet", 9, 4, 13.67),
    ("resnet", 5, 4, 7.46),
]


@pytest.mark.parametrize(("arch", "depth", "multiple", "millions"), CRMN_2016_TABLE_1)
def test_crmn_2016_table_1_parameter_counts_to_two_decimals(arch, depth, multiple, millions):
    with __import__("torch").device("meta"):
        model = create_model(arch, depth=depth, width=int(16 * multiple), num_outputs=100)
    assert round(model.num_parameters() / 1e6, 2) == millions


@pytest.mark.parametrize(("arch", "n", "multiple", "millions"), CRMN_2017_KEYPOINT_TABLE)
def test_crmn_2017_keypoint_table_parameter_counts_within_half_percent(arch, n, multiple, millions):
    options = {
        "depth": 6 * n + 2,
        "width": 16 * multiple,
        "num_outputs": 136,
        "input_size": 80,
        "shortcut": "B",
    }
    if arch == "crmn":
        options.update(pool=4)
    options["task"] = "keypoints"  # the sigmoid head over 68 (x, y) pairs, for the ResNet rows too
    with __import__("torch").device("meta"):
        model = create_model(arch, **options)
    assert abs(model.num_parameters() / 1e6 - millions) / millions < 0.005


def test_lstm_adds_a_constant_number_of_parameters_irrespective_of_depth():
    # CRMN 2016, sec. 4.1: "the LSTM adds a constant number of parameters for a given
    # architecture, irrespective of depth".
    import torch

    with torch.device("meta"):
        extra = [
            create_model("crmn", depth=d, width=16).num_parameters()
            - create_model("resnet", depth=d, width=16).num_parameters()
            for d in (8, 20, 56)
        ]
    assert len(set(extra)) == 1
    # 4 gates x (H x D + H x H + H) + 3 H peepholes + H initial state + head's extra H x classes
    hidden, d_max, classes = 100, 16 * 16 * 16, 10
    assert (
        extra[0] == 4 * (hidden * d_max + hidden * hidden + hidden) + 3 * hidden + hidden + hidden * classes
    )


def test_keypoint_resnet_is_the_crmn_backbone_and_head_without_the_memory():
    """resnet-faces68's design: exactly crmn-faces68's trunk, and a sigmoid head over 2K outputs."""
    import torch

    options = {
        "depth": 20,
        "width": 16,
        "num_outputs": 136,
        "input_size": 80,
        "shortcut": "B",
        "task": "keypoints",
    }
    resnet = create_model("resnet", **options).eval()
    crmn = create_model("crmn", pool=4, **options).eval()
    trunk = {k: v for k, v in crmn.state_dict().items() if not k.startswith(("lstm.", "fc."))}
    assert trunk.keys() == {k for k in resnet.state_dict() if not k.startswith("fc.")}
    x = torch.rand(2, 3, 80, 80)
    points = resnet(x)
    assert points.shape == (2, 68, 2) and bool(((points > 0) & (points < 1)).all())
    pooled = resnet.run_trunk(x)[1].mean(dim=(2, 3))
    torch.testing.assert_close(points, torch.sigmoid(resnet.fc(pooled)).unflatten(-1, (68, 2)))
    assert resnet.output_name == "keypoints" and not resnet.has_stepwise_readout
