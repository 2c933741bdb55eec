"""Benchmarks run side by side in one process, reported as absolute times and ratios.

Every benchmark compares a baseline and a candidate on the same inputs in the same run,
alternating the two so that machine noise hits both alike, and checks that their
outputs agree. Nothing here asserts a wall-clock threshold: ``crmn-viz bench --quick``
(run by CI) only checks that every benchmark executes and that outputs match.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from crmn_viz.models import create_model
from crmn_viz.models.base import TracedModel
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


# /proc/cpuinfo flag -> name, in the order printed on the hardware line.
_CPU_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512_vnni": "AVX512-VNNI",
    "avx512_bf16": "AVX512-BF16",
    "amx_tile": "AMX",
    "amx_bf16": "AMX-BF16",
}


def cpu_instruction_sets(cpuinfo: str | None = None) -> list[str]:
    """The vector and matrix extensions this CPU reports, e.g. ``["AVX2", "FMA"]``.

    Read from the ``flags`` line of ``/proc/cpuinfo`` (``cpuinfo`` replaces the file, for
    tests). Where that file is missing (not Linux) the answer is what PyTorch's kernels were
    dispatched for, :func:`torch.backends.cpu.get_cpu_capability` (``"AVX2"``, ``"AVX512"``).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as handle:
                cpuinfo = handle.read()
        except OSError:
            capability = torch.backends.cpu.get_cpu_capability()
            return {"AVX2": ["AVX2"], "AVX512": ["AVX2", "AVX-512"]}.get(capability, [])
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [name for flag, name in _CPU_FLAGS.items() if flag in flags]


def cpu_has_bfloat16_arithmetic(instruction_sets: list[str] | None = None) -> bool:
    """True when the CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16).

    Without either, PyTorch emulates bfloat16 through float32 conversions: autocast then costs
    instead of helping (rows 9 and 10 measured 9x and 12x slower on an AVX2 CPU).
    """
    sets = cpu_instruction_sets() if instruction_sets is None else instruction_sets
    return "AVX512-BF16" in sets or "AMX-BF16" in sets


def hardware_label(device: torch.device) -> str:
    """CPU model, cores, threads and instruction sets, or the GPU name."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    sets = cpu_instruction_sets()
    missing = [name for name in ("AVX-512", "AVX512-BF16", "AMX") if name not in sets]
    isa = ", ".join(sets) or "no AVX2"
    if missing:
        isa += f" (no {', '.join(missing)})"
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {isa}, "
        f"torch kernels {torch.backends.cpu.get_cpu_capability()}, torch {torch.__version__}"
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(
    baseline: Callable[[], Any], candidate: Callable[[], Any], repeats: int, device: torch.device
) -> tuple[float, float]:
    """Median seconds of each callable, measured alternately after one warm-up call each."""
    base, cand = time_alternately([baseline, candidate], repeats, device)
    return base, cand


def time_alternately(functions: list[Callable[[], Any]], repeats: int, device: torch.device) -> list[float]:
    """Median seconds of each callable, called in turn ``repeats`` times after one warm-up each."""
    for fn in functions:
        fn()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for fn, bucket in zip(functions, times):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


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
                    "<= 1.05x on CRMN at B=64",
                )
            )
        if arch == "crmn":
            results.append(_bench_reading_every_entry(model, x, repeats, device, batch))
    return results


def _bench_reading_every_entry(
    model: torch.nn.Module, x: torch.Tensor, repeats: int, device: torch.device, batch: int
) -> BenchResult:
    """What the lazy entries cost when they are read: trace only vs trace + read every name."""

    def trace_only():
        with torch.no_grad():
            return model.run_with_trace(x)[1]

    def trace_and_read_all():
        with torch.no_grad():
            trace = model.run_with_trace(x)[1]
            return [trace[name] for name in trace]

    base, cand = time_pair(trace_only, trace_and_read_all, repeats, device)
    return BenchResult(
        "1 trace overhead",
        f"crmn B={batch}",
        "run_with_trace",
        "run_with_trace + read every entry",
        base,
        cand,
        cand / base,
        "read-all / trace-only, lower is better",
        True,
        0.0,
        "<= 1.10x (cost of the deferred entries)",
    )


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
    size = 8 if quick else 32
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


def _random_images(count: int, size: int = 32, seed: int = 0) -> list:  # type: ignore[type-arg]
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def bench_attribution_cost(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """4. Each attribution method in units of one forward+backward; IG internal batching."""
    from crmn_viz.analysis import attribute, prepare_batch

    model = create_model("crmn", depth=8 if quick else 20, width=4 if quick else 16).to(device).eval()
    image = _random_images(1)[0]
    x = prepare_batch(model, [image]).to(device)

    def forward_backward():
        inputs = x.clone().requires_grad_()
        model(inputs)[0].max().backward()
        return inputs.grad

    steps = 8 if quick else 32
    methods = {
        "saliency": {},
        "integrated_gradients": {"n_steps": steps},
        "gradient_shap": {"n_samples": 4 if quick else 16},
        "occlusion": {"window": 8, "stride": 8 if quick else 4},
        "gradcam": {},
    }
    results = []
    for method, options in methods.items():

        def run(method=method, options=options):
            return attribute(model, image, method, **options)

        base, cand = time_pair(forward_backward, run, max(1, repeats // 3), device)
        finite = bool(torch.isfinite(torch.as_tensor(run().map)).all())
        results.append(
            BenchResult(
                "4 attribution cost",
                f"{method} {options}",
                "one forward+backward",
                method,
                base,
                cand,
                cand / base,
                "cost in forward+backward units",
                finite,
                0.0,
                "report",
            )
        )

    def ig(batch: int):
        return attribute(model, image, "integrated_gradients", n_steps=steps, max_batch=batch)

    base, cand = time_pair(lambda: ig(1), lambda: ig(steps), max(1, repeats // 3), device)
    diff = float(abs(ig(1).map - ig(steps).map).max())
    results.append(
        BenchResult(
            "4 attribution cost",
            f"IG {steps} steps",
            "internal batch 1",
            f"internal batch {steps}",
            base,
            cand,
            base / cand,
            "speed-up from internal batching",
            diff <= 1e-4,
            diff,
            "report",
        )
    )
    return results


def bench_gate_statistics(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """5. Streaming gate statistics vs plain batched inference over the same images."""
    from crmn_viz.analysis import gate_statistics

    model = create_model("crmn", depth=8 if quick else 20, width=4 if quick else 16).to(device).eval()
    count, batch = (64, 32) if quick else (1024, 128)
    images = torch.randn(count, *model.input_shape)
    labels = torch.randint(0, model.config.num_outputs, (count,))
    dataset = torch.utils.data.TensorDataset(images, labels)

    def plain():
        with torch.no_grad():
            return [model(images[i : i + batch].to(device)) for i in range(0, count, batch)]

    def statistics():
        return gate_statistics(model, dataset, by_class=True, batch_size=batch, progress=False)

    base, cand = time_pair(plain, statistics, max(1, repeats // 5), device)
    stats = statistics()
    return [
        BenchResult(
            "5 gate statistics",
            f"{count} images, batch {batch}",
            "plain batched inference",
            "gate_statistics (per class)",
            base,
            cand,
            base / cand,
            "throughput ratio",
            stats.count == count,
            0.0,
            ">= 0.8x",
        )
    ]


def bench_export(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """6. N figures exported in one call (one browser session) vs N separate calls."""
    import tempfile

    import kaleido

    from crmn_viz.figures import browser_available, export_figure, export_figures, plot_gate_heatmap

    if not browser_available():
        return []
    model = create_model("crmn", depth=8, width=4).eval()
    with torch.no_grad():
        _, trace = model.run_with_trace(torch.randn(1, 3, 32, 32))
    count = 3 if quick else 8
    figures = {
        f"fig{i}": plot_gate_heatmap(trace, "forget_gate", units=list(range(i + 1))) for i in range(count)
    }
    launches = {"n": 0}
    original_open = kaleido.Kaleido.open

    async def counting_open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        launches["n"] += 1
        return await original_open(self, *args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        def separate():
            return [export_figure(fig, folder / f"sep_{name}.png", dpi=100) for name, fig in figures.items()]

        def batched():
            return export_figures(figures, folder / "batch", formats=("png",), dpi=100)

        kaleido.Kaleido.open = counting_open  # type: ignore[method-assign]
        try:
            base, cand = time_pair(separate, batched, 1, device)
            launches["n"] = 0
            batched()
            batch_launches = launches["n"]
            launches["n"] = 0
            separate()
            separate_launches = launches["n"]
        finally:
            kaleido.Kaleido.open = original_open  # type: ignore[method-assign]
        same = all(
            (folder / f"sep_{name}.png").read_bytes() == (folder / "batch" / f"{name}.png").read_bytes()
            for name in figures
        )
    return [
        BenchResult(
            "6 figure export",
            f"{count} PNG figures; browser starts {separate_launches} -> {batch_launches}",
            f"{count} export_figure calls",
            "one export_figures call",
            base,
            cand,
            base / cand,
            "speed-up",
            same and batch_launches == 1,
            0.0,
            "one browser start-up",
        )
    ]


def _tiny_zoo(folder: Path) -> None:
    from crmn_viz.checkpoints import save

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    model = create_model("crmn", depth=8, width=4, hidden_size=6, num_outputs=10)
    save(
        model,
        folder / "bench-crmn",
        dataset="cifar10",
        class_names=classes,
        normalization={"mean": [0.5] * 3, "std": [0.25] * 3},
    )


def bench_app(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """7-8. App: network evaluations on a display-only change; cold start; RSS over uploads."""
    import io
    import resource
    import tempfile

    from crmn_viz.models.base import TracedModel

    try:
        from streamlit.testing.v1 import AppTest
    except ImportError:
        return []
    app = Path(__file__).resolve().parent.parent / "app.py"
    if not app.exists():
        return []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        previous = os.environ.get("CRMN_VIZ_CHECKPOINT_DIR")
        zoo_dir = Path(tmp)
        use_real_zoo = (
            not quick and previous is None and any((app.parent / "checkpoints").glob("crmn-cifar10.json"))
        )
        if not use_real_zoo:
            _tiny_zoo(zoo_dir)
            os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = str(zoo_dir)
        checkpoint = "crmn-cifar10" if use_real_zoo else "bench-crmn"
        evaluations = {"n": 0}
        original_call = TracedModel.__call__

        def counting_call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            evaluations["n"] += 1
            return original_call(self, *args, **kwargs)

        try:
            start = time.perf_counter()
            at = AppTest.from_file(str(app), default_timeout=300).run()
            cold = time.perf_counter() - start
            at.switch_page("app_pages/lstm_memory.py").run()
            at.sidebar.selectbox(key="zoo_choice").set_value(checkpoint).run()
            TracedModel.__call__ = counting_call  # type: ignore[method-assign]
            evaluations["n"] = 0
            at.selectbox(key="lstm_gate").set_value("input_gate").run()
            start = time.perf_counter()
            at.selectbox(key="lstm_gate").set_value("output_gate").run()
            display_change = time.perf_counter() - start
            display_evaluations = evaluations["n"]
            ok = not at.exception
            results.append(
                BenchResult(
                    "7 app",
                    f"display-only change: {display_evaluations} network evaluations",
                    "cold start to first rendered page",
                    "display-only change (re-render)",
                    cold,
                    display_change,
                    float(display_evaluations),
                    "network evaluations on the change",
                    ok,
                    0.0,
                    "0 evaluations",
                )
            )
            at.switch_page("app_pages/overview.py").run()
            at.sidebar.button_group(key="image_source").set_value("Upload").run()
            rng = __import__("numpy").random.default_rng(0)
            peaks = {}
            uploads = 12 if quick else 50
            checkpoints_at = {min(5, uploads // 2), uploads}
            for index in range(1, uploads + 1):
                from PIL import Image

                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype="uint8")).save(buffer, "PNG")
                at.sidebar.file_uploader(key="image_files").set_value(
                    (f"upload{index}.png", buffer.getvalue(), "image/png")
                ).run()
                ok = ok and not at.exception
                if index in checkpoints_at:
                    peaks[index] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            first, last = sorted(peaks)
            results.append(
                BenchResult(
                    "8 memory",
                    f"peak RSS after {first} vs {last} uploads (MB)",
                    f"after {first} uploads",
                    f"after {last} uploads",
                    peaks[first] / 1e3,
                    peaks[last] / 1e3,
                    peaks[last] / peaks[first],
                    "peak RSS ratio (values shown as GB in the ms columns)",
                    ok,
                    0.0,
                    "<= 1.10x",
                )
            )
        finally:
            TracedModel.__call__ = original_call  # type: ignore[method-assign]
            if previous is None:
                os.environ.pop("CRMN_VIZ_CHECKPOINT_DIR", None)
            else:
                os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = previous
    return results


def bench_compile_and_mixed_precision(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """9. CRMN inference: eager float32 vs ``torch.compile`` and vs autocast mixed precision.

    Autocast uses bfloat16 on the CPU and float16 on CUDA. Compiled outputs must equal eager
    ones to 1e-4; mixed-precision logits must stay within 5% of the largest eager logit (half
    precision keeps ~3 significant digits, so exact equality is not the question). The compile
    row reports the first call (compilation included) in units of one eager call.
    """
    config = {"depth": 8, "width": 4} if quick else {"depth": 20, "width": 16}
    batch = 8 if quick else 64
    model = create_model("crmn", **config).to(device).eval()
    x = torch.randn(batch, *model.input_shape, device=device)
    low_precision = torch.float16 if device.type == "cuda" else torch.bfloat16
    case = f"crmn depth {config['depth']} width {config['width']} B={batch}"

    def eager() -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    reference = eager()
    results = []
    torch._dynamo.reset()
    compiled_model = torch.compile(model)
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        first = compiled_model(x)
    _sync(device)
    compile_s = time.perf_counter() - start

    def compiled() -> torch.Tensor:
        with torch.no_grad():
            return compiled_model(x)

    base, cand = time_pair(eager, compiled, repeats, device)
    diff = (compiled() - reference).abs().max().item()
    results.append(
        BenchResult(
            "9 compile / mixed precision",
            case,
            "eager float32 forward",
            "torch.compile forward",
            base,
            cand,
            base / cand,
            "speed-up",
            diff <= 1e-4,
            diff,
            "report (amp only where it wins)",
        )
    )
    first_diff = (first - reference).abs().max().item()
    results.append(
        BenchResult(
            "9 compile / mixed precision",
            case,
            "eager float32 forward",
            "first compiled call (compiles)",
            base,
            compile_s,
            compile_s / base,
            "cost in eager-forward units",
            first_diff <= 1e-4,
            first_diff,
            "report",
        )
    )

    def mixed() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=low_precision):
            return model(x)

    base, cand = time_pair(eager, mixed, repeats, device)
    diff = (mixed().float() - reference).abs().max().item()
    scale = reference.abs().max().item()
    results.append(
        BenchResult(
            "9 compile / mixed precision",
            case,
            "eager float32 forward",
            f"autocast {str(low_precision).removeprefix('torch.')} forward",
            base,
            cand,
            base / cand,
            "speed-up",
            diff <= 0.05 * scale,
            diff,
            "report (amp only where it wins)",
        )
    )
    return results


def bench_training_step(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """10. One ``crmn_viz.training.training_step`` (forward, backward, SGD update) of the zoo's
    CIFAR-10 models: float32 vs the recipes' ``amp`` + ``channels_last`` (bfloat16 autocast).

    Both paths start from the same weights; "outputs match" asks whether the first step's
    losses agree to 2% (bfloat16 keeps ~3 significant digits). Batch 128 as in the recipes.
    The convolutional models run channels-last on both paths (their forward converts its input
    since row 11), so the difference is the autocast. The step is forced to autocast even on a
    CPU without bfloat16 arithmetic, where training itself falls back to float32: this row is
    the measurement that decision rests on.
    """
    import torch.nn.functional as F

    from crmn_viz.training import training_step

    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("crmn", "crmn depth 20 width 16", {"depth": 20, "width": 16}),
        ("resnet", "resnet depth 20 width 16", {"depth": 20, "width": 16}),
        (
            "renet",
            "renet GRU [32, 64] fc 256",
            {"patch_sizes": [2, 2], "hidden_sizes": [32, 64], "fc_sizes": [256], "input_dropout": 0.0},
        ),
    ]
    if quick:
        cases = [
            ("crmn", "crmn depth 8 width 4", {"depth": 8, "width": 4}),
            (
                "renet",
                "renet GRU [4, 4] fc 8",
                {"patch_sizes": [2, 2], "hidden_sizes": [4, 4], "fc_sizes": [8]},
            ),
        ]
    batch = 16 if quick else 128
    results = []
    for arch, case, options in cases:
        torch.manual_seed(0)
        model = create_model(arch, num_outputs=10, in_channels=3, input_size=[32, 32], **options)
        model = model.to(device).train()
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        paths = {}
        for mixed in (False, True):
            net = copy.deepcopy(model)
            channels_last = mixed and arch != "renet"  # channels_last concerns convolutions
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

            def step(net=net, optimizer=optimizer, mixed=mixed, channels_last=channels_last) -> float:  # type: ignore[no-untyped-def]
                torch.manual_seed(1)  # the same dropout masks on both paths
                _, loss = training_step(
                    net, optimizer, x, y, F.cross_entropy, amp=mixed, channels_last=channels_last
                )
                return loss.item()

            paths[mixed] = (step, step())  # the first step's loss, from the shared weights
        # emulated bfloat16 is ~10x slower: a few repeats tell that apart from a speed-up
        emulated = device.type == "cpu" and not cpu_has_bfloat16_arithmetic()
        base, cand = time_pair(
            paths[False][0], paths[True][0], min(repeats, 3) if emulated else repeats, device
        )
        diff = abs(paths[True][1] - paths[False][1])
        results.append(
            BenchResult(
                "10 training step",
                f"{case} B={batch}",
                "float32 step",
                "bfloat16 autocast" + ("" if arch == "renet" else " + channels_last") + " step",
                base,
                cand,
                base / cand,
                "speed-up",
                diff <= 0.02 * abs(paths[False][1]),
                diff,
                "report (sets the recipes' amp on this CPU)",
            )
        )
    return results


# The zoo's CIFAR-10 models (checkpoints/*-cifar10.json), and tiny stand-ins for --quick.
_ZOO_CIFAR10: dict[str, dict[str, Any]] = {
    "crmn": {"depth": 20, "width": 16},
    "resnet": {"depth": 20, "width": 16},
    "renet": {
        "patch_sizes": [2, 2],
        "hidden_sizes": [32, 64],
        "fc_sizes": [256],
        "in_channels": 3,
        "input_size": 32,
    },
    "rir": {"widths": [16, 32, 64], "blocks_per_stage": [1, 1, 1]},
}
_TINY: dict[str, dict[str, Any]] = {
    "crmn": {"depth": 8, "width": 4},
    "resnet": {"depth": 8, "width": 4},
    "renet": {
        "patch_sizes": [2, 2],
        "hidden_sizes": [4, 4],
        "fc_sizes": [8],
        "in_channels": 3,
        "input_size": 16,
    },
    "rir": {"widths": [4, 8], "blocks_per_stage": [1, 1]},
}


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``x``, as counted by ``torch.utils.flop_counter.FlopCounterMode``.

    It counts the matrix products and convolutions (``mm``, ``addmm``, ``bmm``, ``baddbmm``,
    ``convolution``) at 2 FLOPs per multiply-add, from their shapes; element-wise work
    (BatchNorm, ReLU, additions, pooling, the gate non-linearities) is not counted. For a
    CRMN-20 of width 16 on 32 x 32 images this gives 99.0 MFLOP per image (81.1 in the
    convolutions, 17.9 in the LSTM), the hand count of the issue that asked for this row.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads (this thread's setting), then restore it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _plain_layout(model: TracedModel) -> TracedModel:
    """A copy of ``model`` that runs in the plain NCHW layout (the layout before row 11)."""
    plain = copy.deepcopy(model)
    plain.preferred_memory_format = torch.contiguous_format  # type: ignore[misc]
    return plain.to(memory_format=torch.contiguous_format)


def bench_ratio_to_limit(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """11. Each zoo CIFAR-10 model's forward GFLOP/s at batch 256 over a large float32 matmul's.

    The matmul (2048 x 2048 by 2048 x 2048, 2 n^3 FLOPs) is what this CPU's BLAS reaches, the
    practical limit; it is timed alternately with the forward passes, on 1 and 2 intra-op
    threads. Model FLOPs come from :func:`count_flops`. Each convolutional model is measured in
    its fast layout (channels-last) and in the plain NCHW layout it ran in before; "outputs
    match" compares their logits (max abs difference <= 1e-5).
    """
    batch = 8 if quick else 256
    size = 256 if quick else (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    matmul_flops = 2 * size**3

    def matmul() -> torch.Tensor:
        return a @ b

    if device.type == "cuda":
        thread_counts = [torch.get_num_threads()]
    else:
        thread_counts = sorted({1, min(2, os.cpu_count() or 1)})
    reps = max(2, repeats // 3)
    results = []
    for arch, config in (_TINY if quick else _ZOO_CIFAR10).items():
        torch.manual_seed(0)
        fast = create_model(arch, **config).to(device).eval().use_fast_layout()
        x = torch.randn(batch, *fast.input_shape, device=device)
        flops = count_flops(fast, x)
        models = [("fast", fast)]
        if fast.preferred_memory_format != torch.contiguous_format:
            models.append(("plain", _plain_layout(fast)))
        with torch.no_grad():
            outputs = [model(x) for _, model in models]
        diff = max((out - outputs[0]).abs().max().item() for out in outputs)
        layout = "channels_last" if len(models) > 1 else "contiguous"
        for threads in thread_counts:

            def forward(model: TracedModel = fast) -> torch.Tensor:
                with torch.no_grad():
                    return model(x)

            calls = [matmul] + [functools.partial(forward, model) for _, model in models]
            context = intra_op_threads(threads) if device.type == "cpu" else contextlib.nullcontext()
            with context:
                times = time_alternately(calls, reps, device)
            matmul_rate = matmul_flops / times[0]
            for (name, _), seconds in zip(models, times[1:]):
                rate = flops / seconds
                what = f"{layout}, now" if name == "fast" else "plain NCHW, before"
                results.append(
                    BenchResult(
                        "11 ratio to the limit",
                        f"{arch} B={batch}, {threads} thread{'s' if threads > 1 else ''}, "
                        f"{flops / batch / 1e6:.1f} MFLOP/image",
                        f"float32 matmul {size}^3 ({matmul_rate / 1e9:.1f} GFLOP/s)",
                        f"forward, {what} ({rate / 1e9:.1f} GFLOP/s)",
                        times[0],
                        seconds,
                        rate / matmul_rate,
                        "model GFLOP/s / matmul GFLOP/s",
                        diff <= 1e-5,
                        diff,
                        ">= 0.7" if arch in ("crmn", "resnet") else "report",
                    )
                )
    return results


def bench_single_image_overhead(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """12. The fixed cost of one call at batch 1, before (plain NCHW layout, every intra-op
    thread) and now (fast layout; a batch of at most ``SINGLE_THREAD_MAX_BATCH`` images on one
    thread).

    Per-call overhead = time of a batch-1 forward - time per image of a batch-64 forward, both
    measured alternately on the same weights with the process's thread count.
    """
    from crmn_viz.models import base as model_base

    batch = 8 if quick else 64
    results = []
    for arch in ("crmn", "resnet"):
        torch.manual_seed(0)
        fast = create_model(arch, **(_TINY if quick else _ZOO_CIFAR10)[arch]).to(device).eval()
        fast.use_fast_layout()
        plain = _plain_layout(fast)
        one = torch.randn(1, *fast.input_shape, device=device)
        many = torch.randn(batch, *fast.input_shape, device=device)

        def before(x: torch.Tensor, plain: TracedModel = plain) -> torch.Tensor:
            limit = model_base.SINGLE_THREAD_MAX_BATCH
            model_base.SINGLE_THREAD_MAX_BATCH = 0  # every thread, as before
            try:
                with torch.no_grad():
                    return plain(x)
            finally:
                model_base.SINGLE_THREAD_MAX_BATCH = limit

        def now(x: torch.Tensor, fast: TracedModel = fast) -> torch.Tensor:
            with torch.no_grad():
                return fast(x)

        diff = max((before(x) - now(x)).abs().max().item() for x in (one, many))
        single_before, single_now = time_pair(lambda: before(one), lambda: now(one), 3 * repeats, device)
        batch_before, batch_now = time_pair(
            lambda: before(many), lambda: now(many), max(2, repeats // 2), device
        )
        # a busy machine can make the difference negative (then 0: no overhead measurable)
        overhead_before = max(single_before - batch_before / batch, 0.0)
        overhead_now = max(single_now - batch_now / batch, 0.0)
        threads = torch.get_num_threads()
        common = (
            "12 batch-1 overhead",
            f"{arch} B=1 ({threads} torch threads)",
            "plain NCHW, all threads (before)",
            "channels_last, one thread at B<=2 (now)",
        )
        results.append(
            BenchResult(
                *common,
                single_before,
                single_now,
                single_before / single_now,
                "speed-up of a batch-1 forward",
                diff <= 1e-5,
                diff,
                "report",
            )
        )
        results.append(
            BenchResult(
                common[0],
                f"{arch}: B=1 time - B={batch} time per image",
                *common[2:],
                overhead_before,
                overhead_now,
                overhead_before / overhead_now if overhead_now > 0 else float("inf"),
                "per-call overhead, before / now",
                diff <= 1e-5,
                diff,
                ">= 2x (halved)",
            )
        )
    return results


def bench_app_browser(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """13. The app in Chromium: cold first chart, warm pages, display-only changes (browser_bench)."""
    from crmn_viz.browser_bench import bench_app_in_browser

    return bench_app_in_browser(quick, repeats)


def bench_interventions(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """14. Memory experiments: an intervened traced forward against the traced forward, and the
    dataset sweep (one batched pass per experiment) against plain batched inference."""
    from crmn_viz.analysis.experiments import dataset_effect, memory_off
    from crmn_viz.interventions import Clamp

    depth, width, batch = (8, 4, 8) if quick else (20, 16, 64)
    model = create_model("crmn", depth=depth, width=width).to(device).eval()
    steps, hidden = model.num_steps, model.config.hidden_size
    edits = [
        Clamp("lstm.forget_gate", 1.0, steps=list(range(steps // 2, steps)), units=list(range(hidden // 2))),
        Clamp("lstm.input", 0.0, steps=[steps // 2]),
    ]
    x = torch.randn(batch, *model.input_shape, device=device)
    with torch.no_grad():
        intervened_out, _ = model.run_with_trace(x, interventions=edits)
        blocks, final = model.run_trunk(x)
        padded = model.lstm.padded_inputs(model.pool_block_outputs(blocks))
        padded[:, steps // 2] = 0

        def edit(name: str, step: int, value: torch.Tensor) -> torch.Tensor:
            if name == "forget_gate" and step >= steps // 2:
                value = value.clone()
                value[:, : hidden // 2] = 1.0
            return value

        history = reference_crmn_lstm(model.lstm, padded, edit)
        reference = model.head(history["hidden"][:, -1], final.mean(dim=(2, 3)))

    def traced() -> Any:
        with torch.no_grad():
            return model.run_with_trace(x)

    def intervened() -> Any:
        with torch.no_grad():
            return model.run_with_trace(x, interventions=edits)

    base, cand = time_pair(traced, intervened, repeats, device)
    diff = (intervened_out - reference).abs().max().item()
    results = [
        BenchResult(
            "14 interventions",
            f"crmn depth {depth} width {width} B={batch}",
            "run_with_trace",
            "run_with_trace + 2 interventions",
            base,
            cand,
            cand / base,
            "intervened / traced, lower is better",
            diff < 1e-4,
            diff,
            "<= 1.15x",
        )
    ]
    images, size = (32, 16) if quick else (1024, 256)
    batches = [
        (torch.randn(size, *model.input_shape, device=device), torch.randint(0, 10, (size,), device=device))
        for _ in range(images // size)
    ]
    experiments = [memory_off(model)]

    def plain_passes() -> Any:  # as many images as the sweep runs: intact + one experiment
        with torch.no_grad():
            return [model(x).argmax(1) for _ in range(2) for x, _ in batches]

    def sweep() -> Any:
        return dataset_effect(model, batches, experiments, resamples=0)

    base, cand = time_pair(plain_passes, sweep, repeats, device)
    with torch.no_grad():
        correct = torch.cat([model(x).argmax(1) == y for x, y in batches]).double().mean().item()
    diff = abs(sweep().intact.value - correct)
    results.append(
        BenchResult(
            "14 interventions",
            f"dataset sweep, {images} images in batches of {size}, intact + memory off",
            "plain batched inference (2 passes)",
            "dataset_effect (2 passes, no bootstrap)",
            base,
            cand,
            base / cand,
            "throughput relative to plain, higher is better",
            diff == 0.0,
            diff,
            ">= 0.8x",
        )
    )
    return results


def _pytorch_grad_cam() -> Any:
    """The ``pytorch_grad_cam`` package, or None (printing why) when it cannot be imported."""
    try:
        import pytorch_grad_cam
        import pytorch_grad_cam.utils.image
        import pytorch_grad_cam.utils.model_targets
    except ImportError as error:
        print(f"[batched-attribute] pytorch-grad-cam rows skipped: it cannot be imported ({error});")
        print("    install it with `pip install grad-cam==1.5.7 --no-deps` (scripts/setup.sh does)")
        return None
    return pytorch_grad_cam


def bench_batched_gradcam(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """15. Grad-CAM at 16 images: one batched public ``crmn_viz.attribute`` call against
    pytorch-grad-cam's ``GradCAM`` on the same model and layer, and against 16 single-image calls
    (the only way through the public API before batching), all three timed alternately.

    Every map explains its image's predicted class. pytorch-grad-cam min-max scales each map,
    resizes it with cv2 and scales it again (``scale_cam_image``); "outputs match" compares its
    maps with ours after that scaling, applied twice (a bilinear resize commutes with it), and the
    before/after row the raw maps. Without pytorch-grad-cam only the before/after row is measured.
    """
    import numpy as np

    from crmn_viz.analysis import attribute, gradcam_layer_name, prepare_batch

    depth, width, count = (8, 4, 4) if quick else (20, 16, 16)
    torch.manual_seed(0)
    model = create_model("crmn", depth=depth, width=width).to(device).eval().use_fast_layout()
    x = prepare_batch(model, _random_images(count, seed=1))
    layer = gradcam_layer_name(model, -1)
    case = f"crmn depth {depth} width {width}, {count} images, Grad-CAM on {layer}"

    def batched() -> Any:
        return attribute(model, x, "gradcam")

    def one_by_one() -> Any:
        return [attribute(model, image, "gradcam") for image in x]

    now = batched()
    diff_before = max(float(abs(a.map - b.map).max()) for a, b in zip(now, one_by_one()))
    calls = [batched, one_by_one]
    library = _pytorch_grad_cam()
    if library is not None:
        scale = library.utils.image.scale_cam_image
        cam = library.GradCAM(model=model, target_layers=[dict(model.named_modules())[layer]])

        def theirs() -> Any:  # targets=None: each image's predicted class, from its own forward
            return cam(input_tensor=x, targets=None)

        ours = scale(scale(np.stack([result.map for result in now])))
        explicit = [library.utils.model_targets.ClassifierOutputTarget(r.resolved_target) for r in now]
        diff = max(
            float(abs(ours - theirs()).max()), float(abs(ours - cam(input_tensor=x, targets=explicit)).max())
        )
        calls.append(theirs)
    if device.type == "cuda":
        thread_counts = [torch.get_num_threads()]
    else:  # one thread, and the process's threads (quick: one thread only)
        thread_counts = [1] if quick else sorted({1, torch.get_num_threads()})
    results = []
    try:
        for threads in thread_counts:
            context = intra_op_threads(threads) if device.type == "cpu" else contextlib.nullcontext()
            with context:
                times = time_alternately(calls, max(1, repeats // 3) if quick else repeats, device)
            batched_s, before_s = times[:2]
            where = f"{case}, {threads} thread{'s' if threads > 1 else ''}"
            if library is not None:
                for seconds, what, goal in (
                    (batched_s, "one batched call (now)", ">= 2x"),
                    (before_s, f"{count} single-image calls (before)", "report"),
                ):
                    results.append(
                        BenchResult(
                            "15 batched attribute",
                            where,
                            "pytorch-grad-cam 1.5.7 GradCAM, one batch",
                            f"crmn_viz.attribute, {what}",
                            times[2],
                            seconds,
                            times[2] / seconds,
                            "speed-up over pytorch-grad-cam, maps after its min-max scaling",
                            diff <= 1e-5,
                            diff,
                            goal,
                        )
                    )
            results.append(
                BenchResult(
                    "15 batched attribute",
                    where,
                    f"{count} single-image attribute calls (before)",
                    "one batched attribute call (now)",
                    before_s,
                    batched_s,
                    before_s / batched_s,
                    "speed-up from batching",
                    diff_before <= 1e-5,
                    diff_before,
                    "report",
                )
            )
    finally:
        if library is not None:
            cam.activations_and_grads.release()
            model.zero_grad(set_to_none=True)  # pytorch-grad-cam back-propagates into the weights
    return results


def bench_faithfulness_cost(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """16. Deletion plus insertion at 32 steps of one map, in units of one batched forward of 32
    images (issue goal: at most 2x), per architecture: ``deletion_and_insertion`` (one batch of 65
    images), and two :func:`crmn_viz.faithfulness` calls (33 images each) for comparison.

    "Outputs match": the two ways give the same curves (max abs difference of the scores).
    """
    from crmn_viz.analysis import attribute, prepare_batch
    from crmn_viz.analysis.faithfulness import deletion_and_insertion, faithfulness

    steps = 8 if quick else 32
    results = []
    for arch in ("crmn", "resnet", "renet", "rir"):
        torch.manual_seed(0)
        options = {"depth": 8, "width": 4} if quick and arch in ("crmn", "resnet") else {}
        model = create_model(arch, **options).to(device).eval().use_fast_layout()
        image = prepare_batch(model, _random_images(1, seed=2))[0]
        batch = prepare_batch(model, _random_images(steps, seed=3))
        result = attribute(model, image, "saliency")

        def forward(model=model, batch=batch) -> Any:
            with torch.no_grad():
                return model(batch)

        def together(model=model, image=image, result=result) -> Any:
            return deletion_and_insertion(model, image, result, steps=steps)

        def separately(model=model, image=image, result=result) -> Any:
            return [
                faithfulness(model, image, result, kind=k, steps=steps) for k in ("deletion", "insertion")
            ]

        forward_s, together_s, separately_s = time_alternately(
            [forward, together, separately], max(1, repeats // 3) if quick else repeats, device
        )
        diff = max(float(abs(a.scores - b.scores).max()) for a, b in zip(together(), separately()))
        case = f"{arch}, saliency map, {steps} steps"
        for seconds, what, goal in (
            (together_s, "deletion + insertion in one batch", "<= 2x"),
            (separately_s, "two faithfulness() calls", "report"),
        ):
            results.append(
                BenchResult(
                    "16 faithfulness cost",
                    case,
                    f"one batched forward of {steps} images",
                    what,
                    forward_s,
                    seconds,
                    seconds / forward_s,
                    f"cost in batched forwards of {steps} images",
                    diff <= 1e-6,
                    diff,
                    goal,
                )
            )
    return results


def bench_load(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """17. The app under load: 8 heavy browser sessions and a light one (load_bench, issue #25)."""
    from crmn_viz.load_bench import bench_load as run_load

    del device  # the app picks its own device
    return run_load(quick, repeats)


def bench_population(quick: bool, device: torch.device, repeats: int) -> list[BenchResult]:
    """18. The population pass over CIFAR-10 test images against plain batched inference over the
    same loader (goal >= 0.8x), an exemplar query from the on-disk cache (goal < 0.2 s) and the zip
    index built once per process (:mod:`crmn_viz.population_bench`, issue #20).

    "Outputs match": in quick mode, the exemplars equal an argsort of the stored values. Without the
    data set on disk the quick run checks the same on a tiny CRMN and random images.
    """
    from crmn_viz.population_bench import population_benchmark

    del repeats  # one pass each: the pass is the thing measured
    report = population_benchmark(quick=quick, device=str(device))
    if "skipped" in report:
        if not quick:
            print(f"population benchmark skipped: {report['skipped']}")
            return []
        return [_population_check_without_data(device)]
    matches = report["exemplars_match_argsort"]
    case = f"crmn-cifar10, {report['images']} test images, batch {report['batch_size']}"
    return [
        BenchResult(
            "18 population pass",
            case,
            "plain batched inference",
            "population pass (every unit, disk cache)",
            report["plain_s"],
            report["pass_s"],
            report["pass_ratio"],
            "pass throughput / plain throughput, higher is better",
            matches is not False,
            goal=">= 0.8x",
        ),
        BenchResult(
            "18 population pass",
            case,
            "the goal, 0.2 s",
            "cache load + one exemplar query",
            0.2,
            report["cached_query_s"],
            0.2 / report["cached_query_s"],
            "goal / measured, >= 1 meets it",
            matches is not False,
            goal="< 0.2 s",
        ),
        BenchResult(
            "18 population pass",
            "CIFAR-10 zip, test split",
            "first build_dataset (index read)",
            "second build_dataset (index cached)",
            report["zip_index_first_s"],
            report["zip_index_second_s"],
            report["zip_index_first_s"] / max(report["zip_index_second_s"], 1e-9),
            "first / second, higher is better",
            True,
            goal="index once per process",
        ),
    ]


def _population_check_without_data(device: torch.device) -> BenchResult:
    """The quick population check on a tiny CRMN and random images: exemplars equal an argsort."""
    import time

    import numpy as np

    from crmn_viz.analysis.population import exemplars, population_pass

    torch.manual_seed(0)
    model = create_model("crmn", depth=8, width=4, hidden_size=6).to(device).eval()
    images = torch.randn(40, 3, 32, 32)
    started = time.perf_counter()
    table = population_pass(model, images, top_k=8)
    seconds = time.perf_counter() - started
    values = np.asarray(table.unit_values("hidden", 2, 1))
    expected = sorted(range(len(values)), key=lambda k: (-values[k], k))[:5]
    found = [row.index for row in exemplars(table, "hidden", 2, 1, 5)]
    return BenchResult(
        "18 population pass",
        "tiny CRMN, 40 random images (no CIFAR-10 on disk)",
        "-",
        "population pass",
        seconds,
        seconds,
        1.0,
        "correctness only",
        found == expected,
        goal="exemplars = argsort",
    )


BENCHMARKS: dict[str, Callable[[bool, torch.device, int], list[BenchResult]]] = {
    "trace": bench_trace_overhead,
    "lstm": bench_crmn_lstm_interface,
    "renet": bench_renet_sweeps,
    "attribution": bench_attribution_cost,
    "statistics": bench_gate_statistics,
    "export": bench_export,
    "app": bench_app,
    "accelerate": bench_compile_and_mixed_precision,
    "train-step": bench_training_step,
    "limit": bench_ratio_to_limit,
    "overhead": bench_single_image_overhead,
    "app-browser": bench_app_browser,
    "interventions": bench_interventions,
    "batched-attribute": bench_batched_gradcam,
    "faithfulness": bench_faithfulness_cost,
    "load": bench_load,
    "population": bench_population,
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
