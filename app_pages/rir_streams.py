"""RiR streams: the residual and transient streams of a ResNet in ResNet."""

import streamlit as st

from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import streams

selection = page_start(
    "rir",
    "RiR streams",
    "Every generalized residual block of a ResNet in ResNet (Targ et al. 2016) carries two streams: a "
    "residual stream r with identity shortcuts and a transient stream m without them, mixed by "
    "cross-stream convolutions.",
)
model, key = selection.model, selection.key
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    blocks = len(model.blocks)

    controls = st.columns([2, 2])
    with controls[0]:
        index = image_picker(selection)
    with controls[1]:
        batch_mean = st.toggle("Average over all chosen images", value=False, key="rir_mean")

    st.subheader("Stream strength, block by block")
    st.caption("Root-mean-square activation of each stream after every generalized block.")
    show(streams.rir_stream_norms(model, selection.images, None if batch_mean else index, run))

    @st.fragment
    def stream_maps() -> None:
        """The block slider reruns only this section."""
        st.subheader("Stream maps")
        block = st.slider("Generalized block", 0, blocks - 1, blocks - 1, key="rir_block")
        st.caption("Channel mean of each stream's feature maps at this block.")
        show(streams.rir_stream_maps(model, selection.images, index, block, run))

    stream_maps()


page_body()
