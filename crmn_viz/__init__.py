"""crmn-viz: look inside recurrent-memory vision networks (CRMN, ReNet, ResNet-in-ResNet).

The core library behind the Streamlit app, the Gradio demo and the CLI::

    import crmn_viz
    model = crmn_viz.create_model("crmn", depth=20, width=16)
    logits, trace = model.run_with_trace(images)
    trace["lstm.forget_gate"]        # [B, T, 100]: f_l for every block l
"""

from __future__ import annotations

__version__ = "0.1.0"

from crmn_viz.checkpoints import CheckpointError, list_checkpoints, load, save
from crmn_viz.interventions import Clamp, MeanAblate, Patch, Scale
from crmn_viz.models import create_model, list_architectures
from crmn_viz.models.base import InputShapeError, TracedModel
from crmn_viz.preprocessing import Preprocessor
from crmn_viz.tracing import Trace

# Analysis, image and figure functions are imported on first use (they pull in Captum,
# OpenCV and Plotly, which a training job or a plain model user does not need).
_LAZY = {
    "InvalidImageError": "crmn_viz.images",
    "load_image": "crmn_viz.images",
    "classify": "crmn_viz.analysis",
    "predict_keypoints": "crmn_viz.analysis",
    "stepwise_readout": "crmn_viz.analysis",
    "attribute": "crmn_viz.analysis",
    "gate_statistics": "crmn_viz.analysis",
    "export_figure": "crmn_viz.figures",
    "export_figures": "crmn_viz.figures",
    "Provenance": "crmn_viz.provenance",
    "sanity_check": "crmn_viz.analysis.sanity_checks",
    "faithfulness": "crmn_viz.analysis.faithfulness",
    "trust_table": "crmn_viz.analysis.attribution_trust",
    "population_pass": "crmn_viz.analysis.population",
    "test_set_population": "crmn_viz.analysis.population",
    "exemplars": "crmn_viz.analysis.population",
    "nearest_trajectories": "crmn_viz.analysis.population",
    "unit_selectivity": "crmn_viz.analysis.selectivity",
    "linear_probes": "crmn_viz.analysis.probes",
    "compare_models": "crmn_viz.analysis.comparison",
    "zoo_pairs": "crmn_viz.analysis.comparison",
}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crmn_viz' has no attribute {name!r}")


__all__ = [
    "CheckpointError",
    "Clamp",
    "InputShapeError",
    "InvalidImageError",
    "MeanAblate",
    "Patch",
    "Preprocessor",
    "Provenance",
    "Scale",
    "Trace",
    "TracedModel",
    "__version__",
    "attribute",
    "classify",
    "compare_models",
    "create_model",
    "exemplars",
    "export_figure",
    "export_figures",
    "faithfulness",
    "gate_statistics",
    "linear_probes",
    "list_architectures",
    "list_checkpoints",
    "load",
    "load_image",
    "nearest_trajectories",
    "population_pass",
    "predict_keypoints",
    "sanity_check",
    "save",
    "stepwise_readout",
    "test_set_population",
    "trust_table",
    "unit_selectivity",
    "zoo_pairs",
]
