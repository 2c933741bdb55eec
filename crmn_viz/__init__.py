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
from crmn_viz.models import create_model, list_architectures
from crmn_viz.models.base import TracedModel
from crmn_viz.preprocessing import Preprocessor
from crmn_viz.tracing import Trace

__all__ = [
    "CheckpointError",
    "Preprocessor",
    "Trace",
    "TracedModel",
    "__version__",
    "create_model",
    "list_architectures",
    "list_checkpoints",
    "load",
    "save",
]
