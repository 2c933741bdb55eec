"""Shared foundation for the paper figures: the print theme and file export.

Typical use::

    from crmn_viz.figures import apply_paper_style, export_figures

    styled = apply_paper_style(fig, columns=1)
    export_figures({"fig2_accuracy": styled}, "out/figures", formats=("pdf", "svg", "png"))

See :mod:`crmn_viz.figures.theme` for sizes, fonts and palettes, and
:mod:`crmn_viz.figures.export` for formats, sizes on paper and data sidecars.

Scientific figures (pure functions of traces or arrays; none runs a model):
:mod:`~crmn_viz.figures.memory` (CRMN LSTM gates and cell state),
:mod:`~crmn_viz.figures.renet` (ReNet sweeps, patch grids, context reach),
:mod:`~crmn_viz.figures.rir` (RiR residual and transient streams),
:mod:`~crmn_viz.figures.overlays` (attributions and keypoints over images),
:mod:`~crmn_viz.figures.readouts` (stepwise and final predictions),
:mod:`~crmn_viz.figures.trust` (randomisation checks and faithfulness curves),
:mod:`~crmn_viz.figures.population` (unit x class selectivity),
:mod:`~crmn_viz.figures.comparison` (a CRMN beside its own ResNet),
:mod:`~crmn_viz.figures.training_curves` (the shipped training logs, as the 2016 paper's Figure 3),
:mod:`~crmn_viz.figures.blocks` (channel means and norms of every residual block) and
:mod:`~crmn_viz.figures.data` (:func:`figure_data`, the numbers behind any figure).
"""

from crmn_viz.figures.blocks import plot_block_channels
from crmn_viz.figures.comparison import (
    plot_agreement_matrix,
    plot_correctness,
    plot_per_class_accuracy,
    plot_stepwise_accuracy,
)
from crmn_viz.figures.data import figure_data
from crmn_viz.figures.experiments import (
    plot_dataset_effect,
    plot_experiment_heatmaps,
    plot_experiment_readout,
    plot_step_attribution,
)
from crmn_viz.figures.export import (
    SUPPORTED_FORMATS,
    FigureExport,
    FigureExportError,
    browser_available,
    export_figure,
    export_figure_bytes,
    export_figures,
    figure_data_bytes,
    find_browser,
)
from crmn_viz.figures.file_metadata import read_provenance
from crmn_viz.figures.memory import (
    plot_cell_state,
    plot_gate_comparison,
    plot_gate_heatmap,
    plot_gate_statistics,
    plot_gate_trajectories,
    plot_memory_animation,
)
from crmn_viz.figures.overlays import draw_keypoints, plot_attribution_overlay, plot_keypoints
from crmn_viz.figures.population import plot_exemplar_grid, plot_unit_selectivity
from crmn_viz.figures.probes import plot_probes
from crmn_viz.figures.readouts import (
    plot_prediction_bar,
    plot_stepwise_keypoints,
    plot_stepwise_probabilities,
)
from crmn_viz.figures.renet import (
    context_reach_masks,
    plot_context_reach,
    plot_patch_grid,
    plot_sweep_gates,
    plot_sweep_maps,
)
from crmn_viz.figures.rir import plot_stream_maps, plot_stream_norms
from crmn_viz.figures.theme import (
    CATEGORICAL_COLOURS,
    DIVERGING_COLORSCALE,
    MODEL_COLOURS,
    OKABE_ITO,
    ONE_COLUMN_WIDTH_IN,
    PAPER_TEMPLATE_NAME,
    SEQUENTIAL_COLORSCALE,
    SEQUENTIAL_COLORSCALE_ALT,
    TWO_COLUMN_WIDTH_IN,
    FontSizes,
    apply_paper_style,
    column_width_in,
    paper_template,
    pt_to_px,
    register_paper_template,
    symmetric_range,
)
from crmn_viz.figures.training_curves import plot_training_curves
from crmn_viz.figures.trust import plot_faithfulness_curves, plot_sanity_check, plot_trust_summary

__all__ = [
    "CATEGORICAL_COLOURS",
    "DIVERGING_COLORSCALE",
    "MODEL_COLOURS",
    "OKABE_ITO",
    "ONE_COLUMN_WIDTH_IN",
    "PAPER_TEMPLATE_NAME",
    "SEQUENTIAL_COLORSCALE",
    "SEQUENTIAL_COLORSCALE_ALT",
    "SUPPORTED_FORMATS",
    "TWO_COLUMN_WIDTH_IN",
    "FigureExport",
    "FigureExportError",
    "FontSizes",
    "apply_paper_style",
    "browser_available",
    "column_width_in",
    "context_reach_masks",
    "draw_keypoints",
    "export_figure",
    "export_figure_bytes",
    "export_figures",
    "figure_data",
    "figure_data_bytes",
    "find_browser",
    "paper_template",
    "plot_agreement_matrix",
    "plot_attribution_overlay",
    "plot_block_channels",
    "plot_cell_state",
    "plot_context_reach",
    "plot_correctness",
    "plot_dataset_effect",
    "plot_exemplar_grid",
    "plot_experiment_heatmaps",
    "plot_experiment_readout",
    "plot_faithfulness_curves",
    "plot_gate_comparison",
    "plot_gate_heatmap",
    "plot_gate_statistics",
    "plot_gate_trajectories",
    "plot_keypoints",
    "plot_memory_animation",
    "plot_patch_grid",
    "plot_per_class_accuracy",
    "plot_prediction_bar",
    "plot_probes",
    "plot_sanity_check",
    "plot_step_attribution",
    "plot_stepwise_accuracy",
    "plot_stepwise_keypoints",
    "plot_stepwise_probabilities",
    "plot_stream_maps",
    "plot_stream_norms",
    "plot_sweep_gates",
    "plot_sweep_maps",
    "plot_training_curves",
    "plot_trust_summary",
    "plot_unit_selectivity",
    "pt_to_px",
    "read_provenance",
    "register_paper_template",
    "symmetric_range",
]
