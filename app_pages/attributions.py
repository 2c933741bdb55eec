"""Attributions: which pixels drive a class, a keypoint coordinate, or one LSTM gate unit."""

import streamlit as st

from crmn_viz.analysis import ATTRIBUTION_METHODS, GATE_QUANTITIES
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.limits import LIMITS
from crmn_viz.views import attribution, trust
from crmn_viz.views.attribution import METHOD_LABELS

BASELINES = {"zeros": "mean colour", "black": "black", "white": "white"}

selection = page_start(
    "attributions",
    "Attributions",
    "Which input pixels move one number of the network: a class logit, one keypoint coordinate, or a "
    "CRMN memory unit's gate at one step. Computed with Captum; results are cached, so the display "
    "controls are free.",
)
model = selection.model
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    _, height, width = model.input_shape

    index = image_picker(selection, columns=True)
    image = selection.images[index]
    view_caption = None
    if selection.is_keypoints:
        explained = attribution.explained_picture(model, image, run)[1]
        view_caption = (
            "The face crop the network sees (found by the face detector)."
            if explained == "face crop"
            else "No face was found: the whole photo is explained, resized to the network's input."
        )

    st.subheader("What to explain")
    kinds = ["Keypoint"] if selection.is_keypoints else ["Predicted class", "Class"]
    if model.has_memory:
        kinds.append("LSTM gate unit")
    kind = st.segmented_control("Target", kinds, default=kinds[0], required=True, key="attr_kind")
    if kind == "Class":
        names = list(
            selection.card.get("class_names") or [f"class {k}" for k in range(model.config.num_outputs)]
        )
        chosen = st.selectbox("Class", range(len(names)), format_func=names.__getitem__, key="attr_class")
        target = ("class", int(chosen))
    elif kind == "Keypoint":
        pick = st.columns(2)
        point = pick[0].number_input(
            "Keypoint (0-67)", 0, model.config.num_outputs // 2 - 1, 30, key="attr_point"
        )
        axis = pick[1].segmented_control(
            "Coordinate", ["x", "y"], default="x", required=True, key="attr_axis"
        )
        target = ("keypoint", int(point), axis)
    elif kind == "LSTM gate unit":
        pick = st.columns(3)
        gate = pick[0].selectbox("Gate", GATE_QUANTITIES, index=1, key="attr_gate")
        unit = pick[1].number_input("Unit", 0, model.config.hidden_size - 1, 0, key="attr_unit")
        step = pick[2].number_input(
            "Step (block)", 0, model.num_steps - 1, model.num_steps - 1, key="attr_step"
        )
        target = ("gate", gate, int(unit), int(step))
    else:
        target = ("predicted",)

    def method_options(method: str, column_key: str) -> tuple:
        """Widgets for one method's options; returns them as a hashable tuple."""
        options: dict = {}
        if method == "integrated_gradients":
            most = min(256, LIMITS.max_attribution_steps)
            options["n_steps"] = st.slider(
                "Steps", min(8, most), most, min(64, most), step=8, key=f"{column_key}_steps"
            )
            options["baseline"] = st.selectbox(
                "Baseline", list(BASELINES), format_func=BASELINES.get, key=f"{column_key}_baseline"
            )
        elif method == "gradient_shap":
            most = min(256, LIMITS.max_attribution_samples)
            options["n_samples"] = st.slider(
                "Samples", min(8, most), most, min(32, most), step=8, key=f"{column_key}_samples"
            )
        elif method == "occlusion":
            side = min(height, width)
            window = st.slider(
                "Window (pixels)", 1, max(2, side // 2), max(1, side // 8), key=f"{column_key}_window"
            )
            options["window"] = window
            options["stride"] = st.slider(
                "Stride", 1, window, max(1, window // 2), key=f"{column_key}_stride"
            )
            options["baseline"] = st.selectbox(
                "Baseline", list(BASELINES), format_func=BASELINES.get, key=f"{column_key}_occ_baseline"
            )
        elif method == "gradcam":
            blocks = model.block_count
            if blocks:
                options["block"] = st.slider("Block", 0, blocks - 1, blocks - 1, key=f"{column_key}_block")
            if model.stream_names:
                options["stream"] = st.segmented_control(
                    "Stream",
                    list(model.stream_names),
                    default=model.stream_names[0],
                    required=True,
                    key=f"{column_key}_stream",
                )
        return tuple(sorted(options.items()))

    st.subheader("Methods")
    display = st.columns(2)
    opacity = display[0].slider("Overlay opacity", 0.0, 1.0, 0.6, step=0.05, key="attr_opacity")
    signed = display[1].toggle("Signed (red positive, blue negative)", value=True, key="attr_signed")
    if view_caption:
        st.caption(view_caption)

    defaults = ("integrated_gradients", "gradcam")
    choices = []
    for side, (column, default) in enumerate(zip(st.columns(2, gap="large"), defaults)):
        with column:
            method = st.selectbox(
                f"Method {'AB'[side]}",
                ATTRIBUTION_METHODS,
                index=ATTRIBUTION_METHODS.index(default),
                format_func=METHOD_LABELS.get,
                key=f"attr_method_{side}",
            )
            choices.append((method, method_options(method, f"attr_{side}")))

    for side, (column, (method, options)) in enumerate(zip(st.columns(2, gap="large"), choices)):
        with column:
            try:
                result, figure = attribution.attribution_view(
                    model, image, method, target, options, run, opacity=opacity, signed=signed
                )
            except ValueError as err:
                st.error(f"{METHOD_LABELS[method]} cannot explain this target: {err}")
                continue
            note = f"Target: **{result.target}** = {result.target_value:.4g}"
            if result.convergence_delta is not None:
                note += f" · completeness gap {result.convergence_delta:.2g} (0 is ideal)"
            st.caption(note)
            show(figure, key=f"attr_fig_{side}", max_width=440)

    trust_section(image, target, tuple(choices))
    trust_over_images(target)


@st.fragment
def trust_section(image, target: tuple, choices: tuple) -> None:
    """ "Can I trust this map?" for the two maps on screen (its controls rerun only this part)."""
    st.subheader("Can I trust this map?")
    st.caption(
        "Two standard checks of the maps above. **Faithfulness**: the score as the map's most relevant "
        "pixels are removed (deletion; ROAD imputes them from their neighbours) or put back into a "
        "blurred image (insertion), beside a random map's curve. **Randomisation** (Adebayo et al. "
        "2018): the same method on the model with its layers randomised, output first; a map worth "
        "trusting changes when the model it explains does."
    )
    if not st.toggle("Run the checks for these maps", key="attr_trust_on"):
        return
    mode = st.segmented_control(
        "Randomisation",
        ["cascading", "independent"],
        default="cascading",
        required=True,
        key="attr_trust_mode",
    )
    for side, (column, (method, options)) in enumerate(zip(st.columns(2, gap="large"), choices)):
        with column:
            try:
                _, _, curves = trust.faithfulness_view(model, image, method, target, options, 32, run)
            except ValueError as err:
                st.error(f"{METHOD_LABELS[method]}: {err}")
                continue
            show(curves, key=f"attr_trust_curves_{side}", max_width=560)
    try:
        _, sanity = trust.sanity_check_view(model, image, list(choices), target, mode, run)
    except ValueError as err:
        st.error(f"The randomisation test cannot run here: {err}")
        return
    show(sanity, key="attr_trust_sanity")


@st.fragment
def trust_over_images(target: tuple) -> None:
    """Every method's faithfulness over the gallery or test images, with bootstrap intervals."""
    st.subheader("Which method is most faithful for this model?")
    st.caption(
        "Deletion and insertion areas of every chosen method over many images, each with its bootstrap "
        "95% interval and a random map's on the same images. The predicted-class target is each "
        "image's own prediction."
    )
    sources = ["Gallery"] + (["Test images"] if selection.dataset else [])
    row = st.columns([2, 3, 1])
    source = row[0].segmented_control("Images", sources, default="Gallery", required=True, key="attr_tab_src")
    methods = row[1].multiselect(
        "Methods",
        ATTRIBUTION_METHODS,
        default=["saliency", "integrated_gradients", "gradcam"],
        format_func=METHOD_LABELS.get,
        key="attr_tab_methods",
    )
    count = 0
    if source == "Test images":
        most = min(200, LIMITS.max_statistics_images)
        count = int(row[2].number_input("How many", 2, most, min(20, most), key="attr_tab_count"))
    if st.button("Run over the images", key="attr_tab_run", disabled=not methods):
        st.session_state["attr_tab_asked"] = (source, tuple(methods), count)
    asked = st.session_state.get("attr_tab_asked")
    if not asked:
        return
    source, methods, count = asked
    images = (selection.dataset, count) if source == "Test images" else selection.images
    try:
        table, chart = trust.trust_table_view(model, images, list(methods), target, 32, run)
    except FileNotFoundError as err:
        st.warning(f"The test images were not found: {err}")
        return
    except ValueError as err:
        st.error(f"The table cannot be made: {err}")
        return
    st.markdown(trust.trust_markdown(table))
    show(chart, key="attr_tab_chart")


page_body()
