"""Row 13 of ``crmn-viz bench``: the app measured in a real browser (Playwright + Chromium).

:func:`bench_app_in_browser` serves ``app.py`` with ``streamlit run`` on a free port (headless,
as ``tests/app/test_browser.py`` does) and drives it with ``tests/app/browser_bench.mjs``:

- **cold first chart**: a fresh server, from ``page.goto`` to the first plotly chart drawn;
- **warm navigation** to each page (sidebar link, from the Export page) until the app settles
  with the page's charts drawn;
- **one display-only change** per page (a widget that only changes what is drawn) until the
  app settles and a chart is redrawn;
- a **trivial rerun** (the Export page's "Keep titles" checkbox: the frame and a page that
  computes nothing) as the unit: every time is also given as a ratio to it, measured in the
  same run, so the numbers can be compared across machines and loads.

Network evaluations are counted inside the server: it is started through a small launcher that
wraps ``TracedModel.__call__`` (the approach of :func:`crmn_viz.benchmarks.bench_app`) and
writes the running count to a file, which the driver reads before and after every step. The
launcher also writes how many script runs have started and finished, so the driver knows that a
rerun happened and ended even when it was too fast to show in the page.

Given ``before`` (the folder of another version of the app, e.g. a ``git worktree``), both
versions are served side by side and measured in alternation by the same driver in the same
run. ``python -m crmn_viz.browser_bench --before /tmp/crmn-before`` prints the section that
BENCHMARKS.md records. Nothing here asserts a wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmn_viz.benchmarks import BenchResult

__all__ = ["bench_app_in_browser", "browser_tools_missing", "markdown_section"]

REPO = Path(__file__).resolve().parent.parent
DRIVER = REPO / "tests" / "app" / "browser_bench.mjs"
PLAYWRIGHT = REPO / "tests" / "app" / "node_modules" / "playwright-core"
GROUP = "13 browser"
MAX_REPEATS = 5  # each step takes seconds: `--repeats 15` (the CLI default) would take an hour
COLD_SERVERS = 3  # fresh servers for the cold first chart in a full run

# Display-only goals of issue 18 (seconds), checked and reported, never asserted.
GOAL_CHANGE_S = 1.0
GOAL_COLD_S = 4.0
GOAL_FACES_WARM_S = 2.0

UNIT = {"page": "Export", "change": {"kind": "checkbox", "label": "Keep titles"}}
UNIT_NAME = "Export 'Keep titles' rerun"
FULL_GROUPS = [
    {
        "checkpoint": "crmn-cifar10",
        "pages": [
            {"title": "Overview", "charts": 2, "change": {"kind": "select", "label": "Image"}},
            {"title": "LSTM memory", "charts": 2, "change": {"kind": "select", "label": "Quantity"}},
            {"title": "Attributions", "charts": 2, "change": {"kind": "slider", "label": "Overlay opacity"}},
        ],
    },
    {
        "checkpoint": "renet-mnist",
        "pages": [{"title": "ReNet sweeps", "charts": 3, "change": {"kind": "segmented", "label": "Show"}}],
    },
    {
        "checkpoint": "rir-cifar10",
        "pages": [
            {"title": "RiR streams", "charts": 2, "change": {"kind": "slider", "label": "Generalized block"}}
        ],
    },
    {
        "checkpoint": "crmn-faces68",
        "pages": [
            {"title": "Face keypoints", "charts": 2, "change": {"kind": "segmented", "label": "Layout"}}
        ],
    },
]
QUICK_CHECKPOINT = "bench-crmn"
QUICK_GROUPS = [
    {
        "checkpoint": QUICK_CHECKPOINT,
        "pages": [{"title": "LSTM memory", "charts": 2, "change": {"kind": "select", "label": "Quantity"}}],
    }
]

# Runs `streamlit run` in this process after arranging for every TracedModel call to be counted
# into $CRMN_VIZ_BENCH_FORWARDS. The patch is applied when the app itself first imports
# crmn_viz.models.base, so the server starts as fast as a plain `streamlit run` and the first
# page still pays for importing torch. The app's own folder comes first on sys.path, so a
# `before` checkout runs its own crmn_viz.
_LAUNCHER = r"""
import importlib.abc, importlib.util, os, sys
sys.path.insert(0, os.getcwd())
COUNT_FILE = os.environ.get("CRMN_VIZ_BENCH_FORWARDS")


def count_calls(cls):
    original = cls.__call__
    calls = [0]

    def counting_call(self, *args, **kwargs):
        calls[0] += 1
        with open(COUNT_FILE, "w") as handle:
            handle.write(str(calls[0]))
        return original(self, *args, **kwargs)

    cls.__call__ = counting_call


class CountOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "crmn_viz.models.base":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            count_calls(module.TracedModel)

        spec.loader.exec_module = exec_module
        return spec


if COUNT_FILE:
    sys.meta_path.insert(0, CountOnImport())

RUNS_FILE = os.environ.get("CRMN_VIZ_BENCH_RUNS")
if RUNS_FILE:  # "<runs started> <runs finished>": the driver knows a rerun happened and ended
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    run_script = ScriptRunner._run_script
    runs = [0, 0]

    def write_runs():
        with open(RUNS_FILE, "w") as handle:
            handle.write(f"{runs[0]} {runs[1]}")

    def counted_run(self, rerun_data):
        runs[0] += 1
        write_runs()
        try:
            return run_script(self, rerun_data)
        finally:
            runs[1] += 1
            write_runs()

    ScriptRunner._run_script = counted_run
from streamlit.web.cli import main

main(prog_name="streamlit")
"""


def _chromium() -> str:
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def _node_major() -> int:
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(version.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def browser_tools_missing(app_dir: Path = REPO) -> str | None:
    """Why the browser row cannot run here (None when it can)."""
    if not (app_dir / "app.py").exists() or not DRIVER.exists():
        return f"no app.py and {DRIVER.relative_to(REPO)} here (crmn-viz installed without its repository)"
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if _node_major() < 20:
        return "playwright-core needs Node.js 20 or newer"
    if not Path(_chromium()).exists():
        return "Chromium is not installed (apt-get install chromium, or set BROWSER_PATH)"
    if not PLAYWRIGHT.exists():
        return "playwright-core is not installed: run `npm ci --prefix tests/app`"
    try:
        import streamlit  # noqa: F401
    except ImportError:
        return "Streamlit is not installed (pip install -e '.[app]')"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class _Server:
    label: str
    url: str
    process: subprocess.Popen  # type: ignore[type-arg]
    forwards: Path
    runs: Path
    log: Path


def _wait_until_healthy(label: str, url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"streamlit ({label}) exited with code {process.returncode}: {log.read_text()[-1500:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit ({label}) did not become healthy")


@contextlib.contextmanager
def streamlit_server(
    label: str, app_dir: Path, env: dict[str, str], port: int, log_path: Path, timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:  # type: ignore[type-arg]
    """A fresh ``streamlit run app.py`` of ``app_dir`` (headless, 127.0.0.1:``port``, through
    :data:`_LAUNCHER`, which counts network evaluations only when ``env`` asks for it).

    Yields ``(url, process)`` once the server is healthy; stops it by its PID on the way out.
    """
    command = [
        sys.executable, "-c", _LAUNCHER, "run", "app.py",
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=app_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(label, url, process, log_path, timeout)
        yield url, process
    finally:
        process.terminate()  # this server's PID only
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


@contextlib.contextmanager
def _serve(label: str, app_dir: Path, zoo: Path, scratch: Path) -> Iterator[_Server]:
    """A fresh ``streamlit run app.py`` (headless, free port) that counts network evaluations."""
    port = _free_port()
    forwards = scratch / f"forwards-{label}-{port}.txt"
    runs = scratch / f"runs-{label}-{port}.txt"
    log_path = scratch / f"streamlit-{label}-{port}.log"
    env = {
        **os.environ,
        "CRMN_VIZ_CHECKPOINT_DIR": str(zoo),
        "CRMN_VIZ_BENCH_FORWARDS": str(forwards),
        "CRMN_VIZ_BENCH_RUNS": str(runs),
    }
    with streamlit_server(label, app_dir, env, port, log_path) as (url, process):
        yield _Server(label, url, process, forwards, runs, log_path)


def _drive(plan: dict[str, Any], scratch: Path, timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """Run the node driver; returns its measurements and the error it reported (or None).

    The driver writes its lines to ``driver-*.jsonl`` in ``scratch`` as it runs (to follow a long
    run); on a failure they are kept, with a screenshot of the page, in a new temporary folder
    named in the error.
    """
    stamp = time.monotonic_ns()
    path = scratch / f"plan-{stamp}.json"
    shots = scratch / f"failed-{stamp}"
    path.write_text(json.dumps({**plan, "screenshot_dir": str(shots)}))
    output = scratch / f"driver-{stamp}.jsonl"
    with output.open("w") as out:
        try:
            run = subprocess.run(
                ["node", str(DRIVER), str(path)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                timeout=timeout,
            )
            failure = None if run.returncode == 0 else f"exit status {run.returncode}: {run.stderr[-800:]}"
        except subprocess.TimeoutExpired:
            failure = f"it ran past {timeout:.0f} s"
    lines = output.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    errors = [r for r in records if r.get("kind") == "error"]
    if not errors and failure is None:
        return records, None
    kept = Path(tempfile.mkdtemp(prefix="crmn-browser-bench-failed-"))
    shutil.copy(output, kept / "driver.jsonl")
    if shots.exists():
        shutil.copytree(shots, kept, dirs_exist_ok=True)
    if errors:
        return records, f"{errors[0]['message']} ({errors[0].get('label')}; driver output in {kept})"
    return records, f"the browser driver failed, {failure} (output in {kept})"


def _tiny_zoo(folder: Path) -> Path:
    """One tiny CRMN (untrained), enough to draw the LSTM memory page."""
    from crmn_viz.checkpoints import save
    from crmn_viz.models import create_model

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    model = create_model("crmn", depth=8, width=4, hidden_size=6, num_outputs=10).eval()
    normalization = {"mean": [0.5] * 3, "std": [0.25] * 3}
    save(
        model, folder / QUICK_CHECKPOINT, dataset="cifar10", class_names=classes, normalization=normalization
    )
    return folder


def software_label() -> str:
    """Chromium, Node.js and Streamlit versions (the browser row depends on them too)."""
    parts = []
    for name, command in (("Chromium", [_chromium(), "--version"]), ("Node.js", ["node", "--version"])):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        version = re.search(r"\d+(\.\d+)+", out)
        parts.append(f"{name} {version.group(0) if version else '?'}")
    try:
        import streamlit

        parts.append(f"Streamlit {streamlit.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def hardware_line() -> str:
    """CPU model, cores and instruction sets (from :func:`crmn_viz.benchmarks.hardware_label`)."""
    import torch

    from crmn_viz.benchmarks import hardware_label

    return f"{hardware_label(torch.device('cpu'))}; {software_label()}"


def measure(
    apps: dict[str, Path], quick: bool, repeats: int, zoo: Path | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Serve every app in ``apps`` (label -> folder) and measure them in alternation.

    ``zoo`` replaces each app's own ``checkpoints/`` folder (``--quick`` makes a tiny one).

    Returns the driver's records (``label``, ``kind``, ``page``, ``widget``, ``seconds``,
    ``evaluations``) and the first error, if any.
    """
    repeats = max(1, min(repeats, MAX_REPEATS))
    with tempfile.TemporaryDirectory(prefix="crmn-browser-bench-") as tmp:
        scratch = Path(tmp)
        if quick:
            zoo_for = dict.fromkeys(apps, _tiny_zoo(scratch))
        else:
            zoo_for = {label: zoo or folder / "checkpoints" for label, folder in apps.items()}
        plan: dict[str, Any] = {
            "chromium": _chromium(),
            "repeats": 1 if quick else repeats,
            "warm_up": not quick,
            "quiet_ms": 400,
            "unit": UNIT,
            "groups": QUICK_GROUPS if quick else FULL_GROUPS,
        }
        records: list[dict[str, Any]] = []
        rounds = 1 if quick else min(COLD_SERVERS, repeats)
        for round_ in range(rounds):
            order = list(apps) if round_ % 2 == 0 else list(reversed(apps))  # who loads first alternates
            with contextlib.ExitStack() as stack:
                servers = [
                    stack.enter_context(_serve(label, apps[label], zoo_for[label], scratch))
                    for label in order
                ]
                targets = [
                    {
                        "label": s.label,
                        "url": s.url,
                        "forwards_file": str(s.forwards),
                        "runs_file": str(s.runs),
                    }
                    for s in servers
                ]
                budget = 600.0 if quick else 3600.0
                found, error = _drive({**plan, "targets": targets, "only_cold": round_ > 0}, scratch, budget)
                records += found
                if error:
                    return records, error
    return records, None


def _median(records: list[dict[str, Any]], **match: Any) -> tuple[float, int, int | None]:
    """Median seconds, count and summed network evaluations of the matching records."""
    chosen = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    if not chosen:
        return float("nan"), 0, None
    counted = [r["evaluations"] for r in chosen if r.get("evaluations") is not None]
    return statistics.median(r["seconds"] for r in chosen), len(chosen), sum(counted) if counted else None


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def results_from(
    records: list[dict[str, Any]], labels: list[str], ok: bool, quick: bool = False
) -> list[BenchResult]:
    """One row per measurement and app version, each as a ratio to that version's trivial rerun."""
    rows: list[BenchResult] = []
    navigation = "navigation (first visit: --quick has no warm-up)" if quick else "warm navigation"
    pages = list(dict.fromkeys((r["page"], r.get("widget")) for r in records if r["kind"] == "change"))
    for label in labels:
        unit, unit_n, _ = _median(records, label=label, kind="unit")
        prefix = f"{label}: " if len(labels) > 1 else ""

        def row(case: str, candidate: str, seconds: float, goal: str) -> BenchResult:
            return BenchResult(
                GROUP,
                prefix + case,
                f"trivial rerun ({UNIT_NAME}, median of {unit_n})",
                candidate,
                unit,
                seconds,
                seconds / unit if unit > 0 else float("nan"),
                "x the trivial rerun",
                ok and not math.isnan(seconds),  # every output was produced
                0.0,
                goal,
            )

        cold, cold_n, cold_evals = _median(records, label=label, kind="cold")
        rows.append(
            row(
                f"cold first chart (fresh server, median of {cold_n}; {cold_evals} evaluations in all)",
                "page.goto -> first chart",
                cold,
                f"<= {GOAL_COLD_S:.0f} s: {_verdict(cold <= GOAL_COLD_S)}",
            )
        )
        for page, widget in pages:
            nav, nav_n, nav_evals = _median(records, label=label, kind="nav", page=page)
            goal = ""
            if page == "Face keypoints":
                goal = f"<= {GOAL_FACES_WARM_S:.0f} s warm: {_verdict(nav <= GOAL_FACES_WARM_S)}"
            rows.append(
                row(
                    f"{navigation}, median of {nav_n}; {nav_evals} evaluations in all",
                    f"-> {page}",
                    nav,
                    goal,
                )
            )
            seconds, n, evals = _median(records, label=label, kind="change", page=page)
            met = seconds <= GOAL_CHANGE_S and evals == 0
            rows.append(
                row(
                    f"display-only change, median of {n}; {evals} network evaluations in all",
                    f"{page}: '{widget}'",
                    seconds,
                    f"<= {GOAL_CHANGE_S:.1f} s and 0 evaluations: {_verdict(met)}",
                )
            )
        seconds, n, evals = _median(records, label=label, kind="unit")
        met = seconds <= GOAL_CHANGE_S and evals == 0
        rows.append(
            row(
                f"trivial rerun, median of {n}; {evals} evaluations in all",
                f"Export: '{UNIT['change']['label']}'",
                seconds,
                f"<= {GOAL_CHANGE_S:.1f} s and 0 evaluations: {_verdict(met)}",
            )
        )
    return rows


def _print_rows(hardware: str, rows: list[BenchResult]) -> None:
    print(f"[browser] {hardware}")
    for r in rows:
        print(f"[browser] {r.case} | {r.candidate}: {r.candidate_s:.2f} s = {r.ratio:.2f}x the trivial rerun "
              f"({r.baseline_s:.2f} s) | {r.goal}")  # fmt: skip


def bench_app_in_browser(quick: bool, repeats: int, *, before: str | Path | None = None) -> list[BenchResult]:
    """Row 13: the app in Chromium; wall times and ratios to a trivial rerun (see the module doc).

    Args:
        quick: the fewest steps that produce every output (tiny zoo, one page, one repeat, no
            warm-up, one fresh server): for CI, whose numbers mean nothing.
        repeats: timed repeats of every step (at most :data:`MAX_REPEATS`); full runs also
            start ``min(repeats, 3)`` fresh servers for the cold first chart.
        before: another version of the app (its folder) to measure beside this one.

    Returns:
        rows of :class:`~crmn_viz.benchmarks.BenchResult` (none, after printing why, when Node.js,
        playwright-core or Chromium is missing).
    """
    missing = browser_tools_missing()
    if missing is None and before is not None and not (Path(before) / "app.py").exists():
        missing = f"no app.py in {before}"
    if missing:
        print(f"[browser] skipped: {missing}")
        return []
    apps = {"after": REPO} if before is None else {"after": REPO, "before": Path(before)}
    records, error = measure(apps, quick, repeats)
    if error:
        print(f"[browser] FAILED: {error}")
    rows = results_from(records, list(apps), ok=error is None, quick=quick)
    _print_rows(hardware_line(), rows)
    return rows


def markdown_section(hardware: str, rows: list[BenchResult], command: str) -> str:
    """The rows as the BENCHMARKS.md tables of row 13 (with a before/after table for two versions)."""
    lines = [f"```bash\n{command}\n```", "", f"Hardware: {hardware}", ""]
    after = [r for r in rows if r.case.startswith("after: ")]
    before = [r for r in rows if r.case.startswith("before: ")]
    if after and len(after) == len(before):
        lines += [
            "| measured | before s | before, x its unit | after s | after, x its unit | after / before "
            "| network evaluations, before / after | goal (after) |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def evaluations(row: BenchResult) -> str:
            found = re.search(r"(\w+) (?:network )?evaluations in all", row.case)
            return found.group(1) if found else "?"

        for new, old in zip(after, before):
            kind = new.case.removeprefix("after: ").split(",")[0].split(" (")[0]
            lines.append(
                f"| {kind}: {new.candidate} | {old.candidate_s:.2f} | {old.ratio:.2f}x "
                f"| {new.candidate_s:.2f} | {new.ratio:.2f}x | {new.candidate_s / old.candidate_s:.2f}x "
                f"| {evaluations(old)} / {evaluations(new)} | {new.goal or '-'} |"
            )
        lines += ["", "Every row, as measured:", ""]
    lines += [
        "| case | measured | unit s | wall s | ratio to the unit | all outputs | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.case} | {r.candidate} | {r.baseline_s:.2f} | {r.candidate_s:.2f} | {r.ratio:.2f}x | "
        f"{'yes' if r.outputs_match else 'NO'} | {r.goal} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=MAX_REPEATS)
    parser.add_argument("--before", help="folder of another version of the app, measured beside this one")
    parser.add_argument("--json", help="write the raw driver records and the rows here")
    parser.add_argument("--markdown", help="write the BENCHMARKS.md table here")
    args = parser.parse_args(argv)
    missing = browser_tools_missing()
    if missing:
        print(f"[browser] skipped: {missing}")
        return 0
    apps = {"after": REPO} if args.before is None else {"after": REPO, "before": Path(args.before)}
    records, error = measure(apps, args.quick, args.repeats)
    rows = results_from(records, list(apps), ok=error is None, quick=args.quick)
    hardware = hardware_line()
    _print_rows(hardware, rows)
    command = "python -m crmn_viz.browser_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"hardware": hardware, "records": records, "rows": [r.__dict__ for r in rows]}, indent=2
            )
        )
    if args.markdown:
        Path(args.markdown).write_text(markdown_section(hardware, rows, command) + "\n")
    if error:
        print(f"[browser] FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
