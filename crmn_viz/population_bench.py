"""The population pass's speed rows (issue #20, "Speed"), measured in one run.

:func:`population_benchmark` loads a zoo checkpoint and the CIFAR-10 test set (``$CRMN_VIZ_DATA_DIR``)
and measures, on the same images and the same loader (the ``DataLoader`` that
:func:`crmn_viz.analysis.population.test_set_population` reads, JPEG decoding included):

1. **zip index**: the first ``build_dataset("cifar10", "test")`` of the process (the archive opened
   and indexed, after :func:`crmn_viz.data.jpeg_archive.clear_archive_cache`) and a second one
   (goal: once per process, so the second costs a ``stat``);
2. **plain batched inference**: ``model(x)`` over every batch, under ``torch.no_grad()``;
3. **population pass**: :func:`~crmn_viz.analysis.population.test_set_population` into a fresh
   cache folder; ``pass_ratio`` = pass throughput / plain throughput (goal: >= 0.8);
4. **exemplar query after the pass**: a second ``test_set_population`` call (answered from the
   disk cache) plus :func:`~crmn_viz.analysis.population.exemplars` (goal: < 0.2 s);
5. **nearest trajectories**: :func:`~crmn_viz.analysis.population.nearest_trajectories` of one
   image's forget-gate trajectory over every image.

``quick=True`` passes about 256 images and checks correctness only (the exemplars equal an argsort
of the stored values); nothing here asserts a wall time. The hardware line is
:func:`crmn_viz.benchmarks.hardware_label` (CPU model, threads and instruction sets, or the GPU).

``python -m crmn_viz.population_bench [--images N] [--quick]`` prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np
import torch

from crmn_viz.analysis.inputs import evaluation_mode, model_device, model_dtype
from crmn_viz.analysis.population import exemplars, nearest_trajectories, test_set_population
from crmn_viz.analysis.statistics import _batches
from crmn_viz.benchmarks import hardware_label
from crmn_viz.data import DatasetNotFoundError, build_dataset
from crmn_viz.data.jpeg_archive import clear_archive_cache

__all__ = ["population_benchmark"]

QUICK_IMAGES = 256
BATCH_SIZE = 128


def _check_exemplars_against_argsort(table: Any) -> bool:
    """True when the summary's exemplars of a few cells equal a numpy argsort of the values."""
    for quantity in ("forget_gate", "block"):
        if quantity not in table.quantities:
            continue
        spec = table.quantities[quantity]
        for step in (0, spec.steps - 1):
            for unit in (0, spec.units[step] - 1):
                column = table.unit_values(quantity, step, unit)
                for lowest in (False, True):
                    expected = np.lexsort((np.arange(len(column)), column if lowest else -column))[:9]
                    got = [e.index for e in exemplars(table, quantity, step, unit, 9, lowest=lowest)]
                    if got != expected.tolist():
                        return False
    return True


def population_benchmark(
    model_name: str = "crmn-cifar10",
    images: int = 10_000,
    quick: bool = False,
    device: str = "cpu",
) -> dict[str, Any]:
    """Measure the population pass against plain inference over the same loader, and its queries.

    Args:
        model_name: a zoo checkpoint of CIFAR-10 (:func:`crmn_viz.load`).
        images: test images to pass (spread evenly over the test set; 10,000 is all of it).
        quick: about 256 images; also checks the exemplars against an argsort of the values.
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"auto"``).

    Returns:
        JSON-ready fields: ``hardware``, ``images``, ``plain_images_per_s``,
        ``pass_images_per_s``, ``pass_ratio`` (goal >= 0.8), ``cached_query_s`` (cache load +
        one exemplar query, goal < 0.2), ``exemplar_query_s`` (the query alone),
        ``nearest_trajectories_s``, ``zip_index_first_s``, ``zip_index_second_s``,
        ``exemplars_match_argsort`` (quick only, else None) and the seconds behind each rate; or
        ``{"skipped": reason}`` when the data set is not on disk.
    """
    from crmn_viz import load

    count = QUICK_IMAGES if quick else images
    model = load(model_name, device=device)
    target = model_device(model)
    hardware = hardware_label(target)
    print(f"population benchmark on {hardware}")

    clear_archive_cache()
    try:
        started = time.perf_counter()
        full = build_dataset("cifar10", "test")
        zip_first = time.perf_counter() - started
    except DatasetNotFoundError as error:
        return {"hardware": hardware, "skipped": f"CIFAR-10 test set not found: {error}"}
    started = time.perf_counter()
    build_dataset("cifar10", "test")
    zip_second = time.perf_counter() - started
    count = min(count, len(full))  # type: ignore[arg-type]

    from crmn_viz.views.test_images import test_subset

    subset = test_subset("cifar10", count)
    dtype = model_dtype(model)

    def plain() -> None:
        batches, _ = _batches(model, subset, BATCH_SIZE, None, 0)
        with evaluation_mode(model), torch.no_grad():
            for batch, _labels in batches:
                model(batch.to(device=target, dtype=dtype, memory_format=model.preferred_memory_format))
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    warm, _ = _batches(model, subset, 8, 8, 0)  # one small batch: kernels, allocator
    with evaluation_mode(model), torch.no_grad():
        model(next(iter(warm))[0].to(device=target, dtype=dtype))

    started = time.perf_counter()
    plain()
    plain_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="crmn-viz-population-bench-") as cache_dir:
        started = time.perf_counter()
        table = test_set_population(model, "cifar10", count, cache_dir=cache_dir, batch_size=BATCH_SIZE)
        pass_s = time.perf_counter() - started
        del table

        started = time.perf_counter()
        cached = test_set_population(model, "cifar10", count, cache_dir=cache_dir, batch_size=BATCH_SIZE)
        last_step = cached.quantities["forget_gate"].steps - 1 if "forget_gate" in cached.quantities else 0
        quantity = "forget_gate" if "forget_gate" in cached.quantities else next(iter(cached.quantities))
        query_started = time.perf_counter()
        found = exemplars(cached, quantity, last_step, 0, 9)
        exemplar_s = time.perf_counter() - query_started
        cached_s = time.perf_counter() - started

        started = time.perf_counter()
        nearest_trajectories(cached, quantity, 0, 9)
        nearest_s = time.perf_counter() - started
        matches = _check_exemplars_against_argsort(cached) if quick else None
        if quick and not matches:
            raise AssertionError("population exemplars differ from an argsort of the stored values")
        example = [{"image": e.image, "value": e.value} for e in found[:3]]
        del cached

    return {
        "hardware": hardware,
        "model": model_name,
        "images": count,
        "batch_size": BATCH_SIZE,
        "plain_s": plain_s,
        "pass_s": pass_s,
        "plain_images_per_s": count / plain_s,
        "pass_images_per_s": count / pass_s,
        "pass_ratio": plain_s / pass_s,
        "pass_ratio_goal": ">= 0.8",
        "cached_query_s": cached_s,
        "cached_query_goal": "< 0.2 s",
        "exemplar_query_s": exemplar_s,
        "nearest_trajectories_s": nearest_s,
        "zip_index_first_s": zip_first,
        "zip_index_second_s": zip_second,
        "exemplars_match_argsort": matches,
        "example_exemplars": example,
    }


def main(argv: list[str] | None = None) -> None:
    """``python -m crmn_viz.population_bench``: print :func:`population_benchmark` as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="crmn-cifar10")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(population_benchmark(args.model, args.images, args.quick, args.device), indent=1))


if __name__ == "__main__":
    main()
