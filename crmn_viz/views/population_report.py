"""Every population figure of one checkpoint over a data set, with the numbers behind them.

``crmn-viz population CHECKPOINT --data-dir D --images N --out DIR`` is a thin wrapper around
:func:`population_report` and :func:`write_population_report`, as ``crmn-viz analyze`` is around
:func:`crmn_viz.views.report.write_report`. The report reads one population pass
(:func:`crmn_viz.analysis.population.test_set_population`, a
:class:`~crmn_viz.analysis.population.PopulationTable`) and, when given, the linear probes; it never
runs the network.

Which unit x class selectivity figures
--------------------------------------
One figure per (quantity, step) would be too many (a CRMN of depth 20 records 7 quantities at 9
steps). :func:`selectivity_plan` chooses, from the model's capabilities:

* a model with memory (``model.has_memory``, the CRMN): every LSTM quantity (the gates, the cell
  candidate, the cell and the hidden state, Moniz & Pal 2016 eqs. 2-7) at the last step, and the
  hidden state h_l at every step l;
* a model without memory: the block quantity (``"block"``, the channel means of each block's
  output; for RiR each of its ``stream_names``) at the last block of each stage
  (``model.stage_of_block`` where the model has it, else a new stage wherever the number of
  channels changes).

Steps are counted from 0 in the data (``"step"``), from 1 in figures and captions
(``"step_number"``), as :func:`crmn_viz.views.population.selectivity_view` does.

Exemplars
---------
``population.json`` holds, for the 5 most selective units (highest d') of the hidden state at the
last step (a model without memory: the first block quantity of the plan at its last step), the
top and bottom exemplars ``{"image", "value"}``: the test images with the highest (lowest) value of
that unit, as :func:`crmn_viz.analysis.population.exemplars` ranks them. A keypoint model has no
classes, hence no selectivity and no probes: its exemplar units are the 5 of largest variance over
the images.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crmn_viz.analysis.population import Exemplar, PopulationTable, exemplars
from crmn_viz.analysis.probes import ProbeResult, probe_summary
from crmn_viz.analysis.selectivity import INDEX_FORMULA, UnitSelectivity
from crmn_viz.analysis.training_logs import TrainingLogError
from crmn_viz.figures import FigureExport, export_figures, figure_data
from crmn_viz.models.base import TracedModel
from crmn_viz.provenance import Provenance
from crmn_viz.views.population import selectivity_view
from crmn_viz.views.probes import probes_view
from crmn_viz.views.report import ReportFigure, safe_stem
from crmn_viz.views.training_curves import training_curves_view

__all__ = [
    "PopulationReport",
    "exemplar_quantity",
    "exemplar_rows",
    "population_report",
    "selectivity_plan",
    "write_population_report",
]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, label)`` after every figure."""

EXEMPLAR_UNITS = 5
"""Units whose exemplars ``population.json`` lists (the most selective ones)."""


def _memory_quantities(table: PopulationTable) -> list[str]:
    """The LSTM's quantities in the table: those recorded for every step at once (``[B, T, H]``)."""
    return [name for name, quantity in table.quantities.items() if quantity.stacked]


def _block_quantities(model: TracedModel, table: PopulationTable) -> list[str]:
    """The per-block quantities: ``"block"``, or each of RiR's ``stream_names``."""
    names = ("block", *(model.stream_names or ()))
    return [name for name in names if name in table.quantities]


def _stage_ends(model: TracedModel, units: Sequence[int]) -> list[int]:
    """The last step of every stage: from ``model.stage_of_block`` when it covers every step, else
    a new stage wherever the number of units (channels) changes."""
    known = getattr(model, "stage_of_block", None)
    stages = list(known) if known is not None and len(known) == len(units) else None
    if stages is None:
        stages, stage = [], 0
        for step, count in enumerate(units):
            stage += int(step > 0 and count != units[step - 1])
            stages.append(stage)
    return [
        step for step in range(len(stages)) if step == len(stages) - 1 or stages[step + 1] != stages[step]
    ]


def selectivity_plan(model: TracedModel, table: PopulationTable) -> list[tuple[str, int]]:
    """The ``(quantity, step)`` of every selectivity figure a report draws (module docstring).

    Steps are counted from 0. Empty for a model without classes (``table.task`` is not
    ``"classification"``).
    """
    if table.task != "classification":
        return []
    memory = _memory_quantities(table) if model.has_memory else []
    if memory:
        plan = [(name, table.quantities[name].steps - 1) for name in memory if name != "hidden"]
        if "hidden" in memory:
            plan += [("hidden", step) for step in range(table.quantities["hidden"].steps)]
        return plan
    plan = []
    for name in _block_quantities(model, table):
        plan += [(name, step) for step in _stage_ends(model, table.quantities[name].units)]
    return plan


def exemplar_quantity(model: TracedModel, table: PopulationTable) -> tuple[str, int] | None:
    """The ``(quantity, step)`` whose units' exemplars a report lists: the hidden state at the last
    step, else the first block quantity at its last step, else the table's first quantity; None for
    a table without quantities."""
    for name in ("hidden", *_block_quantities(model, table), *table.quantities):
        if name in table.quantities:
            return name, table.quantities[name].steps - 1
    return None


def exemplar_rows(found: Sequence[Exemplar]) -> list[dict[str, Any]]:
    """Exemplars as JSON rows ``{"image", "value"}``, in the order given (the image's file name
    in the data set, e.g. ``test/cat/0001.jpg``; the value as the population pass recorded it)."""
    return [{"image": item.image, "value": float(item.value)} for item in found]


@dataclass
class PopulationReport:
    """What :func:`population_report` made.

    Attributes:
        figures: the figures, in order (selectivity, probes, training curves).
        summary: the JSON-ready content of ``population.json`` (module docstring).
        skipped: one sentence for each figure that was not drawn, and why.
    """

    figures: list[ReportFigure] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _unit_rows(result: UnitSelectivity, k: int) -> list[dict[str, Any]]:
    rows = []
    for unit, name, value in result.most_selective(k):
        low, high = result.selectivity_ci[unit]
        rows.append(
            {
                "unit": unit,
                "preferred_class": name,
                "selectivity": _finite(value),
                "interval": [_finite(low), _finite(high)],
            }
        )
    return rows


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _varied_units(table: PopulationTable, quantity: str, step: int, k: int) -> list[int]:
    """The ``k`` units of largest variance over every image at ``step`` (ties: the lower unit)."""
    counts = table.summary.class_counts.astype(np.float64)
    total = max(float(counts.sum()), 1.0)
    sums = np.nansum(table.summary.class_sums[quantity][:, step], axis=0)
    squares = np.nansum(table.summary.class_sum_squares[quantity][:, step], axis=0)
    variance = squares / total - (sums / total) ** 2
    width = table.quantities[quantity].units[step]
    order = np.lexsort((np.arange(width), -variance[:width]))
    return [int(unit) for unit in order[:k]]


def population_report(
    model: TracedModel,
    table: PopulationTable,
    *,
    probes: ProbeResult | None = None,
    probes_skipped: str = "",
    training_names: Sequence[str] = (),
    bootstrap: int = 1000,
    ordering: str = "cluster",
    top_units: int = 10,
    exemplar_count: int = 9,
    progress: Progress | None = None,
) -> PopulationReport:
    """Every population figure of ``model`` over ``table``, and ``population.json``'s content.

    Args:
        model: the model the table (and the probes) were made with; not run.
        table: its population pass over the test images.
        probes: its linear probes, drawn when given.
        probes_skipped: why there are no probes (recorded in ``skipped``), when ``probes`` is None.
        training_names: checkpoint names whose training curves are drawn (one figure; left out,
            with a note, when none has a log).
        bootstrap: resamples of the selectivity intervals.
        ordering: ``"cluster"`` or ``"selectivity"``, the order of the units in each heatmap.
        top_units: the most selective units listed per selectivity figure.
        exemplar_count: exemplars listed per unit and end (top and bottom).
        progress: ``progress(done, total, figure name)`` after every selectivity figure.

    Returns:
        A :class:`PopulationReport`. ``summary`` holds ``dataset``, ``images`` (N), ``task``,
        ``selection`` (the rule of :func:`selectivity_plan`, in words), ``selectivity`` (per figure:
        ``figure``, ``quantity``, ``step`` from 0, ``step_number`` from 1, ``index`` (the formula),
        ``most_selective`` rows ``{"unit", "preferred_class", "selectivity", "interval"}``),
        ``exemplars`` (``quantity``, ``step``, ``step_number``, ``chosen_by``, and per unit
        ``{"unit", "top": [{"image", "value"}], "bottom": [...]}``), ``probes``
        (:func:`crmn_viz.analysis.probes.probe_summary`, or None) and ``skipped``.
    """
    report = PopulationReport()
    plan = selectivity_plan(model, table)
    results: dict[tuple[str, int], UnitSelectivity] = {}
    rows = []
    if table.task != "classification":
        report.skipped.append(
            f"unit x class selectivity: a {table.task} model has no classes to be selective for"
        )
    for done, (quantity, step) in enumerate(plan, start=1):
        result, shown = selectivity_view(model, table, quantity, step, ordering=ordering, bootstrap=bootstrap)
        results[quantity, step] = result
        report.figures.append(ReportFigure(shown.name, shown))
        rows.append(
            {
                "figure": shown.name,
                "quantity": quantity,
                "step": int(step),
                "step_number": int(step) + 1,
                "index": INDEX_FORMULA,
                "most_selective": _unit_rows(result, top_units),
            }
        )
        if progress is not None:
            progress(done, len(plan), shown.name)
    if probes is not None:
        report.figures.append(ReportFigure("linear_probes", probes_view(model, probes)))
    elif probes_skipped:
        report.skipped.append(f"linear probes: {probes_skipped}")
    if training_names:
        try:
            curves = training_curves_view(list(training_names))
        except (FileNotFoundError, TrainingLogError, ValueError) as err:
            report.skipped.append(f"training curves: {err}")
        else:
            report.figures.append(ReportFigure("training_curves", curves))
    report.summary = {
        "dataset": table.dataset,
        "split": table.split,
        "images": len(table),
        "task": table.task,
        "selection": (
            "every LSTM quantity at the last step and the hidden state at every step"
            if model.has_memory
            else "the block quantity at the last block of each stage"
        ),
        "selectivity": rows,
        "exemplars": _exemplar_summary(model, table, results, exemplar_count),
        "probes": None if probes is None else probe_summary(probes),
        "skipped": list(report.skipped),
    }
    return report


def _exemplar_summary(
    model: TracedModel,
    table: PopulationTable,
    results: dict[tuple[str, int], UnitSelectivity],
    count: int,
) -> dict[str, Any] | None:
    chosen = exemplar_quantity(model, table)
    if chosen is None:
        return None
    quantity, step = chosen
    result = results.get(chosen)
    if result is not None:
        units = [unit for unit, _, _ in result.most_selective(EXEMPLAR_UNITS)]
        chosen_by = f"the {EXEMPLAR_UNITS} most selective units (highest d')"
    else:
        units = _varied_units(table, quantity, step, EXEMPLAR_UNITS)
        chosen_by = f"the {EXEMPLAR_UNITS} units of largest variance over the images (no classes)"
    return {
        "quantity": quantity,
        "step": int(step),
        "step_number": int(step) + 1,
        "chosen_by": chosen_by,
        "units": [
            {
                "unit": unit,
                "top": exemplar_rows(exemplars(table, quantity, step, unit, count)),
                "bottom": exemplar_rows(exemplars(table, quantity, step, unit, count, lowest=True)),
            }
            for unit in units
        ],
    }


def write_population_report(
    model: TracedModel,
    report: PopulationReport,
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "svg", "png"),
    dpi: int = 300,
) -> list[Path]:
    """Export every figure of ``report`` (one browser session) with its data and provenance, and
    ``population.json``.

    Files are named ``<checkpoint>__<figure>.<ext>`` with ``.data.csv``/``.data.npz`` and
    ``.meta.json`` sidecars; the provenance (checkpoint, weights SHA-256, the settings: data set,
    image count, quantity, step, bootstrap...) is written inside every file and into its
    ``.meta.json``, as :func:`crmn_viz.views.report.write_report` does. ``population.json`` adds
    ``checkpoint`` (name, architecture, weights SHA-256) and ``figures`` (the files written).
    Returns every path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = Provenance.of(model)
    prefix = safe_stem(checkpoint.checkpoint)
    items = [
        FigureExport(
            name=f"{prefix}__{safe_stem(item.name)}",
            figure=item.figure,
            data=figure_data(item.figure),
            metadata={"figure": item.name, "caption": item.shown.caption},
            provenance=item.shown.provenance(model).with_settings(figure=item.name),
        )
        for item in report.figures
    ]
    written = export_figures(items, out, formats=tuple(formats), dpi=dpi) if items else []
    summary = {
        "checkpoint": {key: value for key, value in checkpoint.to_dict().items() if key != "settings"},
        **report.summary,
        "figures": [path.name for path in written],
    }
    (out / "population.json").write_text(json.dumps(summary, indent=2))
    return [*written, out / "population.json"]
