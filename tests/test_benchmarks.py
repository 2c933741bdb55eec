"""``crmn-viz bench --quick``: every benchmark runs and baseline/candidate outputs agree."""

from __future__ import annotations

import torch

from crmn_viz.benchmarks import (
    BENCHMARKS,
    count_flops,
    cpu_has_bfloat16_arithmetic,
    cpu_instruction_sets,
    hardware_label,
    markdown_table,
    run_benchmarks,
)
from crmn_viz.frontends.cli import main


def test_quick_benchmarks_run_and_outputs_match():
    # the model-level groups here; .ci/run runs every group with `crmn-viz bench --quick`
    hardware, results = run_benchmarks(quick=True, repeats=1, only=["trace", "lstm", "renet"])
    assert hardware
    groups = {r.group.split()[0] for r in results}
    assert groups == {"1", "2", "3"}
    assert list(BENCHMARKS) == [
        "trace",
        "lstm",
        "renet",
        "attribution",
        "statistics",
        "export",
        "app",
        "accelerate",
        "train-step",
        "limit",
        "overhead",
        "app-browser",
        "interventions",
        "batched-attribute",
        "faithfulness",
        "load",
        "population",
    ]
    assert all(r.outputs_match for r in results), [r for r in results if not r.outputs_match]
    assert all(r.baseline_s > 0 and r.candidate_s > 0 for r in results)
    table = markdown_table(hardware, results)
    assert table.count("\n| ") == len(results) + 1


def test_bench_cli_quick_subset(capsys, tmp_path):
    assert (
        main(["bench", "--quick", "--only", "lstm", "--repeats", "1", "--json", str(tmp_path / "b.json")])
        == 0
    )
    assert "CRMN LSTM interface" in capsys.readouterr().out
    assert (tmp_path / "b.json").exists()


def test_ratio_to_the_limit_and_batch_one_overhead_rows_run_and_match():
    _, results = run_benchmarks(quick=True, repeats=1, only=["limit", "overhead"])
    limit = [r for r in results if r.group.startswith("11")]
    overhead = [r for r in results if r.group.startswith("12")]
    # every architecture, on 1 (and 2, where there are 2 cores) threads; both layouts where they differ
    assert {r.case.split()[0] for r in limit} == {"crmn", "resnet", "renet", "rir"}
    assert any("plain NCHW" in r.candidate for r in limit)
    assert len(overhead) == 4
    assert all(r.outputs_match for r in results), [r for r in results if not r.outputs_match]
    assert all(r.ratio >= 0 for r in results)


def test_flops_are_counted_per_multiply_add_twice():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, torch.randn(2, 3, 10, 10)) == 2 * (2 * 8 * 10 * 10) * (3 * 3 * 3)


def test_crmn20_flop_count_is_the_hand_count():
    from crmn_viz import create_model

    model = create_model("crmn", depth=20, width=16).eval()
    mflop = count_flops(model, torch.randn(2, 3, 32, 32)) / 2 / 1e6
    assert abs(mflop - 99.0) < 0.1


def test_instruction_sets_are_read_from_cpuinfo_flags():
    avx2 = "processor : 0\nflags : fpu sse avx avx2 fma\n"
    bf16 = "flags : avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16\n"
    assert cpu_instruction_sets(avx2) == ["AVX2", "FMA"]
    assert cpu_instruction_sets(bf16) == [
        "AVX2",
        "FMA",
        "AVX-512",
        "AVX512-VNNI",
        "AVX512-BF16",
        "AMX",
        "AMX-BF16",
    ]
    assert not cpu_has_bfloat16_arithmetic(cpu_instruction_sets(avx2))
    assert cpu_has_bfloat16_arithmetic(cpu_instruction_sets(bf16))
    assert "torch kernels" in hardware_label(torch.device("cpu"))


def test_browser_row_skips_with_a_clear_line_without_its_tools(monkeypatch, capsys):
    from crmn_viz import browser_bench

    monkeypatch.setattr(
        browser_bench, "browser_tools_missing", lambda app_dir=None: "Node.js is not installed"
    )
    assert BENCHMARKS["app-browser"](True, torch.device("cpu"), 1) == []
    assert "[browser] skipped: Node.js is not installed" in capsys.readouterr().out


def test_browser_rows_are_ratios_to_the_trivial_rerun_with_goal_verdicts():
    from crmn_viz.browser_bench import results_from

    def record(label, kind, page, seconds, evaluations=0, widget=None):
        return {"label": label, "kind": kind, "page": page, "widget": widget, "seconds": seconds,
                "evaluations": evaluations}  # fmt: skip

    records = [
        record("after", "cold", "first page", 3.0, 3),
        record("after", "nav", "Face keypoints", 1.5, 0),
        record("after", "change", "Face keypoints", 0.5, 0, "Layout"),
        record("after", "change", "Face keypoints", 0.7, 0, "Layout"),
        record("after", "unit", "Export", 0.25, 0, "Keep titles"),
        record("before", "cold", "first page", 6.0, 3),
        record("before", "nav", "Face keypoints", 2.5, 2),
        record("before", "change", "Face keypoints", 1.2, 1, "Layout"),
        record("before", "unit", "Export", 0.5, 0, "Keep titles"),
    ]
    rows = results_from(records, ["after", "before"], ok=True)
    assert [r.candidate for r in rows[:4]] == [
        "page.goto -> first chart",
        "-> Face keypoints",
        "Face keypoints: 'Layout'",
        "Export: 'Keep titles'",
    ]
    after, before = rows[:4], rows[4:]
    assert after[0].ratio == 12.0 and after[0].goal.endswith(": met")
    assert after[2].candidate_s == 0.6 and after[2].goal.endswith(": met")  # median of 0.5 and 0.7
    assert before[1].goal.endswith("NOT met") and before[2].goal.endswith("NOT met")  # 2.5 s; 1 evaluation
    assert "1 network evaluations" in before[2].case and before[2].case.startswith("before: ")
    assert all(r.outputs_match and r.group == "13 browser" for r in rows)


def test_population_bench_checks_exemplars_without_the_data_set(monkeypatch, tmp_path):
    """Without CIFAR-10 on disk the quick row still checks exemplars against an argsort."""
    from crmn_viz.benchmarks import bench_population

    monkeypatch.setenv("CRMN_VIZ_DATA_DIR", str(tmp_path))  # an empty data folder
    (row,) = bench_population(True, torch.device("cpu"), 1)
    assert row.group == "18 population pass"
    assert row.outputs_match
