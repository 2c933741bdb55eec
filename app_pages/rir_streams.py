"""RiR streams: the residual and transient streams of a ResNet in ResNet."""

import streamlit as st

from crmn_viz.figures.rir import plot_stream_maps, plot_stream_norms
from crmn_viz.streamlit_ui import compute
from crmn_viz.streamlit_ui.figures import show_figure
from crmn_viz.streamlit_ui.state import image_picker, page_start

selection = page_start(
    "rir",
    "RiR streams",
    "Every generalized residual block of a ResNet in ResNet (Targ et al. 2016) carries two streams: a "
    "residual stream r with identity shortcuts and a transient stream m without them, mixed by "
    "cross-stream convolutions.",
)
model, key = selection.model, selection.key
trace = compute.trace(model, key, selection.pngs)
blocks = len(model.blocks)

controls = st.columns([2, 2])
with controls[0]:
    index = image_picker(selection)
with controls[1]:
    batch_mean = st.toggle("Average over all chosen images", value=False, key="rir_mean")
image = selection.images[index]

st.subheader("Stream strength, block by block")
st.caption("Root-mean-square activation of each stream after every generalized block.")
show_figure(
    plot_stream_norms(trace, None if batch_mean else index, columns=2),
    "rir_stream_norms" + ("" if batch_mean else f"_{image.stem}"),
    images=None if batch_mean else [image],
    settings={"average_over_images": batch_mean},
)

st.subheader("Stream maps")
block = st.slider("Generalized block", 0, blocks - 1, blocks - 1, key="rir_block")
st.caption("Channel mean of each stream's feature maps at this block.")
show_figure(
    plot_stream_maps(trace, block, index, columns=2),
    f"rir_stream_maps_block{block}_{image.stem}",
    images=[image],
    settings={"block": block},
)
