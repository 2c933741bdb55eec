""" "Can I trust this map?": the views, the many-images table, and the same checks on every front end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import crmn_viz
from crmn_viz.analysis.attribution_trust import check_image, trust_table
from crmn_viz.analysis.attributions import attribute
from crmn_viz.analysis.bootstrap import bootstrap_mean
from crmn_viz.analysis.faithfulness import faithfulness, random_attribution
from crmn_viz.analysis.inputs import prepare_batch
from crmn_viz.figures import figure_data
from crmn_viz.views import trust
from crmn_viz.views.compute import FAITHFULNESS_CURVES, DirectCompute
from tests.conftest import tiny_model
from tests.views.test_views import picture

RUN = DirectCompute()


@pytest.fixture(scope="module")
def crmn() -> crmn_viz.TracedModel:
    torch.manual_seed(0)
    return tiny_model("crmn", num_outputs=10, input_size=32).eval()


def test_the_faithfulness_view_draws_the_maps_curves_beside_a_random_maps(crmn):
    image = picture(0)
    curves, references, shown = trust.faithfulness_view(crmn, image, "saliency", ("predicted",), (), 16, RUN)
    assert [(c.kind, c.order) for c in curves] == [
        (kind, {"most": "most_relevant_first", "least": "least_relevant_first"}[order])
        for kind, order in FAITHFULNESS_CURVES
    ]
    # the first deletion point is the unperturbed probability of the predicted class
    with torch.no_grad():
        probabilities = crmn(prepare_batch(crmn, image.image())).softmax(-1)[0]
    assert curves[0].scores[0] == pytest.approx(float(probabilities.max()), abs=1e-5)
    # the reference curves are those of the seeded random map of the same shape
    result = attribute(crmn, image.image(), "saliency")
    expected = faithfulness(
        crmn, image.image(), random_attribution(result.map.shape, seed=0), result.resolved_target, steps=16
    )
    np.testing.assert_allclose(references[0].scores, expected.scores, atol=1e-6)
    meta = shown.figure.layout.meta
    assert meta["aucs"] == pytest.approx([c.auc for c in curves])
    assert meta["random_aucs"] == pytest.approx([r.auc for r in references])
    assert shown.settings["method"] == "saliency" and shown.settings["steps"] == 16
    assert figure_data(shown.figure)  # the curves are exported as data


def test_the_sanity_view_draws_one_line_per_method_and_the_maps_at_every_stage(crmn):
    image = picture(1)
    methods = [("saliency", ()), ("gradcam", ())]
    results, shown = trust.sanity_check_view(crmn, image, methods, ("predicted",), "cascading", RUN)
    assert [r.method for r in results] == ["saliency", "gradcam"]
    stages = results[0].stages
    heatmaps = [t for t in shown.figure.data if t.type == "heatmap"]
    assert len(heatmaps) == len(methods) * (len(stages) + 1)
    lines = [t for t in shown.figure.data if t.type == "scatter"]
    assert len(lines) == 2 * len(methods)  # Spearman and SSIM per method
    meta = shown.figure.layout.meta
    assert meta["methods"] == ["saliency", "gradcam"]
    for row, result in enumerate(results):
        assert meta["spearman"][row] == pytest.approx(list(result.spearman))
        assert meta["ssim"][row] == pytest.approx(list(result.ssim))
    assert shown.settings["mode"] == "cascading" and shown.settings["methods"] == ["saliency", "gradcam"]


def test_the_table_summarises_each_method_with_intervals_re_derived_from_its_rows(crmn):
    images = [picture(seed) for seed in range(4)]
    table, shown = trust.trust_table_view(crmn, images, ["saliency", "gradcam"], ("predicted",), 8, RUN)
    assert len(table.rows) == 8 and [s.method for s in table.summaries] == ["saliency", "gradcam"]
    for summary in table.summaries:
        rows = [r for r in table.rows if r.method == summary.method]
        deletion = np.array([r.deletion_auc for r in rows])
        assert summary.deletion_auc == pytest.approx(
            bootstrap_mean(deletion, table.resamples, np.random.default_rng(table.seed))
        )
        gain = np.array([r.random_deletion_auc - r.deletion_auc for r in rows])
        assert summary.deletion_gain[0] == pytest.approx(gain.mean())
        assert summary.deletion_auc[1] <= summary.deletion_auc[0] <= summary.deletion_auc[2]
    by_hand = {
        s.method: np.mean([r.insertion_auc - r.deletion_auc for r in table.rows if r.method == s.method])
        for s in table.summaries
    }
    assert table.most_faithful == max(by_hand, key=by_hand.get)
    assert table.most_faithful in table.verdict
    # each row is the one-image check of that image
    row = check_image(crmn, images[2].image(), "gradcam", steps=8, randomisation=False, name=images[2].name)
    assert table.rows[5] == row
    text = trust.trust_markdown(table)
    assert "| Saliency (gradient)" in text and "| Grad-CAM" in text
    assert shown.figure.layout.meta["most_faithful"] == table.most_faithful


def test_the_table_refuses_nothing_to_check(crmn):
    with pytest.raises(ValueError, match="at least one image"):
        trust_table(crmn, [], ["saliency"])
    with pytest.raises(ValueError, match="at least one attribution method"):
        trust_table(crmn, [("a", picture(0).image())], [])


def test_the_randomisation_similarity_of_a_row_is_the_last_cascading_stage(crmn):
    from crmn_viz.analysis.sanity_checks import sanity_check

    image = picture(2).image()
    row = check_image(crmn, image, "saliency", steps=4, randomisation=True)
    check = sanity_check(crmn, image, "saliency", row_target(crmn, image), mode="cascading", seed=0)
    assert row.randomisation_similarity == pytest.approx(float(check.spearman[-1]))
    assert set(row.to_dict()) == {
        "image",
        "method",
        "target",
        "deletion_auc",
        "insertion_auc",
        "random_deletion_auc",
        "random_insertion_auc",
        "randomisation_similarity",
    }


def row_target(model, image):  # type: ignore[no-untyped-def]
    return attribute(model, image, "saliency").resolved_target


def test_the_cli_writes_one_row_per_image_and_method(tmp_path, capsys):
    from PIL import Image

    from crmn_viz.frontends.cli import main

    crmn_viz.save(
        tiny_model("crmn", num_outputs=10, input_size=32),
        tmp_path / "tiny",
        dataset="cifar10",
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
    )
    paths = []
    for seed in range(2):
        path = tmp_path / f"img{seed}.png"
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    out = tmp_path / "rows.json"
    code = main(
        [
            "attribution-check",
            str(tmp_path / "tiny.safetensors"),
            *paths,
            "--method",
            "saliency",
            "gradcam",
            "--steps",
            "8",
            "--resamples",
            "50",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| Grad-CAM" in printed and "deletion AUC" in printed
    rows = json.loads(out.read_text())
    assert [(r["image"], r["method"]) for r in rows] == [
        (name, method) for name in ("img0.png", "img1.png") for method in ("saliency", "gradcam")
    ]
    assert all(-1.0 <= r["randomisation_similarity"] <= 1.0 for r in rows)
    assert all(0.0 <= r["deletion_auc"] <= 1.0 for r in rows)  # areas under probabilities
    assert main(["attribution-check", str(tmp_path / "tiny.safetensors"), paths[0], "--target", "x"]) == 2
    assert "--target 'x'" in capsys.readouterr().err
    assert main(["attribution-check", str(tmp_path / "tiny.safetensors")]) == 2
    assert "no readable image" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("predicted", ("predicted",)),
        ("class:3", ("class", 3)),
        ("keypoint:30:y", ("keypoint", 30, "y")),
        ("gate:forget_gate:17:9", ("gate", "forget_gate", 17, 9)),
    ],
)
def test_cli_targets_parse_to_view_targets(crmn, text, spec):
    from crmn_viz.frontends.cli import parse_target

    assert parse_target(text, crmn) == spec
