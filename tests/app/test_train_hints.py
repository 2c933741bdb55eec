"""The 'train one' hints the app shows on pages that do not apply are commands that work."""

from __future__ import annotations

import shlex
from pathlib import Path

from crmn_viz.checkpoints import build_skeleton
from crmn_viz.data import dataset_info
from crmn_viz.training import load_recipe
from crmn_viz.views.applicability import VIEWS

REPO = Path(__file__).resolve().parents[2]


def test_every_train_hint_names_a_shipped_recipe_for_the_right_model():
    hints = {key: view for key, view in VIEWS.items() if view.train_hint}
    assert set(hints) == {"lstm", "renet", "rir", "faces", "experiments", "blocks", "population"}
    for key, view in hints.items():
        words = shlex.split(view.train_hint)
        assert words[:2] == ["crmn-viz", "train"] and len(words) == 3, view.train_hint
        recipe = load_recipe(REPO / words[2])
        info = dataset_info(recipe.dataset)
        options = {
            "num_outputs": info.num_outputs,
            "in_channels": info.channels,
            "input_size": list(info.input_size),
            **recipe.model,
        }  # as crmn_viz.training.train builds it
        model = build_skeleton({"arch": recipe.arch, "config": options})  # the model it trains
        assert view.applies_to(model), key
