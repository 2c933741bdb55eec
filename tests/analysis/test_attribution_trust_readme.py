"""The README's attribution-trust table is what `crmn-viz attribution-check` measures (slow: ~5 min)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "cifar10-jpeg.zip").exists(), reason="needs the CIFAR-10 test set")
def test_the_readme_trust_table_is_re_made_by_its_command(tmp_path):
    from crmn_viz.frontends.cli import main

    out = tmp_path / "rows.json"
    command = [
        "attribution-check",
        "crmn-cifar10",
        "--test-images",
        "20",
        "--data-dir",
        str(DATA),
        "--method",
        "integrated_gradients",
        "saliency",
        "gradcam",
        "--json",
        str(out),
        "--quiet",
    ]
    assert main(command) == 0
    rows = json.loads(out.read_text())
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Can an attribution map be trusted?") :]
    labels = {
        "integrated_gradients": "integrated gradients",
        "saliency": "saliency",
        "gradcam": "Grad-CAM",
    }
    for method, label in labels.items():
        line = next(line for line in section.splitlines() if line.startswith(f"| {label}"))
        printed = [float(v) for v in re.findall(r"(?<![\d(-])(\d\.\d+)(?= \(|\s*\|)", line)]
        chosen = [r for r in rows if r["method"] == method]
        assert len(chosen) == 20
        measured = [
            np.mean([r[key] for r in chosen])
            for key in ("deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc")
        ]
        similarity = np.mean([r["randomisation_similarity"] for r in chosen])
        assert printed[:4] == pytest.approx(measured, abs=2e-3), (method, printed, measured)
        assert printed[4] == pytest.approx(similarity, abs=0.01), (method, printed, similarity)
