"""The load benchmark of issue #25 (row 17), short: every heavy request completes, without an error.

Starts the app and real browser sessions (Node.js, Chromium and playwright-core, as
``test_browser.py``; skipped without them). Correctness only: no wall time is asserted.
"""

from __future__ import annotations

import math

import pytest

from crmn_viz.load_bench import REPO, load_tools_missing, results_from, run_load_bench

MISSING = load_tools_missing(REPO)


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_quick_load_bench_has_no_errors_and_every_heavy_request_done():
    result = run_load_bench(REPO, quick=True)
    assert result["errors"] == 0, result["error_messages"]
    assert result["heavy_total"] == result["sessions"] == 2
    assert result["heavy_done"] == 2, result["heavy"]
    assert len(result["heavy_seconds"]) == 2
    assert result["solo_heavy"] and all(r["done"] for r in result["solo_heavy"])
    assert len(result["light_solo_s"]) == 2 and result["light_load_s"]
    assert result["rss_peak_mb"] >= result["rss_solo_mb"] > 0
    rows = results_from(result)
    assert len(rows) == 3 and all(r.outputs_match and r.group == "17 load" for r in rows)


def test_load_rows_say_errors_and_goals():
    result = {
        "sessions": 8,
        "errors": 1,
        "light_solo_p50_s": 2.0,
        "light_p50_s": 4.0,
        "light_p95_s": 7.0,
        "heavy_done": 7,
        "heavy_total": 8,
        "rss_solo_mb": 800.0,
        "rss_peak_mb": 1000.0,
        "light_solo_s": [2.0] * 20,
        "light_load_s": [4.0] * 19 + [7.0],
    }
    latency, median, memory = results_from(result)
    assert not latency.outputs_match  # an error, and a heavy request not done
    assert latency.ratio == 3.5 and latency.goal == "<= 3x: NOT met"
    assert median.ratio == 2.0
    assert math.isclose(memory.ratio, 1.25) and memory.goal == "<= 1.5x: met"
    assert "8 heavy + 1 light sessions; 1 errors; heavy done 7/8" in latency.case


def test_load_row_skips_with_a_clear_line_without_its_tools(monkeypatch, capsys):
    import torch

    from crmn_viz import load_bench
    from crmn_viz.benchmarks import BENCHMARKS

    monkeypatch.setattr(load_bench, "load_tools_missing", lambda app_dir=None: "Node.js is not installed")
    assert BENCHMARKS["load"](True, torch.device("cpu"), 1) == []
    assert "[load] skipped: Node.js is not installed" in capsys.readouterr().out
