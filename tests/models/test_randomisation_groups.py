"""randomisation_groups(): every parameter in exactly one cascading group, output layer first."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crmn_viz import create_model
from crmn_viz.models.base import TracedModel
from tests.conftest import tiny_model

# (arch, config): the defaults of every architecture, the keypoint CRMN and the variants that
# add or remove parameter-owning modules (projection shortcuts, pre-activation BNs, no outer
# shortcuts, an empty stage, LSTM sweeps).
CONFIGS = [
    ("crmn", {}),
    ("resnet", {}),
    ("rir", {}),
    ("renet", {}),
    ("crmn", {"task": "keypoints", "num_outputs": 136, "input_size": 80, "pool": 4}),
    ("crmn", {"depth": 14, "width": 4, "preact": True, "shortcut": "B", "peephole": False}),
    ("resnet", {"depth": 8, "width": 4, "preact": True, "shortcut": "B"}),
    ("rir", {"widths": [4, 6, 8], "blocks_per_stage": [1, 0, 2], "shortcut": "B"}),
    ("rir", {"widths": [4, 6], "blocks_per_stage": [1, 1], "variant": "resnet_init"}),
    ("rir", {"widths": [4, 6], "blocks_per_stage": [1, 1], "variant": "cnn"}),
    ("renet", {"patch_sizes": [2, 2, 1], "hidden_sizes": [3, 3, 2], "fc_sizes": [], "cell": "lstm"}),
]


def owners(name: str, groups: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """The groups whose prefixes claim ``name`` (a prefix is a whole module path)."""
    return [stage for stage, prefixes in groups if any(f"{name}.".startswith(f"{p}.") for p in prefixes)]


@pytest.mark.parametrize(("arch", "config"), CONFIGS, ids=lambda value: str(value))
def test_every_parameter_is_in_exactly_one_non_empty_group(arch: str, config: dict) -> None:
    model = create_model(arch, **config)
    groups = model.randomisation_groups()
    names = [stage for stage, _ in groups]
    assert len(set(names)) == len(names) and names[0] == "output"
    counts = dict.fromkeys(names, 0)
    for name, _ in model.named_parameters():
        claimed = owners(name, groups)
        assert len(claimed) == 1, f"{name} is in {claimed}"
        counts[claimed[0]] += 1
    assert all(counts.values()), counts
    members = model.randomisation_group_parameters()
    assert list(members) == names
    assert {stage: len(params) for stage, params in members.items()} == counts


@pytest.mark.parametrize(
    ("arch", "config", "expected"),
    [
        ("crmn", {}, ["output", "lstm", "stage 3", "stage 2", "stage 1", "stem"]),
        ("resnet", {}, ["output", "stage 3", "stage 2", "stage 1", "stem"]),
        ("rir", {}, ["output", "stage 3", "stage 2", "stage 1", "stem"]),
        (
            "rir",
            {"widths": [4, 6, 8], "blocks_per_stage": [1, 0, 2]},
            ["output", "stage 3", "stage 1", "stem"],
        ),
        ("renet", {"fc_sizes": [8]}, ["output", "layer 2", "layer 1"]),
        (
            "renet",
            {"patch_sizes": [2, 2, 1], "hidden_sizes": [3, 3, 2]},
            ["output", "layer 3", "layer 2", "layer 1"],
        ),
    ],
)
def test_stage_names_in_cascading_order(arch: str, config: dict, expected: list[str]) -> None:
    assert [stage for stage, _ in create_model(arch, **config).randomisation_groups()] == expected


@pytest.mark.parametrize("arch", ["crmn", "resnet"])
def test_residual_blocks_go_to_their_stage_of_the_6n_plus_2_network(arch: str) -> None:
    model = tiny_model(arch, depth=20, preact=True)  # n = 3 blocks per stage
    members = model.randomisation_group_parameters()
    for stage, params in members.items():
        for name in params:
            if name.startswith("blocks."):
                assert stage == f"stage {int(name.split('.')[1]) // 3 + 1}", name
    assert "final_bn.weight" in members["stage 3"]
    assert set(members["stem"]) == {"stem.weight"}  # pre-activation: stem_bn is an identity
    assert set(members["output"]) == {"fc.weight", "fc.bias"}
    if arch == "crmn":
        assert set(members["lstm"]) == {n for n, _ in model.named_parameters() if n.startswith("lstm.")}


def test_rir_outer_shortcuts_go_with_their_stage() -> None:
    model = tiny_model("rir", blocks_per_stage=[1, 2], layers_per_block=2, shortcut="B")
    members = model.randomisation_group_parameters()
    # RiR block 0 (generalized blocks 0, 1) is stage 1; blocks 1, 2 (generalized 2..5) stage 2
    assert {n.split(".")[1] for n in members["stage 1"] if n.startswith("blocks.")} == {"0", "1"}
    assert {n.split(".")[1] for n in members["stage 2"] if n.startswith("blocks.")} == {"2", "3", "4", "5"}
    assert any(n.startswith("outer_shortcuts.1.") for n in members["stage 2"])  # the stride-2 projection
    assert set(members["stem"]) == {"stem.weight", "stem_bn.weight", "stem_bn.bias"}


def test_a_block_prefix_does_not_claim_a_longer_block_number() -> None:
    model = tiny_model("crmn", depth=68)  # 33 blocks: "blocks.1" must not claim "blocks.10"
    members = model.randomisation_group_parameters()
    assert "blocks.10.conv1.weight" in members["stage 1"] and "blocks.11.conv1.weight" in members["stage 2"]


class _TwoLayers(TracedModel):
    arch = "two_layers"

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.activation = nn.ReLU()
        self.second = nn.Linear(4, 2)


def test_the_default_groups_are_the_top_level_modules_with_parameters_last_first() -> None:
    model = _TwoLayers()
    assert model.randomisation_groups() == [("second", ("second",)), ("first", ("first",))]


def test_overlapping_groups_are_refused() -> None:
    model = _TwoLayers()
    model.randomisation_groups = lambda: [("all", ("first", "second")), ("second", ("second",))]  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="'second.weight' is in 2 randomisation groups"):
        model.randomisation_group_parameters()


def test_groups_do_not_change_the_model() -> None:
    model = tiny_model("crmn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.randomisation_group_parameters()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
