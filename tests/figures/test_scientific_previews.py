"""Representative scientific figures rendered to PNG by Chromium: right size, not blank, colours present."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.figures import (
    OKABE_ITO,
    export_figures,
    plot_attribution_overlay,
    plot_context_reach,
    plot_gate_heatmap,
    plot_gate_trajectories,
)
from tests.conftest import random_input, tiny_model


@pytest.fixture(scope="module")
def traces():
    torch.manual_seed(0)
    found = {}
    for arch in ("crmn", "renet"):
        model = tiny_model(arch)
        with torch.no_grad():
            _, found[arch] = model.run_with_trace(random_input(model, batch=1))
    return found


def test_representative_figures_render_to_png(tmp_path, browser_path, traces) -> None:
    yy, xx = np.mgrid[0:32, 0:32]
    image = np.stack([xx * 8, yy * 8, np.full_like(xx, 120)], axis=-1).astype(np.uint8)
    attribution = np.exp(-((xx - 20) ** 2 + (yy - 12) ** 2) / 20.0) - 0.5 * np.exp(
        -((xx - 8) ** 2 + (yy - 24) ** 2) / 12.0
    )
    figures = {
        "heatmap": plot_gate_heatmap(traces["crmn"], "forget_gate"),
        "trajectories": plot_gate_trajectories(traces["crmn"], units=[0]),
        "reach": plot_context_reach(traces["renet"], 0, 2, 1),
        "attribution": plot_attribution_overlay(image, attribution),
    }
    paths = export_figures(figures, tmp_path, formats=("png",), dpi=150)
    assert [p.name for p in paths] == [f"{name}.png" for name in figures]
    for path, fig in zip(paths, figures.values()):
        with Image.open(path) as png:
            pixels = np.asarray(png.convert("RGB"))
        assert pixels.shape[1] == round(fig.layout.width / 96 * 150)
        assert pixels.shape[0] == round(fig.layout.height / 96 * 150)
        assert pixels.std() > 10  # something was drawn
        assert (pixels == 255).all(axis=-1).mean() > 0.2  # white paper background
    with Image.open(tmp_path / "reach.png") as png:
        reach = np.asarray(png.convert("RGB")).reshape(-1, 3).astype(int)
    blue = np.array([int(OKABE_ITO["blue"][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(reach - blue).sum(axis=1) < 30).mean() > 0.01  # the reachable patches
