"""ReNet sweeps: the four recurrent sweeps of every layer over the patch grid."""

import streamlit as st

from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import sweeps

selection = page_start(
    "renet",
    "ReNet sweeps",
    "Each ReNet layer (Visin et al. 2015) cuts its input into patches and runs four RNNs over the grid: "
    "top to bottom, bottom to top, left to right and right to left. A position's output can only see "
    "the part of the image its sweeps have passed.",
)
model, key = selection.model, selection.key
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    grid_sizes = model.grid_sizes

    controls = st.columns([2, 1, 2])
    with controls[0]:
        index = image_picker(selection)
    with controls[1]:
        layer = st.selectbox(
            "Layer",
            range(len(grid_sizes)),
            format_func=lambda k: f"layer {k} ({grid_sizes[k][0]}×{grid_sizes[k][1]})",
            key="renet_layer",
        )
    image = selection.images[index]

    @st.fragment
    def four_sweeps() -> None:
        """The display controls of the sweeps figure rerun only this section."""
        st.subheader("Four sweeps")
        mode = st.segmented_control(
            "Show",
            ["pca", "channels"],
            default="pca",
            required=True,
            key="renet_mode",
            format_func={"pca": "Colour = 3 principal components", "channels": "Single channels"}.get,
        )
        if mode == "channels":
            size = int(model.config.hidden_sizes[layer])
            channels = st.slider("Channels", 1, min(size, 16), min(size, 6), key="renet_channels")
            st.caption("Each panel is one hidden unit of one sweep over the patch grid.")
        else:
            channels = None
            st.caption(
                "The three principal components of all four sweeps together, shown as red, green and blue."
            )
        show(sweeps.renet_sweeps(model, selection.images, index, layer, mode, channels, run))

    four_sweeps()

    left, right = st.columns(2)
    with left:
        st.subheader("Patch grid")
        st.caption(f"Layer {layer} works on a {grid_sizes[layer][0]}×{grid_sizes[layer][1]} grid of patches.")
        show(sweeps.renet_patch_grid(model, image, layer, run), max_width=440)

    @st.fragment
    def context_reach() -> None:
        """The patch sliders rerun only this section."""
        st.subheader("Context reach")
        rows, cols = grid_sizes[layer]
        pick = st.columns(2)
        row = pick[0].slider("Patch row", 0, rows - 1, rows // 2, key=f"renet_row_{layer}")
        col = pick[1].slider("Patch column", 0, cols - 1, cols // 2, key=f"renet_col_{layer}")
        st.caption("Dark: input pixels that cannot influence this patch's sweep outputs.")
        show(sweeps.renet_context_reach(model, selection.images, index, layer, row, col, run), max_width=440)

    with right:
        context_reach()

    gates = sweeps.renet_gate_names(model, layer)
    if gates:

        @st.fragment
        def sweep_gates() -> None:
            """The gate picker reruns only this section."""
            st.subheader("Gates of the four sweeps")
            gate = st.segmented_control(
                "Gate",
                gates,
                default=gates[0],
                required=True,
                key="renet_gate",
                format_func=lambda name: name.replace("_", " "),
            )
            st.caption(
                "Each sweep's gate at every patch, averaged over the sweep's hidden units; beneath, the "
                "spread of each unit's mean over the patches. Here a GRU computes "
                "h_t = (1 − u_t) h_{t−1} + u_t h̃_t: an update gate near 0 carries the sweep's state past "
                "the patch, near 1 it writes the patch's candidate."
            )
            show(sweeps.sweep_gates_view(model, image, layer, gate, run), key="renet_gates")

        sweep_gates()


page_body()
