"""Blocks: what every residual block (or ReNet layer) of the backbone hands on, for one image."""

import streamlit as st

from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import blocks

selection = page_start(
    "blocks",
    "Blocks",
    "The output of every residual block after the addition (a ReNet: of every layer), the tensor a "
    "CRMN's memory reads one step at a time: each channel's mean over the positions, its L2 norm, and "
    "the block's whole norm. A plain ResNet is seen here the way the CRMN sees its own backbone.",
)
model = selection.model
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    index = image_picker(selection)
    st.caption(
        "Columns are blocks in order (stage boundaries marked where the channel count changes); rows are "
        "channels. Hover for the exact value."
    )
    show(blocks.block_channels_view(model, selection.images[index], run), key="blocks_channels")


page_body()
