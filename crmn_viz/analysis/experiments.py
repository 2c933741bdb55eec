"""Ready-made causal experiments on the memory, and their effect over a data set.

Each experiment is a named list of interventions (:mod:`crmn_viz.interventions`) that the
forward pass applies where the network computes the named values; which ones apply to a model
is read from its capabilities (``has_memory``, ``memory_input_name``, ``sweep_names``,
``removable_streams``), never from its architecture's name.

For the CRMN (Moniz & Pal 2016: x_l is block l's pooled output, eqs. 2-7 the LSTM over blocks):

* :func:`memory_off`: the head reads ``[h_T, pooled]`` with the final hidden state h_T zeroed
  (or replaced by its mean over a data set): what the memory adds to the ResNet's own features;
* :func:`skip_block_write`: x_l zeroed (or mean-ablated) for one block l: the LSTM never reads
  that block;
* :func:`reset_cell`: c_l := 0 at step l (and so h_l = o_l * tanh(0) = 0): the memory forgets
  everything before block l + 1;
* :func:`clamp_forget_gates`: f_l := 1 (keep everything) or 0 (keep nothing) for chosen units;
* :func:`swap_state`: image B's cell and hidden state patched into image A at step l.

For ReNet (Visin et al. 2015), :func:`ablate_sweep` zeroes one direction of one layer; for
ResNet in ResNet (Targ et al. 2016), :func:`zero_stream` zeroes the transient stream of every
generalized block, which reduces each block to ``r' = relu(bn(conv(r) + r))``, the paper's
single-layer ResNet (the first block still reads the stem's transient half).

:func:`dataset_effect` runs one batched pass per experiment over a set of test images and
reports accuracy (keypoint models: NME) intact and under each experiment, overall and per
class, with bootstrap 95% intervals; :func:`evaluation_batches` reads the images exactly as
``crmn-viz eval`` does, so the intact row equals its measurement on the same images.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from crmn_viz.analysis.bootstrap import bootstrap_mean
from crmn_viz.analysis.inputs import ImageBatch, class_names_for, evaluation_mode, prepare_batch
from crmn_viz.interventions import Clamp, Intervention, MeanAblate, Patch, applying, compile_interventions
from crmn_viz.memory_quantities import MEMORY_QUANTITIES
from crmn_viz.models.base import TracedModel
from crmn_viz.tracing import Trace

__all__ = [
    "FAMILY_TITLES",
    "DatasetEffect",
    "EffectRow",
    "Experiment",
    "ExperimentRun",
    "ExperimentSpec",
    "ablate_sweep",
    "build_experiment",
    "clamp_forget_gates",
    "dataset_effect",
    "evaluation_batches",
    "experiment_families",
    "experiment_means",
    "memory_off",
    "reset_cell",
    "run_experiment",
    "skip_block_write",
    "standard_experiments",
    "swap_state",
    "zero_stream",
]

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]
"""Normalised input batches [B, C, H, W] with their labels [B] (classes) or keypoints [B, K, 2]."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named set of interventions.

    Attributes:
        key: a file-name-safe identifier, e.g. ``"skip_block_3_zero"``.
        title: what a table or a figure says, e.g. ``"block 3 not written (x_3 = 0)"``.
        family: ``"memory_off"``, ``"skip_block"``, ``"cell_reset"``, ``"forget_clamp"``,
            ``"swap"``, ``"sweep_ablated"`` or ``"stream_zeroed"``.
        interventions: what the forward pass applies, in order.
        block: the block (LSTM step) or ReNet layer concerned, if one.
    """

    key: str
    title: str
    family: str
    interventions: tuple[Intervention, ...]
    block: int | None = None


def _needs_memory(model: TracedModel, what: str) -> None:
    if not model.has_memory or not model.memory_input_name:
        raise ValueError(
            f"{what} needs a model whose LSTM reads its blocks (has_memory); a {model.arch!r} model has none"
        )


def _memory(model: TracedModel, quantity: str) -> str:
    """The trace name of one of the model's memory quantities, e.g. ``lstm.hidden``."""
    if quantity not in model.memory_quantities:
        raise ValueError(f"the model's memory has no {quantity!r}; it has {list(model.memory_quantities)}")
    return MEMORY_QUANTITIES[quantity].trace_name


def _last_step(model: TracedModel) -> int:
    return model.intervention_steps(_memory(model, "hidden")) - 1


def _check_step(model: TracedModel, step: int) -> int:
    count = model.intervention_steps(_memory(model, "hidden"))
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or not 0 <= step < count:
        raise ValueError(f"step must be a block index in 0..{count - 1}, got {step!r}")
    return int(step)


def memory_off(model: TracedModel, means: Any = None) -> Experiment:
    """The head reads the pooled ResNet features with h_T zeroed, or replaced by ``means``.

    Args:
        means: None (zero), or the hidden state's mean [T, H] or [H] (e.g. over a data set).
    """
    _needs_memory(model, "memory_off")
    name, last = _memory(model, "hidden"), _last_step(model)
    if means is None:
        return Experiment("memory_off_zero", "memory off (h_T = 0)", "memory_off", (Clamp(name, 0.0, last),))
    return Experiment(
        "memory_off_mean", "memory off (h_T = data mean)", "memory_off", (MeanAblate(name, means, last),)
    )


def skip_block_write(model: TracedModel, block: int, means: Any = None) -> Experiment:
    """Block ``block``'s output never reaches the LSTM: x_l zeroed, or replaced by ``means``.

    Args:
        means: None (zero), or x_l's mean, padded as ``lstm.input``: [T, D] or [D].
    """
    _needs_memory(model, "skip_block_write")
    step = _check_step(model, block)
    name = model.memory_input_name
    if means is None:
        return Experiment(
            f"skip_block_{step}_zero",
            f"block {step} not written (x_{step} = 0)",
            "skip_block",
            (Clamp(name, 0.0, step),),
            step,
        )
    return Experiment(
        f"skip_block_{step}_mean",
        f"block {step} not written (x_{step} = data mean)",
        "skip_block",
        (MeanAblate(name, means, step),),
        step,
    )


def reset_cell(model: TracedModel, step: int) -> Experiment:
    """c_l := 0 at step ``step`` (eq. 5); h_l = o_l * tanh(c_l) follows (eq. 7)."""
    _needs_memory(model, "reset_cell")
    step = _check_step(model, step)
    return Experiment(
        f"cell_reset_{step}",
        f"cell reset at block {step} (c_{step} = 0)",
        "cell_reset",
        (Clamp(_memory(model, "cell"), 0.0, step),),
        step,
    )


def clamp_forget_gates(
    model: TracedModel, value: float, units: Sequence[int] | None = None, steps: Sequence[int] | None = None
) -> Experiment:
    """f_l := ``value`` (1: keep the cell, 0: forget it; eq. 3) for ``units`` (None: all) at ``steps``."""
    _needs_memory(model, "clamp_forget_gates")
    which = "all units" if units is None else f"{len(units)} unit{'s' if len(units) != 1 else ''}"
    intervention = Clamp(_memory(model, "forget_gate"), float(value), steps, units)
    where = intervention.describe().split("(", 1)
    suffix = f" ({where[1]}" if len(where) == 2 else ""
    key = f"forget_{value:g}" + ("" if units is None else "_units_" + "_".join(str(u) for u in units[:8]))
    return Experiment(key, f"forget gate = {value:g}, {which}{suffix}", "forget_clamp", (intervention,))


def swap_state(
    model: TracedModel, source: Mapping[str, torch.Tensor], step: int, source_index: int = 0
) -> Experiment:
    """Image B's cell and hidden state (``source``: B's trace) patched into the run at step ``step``."""
    _needs_memory(model, "swap_state")
    step = _check_step(model, step)
    patches = tuple(
        Patch(_memory(model, quantity), source, source_index, step) for quantity in ("cell", "hidden")
    )
    return Experiment(f"swap_{step}", f"state of image B at block {step}", "swap", patches, step)


def ablate_sweep(model: TracedModel, layer: int, sweep: str) -> Experiment:
    """One sweep direction of one ReNet layer zeroed (what the next sweep and layer read)."""
    if not model.sweep_names or not model.sweep_trace_pattern:
        raise ValueError(f"ablate_sweep needs a model with recurrent sweeps; a {model.arch!r} model has none")
    if sweep not in model.sweep_names:
        raise ValueError(f"sweep must be one of {list(model.sweep_names)}, got {sweep!r}")
    if not 0 <= layer < model.block_count:
        raise ValueError(f"layer must be in 0..{model.block_count - 1}, got {layer!r}")
    name = model.sweep_trace_pattern.format(layer=layer, sweep=sweep)
    return Experiment(
        f"sweep_{layer}_{sweep}",
        f"layer {layer} {sweep.replace('_', ' ')} = 0",
        "sweep_ablated",
        (Clamp(name, 0.0),),
        layer,
    )


def zero_stream(model: TracedModel, stream: str) -> Experiment:
    """``stream`` (one of ``removable_streams``) zeroed at the output of every block."""
    if stream not in model.removable_streams:
        raise ValueError(f"stream must be one of {list(model.removable_streams)}, got {stream!r}")
    clamps = tuple(Clamp(model.gradcam_layer(block, stream), 0.0) for block in range(model.block_count))
    return Experiment(f"{stream}_zeroed", f"{stream} stream = 0 in every block", "stream_zeroed", clamps)


def standard_experiments(model: TracedModel, means: Mapping[str, Any] | None = None) -> list[Experiment]:
    """The experiments a dataset sweep runs for ``model``, from its capabilities.

    Memory: memory off and each block skipped, zeroed and (when ``means`` holds them) mean-ablated,
    forget gates all clamped to 1 and to 0. Sweeps: each direction of each layer. Streams: each
    removable stream. A model with none of these (a plain ResNet) gets [].

    Args:
        means: trace name -> mean per step and unit (see :func:`experiment_means`).
    """
    means = means or {}
    experiments: list[Experiment] = []
    if model.has_memory and model.memory_input_name:
        hidden, inputs = _memory(model, "hidden"), model.memory_input_name
        experiments.append(memory_off(model))
        if hidden in means:
            experiments.append(memory_off(model, means[hidden]))
        for block in range(model.intervention_steps(inputs)):
            experiments.append(skip_block_write(model, block))
            if inputs in means:
                experiments.append(skip_block_write(model, block, means[inputs]))
        experiments += [clamp_forget_gates(model, 1.0), clamp_forget_gates(model, 0.0)]
    if model.sweep_names and model.sweep_trace_pattern:
        for layer in range(model.block_count):
            experiments += [ablate_sweep(model, layer, sweep) for sweep in model.sweep_names]
    experiments += [zero_stream(model, stream) for stream in model.removable_streams]
    return experiments


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A hashable description of one experiment, as a front end's widgets choose it.

    Attributes:
        family: one of :func:`experiment_families` (``"memory_off"``, ``"skip_block"`` ...).
        step: the block (LSTM step) or ReNet layer; None where the family has none.
        units: memory units (``"forget_clamp"``), None: all.
        value: the forget gates' value (``"forget_clamp"``).
        part: ReNet's sweep or RiR's stream.
    """

    family: str
    step: int | None = None
    units: tuple[int, ...] | None = None
    value: float = 1.0
    part: str = ""


def experiment_families(model: TracedModel) -> tuple[str, ...]:
    """The experiment families that apply to ``model``, from its capabilities."""
    families: list[str] = []
    if model.has_memory and model.memory_input_name:
        families += ["memory_off", "skip_block", "cell_reset", "forget_clamp", "swap"]
    if model.sweep_names and model.sweep_trace_pattern:
        families.append("sweep_ablated")
    if model.removable_streams:
        families.append("stream_zeroed")
    return tuple(families)


FAMILY_TITLES = {
    "memory_off": "Memory off (h_T = 0)",
    "skip_block": "Skip one block's write (x_l = 0)",
    "cell_reset": "Reset the cell at step l (c_l = 0)",
    "forget_clamp": "Clamp forget gates",
    "swap": "Swap in image B's state at step l",
    "sweep_ablated": "Ablate one sweep direction",
    "stream_zeroed": "Zero a stream",
}
"""What a menu says for each family."""


def build_experiment(
    model: TracedModel, spec: ExperimentSpec, source: Mapping[str, torch.Tensor] | None = None
) -> Experiment:
    """The :class:`Experiment` of ``spec`` (``source``: image B's trace, for ``"swap"``)."""
    family = spec.family
    if family not in experiment_families(model):
        raise ValueError(
            f"experiment {family!r} does not apply; this model has {list(experiment_families(model))}"
        )
    if family == "memory_off":
        return memory_off(model)
    if family == "skip_block":
        return skip_block_write(model, int(spec.step or 0))
    if family == "cell_reset":
        return reset_cell(model, int(spec.step or 0))
    if family == "forget_clamp":
        steps = None if spec.step is None else list(range(int(spec.step), _last_step(model) + 1))
        return clamp_forget_gates(model, spec.value, None if spec.units is None else list(spec.units), steps)
    if family == "swap":
        if source is None:
            raise ValueError("a swap needs image B's trace (source=...)")
        return swap_state(model, source, int(spec.step or 0))
    if family == "sweep_ablated":
        return ablate_sweep(model, int(spec.step or 0), spec.part or model.sweep_names[0])
    return zero_stream(model, spec.part or model.removable_streams[0])


# --------------------------------------------------------------------------- one batch


@dataclasses.dataclass
class ExperimentRun:
    """One experiment on a few images: the intact and the intervened run side by side.

    Attributes:
        experiment: what was done.
        intact, intervened: the model outputs [B, classes] or [B, K, 2].
        intact_trace, intervened_trace: the memory quantities, ``pooled`` and the edited names
            (CPU, detached); for models without memory the edited names and the output.
        intact_steps, intervened_steps: the head read after every step, [B, T, classes] or
            [B, T, K, 2] (models with a step-wise readout), else None.
        class_names: labels of the classes ([] for keypoints).
    """

    experiment: Experiment
    intact: torch.Tensor
    intervened: torch.Tensor
    intact_trace: Trace
    intervened_trace: Trace
    intact_steps: torch.Tensor | None
    intervened_steps: torch.Tensor | None
    class_names: list[str]

    def probabilities(self, intervened: bool) -> torch.Tensor:
        """Softmax of the (per-step when available) outputs: [B, T, classes] or [B, classes]."""
        out = self.intervened_steps if intervened else self.intact_steps
        out = (self.intervened if intervened else self.intact) if out is None else out
        return torch.softmax(out, dim=-1)


def _recorded_names(model: TracedModel, experiment: Experiment) -> list[str]:
    names = {item.name for item in experiment.interventions}
    if model.has_memory:
        names |= {_memory(model, quantity) for quantity in model.memory_quantities}
        names |= {"pooled"} if "pooled" in model.trace_names() else set()
    names.add(model.output_name)
    return sorted(names)


def _stepwise(model: TracedModel, trace: Trace) -> torch.Tensor | None:
    if not model.has_stepwise_readout:
        return None
    with torch.no_grad():
        return model.head(trace[_memory(model, "hidden")], trace["pooled"])  # type: ignore[operator]


def run_experiment(model: TracedModel, images: ImageBatch, experiment: Experiment) -> ExperimentRun:
    """Run ``images`` intact and under ``experiment`` (eval mode, no gradients)."""
    batch = prepare_batch(model, images)
    names = _recorded_names(model, experiment)
    with evaluation_mode(model), torch.no_grad():
        intact, intact_trace = model.run_with_trace(batch, names=names, store_device="cpu")
        edited, edited_trace = model.run_with_trace(
            batch, names=names, store_device="cpu", interventions=experiment.interventions
        )
    return ExperimentRun(
        experiment,
        intact.cpu(),
        edited.cpu(),
        intact_trace,
        edited_trace,
        _stepwise(model, intact_trace),
        _stepwise(model, edited_trace),
        class_names_for(model) if model.task == "classification" else [],
    )


# --------------------------------------------------------------------------- data set


def evaluation_batches(
    model: TracedModel,
    images: int,
    data_dir: str | None = None,
    dataset: str | None = None,
    batch_size: int = 256,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``images`` test images, batched and normalised exactly as ``crmn-viz eval`` reads them.

    Same order, same batches of ``batch_size`` (256, as :func:`crmn_viz.training.evaluate_model`),
    the last one cut at ``images`` (0: every test image). The data root is resolved by
    :mod:`crmn_viz.data` (``data_dir``, else ``$CRMN_VIZ_DATA_DIR``, else ``./data``). The CIFAR-10
    archive's test split is sorted by class, so a first few hundred images are of one class.

    Args:
        dataset: default: the model card's ``dataset``.

    Raises:
        ValueError: no dataset is known for the model, or ``images`` < 0.
    """
    from crmn_viz.data import build_dataset
    from crmn_viz.training import in_memory_data

    name = dataset or (
        model.card.get("dataset") if isinstance(getattr(model, "card", None), Mapping) else None
    )
    if not name:
        raise ValueError("the model card names no dataset: pass dataset=...")
    if images < 0:
        raise ValueError(f"images must be 0 (all) or more, got {images}")
    data = in_memory_data(name, "test", data_dir)
    if data is not None:
        batches: Iterable[tuple[torch.Tensor, torch.Tensor]] = data.epoch(0, batch_size, 0, augment=False)
    else:
        split = build_dataset(name, "test", data_dir, train_augment=False)
        batches = torch.utils.data.DataLoader(split, batch_size=batch_size, shuffle=False)
    chosen, count = [], 0
    for x, y in batches:
        take = len(y) if not images else min(len(y), images - count)
        chosen.append((x[:take], y[:take]))
        count += take
        if images and count >= images:
            break
    return chosen


def _scores(model: TracedModel, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per image: 1.0 / 0.0 for a correct / wrong class, or the NME of a keypoint model."""
    if model.task == "keypoints":
        from crmn_viz.analysis.keypoint_evaluation import normalised_mean_errors

        return normalised_mean_errors(output, target.to(output.device)).double().cpu()
    return (output.argmax(1) == target.to(output.device)).double().cpu()


def experiment_means(model: TracedModel, batches: Batches) -> dict[str, torch.Tensor]:
    """Mean over the images of the memory's step input x_l (``lstm.input``, [T, D], padded) and
    hidden state (``lstm.hidden``, [T, H]): the values mean ablation puts in. {} without memory."""
    if not model.has_memory or not model.memory_input_name:
        return {}
    names = [model.memory_input_name, _memory(model, "hidden")]
    sums: dict[str, torch.Tensor] = {}
    count = 0
    with evaluation_mode(model), torch.no_grad():
        for x, _ in batches:
            _, trace = model.run_with_trace(prepare_batch(model, x), names=names)
            for name in names:
                total = trace[name].double().sum(dim=0).cpu()
                sums[name] = total if name not in sums else sums[name] + total
            count += len(x)
    return {name: (value / max(count, 1)).float() for name, value in sums.items()}


@dataclasses.dataclass(frozen=True)
class EffectRow:
    """One experiment over the images: the metric, its 95% bootstrap interval, per class.

    Attributes:
        experiment: the :attr:`Experiment.key` (``"intact"`` for the model as it is).
        title: what a table says.
        metric: ``"accuracy"`` or ``"nme"``.
        value: accuracy (fraction correct) or mean NME over ``images``.
        ci_low, ci_high: percentile bootstrap 95% interval of ``value``.
        images: how many images.
        per_class: class name -> (value, ci_low, ci_high, images); empty for keypoints.
        block: the block or layer the experiment concerns, if one.
        change, change_low, change_high: ``value`` minus the intact value, and its paired 95%
            bootstrap interval (the same resampled images for both runs); 0 for the intact row.
    """

    experiment: str
    title: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    images: int
    per_class: Mapping[str, tuple[float, float, float, int]]
    block: int | None = None
    change: float = 0.0
    change_low: float = 0.0
    change_high: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: ``experiment``, the metric's name as key, ``ci_low``, ``ci_high``, ``images``."""
        return {
            "experiment": self.experiment,
            "title": self.title,
            self.metric: self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "images": self.images,
            "change": self.change,
            "change_ci_low": self.change_low,
            "change_ci_high": self.change_high,
            "per_class": {
                name: {self.metric: v, "ci_low": lo, "ci_high": hi, "images": n}
                for name, (v, lo, hi, n) in self.per_class.items()
            },
        }


@dataclasses.dataclass(frozen=True)
class DatasetEffect:
    """:func:`dataset_effect`'s result: the intact row first, then one row per experiment.

    Attributes:
        metric: ``"accuracy"`` (higher is better) or ``"nme"`` (lower is better).
        rows: :class:`EffectRow` objects.
        resamples: bootstrap resamples behind every interval.
        seed: the bootstrap's seed.
    """

    metric: str
    rows: tuple[EffectRow, ...]
    resamples: int
    seed: int

    @property
    def intact(self) -> EffectRow:
        """The row of the model as it is."""
        return self.rows[0]

    def to_rows(self) -> list[dict[str, Any]]:
        """Every row as a JSON-ready dict (see :meth:`EffectRow.to_dict`)."""
        return [row.to_dict() for row in self.rows]


def _row(
    key: str,
    title: str,
    metric: str,
    scores: np.ndarray,
    labels: np.ndarray | None,
    class_names: Sequence[str],
    resamples: int,
    seed: int,
    block: int | None,
    intact: np.ndarray,
) -> EffectRow:
    value, low, high = bootstrap_mean(scores, resamples, np.random.default_rng(seed))
    # the same resampled images for every row, so the change is a paired comparison
    change = bootstrap_mean(scores - intact, resamples, np.random.default_rng(seed))
    per_class = {}
    if labels is not None:
        for index, name in enumerate(class_names):
            chosen = scores[labels == index]
            if len(chosen):
                per_class[name] = (
                    *bootstrap_mean(chosen, resamples, np.random.default_rng(seed + 1 + index)),
                    len(chosen),
                )
    return EffectRow(key, title, metric, value, low, high, len(scores), per_class, block, *change)


def dataset_effect(
    model: TracedModel,
    batches: Batches,
    experiments: Sequence[Experiment] | None = None,
    resamples: int = 1000,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> DatasetEffect:
    """Accuracy (keypoint models: NME) intact and under each experiment, with bootstrap 95% intervals.

    One batched pass over ``batches`` per experiment, each a plain forward pass under
    :func:`crmn_viz.interventions.applying` (nothing is recorded), in eval mode without gradients.

    Args:
        batches: normalised inputs and targets, e.g. :func:`evaluation_batches` (re-read once per
            experiment, so a list, not a one-shot iterator).
        experiments: default :func:`standard_experiments` with means from :func:`experiment_means`
            over the same images.
        resamples: bootstrap resamples; the same resampled image sets serve every row (seeded).
        progress: called ``progress(done, total, title)`` after every pass.

    Returns:
        A :class:`DatasetEffect` whose first row is ``"intact"``.
    """
    batches = list(batches)
    if not batches:
        raise ValueError("no images to evaluate")
    if experiments is None:
        experiments = standard_experiments(model, experiment_means(model, batches))
    compiled = [compile_interventions(model, experiment.interventions) for experiment in experiments]
    classification = model.task == "classification"
    metric = "accuracy" if classification else "nme"
    labels = torch.cat([y for _, y in batches]).cpu().numpy() if classification else None
    names = class_names_for(model) if classification else []
    passes = [
        ("intact", "intact", None, None),
        *((e.key, e.title, c, e.block) for e, c in zip(experiments, compiled)),
    ]
    rows = []
    intact = np.zeros(0)
    with evaluation_mode(model), torch.no_grad():
        for done, (key, title, edits, block) in enumerate(passes, 1):
            scores = []
            with applying(model, edits):
                for x, y in batches:
                    scores.append(_scores(model, model(prepare_batch(model, x)), y))
            values = torch.cat(scores).numpy()
            if key == "intact":
                intact = values
            rows.append(_row(key, title, metric, values, labels, names, resamples, seed, block, intact))
            if progress is not None:
                progress(done, len(passes), title)
    return DatasetEffect(metric, tuple(rows), resamples, seed)
