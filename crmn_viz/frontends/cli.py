"""``crmn-viz`` command line: train, evaluate, list and ablate checkpoints, write figures, study
populations of units over a data set and compare two classifiers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmn_viz.models.base import TracedModel
    from crmn_viz.views.compute import Compute

__all__ = ["main"]


def _cmd_train(args: argparse.Namespace) -> int:
    from crmn_viz.training import load_recipe, override_epochs, train

    recipe = load_recipe(args.config)
    if args.epochs:
        dropped = override_epochs(recipe, args.epochs)
        if dropped:
            at = ", ".join(str(restart["at_epoch"]) for restart in dropped)
            print(
                f"--epochs {args.epochs}: the warm restart(s) at epoch {at} fall past the end, dropped",
                file=sys.stderr,
            )
    metrics = train(
        recipe,
        data_dir=args.data_dir,
        out_dir=args.out,
        checkpoint_dir=args.checkpoint_dir,
        resume=not args.no_resume,
        device=args.device,
        progress=not args.quiet,
        stop_after_epoch=args.stop_after_epoch,
    )
    print(json.dumps({"name": recipe.name, **metrics}))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crmn_viz.checkpoints import load, resolve_checkpoint
    from crmn_viz.training import command_line, test_metrics

    model = load(args.checkpoint, device=args.device)
    dataset = args.dataset or model.card.get("dataset")
    measured = test_metrics(model, dataset, args.data_dir, max_batches=args.max_batches)
    card_metrics = model.card.get("metrics", {})
    card_recipe = model.card.get("training", {}).get("recipe", {})
    same_protocol = dataset == model.card.get("dataset") and args.max_batches == card_recipe.get(
        "max_eval_batches", 0
    )  # otherwise the numbers are not comparable with the card's
    agreement = metrics_agreement(measured, card_metrics) if same_protocol else {}
    print(
        json.dumps(
            {
                "checkpoint": str(args.checkpoint),
                "dataset": dataset,
                "measured": measured,
                "card": card_metrics,
                "agrees_with_card": agreement,
            },
            indent=2,
        )
    )
    if args.write_card:
        _, card_path = resolve_checkpoint(args.checkpoint)
        card = json.loads(Path(card_path).read_text())
        card["metrics"] = {**card.get("metrics", {}), **measured}
        card["evaluation"] = {"command": command_line()}
        Path(card_path).write_text(json.dumps(card, indent=2) + "\n")
        print(f"updated {card_path}")
        return 0
    if agreement and not all(agreement.values()):
        differing = sorted(k for k, ok in agreement.items() if not ok)
        print(f"measured metrics differ from the card: {differing}", file=sys.stderr)
        return 1
    return 0


def metrics_agreement(measured: dict, card: dict, tolerance: float = 1e-4) -> dict[str, bool]:  # type: ignore[type-arg]
    """Per metric present in both: does the measured value reproduce the card's?

    Counts must be equal; rates (accuracy, NME) may differ by ``tolerance`` (float
    summation order differs between machines and thread counts).
    """
    agreement = {}
    for key in sorted(set(measured) & set(card)):
        got, want = measured[key], card[key]
        if isinstance(got, int) and isinstance(want, int):
            agreement[key] = got == want
        elif isinstance(got, (int, float)) and isinstance(want, (int, float)):
            agreement[key] = abs(float(got) - float(want)) <= tolerance
    return agreement


HEADLINE_NME = ("test_nme_crop", "test_nme_box_given", "test_nme_detector")
"""The keypoint metrics of the zoo table (the card also holds each round's and each group's)."""


def _metric_text(metrics: dict) -> str:  # type: ignore[type-arg]
    parts = []
    for key, value in metrics.items():
        if key.endswith("accuracy") or key in HEADLINE_NME:
            parts.append(f"{key.removeprefix('test_')} {100 * value:.2f}%")
    if "test_detector_no_face_found" in metrics and "test_num_photos" in metrics:
        parts.append(f"no face found {metrics['test_detector_no_face_found']}/{metrics['test_num_photos']}")
    return ", ".join(parts) or "-"


def _cmd_list(args: argparse.Namespace) -> int:
    from crmn_viz.checkpoints import list_checkpoints

    entries = list_checkpoints(args.dir)
    if args.markdown:
        print("| name | architecture | params | data | test metric | size |")
        print("|---|---|---|---|---|---|")
    for entry in entries:
        params = f"{(entry['num_parameters'] or 0) / 1e6:.2f}M"
        size = f"{entry['size_bytes'] / 1e6:.1f} MB"
        if args.markdown:
            print(
                f"| `{entry['name']}` | {entry['arch']} | {params} | {entry['dataset'] or '-'} | "
                f"{_metric_text(entry['metrics'])} | {size} |"
            )
        else:
            print(
                f"{entry['name']:<24} {entry['arch']:<7} {entry['dataset'] or '-':<10} {params:>8}  "
                f"{size:>9}  {_metric_text(entry['metrics'])}"
            )
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from crmn_viz.benchmarks import markdown_table, run_benchmarks

    hardware, results = run_benchmarks(
        quick=args.quick, device=args.device, only=args.only, repeats=args.repeats
    )
    print(markdown_table(hardware, results))
    if args.json:
        report = {"hardware": hardware, "results": [r.__dict__ for r in results]}
        if not args.only or "load" in args.only:
            from crmn_viz.load_bench import LAST_REPORT

            if LAST_REPORT:  # the load benchmark's own fields (sessions, errors, latencies, memory)
                report["load"] = dict(LAST_REPORT)
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2, default=str)
    mismatched = [f"{r.group} {r.case}" for r in results if not r.outputs_match]
    if mismatched:
        print(f"outputs differ in: {mismatched}", file=sys.stderr)
        return 1
    return 0


def _load_or_say_why(args: argparse.Namespace) -> TracedModel | None:
    """``args.checkpoint`` loaded onto ``args.device``, or None after printing why it could not be."""
    return _load_checkpoint(args.checkpoint, args.device)


def _load_checkpoint(checkpoint: str, device: str) -> TracedModel | None:
    """A checkpoint (zoo name or path) loaded onto ``device``, or None after printing why it could
    not be."""
    from crmn_viz.checkpoints import CheckpointError, load
    from crmn_viz.devices import DeviceError

    try:
        return load(checkpoint, device=device)
    except (CheckpointError, DeviceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return None


def _cmd_analyze(args: argparse.Namespace) -> int:
    from crmn_viz.images import InvalidImageError
    from crmn_viz.inputs.selection import SelectedImage
    from crmn_viz.views.report import write_report

    model = _load_or_say_why(args)
    if model is None:
        return 2
    images = []
    for path in args.images:
        try:
            images.append(SelectedImage.from_path(path))
        except (InvalidImageError, OSError) as err:
            print(f"skipping {path}: {err}", file=sys.stderr)
    if not images:
        print("error: no readable image was given", file=sys.stderr)
        return 2
    written = write_report(
        model, images, args.out, formats=args.formats, dpi=args.dpi, ig_steps=args.ig_steps
    )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    import torch

    from crmn_viz.analysis.experiments import dataset_effect, evaluation_batches
    from crmn_viz.views.experiments import effect_markdown

    model = _load_or_say_why(args)
    if model is None:
        return 2
    batches = evaluation_batches(model, args.images, args.data_dir, args.dataset)
    if model.task == "classification" and not args.quiet:
        seen = len(torch.unique(torch.cat([y for _, y in batches])))
        if seen < int(model.config.num_outputs):
            print(
                f"note: the first {sum(len(y) for _, y in batches)} test images (eval's order) hold only "
                f"{seen} of {model.config.num_outputs} classes; --images 0 runs the whole test set",
                file=sys.stderr,
            )

    progress = _progress_printer(args.quiet)
    effect = dataset_effect(model, batches, resamples=args.resamples, seed=args.seed, progress=progress)
    print(effect_markdown(effect, per_class=args.per_class))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(effect.to_rows(), handle, indent=2)
    return 0


def parse_target(text: str | None, model: TracedModel) -> tuple:  # type: ignore[type-arg]
    """A ``--target`` as a view's target spec: ``predicted``, ``class:K``, ``keypoint:K:x|y`` or
    ``gate:QUANTITY:UNIT:STEP``; None: the predicted class (keypoint models: the nose tip's y).

    Raises:
        ValueError: the text is not one of these forms.
    """
    from crmn_viz.views.report import NOSE_TIP_Y

    if text is None:
        return NOSE_TIP_Y if model.task == "keypoints" else ("predicted",)
    parts = text.split(":")
    try:
        if parts == ["predicted"]:
            return ("predicted",)
        if parts[0] == "class" and len(parts) == 2:
            return ("class", int(parts[1]))
        if parts[0] == "keypoint" and len(parts) == 3 and parts[2] in ("x", "y"):
            return ("keypoint", int(parts[1]), parts[2])
        if parts[0] == "gate" and len(parts) == 4:
            return ("gate", parts[1], int(parts[2]), int(parts[3]))
    except ValueError:
        pass
    raise ValueError(
        f"--target {text!r}: use predicted, class:K, keypoint:K:x (or :y) or gate:QUANTITY:UNIT:STEP"
    )


def _cmd_attribution_check(args: argparse.Namespace) -> int:
    from crmn_viz.analysis.attribution_trust import trust_table
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.images import InvalidImageError
    from crmn_viz.inputs.selection import SelectedImage, decode_images
    from crmn_viz.views.attribution import METHOD_LABELS, explained_picture
    from crmn_viz.views.compute import DirectCompute, attribution_target
    from crmn_viz.views.test_images import test_image_names, test_subset
    from crmn_viz.views.trust import trust_markdown

    model = _load_or_say_why(args)
    if model is None:
        return 2
    try:
        target = parse_target(args.target, model)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    named: list = []  # type: ignore[type-arg]
    for path in args.images:
        try:
            image = SelectedImage.from_path(path)
        except (InvalidImageError, OSError) as err:
            print(f"skipping {path}: {err}", file=sys.stderr)
            continue
        png = explained_picture(model, image, DirectCompute())[0]  # a keypoint model's face crop
        named.append((image.name, decode_images([png])[0]))
    if args.test_images:
        dataset = args.dataset or model.card.get("dataset")
        if not dataset:
            print("error: --test-images needs --dataset (the card names none)", file=sys.stderr)
            return 2
        try:
            subset = test_subset(dataset, args.test_images, args.data_dir)
        except DatasetNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        named += [(name, subset[index][0]) for index, name in enumerate(test_image_names(subset))]
    if not named:
        print("error: no readable image was given (image files, or --test-images N)", file=sys.stderr)
        return 2
    options = {"integrated_gradients": {"n_steps": args.ig_steps}}

    progress = _progress_printer(args.quiet)
    try:
        table = trust_table(
            model,
            named,
            args.method,
            attribution_target(target),
            steps=args.steps,
            seed=args.seed,
            resamples=args.resamples,
            randomisation=not args.no_randomisation,
            options=options,
            progress=progress,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(trust_markdown(table))
    print()
    print(table.describe(METHOD_LABELS))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(table.to_rows(), handle, indent=2)
    return 0


# --------------------------------------------------------------------------- population commands
# ``population`` and ``exemplars`` make one population pass over the test images (cached on disk
# by the weights' digest), which shards itself under ``torchrun --nproc_per_node N``: every rank
# runs its share of the images; afterwards only rank 0 prints and writes.

ALL_IMAGES = sys.maxsize
"""``--images 0``: every test image (the test subset is clamped to the split)."""

TORCHRUN_EPILOG = (
    "Several processes (GPUs or CPU cores, one machine or several): "
    "torchrun --nproc_per_node 2 -m crmn_viz.frontends.cli {command} ... "
    "The population pass shards the test images over the processes (gloo on the CPU, nccl on "
    "GPUs; each process takes cuda:LOCAL_RANK with --device auto) and gives the result of one "
    "process; only rank 0 prints and writes. With several machines the cache folder "
    "($CRMN_VIZ_CACHE_DIR) must be shared."
)


def _rank() -> int:
    """This process's rank under ``torch.distributed`` (0 when no process group is initialised)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    return 0


def _leave_process_group() -> None:
    """Destroy the process group a distributed pass initialised (nothing otherwise)."""
    import torch.distributed

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _rank_device(device: str) -> str:
    """``--device auto`` under torchrun on a machine with CUDA: this process's own GPU,
    ``cuda:$LOCAL_RANK`` (nccl needs one GPU per process); otherwise ``device`` as given."""
    import os

    from crmn_viz.devices import cuda_available

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if device == "auto" and world > 1 and "LOCAL_RANK" in os.environ and cuda_available():
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def _use_data_dir(data_dir: str | None) -> None:
    """Read the data from ``data_dir`` in this process.

    The population and probe work of :class:`crmn_viz.views.compute.Compute` takes no data
    folder: it reads ``$CRMN_VIZ_DATA_DIR`` (else ``./data``), as every data-set loader of the
    package does, so ``--data-dir`` sets that variable for this process (and its workers).
    """
    import os

    from crmn_viz.data import DATA_DIR_ENV_VAR

    if data_dir:
        os.environ[DATA_DIR_ENV_VAR] = str(data_dir)


def _dataset_or_say_why(given: str | None, model: TracedModel) -> str | None:
    """``--dataset``, else the data set on the model card; None after printing that there is none."""
    dataset = given or model.card.get("dataset")
    if not dataset:
        print("error: the model card names no data set: pass --dataset", file=sys.stderr)
        return None
    return str(dataset)


def _progress_printer(quiet: bool) -> Callable[[int, int, str], None]:
    """``progress(done, total, label)`` printing ``[done/total] label`` to stderr (rank 0 only)."""

    def progress(done: int, total: int, label: str) -> None:
        if not quiet and _rank() == 0:
            print(f"[{done}/{total}] {label}", file=sys.stderr)

    return progress


def _reporting_compute(quiet: bool) -> Compute:
    """A :class:`~crmn_viz.views.compute.DirectCompute` whose long work (the population pass, the
    probes) reports its progress to stderr, the hook ``Compute.call_with_progress`` offers."""
    from crmn_viz.views.compute import DirectCompute

    progress = _progress_printer(quiet)

    class ReportingCompute(DirectCompute):
        def call_with_progress(self, work: Callable[..., Any], model: TracedModel, *arguments: Any) -> Any:
            return work(model, *arguments, progress)

    return ReportingCompute()


def _write_json(path: str | None, content: Any) -> int:
    """Write ``content`` as JSON to ``path`` (when given); the exit code: 0, or 2 after saying why not."""
    if path:
        try:
            with open(path, "w") as handle:
                json.dump(content, handle, indent=2)
        except OSError as err:
            print(f"error: --json {path}: {err.strerror or err}", file=sys.stderr)
            return 2
    return 0


def _cmd_population(args: argparse.Namespace) -> int:
    try:
        return _population(args)
    finally:
        _leave_process_group()


def _population(args: argparse.Namespace) -> int:
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.figures import FigureExportError
    from crmn_viz.provenance import Provenance
    from crmn_viz.views.population_report import population_report, write_population_report

    model = _load_checkpoint(args.checkpoint, _rank_device(args.device))
    if model is None:
        return 2
    dataset = _dataset_or_say_why(args.dataset, model)
    if dataset is None:
        return 2
    if args.images < 0 or args.bootstrap < 0 or args.train_images < 0 or args.exemplars < 1:
        print(
            "error: --images, --bootstrap and --train-images must be >= 0, --exemplars >= 1", file=sys.stderr
        )
        return 2
    _use_data_dir(args.data_dir)
    run = _reporting_compute(args.quiet)
    try:
        table = run.population(model, dataset, args.images or ALL_IMAGES)
    except (DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if _rank() != 0:
        return 0
    probes, why = None, ""
    if model.task != "classification":
        why = f"a {model.task} model has no classes to probe"
    elif args.train_images == 0:
        why = "--train-images 0"
    else:
        try:
            probes = run.probes(model, dataset, args.train_images, len(table))
        except (DatasetNotFoundError, ValueError) as err:
            why = str(err).splitlines()[0]
    report = population_report(
        model,
        table,
        probes=probes,
        probes_skipped=why,
        training_names=[Provenance.of(model).checkpoint],
        bootstrap=args.bootstrap,
        ordering=args.ordering,
        top_units=args.top_units,
        exemplar_count=args.exemplars,
        progress=_progress_printer(args.quiet),
    )
    for note in report.skipped:
        print(f"skipped {note}", file=sys.stderr)
    try:
        written = write_population_report(model, report, args.out, formats=args.formats, dpi=args.dpi)
    except (FigureExportError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _cmd_exemplars(args: argparse.Namespace) -> int:
    try:
        return _exemplars(args)
    finally:
        _leave_process_group()


def _exemplars(args: argparse.Namespace) -> int:
    from crmn_viz.analysis.population import exemplars, population_quantities
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.views.population_report import exemplar_rows

    model = _load_checkpoint(args.checkpoint, _rank_device(args.device))
    if model is None:
        return 2
    dataset = _dataset_or_say_why(args.dataset, model)
    if dataset is None:
        return 2
    quantities = population_quantities(model)  # checked before the pass: a typo costs no pass
    quantity = quantities.get(args.quantity)
    if quantity is None:
        print(
            f"error: --quantity {args.quantity!r}: this model records {', '.join(quantities)}",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.step < quantity.steps:
        print(
            f"error: --step must be in 0..{quantity.steps - 1} for {args.quantity} (counted from 0), "
            f"got {args.step}",
            file=sys.stderr,
        )
        return 2
    if not 0 <= args.unit < quantity.units[args.step]:
        print(
            f"error: --unit must be in 0..{quantity.units[args.step] - 1} for {args.quantity} at step "
            f"{args.step}, got {args.unit}",
            file=sys.stderr,
        )
        return 2
    if args.top < 1 or args.images < 0:
        print("error: --top must be >= 1 and --images >= 0", file=sys.stderr)
        return 2
    _use_data_dir(args.data_dir)
    try:
        table = _reporting_compute(args.quiet).population(model, dataset, args.images or ALL_IMAGES)
        if _rank() != 0:
            return 0
        found = exemplars(table, args.quantity, args.step, args.unit, args.top, lowest=args.bottom)
    except (DatasetNotFoundError, KeyError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    end = "lowest" if args.bottom else "highest"
    print(
        f"{args.quantity}, unit {args.unit}, step {args.step} (counted from 0): the {len(found)} {end} "
        f"of {len(table)} {dataset} test images"
    )
    print(f"{'rank':>4}  {'value':>12}  {'class':<12}  image")
    for rank, item in enumerate(found, start=1):
        label = table.class_names[item.label] if 0 <= item.label < len(table.class_names) else "-"
        print(f"{rank:>4}  {item.value:>12.6g}  {label:<12}  {item.image}")
    return _write_json(args.json, exemplar_rows(found))


def _cmd_compare(args: argparse.Namespace) -> int:
    from crmn_viz.analysis.comparison import test_set_comparison
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.provenance import Provenance
    from crmn_viz.views.comparison import comparison_markdown

    model_a = _load_checkpoint(args.checkpoint_a, args.device)
    if model_a is None:
        return 2
    model_b = _load_checkpoint(args.checkpoint_b, args.device)
    if model_b is None:
        return 2
    dataset = _dataset_or_say_why(args.dataset, model_a)
    if dataset is None:
        return 2
    if args.images < 0:
        print("error: --images must be >= 0", file=sys.stderr)
        return 2
    progress = _progress_printer(args.quiet)
    try:
        # the analysis entry itself: it takes the data folder and both checkpoint names
        result = test_set_comparison(
            model_a,
            model_b,
            dataset,
            args.images or None,
            data_dir=args.data_dir,
            progress=progress,
            name_a=Provenance.of(model_a).checkpoint,
            name_b=Provenance.of(model_b).checkpoint,
        )
    except (DatasetNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(comparison_markdown(result))
    return _write_json(args.json, result.to_json())


def _cmd_faces(args: argparse.Namespace) -> int:
    from crmn_viz.analysis.face_detectors import available_face_detectors
    from crmn_viz.analysis.keypoint_evaluation import evaluate_keypoints_on_photos
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.views.keypoint_report import keypoint_evaluation_markdown

    if args.photos < 0:
        print("error: --photos must be >= 0", file=sys.stderr)
        return 2
    results: dict[str, dict[str, Any]] = {}
    for checkpoint in args.checkpoints:
        model = _load_checkpoint(checkpoint, args.device)
        if model is None:
            return 2
        if model.task != "keypoints":
            print(
                f"error: {checkpoint} is a classifier; crmn-viz faces needs a keypoint model", file=sys.stderr
            )
            return 2
        try:
            finder = available_face_detectors().get(args.detector) if args.detector else True
            if finder is None:
                print(f"error: detector {args.detector} is not installed here", file=sys.stderr)
                return 2
            results[checkpoint] = {
                protocol: evaluate_keypoints_on_photos(
                    model,
                    args.data_dir,
                    args.split,
                    detector=found,
                    max_photos=args.photos,
                    progress=not args.quiet,
                    refine_rounds=None if found is False else args.refine_rounds,
                )
                for protocol, found in (("box given", False), ("detector", finder))
            }
        except (DatasetNotFoundError, FileNotFoundError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if args.baseline == "dlib":
        from crmn_viz.analysis.dlib_baseline import dlib_baseline_available, evaluate_dlib_on_photos

        if not dlib_baseline_available():
            print(
                "error: --baseline dlib needs dlib and its 68-point predictor: "
                "pip install dlib-bin && pip install --no-deps face_recognition_models",
                file=sys.stderr,
            )
            return 2
        dlib = evaluate_dlib_on_photos(args.data_dir, args.split, args.photos, progress=not args.quiet)
        results["dlib (HOG + 68-point shape predictor)"] = {"detector": dlib}
    print(keypoint_evaluation_markdown(results))
    return _write_json(args.json, results)


def _cmd_face_detectors(args: argparse.Namespace) -> int:
    from crmn_viz.analysis.face_detectors import (
        available_face_detectors,
        compare_face_detectors,
        faces68_photos,
    )
    from crmn_viz.data import DatasetNotFoundError
    from crmn_viz.views.keypoint_report import detector_comparison_markdown

    try:
        _, photos, keypoints = faces68_photos(args.data_dir, args.split, max_photos=max(0, args.photos))
    except (DatasetNotFoundError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    detectors = available_face_detectors()
    if args.detectors:
        unknown = sorted(set(args.detectors) - set(detectors))
        if unknown:
            print(
                f"error: unknown or not installed: {', '.join(unknown)} (have {', '.join(detectors)})",
                file=sys.stderr,
            )
            return 2
        detectors = {name: detectors[name] for name in args.detectors}
    step = max(1, len(photos) // 10)

    def progress(name: str, done: int, total: int) -> None:
        if not args.quiet and (done % step == 0 or done == total):
            print(f"[{done}/{total}] {name}", file=sys.stderr)

    rows = compare_face_detectors(detectors, photos, list(keypoints), progress=progress)
    print(detector_comparison_markdown(rows))
    return _write_json(args.json, [row.to_dict() for row in rows])


def _cmd_gradio(args: argparse.Namespace) -> int:
    from crmn_viz.frontends.gradio_app import main as gradio_main

    gradio_main(["--host", args.host, "--port", str(args.port)])
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``crmn-viz``."""
    parser = argparse.ArgumentParser(prog="crmn-viz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a zoo model from a TOML recipe (resumable)")
    p.add_argument("config", help="recipe file, e.g. configs/crmn-cifar10.toml")
    p.add_argument("--data-dir", help="data root (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--out", default="runs", help="folder for run state and metrics.jsonl")
    p.add_argument("--checkpoint-dir", default="checkpoints", help="where the final checkpoint goes")
    p.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    p.add_argument("--no-resume", action="store_true", help="start from scratch")
    p.add_argument(
        "--stop-after-epoch",
        type=int,
        default=0,
        help="save the resumable state after this epoch and exit (continue later)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint (zoo name or path) on its test set")
    p.add_argument("checkpoint")
    p.add_argument("--data-dir")
    p.add_argument("--dataset", help="default: the dataset on the model card")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-batches", type=int, default=0)
    p.add_argument("--write-card", action="store_true", help="store the measured metrics in the card")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("bench", help="speed/memory benchmarks, side by side in one run")
    p.add_argument("--quick", action="store_true", help="tiny sizes: check they run and outputs match")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--only", nargs="*", help="subset of benchmark names")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("analyze", help="write every figure and its data for a set of images")
    p.add_argument("checkpoint", help="zoo name (see `crmn-viz list`) or path to name.safetensors")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--formats", nargs="+", default=["pdf", "svg", "png"], choices=["pdf", "svg", "png", "html"]
    )
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--ig-steps", type=int, default=32, help="integrated-gradients steps")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser(
        "ablate", help="accuracy (or NME) intact and under each memory experiment, with bootstrap 95%% CIs"
    )
    p.add_argument("checkpoint", help="zoo name (see `crmn-viz list`) or path to name.safetensors")
    p.add_argument("--data-dir", help="data root (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--dataset", help="default: the dataset on the model card")
    p.add_argument(
        "--images", type=int, default=0, help="the first N test images, in eval's order (0: all of them)"
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--per-class", action="store_true", help="also print the per-class table")
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_ablate)

    p = sub.add_parser(
        "attribution-check",
        help="faithfulness (deletion/insertion AUC vs a random map) and randomisation checks of attributions",
    )
    p.add_argument("checkpoint", help="zoo name (see `crmn-viz list`) or path to name.safetensors")
    p.add_argument("images", nargs="*", help="image files (and/or --test-images N)")
    p.add_argument(
        "--method",
        nargs="+",
        default=["integrated_gradients"],
        choices=["saliency", "integrated_gradients", "gradient_shap", "occlusion", "gradcam"],
        help="attribution method(s)",
    )
    p.add_argument(
        "--target",
        help="predicted (default), class:K, keypoint:K:x|y (keypoint models: keypoint:30:y), "
        "gate:QUANTITY:UNIT:STEP",
    )
    p.add_argument("--test-images", type=int, default=0, help="also N test images spread over the test split")
    p.add_argument("--data-dir", help="data root for --test-images (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--dataset", help="for --test-images; default: the dataset on the model card")
    p.add_argument("--steps", type=int, default=32, help="points of each deletion/insertion curve")
    p.add_argument("--ig-steps", type=int, default=32, help="integrated-gradients steps")
    p.add_argument("--no-randomisation", action="store_true", help="skip the randomisation test")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the random map, weights and bootstrap")
    p.add_argument("--json", help="write one row per image and method to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_attribution_check)

    p = sub.add_parser(
        "population",
        help="every population figure (unit x class selectivity, probes, training curves) over test images",
        description=(
            "One pass over N test images (cached on disk by the weights' digest), then every population "
            "figure with its data and provenance into --out, and population.json. Which selectivity "
            "figures: a model with memory (CRMN): every LSTM quantity (gates, cell candidate, cell, "
            "hidden state) at the last step, and the hidden state at every step; a model without memory: "
            "the block quantity (channel means of each block's output; RiR: each stream) at the last "
            "block of each stage. Then the linear probes (classifiers; --train-images training images) "
            "and the checkpoint's training curves when its log is found ($CRMN_VIZ_TRAINING_LOGS, "
            "docs/training-logs). population.json lists the most selective units of every figure and the "
            "top and bottom exemplars {image, value} of the 5 most selective units of the hidden state "
            "at the last step (without memory: of the block quantity at the last block). Keypoint models "
            "have no classes: no selectivity or probes (said on stderr), exemplars of the 5 units of "
            "largest variance. Steps are counted from 0 in the data, from 1 in the figures."
        ),
        epilog=TORCHRUN_EPILOG.format(command="population"),
    )
    p.add_argument("checkpoint", help="zoo name (see `crmn-viz list`) or path to name.safetensors")
    p.add_argument("--data-dir", help="data root (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--dataset", help="default: the dataset on the model card")
    p.add_argument(
        "--images", type=int, default=1000, help="N test images spread over the test split (0: all of them)"
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples of the selectivity intervals"
    )
    p.add_argument(
        "--ordering",
        choices=["cluster", "selectivity"],
        default="cluster",
        help="units of each heatmap: clustered by class profile, or by descending selectivity",
    )
    p.add_argument(
        "--train-images", type=int, default=2000, help="training images of the linear probes (0: no probes)"
    )
    p.add_argument("--top-units", type=int, default=10, help="most selective units listed per figure")
    p.add_argument("--exemplars", type=int, default=9, help="exemplars listed per unit at each end")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["pdf", "svg", "png"],
        choices=["pdf", "svg", "png", "html", "json"],
        help="figure files (json: the plotly figure; every format gets the data and meta sidecars)",
    )
    p.add_argument("--dpi", type=int, default=300)
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_population)

    p = sub.add_parser(
        "exemplars",
        help="the test images that drive one unit most (or least), from a population pass",
        description=(
            "Rows {image, value} in descending order of value (ascending with --bottom): image is the "
            "file name in the data set (e.g. test/cat/0001.jpg), value the quantity at that step and "
            "unit as run_with_trace records it (LSTM quantities: lstm.<quantity>[image, step, unit]; "
            "block, stream and sweep quantities: the channel's mean over the map's positions). --step "
            "is counted from 0, the trace's index, as in --target gate:QUANTITY:UNIT:STEP of "
            "attribution-check (the figures show step + 1)."
        ),
        epilog=TORCHRUN_EPILOG.format(command="exemplars"),
    )
    p.add_argument("checkpoint", help="zoo name (see `crmn-viz list`) or path to name.safetensors")
    p.add_argument(
        "--quantity",
        required=True,
        help="hidden, cell, forget_gate, input_gate, output_gate, cell_candidate (CRMN), block, a RiR "
        "stream, a ReNet sweep or sweep.gate",
    )
    p.add_argument("--step", type=int, required=True, help="the step, counted from 0 (block index l)")
    p.add_argument("--unit", type=int, required=True, help="the unit (memory unit or channel), from 0")
    p.add_argument("--top", type=int, default=9, help="K, how many images")
    p.add_argument("--bottom", action="store_true", help="the K lowest values instead, ascending")
    p.add_argument("--data-dir", help="data root (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--dataset", help="default: the dataset on the model card")
    p.add_argument(
        "--images", type=int, default=1000, help="N test images spread over the test split (0: all of them)"
    )
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_exemplars)

    p = sub.add_parser(
        "compare",
        help="two classifiers on the same test images: accuracies, agreement, per-class accuracy",
        description=(
            "Prints the comparison as Markdown (accuracy of each, paired bootstrap interval of the "
            "difference, exact McNemar p, agreement, per-class accuracy); --json writes its summary "
            "(accuracy_a, accuracy_b, agreement, per_class, and more). Runs in one process."
        ),
    )
    p.add_argument("checkpoint_a", help="model A: zoo name or path to name.safetensors (e.g. crmn-cifar10)")
    p.add_argument("checkpoint_b", help="model B (e.g. resnet-cifar10)")
    p.add_argument("--data-dir", help="data root (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--dataset", help="default: the dataset on model A's card")
    p.add_argument(
        "--images", type=int, default=1000, help="N test images spread over the test split (0: all of them)"
    )
    p.add_argument("--json", help="write the summary to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser(
        "faces",
        help="keypoint models on whole faces68 photos: NME with the box given and found, per landmark group",
        description=(
            "Runs crmn_viz.predict_faces on every photo of the split as a user would: once with the "
            "face box given (the true keypoints' box), once with the default detector and the re-crop "
            "rounds. Prints one Markdown table (NME overall and per landmark group, as the 2017 paper's "
            "Table 1) and the NME after each round; --json writes every number."
        ),
    )
    p.add_argument("checkpoints", nargs="+", help="keypoint checkpoints (e.g. crmn-faces68 resnet-faces68)")
    p.add_argument("--data-dir", help="data root holding faces68/ (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--photos", type=int, default=0, help="the first N photos (0: all)")
    p.add_argument("--detector", choices=["mtcnn", "haar", "dlib-hog"], help="default: the shipped default")
    p.add_argument(
        "--refine-rounds", type=int, help="re-crops after the detector (default: the detector's own)"
    )
    p.add_argument("--baseline", choices=["dlib"], help="also measure dlib's detector + 68-point predictor")
    p.add_argument("--json", help="write every number to this JSON file")
    p.add_argument("--device", default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_faces)

    p = sub.add_parser(
        "face-detectors",
        help="compare the installed face detectors on annotated faces68 photos",
        description=(
            "Miss rate, agreement of each detector's calibrated box with the keypoints' box (IoU), "
            "whether its most confident face is the annotated one, and time per photo. Measure on the "
            "training photos (the default) to choose; the calibration printed is refitted on them."
        ),
    )
    p.add_argument("--data-dir", help="data root holding faces68/ (default: $CRMN_VIZ_DATA_DIR or ./data)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--photos", type=int, default=0, help="the first N photos (0: all)")
    p.add_argument(
        "--detectors", nargs="*", help="subset: haar, mtcnn, dlib-hog (default: every installed one)"
    )
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=_cmd_face_detectors)

    p = sub.add_parser("gradio", help="launch the Gradio demo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.set_defaults(func=_cmd_gradio)

    p = sub.add_parser("list", help="list the checkpoints of the zoo")
    p.add_argument("--dir", default=None)
    p.add_argument("--markdown", action="store_true", help="print the README's model-zoo table")
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``crmn-viz`` script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
