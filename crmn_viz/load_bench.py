"""Row 17 of ``crmn-viz bench``: the app under load from several real browser sessions (issue #25).

:func:`run_load_bench` starts a fresh ``streamlit run app.py`` (headless, 127.0.0.1) in an app
folder and drives it with ``tests/app/load_bench.mjs`` (Playwright + Chromium, one browser
context per session):

1. **solo**: one *light* session alone on the LSTM memory page changes the "Quantity" select
   (display-only: the gates are cached) ``rounds`` times, each timed from the click until the page
   settles -> ``light_solo_p50_s``; then each kind of heavy request used below runs once, alone,
   in a context of its own;
2. **setup**: ``sessions`` contexts are brought, one after the other and untimed, to the state
   just before their heavy request;
3. **load**: every heavy request starts at once while the light session repeats its change as
   long as one is pending (at most ``rounds`` times) -> ``light_p50_s``, ``light_p95_s``;
   ``heavy_done`` counts the heavy requests whose chart appeared within the timeout, and
   ``heavy_seconds`` gives their times.

Heavy requests: integrated gradients at 256 steps (the slider's maximum) for one LSTM gate unit on
the Attributions page, each session its own unit, so no two share a cache entry; with the
checkpoint's test set on this machine (``data_dir``, else ``$CRMN_VIZ_DATA_DIR``), half of them are
test-set gate statistics on the LSTM memory page instead, each session its own image count. A
request still queued by the server (a "waiting: ..." notice) counts as running.

Memory: a thread sums ``VmRSS`` over the server process and its descendants (``/proc``) every
0.2 s. ``rss_solo_mb`` is the peak up to the end of the solo phase, i.e. one light session plus
one heavy request of each kind, one at a time: what one visitor needs. ``rss_peak_mb`` is the peak
over the whole run.

Errors: exceptions and error boxes on a page, uncaught page errors, crashed pages, lost
connections, and actions the driver could not do; a heavy request that times out is not done
(not an error). ``--quick`` (CI) runs 2 heavy sessions (integrated gradients, 56 steps), 1 light
session and 2 rounds on the repository's zoo, to check that every request completes without an
error; nothing here asserts a wall time.

``python -m crmn_viz.load_bench --before /tmp/crmn-before`` measures another checkout of the app
first, then this one, each on a fresh server, and prints both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crmn_viz.benchmarks import BenchResult
from crmn_viz.browser_bench import (
    REPO,
    _chromium,
    _free_port,
    browser_tools_missing,
    hardware_line,
    streamlit_server,
)

__all__ = ["load_tools_missing", "results_from", "run_load_bench"]

DRIVER = REPO / "tests" / "app" / "load_bench.mjs"
GROUP = "17 load"
CHECKPOINT = "crmn-cifar10"  # a real CRMN-20 of the repository's zoo
GOAL_LATENCY_RATIO = 3.0  # light p95 under load <= 3x its idle p50
GOAL_MEMORY_RATIO = 1.5  # peak RSS <= 1.5x one session's
FULL = {"rounds": 20, "steps_key": "End", "heavy_timeout_s": 900.0}  # End: the slider's maximum, 256
QUICK = {"sessions": 2, "rounds": 2, "steps_key": "ArrowLeft", "heavy_timeout_s": 180.0}  # 64 -> 56 steps
STATS_COUNT = 500  # test images for the first statistics request; each next one asks for 50 more


def load_tools_missing(app_dir: Path = REPO) -> str | None:
    """Why the load benchmark cannot run here (None when it can)."""
    if not DRIVER.exists():
        return f"no {DRIVER.relative_to(REPO)} here (crmn-viz installed without its repository)"
    missing = browser_tools_missing(Path(app_dir))  # app.py, Node.js, Chromium, playwright-core
    if missing:
        return missing
    if not (Path(app_dir) / "checkpoints" / f"{CHECKPOINT}.json").exists():
        return f"no {CHECKPOINT} checkpoint in {Path(app_dir) / 'checkpoints'}"
    return None


def _tree_rss_mb(root: int) -> float:
    """Summed VmRSS (MB) of process ``root`` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state
        children.setdefault(parent, []).append(int(entry.name))
    total_kb, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


class _RssSampler(threading.Thread):
    """Samples the server tree's RSS every ``period`` seconds, tagged with the current phase."""

    def __init__(self, pid: int, period: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.phase = "start"
        self.samples: list[tuple[str, float]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((self.phase, _tree_rss_mb(self.pid)))
            self._stop_event.wait(self.period)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)

    def peak(self, phases: set[str] | None = None) -> float:
        chosen = [mb for phase, mb in self.samples if phases is None or phase in phases]
        return max(chosen) if chosen else float("nan")


@contextlib.contextmanager
def _serve(app_dir: Path, port: int, scratch: Path, data_dir: str | None) -> Iterator[tuple[str, int]]:
    """A fresh ``streamlit run app.py`` on 127.0.0.1:port; yields (url, pid); stopped by its PID."""
    env = {**os.environ, "CRMN_VIZ_CHECKPOINT_DIR": str(app_dir / "checkpoints")}
    for variable in ("CRMN_VIZ_BENCH_FORWARDS", "CRMN_VIZ_BENCH_RUNS"):  # no counting here
        env.pop(variable, None)
    if data_dir is not None:
        env["CRMN_VIZ_DATA_DIR"] = str(data_dir)
    log_path = scratch / f"streamlit-{port}.log"
    with streamlit_server("load", app_dir, env, port, log_path, timeout=180.0) as (url, process):
        yield url, process.pid


def _has_test_set(app_dir: Path, data_dir: str | None) -> bool:
    """Whether the checkpoint's data set has its test split on this machine (for statistics)."""
    from crmn_viz.data import DatasetNotFoundError, build_dataset

    card = json.loads((app_dir / "checkpoints" / f"{CHECKPOINT}.json").read_text())
    if not card.get("dataset") or not card.get("class_names"):
        return False
    try:
        build_dataset(str(card["dataset"]), "test", data_dir)
    except (DatasetNotFoundError, ValueError, OSError):
        return False
    return True


def _requests(sessions: int, quick: bool, stats: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(solo requests, load requests): distinct units and image counts, so no two share a cache entry."""
    steps_key = (QUICK if quick else FULL)["steps_key"]

    def ig(unit: int) -> dict[str, Any]:
        return {"type": "ig", "unit": unit, "steps_key": steps_key}

    def statistics(k: int) -> dict[str, Any]:
        return {"type": "stats", "count": STATS_COUNT + 50 * k}

    if not stats:
        return [ig(sessions)], [ig(k) for k in range(sessions)]
    half = sessions // 2
    load = [ig(k) if k % 2 == 0 else statistics(k // 2) for k in range(2 * half)]
    load += [ig(2 * half)] * (sessions - 2 * half)
    return [ig(sessions + 1), statistics(-1)], load


def _drive(plan: dict[str, Any], scratch: Path, sampler: _RssSampler, timeout: float) -> list[dict[str, Any]]:
    """Run the node driver, tagging the RSS samples with the phase it announces; returns its records."""
    path = scratch / "plan.json"
    path.write_text(json.dumps(plan))
    records: list[dict[str, Any]] = []
    stderr = scratch / "driver.stderr"
    with stderr.open("w") as err, (scratch / "driver.jsonl").open("w") as follow:
        driver = subprocess.Popen(
            ["node", str(DRIVER), str(path)], cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True
        )
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            driver.kill()  # this driver's PID only

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            assert driver.stdout is not None
            for line in driver.stdout:
                if not line.startswith("{"):
                    continue
                follow.write(line)  # to follow a long run
                follow.flush()
                record = json.loads(line)
                if record.get("kind") == "phase":
                    sampler.phase = record["name"]
                records.append(record)
            driver.wait()
        finally:
            timer.cancel()
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    finished = any(r.get("kind") == "phase" and r.get("name") == "end" for r in records)
    if driver.returncode != 0 or not finished:
        why = f"was stopped after {timeout:.0f} s" if stopped.is_set() else "failed"
        message = f"the driver {why} (exit status {driver.returncode}): {stderr.read_text()[-800:]}"
        records.append({"kind": "error", "phase": sampler.phase, "session": "driver", "message": message})
    return records


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def run_load_bench(
    app_dir: str | Path = REPO,
    *,
    sessions: int = 8,
    rounds: int | None = None,
    quick: bool = False,
    data_dir: str | Path | None = None,
    port: int | None = None,
) -> dict[str, Any]:
    """Serve ``app_dir`` on a fresh server and measure it under load (see the module doc).

    Args:
        app_dir: the app's folder (``app.py`` and ``checkpoints/``); another checkout for a before run.
        sessions: heavy browser sessions, besides the one light session (quick: 2).
        rounds: light changes alone, and at most under load (default 20; quick 2).
        quick: the CI version: 2 sessions, integrated gradients only at 56 steps, 2 rounds.
        data_dir: data root for test-set statistics (default ``$CRMN_VIZ_DATA_DIR``).
        port: the server's port (default: a free one).

    Returns:
        ``sessions``, ``errors``, ``light_solo_p50_s``, ``light_p50_s``, ``light_p95_s``,
        ``heavy_done``, ``rss_solo_mb``, ``rss_peak_mb`` (issue #25), and ``heavy_total``,
        ``heavy_seconds``, ``heavy`` (every heavy request), ``solo_heavy``, ``light_solo_s``,
        ``light_load_s``, ``error_messages``, ``hardware``, ``app_dir``, ``quick``, ``wall_s``.

    Raises:
        RuntimeError: the tools are missing (:func:`load_tools_missing`) or the server did not start.
    """
    app_dir = Path(app_dir).resolve()
    missing = load_tools_missing(app_dir)
    if missing:
        raise RuntimeError(missing)
    settings = QUICK if quick else FULL
    sessions = int(settings["sessions"]) if quick else sessions
    rounds = rounds or int(settings["rounds"])
    data = None if data_dir is None else str(data_dir)
    stats = not quick and _has_test_set(app_dir, data)
    solo, load = _requests(sessions, quick, stats)
    heavy_timeout = float(settings["heavy_timeout_s"])
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="crmn-load-bench-") as tmp:
        scratch = Path(tmp)
        shots = Path(tempfile.mkdtemp(prefix="crmn-load-bench-shots-"))
        with _serve(app_dir, port or _free_port(), scratch, data) as (url, pid):
            sampler = _RssSampler(pid)
            sampler.start()
            plan = {
                "url": url,
                "chromium": _chromium(),
                "checkpoint": CHECKPOINT,
                "quiet_ms": 400,
                "solo_rounds": rounds,
                "load_rounds": rounds,
                "heavy_timeout_s": heavy_timeout,
                "solo_heavy": solo,
                "heavy": load,
                "screenshot_dir": str(shots),
            }
            # solo heavy requests, the sessions' setup one by one, then the load (bounded by its timeout)
            budget = (len(solo) + 1) * heavy_timeout + 120.0 * (sessions + 2) + 60.0 * rounds
            try:
                records = _drive(plan, scratch, sampler, budget)
            finally:
                sampler.stop()
            server_log = (scratch / f"streamlit-{url.rsplit(':', 1)[1]}.log").read_text()
    errors = [r for r in records if r.get("kind") == "error"]
    lights = [r for r in records if r.get("kind") == "light"]
    light_solo = [r["seconds"] for r in lights if r["phase"] == "solo-light"]
    light_load = [r["seconds"] for r in lights if r["phase"] == "load"]
    # the changes begun while a heavy request was pending (all of them if none was)
    under_load = [r["seconds"] for r in lights if r["phase"] == "load" and r["pending"] > 0] or light_load
    heavy = [r for r in records if r.get("kind") == "heavy" and r["phase"] in ("load", "setup")]
    solo_heavy = [r for r in records if r.get("kind") == "heavy" and r["phase"] == "solo-heavy"]
    failed = bool(errors) or not all(r["done"] for r in heavy + solo_heavy) or len(heavy) < len(load)
    if failed:  # the driver's lines, the server's log and the screenshots of the failed pages
        (shots / "driver.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (shots / "streamlit.log").write_text(server_log)
    else:
        shutil.rmtree(shots, ignore_errors=True)
    return {
        "sessions": sessions,
        "errors": len(errors),
        "light_solo_p50_s": _percentile(light_solo, 50),
        "light_p50_s": _percentile(under_load, 50),
        "light_p95_s": _percentile(under_load, 95),
        "heavy_done": sum(1 for r in heavy if r["done"]),
        "rss_solo_mb": sampler.peak({"start", "solo-light", "solo-heavy"}),
        "rss_peak_mb": sampler.peak(),
        "heavy_total": len(load),
        "heavy_seconds": [r["seconds"] for r in heavy if r["done"]],
        "heavy": [{k: r.get(k) for k in ("session", "type", "seconds", "done", "detail")} for r in heavy],
        "solo_heavy": [{k: r.get(k) for k in ("type", "seconds", "done", "detail")} for r in solo_heavy],
        "light_solo_s": light_solo,
        "light_load_s": light_load,
        "error_messages": [f"{r.get('session')} ({r.get('phase')}): {r.get('message')}" for r in errors][:20],
        "failure_files": str(shots) if failed else None,
        "hardware": hardware_line(),
        "app_dir": str(app_dir),
        "quick": quick,
        "rounds": rounds,
        "wall_s": time.monotonic() - started,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float:
    if numerator is None or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return float("nan")
    return numerator / denominator


def results_from(result: dict[str, Any], label: str = "") -> list[BenchResult]:
    """Row 17 as :class:`BenchResult` rows: light p95 / idle p50, light p50 / idle p50, peak / solo RSS.

    ``outputs_match`` is "no error and every heavy request done"; a goal is only reported.
    """
    prefix = f"{label}: " if label else ""
    ok = result["errors"] == 0 and result["heavy_done"] == result["heavy_total"]
    setting = (
        f"{result['sessions']} heavy + 1 light sessions; {result['errors']} errors; "
        f"heavy done {result['heavy_done']}/{result['heavy_total']}"
    )
    solo = result["light_solo_p50_s"] or float("nan")
    p50 = result["light_p50_s"] if result["light_p50_s"] is not None else float("nan")
    p95 = result["light_p95_s"] if result["light_p95_s"] is not None else float("nan")
    latency = _ratio(p95, solo)
    memory = _ratio(result["rss_peak_mb"], result["rss_solo_mb"])

    def verdict(value: float, goal: float) -> str:
        return f"<= {goal:g}x: {'met' if value <= goal else 'NOT met'}"

    baseline = f"light 'Quantity' change, server otherwise idle (p50 of {len(result['light_solo_s'])})"
    loaded = f"the same change under load, p95 of {len(result['light_load_s'])}"
    alone = "server peak RSS, 1 light session + 1 heavy request of each kind alone"
    return [
        BenchResult(
            GROUP, prefix + setting, baseline, loaded,
            solo, p95, latency, "x the idle p50", ok, 0.0, verdict(latency, GOAL_LATENCY_RATIO),
        ),
        BenchResult(
            GROUP, prefix + setting, baseline, "the same change under load, p50",
            solo, p50, _ratio(p50, solo), "x the idle p50", ok, 0.0, "",
        ),
        BenchResult(
            GROUP, prefix + setting, alone, "server peak RSS under load",
            result["rss_solo_mb"] / 1e3, result["rss_peak_mb"] / 1e3,
            memory, "x the solo peak RSS (ms columns: MB)", ok, 0.0, verdict(memory, GOAL_MEMORY_RATIO),
        ),
    ]  # fmt: skip


def _summary(result: dict[str, Any]) -> str:
    fields = ("sessions", "errors", "light_solo_p50_s", "light_p50_s", "light_p95_s", "heavy_done")
    fields += ("rss_solo_mb", "rss_peak_mb")
    return json.dumps({k: result[k] for k in fields})


LAST_REPORT: dict[str, Any] = {}
"""The last :func:`bench_load` run's report (the issue's flat JSON fields and more), which
``crmn-viz bench --only load --json F`` writes under ``"load"``."""


def bench_load(quick: bool, repeats: int = 1) -> list[BenchResult]:
    """Row 17 of ``crmn-viz bench --only load``, this checkout (no rows, after saying why, without tools)."""
    del repeats  # one run: its rounds are the repeats
    missing = load_tools_missing()
    if missing:
        print(f"[load] skipped: {missing}")
        return []
    result = run_load_bench(REPO, quick=quick)
    LAST_REPORT.clear()
    LAST_REPORT.update(result)
    print(f"[load] {result['hardware']}")
    print(f"[load] {_summary(result)}")
    for message in result["error_messages"]:
        print(f"[load] error: {message}")
    return results_from(result)


def markdown_section(results: dict[str, dict[str, Any]], command: str) -> str:
    """The BENCHMARKS.md table of row 17 (label -> run_load_bench result; before first)."""
    labels = list(results)
    first = results[labels[0]]
    lines = [f"```bash\n{command}\n```", "", f"Hardware: {first['hardware']}", ""]
    lines += ["| measured | " + " | ".join(labels) + " | goal |", "|---|" + "---|" * len(labels) + "---|"]

    def number(value: float | None, digits: int = 2) -> str:
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        return "-" if missing else f"{value:.{digits}f}"

    def row(name: str, values: list[str], goal: str = "") -> None:
        lines.append(f"| {name} | " + " | ".join(values) + f" | {goal} |")

    runs = [results[label] for label in labels]
    row("heavy + light sessions", [f"{r['sessions']} + 1" for r in runs])
    row("errors", [str(r["errors"]) for r in runs], "0")
    row("heavy requests done", [f"{r['heavy_done']}/{r['heavy_total']}" for r in runs], "all")
    row("heavy completion s (min / median / max)", [_spread(r["heavy_seconds"]) for r in runs])
    row("light change alone, p50 s", [number(r["light_solo_p50_s"]) for r in runs])
    row("light change under load, p50 s", [number(r["light_p50_s"]) for r in runs])
    row("light change under load, p95 s", [number(r["light_p95_s"]) for r in runs])
    row(
        "p95 under load / p50 alone",
        [number(_ratio(r["light_p95_s"], r["light_solo_p50_s"])) + "x" for r in runs],
        f"<= {GOAL_LATENCY_RATIO:g}x",
    )
    row("server RSS, one session (solo peak) MB", [number(r["rss_solo_mb"], 0) for r in runs])
    row("server RSS, peak under load MB", [number(r["rss_peak_mb"], 0) for r in runs])
    row(
        "peak / solo RSS",
        [number(_ratio(r["rss_peak_mb"], r["rss_solo_mb"])) + "x" for r in runs],
        f"<= {GOAL_MEMORY_RATIO:g}x",
    )
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[0]:.1f} / {ordered[len(ordered) // 2]:.1f} / {ordered[-1]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="folder of another version of the app, measured first")
    parser.add_argument("--sessions", type=int, default=8, help="heavy sessions (quick: 2)")
    parser.add_argument("--rounds", type=int, default=None, help="light changes per phase (default 20)")
    parser.add_argument("--quick", action="store_true", help="the short CI version")
    parser.add_argument("--data-dir", help="data root for test-set statistics (default $CRMN_VIZ_DATA_DIR)")
    parser.add_argument("--json", help="write the results here (one object, or {before, after})")
    parser.add_argument("--markdown", help="write the BENCHMARKS.md table here")
    args = parser.parse_args(argv)
    apps = {"after": REPO} if args.before is None else {"before": Path(args.before), "after": REPO}
    for folder in apps.values():
        missing = load_tools_missing(folder)
        if missing:
            print(f"[load] skipped: {missing}")
            return 0
    results: dict[str, dict[str, Any]] = {}
    for label, folder in apps.items():  # before first, each on a fresh server
        results[label] = run_load_bench(
            folder, sessions=args.sessions, rounds=args.rounds, quick=args.quick, data_dir=args.data_dir
        )
        print(f"[load] {label}: {_summary(results[label])}")
        for message in results[label]["error_messages"]:
            print(f"[load] {label} error: {message}")
    print(f"[load] {results['after']['hardware']}")
    command = "python -m crmn_viz.load_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        Path(args.json).write_text(json.dumps(results["after"] if len(results) == 1 else results, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown_section(results, command) + "\n")
    failed = [label for label, r in results.items() if r["errors"] or r["heavy_done"] < r["heavy_total"]]
    if failed:
        print(f"[load] FAILED ({', '.join(failed)}): errors or heavy requests not done", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
