"""The 'train one' hints the app shows on pages that do not apply are commands that work."""

from __future__ import annotations

import shlex
from pathlib import Path

from crmn_viz.app_support.applicability import VIEWS
from crmn_viz.training import load_recipe

REPO = Path(__file__).resolve().parents[2]


def test_every_train_hint_names_a_shipped_recipe_for_the_right_model():
    hints = {key: view for key, view in VIEWS.items() if view.train_hint}
    assert set(hints) == {"lstm", "renet", "rir", "faces"}
    for key, view in hints.items():
        words = shlex.split(view.train_hint)
        assert words[:2] == ["crmn-viz", "train"] and len(words) == 3, view.train_hint
        recipe = load_recipe(REPO / words[2])
        if view.archs:
            assert recipe.arch in view.archs, key
        if view.tasks:
            assert recipe.task in view.tasks, key
