"""Benchmarks run side by side in one process, reported as absolute times and ratios.

Every benchmark compares a baseline and a candidate on the same inputs in the same run,
alternating the two so that machine noise hits both alike, and checks that their
outputs agree. Nothing here asserts a wall-clock threshold: ``crmn-viz bench --quick``
(run by CI) only checks that every benchmark executes and that outputs match.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from crmn_viz.models import create_model
from crmn_viz.models.reference import reference_crmn_lstm, reference_renet_layer

__all__ = ["BenchResult", "hardware_label", "run_benchmarks"]


@dataclasses.dataclass
class BenchResult:
    """One comparison: ``ratio = baseline_s / candidate_s`` unless ``ratio_label`` says otherwise."""

    group: str  # which question of BENCHMARKS.md it answers
    case: str  # configuration (architecture, batch size ...)
    baseline: str  # what the candidate is compared with
    candidate: str  # what is measured
    baseline_s: float  # median seconds per call
    candidate_s: float  # median seconds per call
    ratio: float  # see ratio_label
    ratio_label: str  # how to read the ratio
    outputs_match: bool  # both produce the same numbers (within max_abs_diff)
    max_abs_diff: float = 0.0
    goal: str = ""  # the target stated in the issue

    def row(self) -> str:
        """A Markdown table row."""
        return (
            f"| {self.group} | {self.case} | {self.baseline} | {self.candidate} | "
            f"{self.baseline_s * 1e3:.2f} | {self.candidate_s * 1e3:.2f} | {self.ratio:.2f}x "
            f"({self.ratio_label}) | {'yes' if self.outputs_match else 'NO'} | {self.goal} |"
        )


def hardware_label(device: torch.device) -> str:
    """CPU model and thread count, or the GPU name."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(
    baseline: Callable[[], Any], candidate: Callable[[], Any], repeats: int, device: torch.device
) -> tuple[float, float]:
    """Median seconds of each callable, measured alternately after one warm-up call each."""
    baseline()
    candidate()
    times_b, times_c = [], []
    for _ in range(repeats):
        for fn, bucket in ((baseline, times_b), (candidate, times_c)):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(time.perf_counter() - start)
    return statistics.median(times_b), statistics.median(times_c)


def bench_trace_overhead(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """1. ``run_with_trace`` (everything recorded) vs the plain forward pass."""
    configs = {
        "crmn": {"depth": 8 if quick else 20, "width": 4 if quick else 16},
        "resnet": {"depth": 8 if quick else 20, "width": 4 if quick else 16},
        "renet": {
            "patch_sizes": [2, 2],
            "hidden_sizes": [8, 8] if quick else [64, 64],
            "fc_sizes": [16] if quick else [512],
            "in_channels": 3,
            "input_size": 32,
        },
        "rir": {
            "widths": [4, 8] if quick else [16, 32, 64],
            "blocks_per_stage": [1, 1] if quick else [1, 1, 1],
        },
    }
    results = []
    for arch, config in configs.items():
        model = create_model(arch, **config).to(device).eval()
        for batch in (1, 8) if quick else (1, 64):
            x = torch.randn(batch, *model.input_shape, device=device)
            with torch.no_grad():
                plain_out = model(x)
                traced_out, _ = model.run_with_trace(x)

                def plain(model=model, x=x):
                    with torch.no_grad():
                        return model(x)

                def traced(model=model, x=x):
                    with torch.no_grad():
                        return model.run_with_trace(x)

            base, cand = time_pair(plain, traced, repeats, device)
            diff = (plain_out - traced_out).abs().max().item()
            results.append(
                BenchResult(
                    "1 trace overhead",
                    f"{arch} B={batch}",
                    "forward",
                    "run_with_trace (all names)",
                    base,
                    cand,
                    cand / base,
                    "traced / plain, lower is better",
                    diff == 0.0,
                    diff,
                    "<= 1.10x on CRMN",
                )
            )
    return results


def bench_crmn_lstm_interface(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """2. Stage-sliced projection vs the zero-padded per-step LSTM, forward + backward."""
    model = create_model("crmn", depth=8 if quick else 32, width=4 if quick else 16).to(device).eval()
    x = torch.randn(4 if quick else 64, *model.input_shape, device=device)
    with torch.no_grad():
        blocks, _ = model.run_trunk(x)
    stage_inputs = [s.detach().requires_grad_() for s in model.pool_block_outputs(blocks)]
    padded = model.lstm.padded_inputs(stage_inputs).detach().requires_grad_()

    def fast():
        hidden = model.lstm(stage_inputs)
        hidden.sum().backward()
        return hidden

    def straightforward():
        hidden = reference_crmn_lstm(model.lstm, padded)["hidden"]
        hidden.sum().backward()
        return hidden

    base, cand = time_pair(straightforward, fast, repeats, device)
    diff = (fast() - straightforward()).abs().max().item()
    return [
        BenchResult(
            "2 CRMN LSTM interface",
            f"depth {model.config.depth} width {model.config.width} B={x.shape[0]}",
            "zero-padded per-step W_x x_l",
            "stage-sliced batched projection",
            base,
            cand,
            base / cand,
            "speed-up, fwd+bwd",
            diff <= 1e-5,
            diff,
            ">= 1.5x",
        )
    ]


def bench_renet_sweeps(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """3. Batched column/row sweeps vs a loop over patches (one ReNet layer, eval)."""
    hidden = 8 if quick else 32
    size = 8 if quick else 16
    model = (
        create_model(
            "renet", patch_sizes=[2], hidden_sizes=[hidden], fc_sizes=[8], in_channels=3, input_size=size
        )
        .to(device)
        .eval()
    )
    layer = model.layers[0]
    x = torch.randn(2, 3, size, size, device=device)

    def batched():
        with torch.no_grad():
            return layer(x)

    def per_patch():
        with torch.no_grad():
            return reference_renet_layer(layer, x)["out"]

    base, cand = time_pair(per_patch, batched, max(1, repeats // 3), device)
    diff = (batched() - per_patch()).abs().max().item()
    return [
        BenchResult(
            "3 ReNet sweeps",
            f"{size}x{size} input, 2x2 patches, d={hidden}, B=2",
            "loop over patches",
            "batched sweeps",
            base,
            cand,
            base / cand,
            "speed-up",
            diff <= 1e-5,
            diff,
            ">= 10x",
        )
    ]


BENCHMARKS: dict[str, Callable[[bool, torch.device, int], list[BenchResult]]] = {
    "trace": bench_trace_overhead,
    "lstm": bench_crmn_lstm_interface,
    "renet": bench_renet_sweeps,
}


def run_benchmarks(
    quick: bool = False, device: str = "cpu", only: list[str] | None = None, repeats: int | None = None
) -> tuple[str, list[BenchResult]]:
    """Run the selected benchmarks; returns (hardware label, results)."""
    target = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    torch.manual_seed(0)
    count = repeats or (2 if quick else 15)
    results: list[BenchResult] = []
    for name, bench in BENCHMARKS.items():
        if only and name not in only:
            continue
        results.extend(bench(quick, target, count))
    return hardware_label(target), results


def markdown_table(hardware: str, results: list[BenchResult]) -> str:
    """Results as the Markdown table used in BENCHMARKS.md."""
    lines = [
        f"Hardware: {hardware}",
        "",
        "| question | case | baseline | candidate | baseline ms | candidate ms | ratio "
        "| outputs match | goal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [r.row() for r in results]
    return "\n".join(lines)
