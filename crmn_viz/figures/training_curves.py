"""Training curves of one or several checkpoints, as Figure 3 of Moniz & Pal (2016).

The paper's Figure 3 draws training-set learning curves (left) and the test-set error during the
final optimisation (right) for a CRMN and the ResNet it extends. :func:`plot_training_curves`
draws the same from the shipped logs (:mod:`crmn_viz.analysis.training_logs`), in four panels
sharing the epoch axis: training loss, training accuracy, test accuracy where it was measured,
and the learning rate on a log scale, where warm restarts show as the rate jumping back up
(also marked by dotted vertical lines in every panel).

A pure function of the logs: it reads no file and runs no model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from crmn_viz.analysis.training_logs import TrainingLog, warm_restart_epochs
from crmn_viz.figures.layout import add_meta, finish_figure, legend_rows, line_style

__all__ = ["PANEL_FIELDS", "TEST_METRIC_LABELS", "CurveStyle", "plot_training_curves"]

PANEL_FIELDS: tuple[str, ...] = ("train_loss", "train_accuracy", "test", "lr")
"""The four panels in reading order (2 x 2): ``"test"`` is the chosen test metric."""

TEST_METRIC_LABELS: dict[str, str] = {
    "test_accuracy": "test accuracy",
    "test_nme_crop": "test NME (face crop)",
}
"""Axis title of each test metric the third panel can draw, in order of preference."""

_AXIS_TITLES = {
    "train_loss": "training loss",
    "train_accuracy": "training accuracy",
    "lr": "learning rate (log)",
}
_RESTART_COLOUR = "#8c8c8c"


@dataclass(frozen=True)
class CurveStyle:
    """How one checkpoint's curves are drawn: a colour and a Plotly dash (``"solid"``, ``"dash"``)."""

    colour: str
    dash: str = "solid"


def _test_metric(logs: Sequence[TrainingLog], requested: str | None) -> str:
    """The metric of the test panel: ``requested``, else the first of :data:`TEST_METRIC_LABELS`
    some log has (test accuracy before NME)."""
    if requested is not None:
        return requested
    for metric in TEST_METRIC_LABELS:
        if any(np.isfinite(log.column(metric)).any() for log in logs):
            return metric
    return "test_accuracy"


def plot_training_curves(
    logs: Mapping[str, TrainingLog],
    styles: Mapping[str, CurveStyle] | None = None,
    *,
    test_metric: str | None = None,
    columns: Literal[1, 2] = 2,
    height_in: float | None = None,
) -> go.Figure:
    """Training loss, training accuracy, test accuracy and learning rate against the epoch.

    Four panels (2 x 2) on one shared epoch axis; every checkpoint is one colour and dash in
    all four (``styles``; by default the :func:`~crmn_viz.figures.layout.line_style` sequence),
    so a CRMN and its ResNet drawn in one colour, solid and dashed, compare at a glance.
    Training curves are lines over every epoch; the test metric is drawn with markers at the
    epochs where it was measured (joined by lines); the learning rate is on a log axis. Warm
    restarts (:func:`crmn_viz.analysis.training_logs.warm_restart_epochs`) are dotted grey
    vertical lines half an epoch before the first epoch of each new cycle. A panel no log
    has data for says so.

    Args:
        logs: legend label (the checkpoint name) -> its log, in legend order.
        styles: legend label -> :class:`CurveStyle`; labels without one get the default.
        test_metric: the third panel's field (default ``test_accuracy``, or ``test_nme_crop``
            when only keypoint logs are drawn; see :data:`TEST_METRIC_LABELS`).
        columns: printed width, 1 or 2 columns.
        height_in: printed height in inches (default 3.4).

    Returns:
        The figure: one ``go.Scatter`` per checkpoint and panel, named after the checkpoint,
        whose ``x``/``y`` are the log's ``epoch`` and field (the test metric at its measured
        epochs only); panels in :data:`PANEL_FIELDS` order on axes ``x``/``y`` ... ``x4``/``y4``.
        ``layout.meta`` holds ``checkpoints`` (the legend order), ``logs`` (checkpoint ->
        ``file``, ``sha256``, ``epochs``), ``test_metric``, ``panels`` and ``warm_restarts``
        (checkpoint -> the epochs that begin a new cycle, for the checkpoints that have any).

    Raises:
        ValueError: no logs.
    """
    if not logs:
        raise ValueError("plot_training_curves needs at least one training log")
    styles = dict(styles or {})
    metric = _test_metric(list(logs.values()), test_metric)
    titles = {**_AXIS_TITLES, "test": TEST_METRIC_LABELS.get(metric, metric.replace("_", " "))}
    fig = make_subplots(rows=2, cols=2, shared_xaxes="all", horizontal_spacing=0.11, vertical_spacing=0.08)
    has_data = dict.fromkeys(PANEL_FIELDS, False)
    for index, (label, log) in enumerate(logs.items()):
        colour, dash = line_style(index)
        style = styles.get(label, CurveStyle(colour, dash))
        for panel, field_name in enumerate(PANEL_FIELDS):
            row, col = panel // 2 + 1, panel % 2 + 1
            if field_name == "test":
                x, y = log.measured(metric)
                mode = "lines+markers"
            else:
                x, y = log.epoch, log.column(field_name)
                mode = "lines"
            has_data[field_name] |= bool(np.isfinite(y).any())
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode=mode,
                    name=label,
                    legendgroup=label,
                    showlegend=panel == 0,
                    line={"color": style.colour, "dash": style.dash, "width": 1.2},
                    marker={"size": 4, "color": style.colour},
                    hovertemplate=f"{label}<br>epoch %{{x}}<br>{titles[field_name]} %{{y:.4g}}"
                    "<extra></extra>",
                ),
                row=row,
                col=col,
            )
    for panel, field_name in enumerate(PANEL_FIELDS):
        row, col = panel // 2 + 1, panel % 2 + 1
        fig.update_yaxes(title_text=titles[field_name], row=row, col=col)
        if field_name == "train_accuracy" or (field_name == "test" and metric.endswith("accuracy")):
            fig.update_yaxes(tickformat=".0%", row=row, col=col)  # fractions, shown as percentages
        if not has_data[field_name]:
            fig.add_annotation(
                text=f"no {titles[field_name]} in these logs",
                x=0.5,
                y=0.5,
                xref="x domain" if panel == 0 else f"x{panel + 1} domain",
                yref="y domain" if panel == 0 else f"y{panel + 1} domain",
                showarrow=False,
            )
    fig.update_yaxes(type="log", exponentformat="power", row=2, col=2)
    fig.update_xaxes(title_text="epoch", row=2)
    restarts = {label: [int(epoch) for epoch in warm_restart_epochs(log)] for label, log in logs.items()}
    for epoch in sorted({epoch for epochs in restarts.values() for epoch in epochs}):
        fig.add_vline(
            x=epoch - 0.5,
            line={"color": _RESTART_COLOUR, "width": 1, "dash": "dot"},
            row="all",
            col="all",
        )
    add_meta(
        fig,
        checkpoints=list(logs),
        logs={
            label: {"file": log.file_name, "sha256": log.sha256, "epochs": log.epochs}
            for label, log in logs.items()
        },
        test_metric=metric,
        panels=[titles[name] for name in PANEL_FIELDS],
        warm_restarts={label: epochs for label, epochs in restarts.items() if epochs} or None,
    )
    return finish_figure(fig, columns, height_in, 3.4, legend_lines=legend_rows(list(logs), columns))
