"""``crmn-viz`` command line: train, evaluate, list and ablate checkpoints, write figures."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crmn_viz.models.base import TracedModel

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


def _metric_text(metrics: dict) -> str:  # type: ignore[type-arg]
    parts = []
    for key, value in metrics.items():
        if key.endswith("accuracy") or "nme" in key:
            parts.append(f"{key.removeprefix('test_')} {100 * value:.2f}%")
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
    from crmn_viz.checkpoints import CheckpointError, load
    from crmn_viz.devices import DeviceError

    try:
        return load(args.checkpoint, device=args.device)
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

    def progress(done: int, total: int, title: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {title}", file=sys.stderr)

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

    def progress(done: int, total: int, label: str) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] {label}", file=sys.stderr)

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
        "ablate", help="accuracy (or NME) intact and under each memory experiment, with bootstrap 95% CIs"
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
