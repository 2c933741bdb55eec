"""``crmn-viz bench --quick``: every benchmark runs and baseline/candidate outputs agree."""

from __future__ import annotations

from crmn_viz.benchmarks import BENCHMARKS, markdown_table, run_benchmarks
from crmn_viz.cli import main


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
