"""Experiments: edit the memory inside the forward pass and see what changes."""

import streamlit as st

from crmn_viz.analysis.experiments import FAMILY_TITLES, ExperimentSpec, experiment_families
from crmn_viz.figures.memory import LSTM_QUANTITY_LABELS
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.limits import LIMITS
from crmn_viz.views import experiments

STEPPED = ("skip_block", "cell_reset", "forget_clamp", "swap")

selection = page_start(
    "experiments",
    "Experiments",
    "Causal tests of what the memory does: turn it off, skip one block's write, reset the cell, clamp "
    "forget gates or swap in another image's state, inside the forward pass (the recurrence uses the "
    "edited values). Intact and intervened runs side by side.",
)
model, images = selection.model, selection.images
run = compute.CACHED
families = experiment_families(model)


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    index = image_picker(selection, columns=True)
    controls = st.columns([3, 2, 2])
    titles = {FAMILY_TITLES[name]: name for name in families}
    family = titles[str(controls[0].selectbox("Experiment", list(titles), key="exp_family"))]
    step, units, value, part, source = None, None, 1.0, "", None
    if family in STEPPED:
        steps = model.intervention_steps(model.memory_input_name)
        step = int(controls[1].slider("Block l", 0, steps - 1, steps // 2, key="exp_step"))
    if family == "forget_clamp":
        value = float(
            controls[2].segmented_control("f =", [1.0, 0.0], default=1.0, required=True, key="exp_value")
        )
        hidden = int(model.config.hidden_size)
        picked = st.multiselect("Units (none: all)", range(hidden), key="exp_units")
        units = tuple(int(u) for u in picked) or None
        st.caption(f"Forget gates clamped from block {step} to the last block.")
    if family == "swap":
        if len(images) < 2:
            st.info("Choose at least two images in the sidebar: image B's state is patched into image A.")
            return
        labels = [f"{k + 1}. {image.name}" for k, image in enumerate(images)]
        other = controls[2].selectbox(
            "Image B",
            range(len(images)),
            index=1 if index == 0 else 0,
            format_func=labels.__getitem__,
            key="exp_b",
        )
        source = images[int(other)]
    if family == "sweep_ablated":
        step = int(controls[1].slider("Layer", 0, model.block_count - 1, 0, key="exp_layer"))
        part = controls[2].selectbox("Direction", model.sweep_names, key="exp_sweep")
    if family == "stream_zeroed":
        part = controls[1].selectbox("Stream", model.removable_streams, key="exp_stream")
    spec = ExperimentSpec(family, step, units, value, part)

    text, readout = experiments.experiment_readout(model, images, index, spec, source, run)
    st.markdown(text)
    if readout is not None:
        show(readout, key="exp_readout")
    if model.has_memory:
        quantity = st.selectbox(
            "Quantity",
            model.memory_quantities,
            index=4,
            format_func=LSTM_QUANTITY_LABELS.get,
            key="exp_quantity",
        )
        show(
            experiments.experiment_heatmaps(model, images, index, spec, source, quantity, None, run),
            key="exp_maps",
        )

    st.subheader("Which block's contribution mattered")
    target = ("keypoint", 30, "y") if selection.is_keypoints else ("predicted",)
    most = min(128, LIMITS.max_attribution_steps)
    n_steps = st.slider("Integration steps", min(8, most), most, min(32, most), step=8, key="exp_ig_steps")
    show(experiments.experiment_step_attribution(model, images[index], target, n_steps, run), key="exp_ig")

    st.subheader("Dataset effect")
    dataset = selection.dataset
    if not dataset:
        st.info("The checkpoint's card names no dataset, so there are no test images to run over.")
        return
    count = st.number_input("Test images", 64, 10_000, 512, step=64, key="exp_effect_count")
    if st.button("Run every experiment over the test images", key="exp_effect_run"):
        st.session_state["exp_effect_asked"] = int(count)
    asked = st.session_state.get("exp_effect_asked")
    if asked:
        try:
            effect, chart = experiments.experiment_dataset_effect(model, dataset, asked, run)
        except FileNotFoundError as err:
            st.warning(f"The test images were not found: {err}")
            return
        st.markdown(experiments.effect_markdown(effect))
        show(chart, key="exp_effect")


if not families:
    st.info("This model offers no memory experiments: it has no memory, sweeps or removable streams.")
else:
    page_body()
