"""A run that spans sessions: the resumable state committed in ``checkpoints/training-state/<name>/``
is what ``crmn-viz train configs/<name>.toml`` resumes from (weights-only, the recipe's model, the
epochs its log records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crmn_viz import create_model
from crmn_viz.training import load_recipe

REPO = Path(__file__).resolve().parents[2]
STATES = sorted(p for p in (REPO / "checkpoints" / "training-state").glob("*") if p.is_dir())


@pytest.mark.parametrize("folder", STATES, ids=[p.name for p in STATES])
def test_committed_training_state_resumes_its_recipe(folder):
    recipe = load_recipe(REPO / "configs" / f"{folder.name}.toml")
    state = torch.load(folder / "last_state.pt", map_location="cpu", weights_only=True)  # no pickled code
    log = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == list(range(1, state["epoch"] + 1))
    assert 0 < state["epoch"] < recipe.epochs  # unfinished: a finished run ships a checkpoint instead
    expected = create_model(recipe.arch, **recipe.model).state_dict()
    assert state["model"].keys() == expected.keys()
    assert all(state["model"][k].shape == v.shape for k, v in expected.items())
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert state["optimizer"]["state"], "momentum buffers are part of the resumable state"
