"""LSTM memory: the CRMN's gates and cell state, block by block."""

import streamlit as st

from crmn_viz.analysis import LSTM_QUANTITIES
from crmn_viz.data import DatasetNotFoundError
from crmn_viz.figures.memory import LSTM_QUANTITY_LABELS
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import FOCUS_UNITS, image_picker, page_start
from crmn_viz.inputs.gallery import list_gallery
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.limits import LIMITS
from crmn_viz.views import memory
from crmn_viz.views.class_statistics import class_labels


def _request_test_statistics() -> None:
    """Remember how many test images the statistics were asked for (the button's callback)."""
    st.session_state["lstm_stats_test"] = int(st.session_state["lstm_stats_count"])


selection = page_start(
    "lstm",
    "LSTM memory",
    "The CRMN's peephole LSTM reads one residual block per step (Moniz & Pal 2016, eqs. 2-7). "
    "Forget gates near 1 keep what earlier blocks wrote; input gates decide what each block adds.",
)
model, key, images = selection.model, selection.key, selection.images
hidden = int(model.config.hidden_size)
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    controls = st.columns([2, 2, 3])
    with controls[0]:
        index = image_picker(selection)
    with controls[1]:
        gate = st.selectbox(
            "Quantity", LSTM_QUANTITIES, format_func=LSTM_QUANTITY_LABELS.get, index=1, key="lstm_gate"
        )
    with controls[2]:
        focus = st.session_state.pop(FOCUS_UNITS, None)  # "show unit 37" from the Population page
        if focus:
            st.session_state["lstm_units_mode"] = "Pick"
            st.session_state["lstm_units_pick"] = [unit for unit in focus if unit < hidden]
        st.session_state.setdefault("lstm_units_mode", "All")
        st.session_state.setdefault("lstm_units_pick", list(range(min(hidden, 8))))
        mode = st.segmented_control(
            "Memory units", ["All", "Range", "Pick"], required=True, key="lstm_units_mode"
        )
        if mode == "Range":
            low, high = st.slider("Units", 0, hidden - 1, (0, min(hidden, 32) - 1), key="lstm_units_range")
            units = list(range(low, high + 1))
        elif mode == "Pick":
            units = st.multiselect("Units", range(hidden), key="lstm_units_pick")
            units = units or None
        else:
            units = None

    # Lazy tabs: only the open tab's figures are built on a rerun (the others are not drawn at all).
    tabs = st.tabs(
        ["Gates", "Cell state", "Compare two images", "Animation", "Class statistics"],
        key="lstm_tab",
        on_change="rerun",
    )

    if tabs[0].open:
        with tabs[0]:
            st.markdown(
                f"**{LSTM_QUANTITY_LABELS[gate].capitalize()}** of every memory unit after every block"
            )
            show(memory.memory_gate_heatmap(model, images, index, gate, units, run))
            st.markdown("**Input, forget and output gates**: mean over the units, with their spread")
            show(memory.memory_gate_trajectories(model, images, index, units, run))

    if tabs[1].open:
        with tabs[1]:
            st.markdown("**Cell state c** (eq. 5): what the memory holds after each block")
            show(memory.memory_cell_state(model, images, index, units, run))

    if tabs[2].open:
        with tabs[2]:
            if len(images) < 2:
                st.info("Choose at least two images in the sidebar to compare their memories side by side.")
            else:
                pick = st.columns(2)
                labels = [f"{k + 1}. {image.name}" for k, image in enumerate(images)]
                first = pick[0].selectbox(
                    "Image A", range(len(labels)), format_func=labels.__getitem__, key="lstm_a"
                )
                second = pick[1].selectbox(
                    "Image B", range(len(labels)), index=1, format_func=labels.__getitem__, key="lstm_b"
                )
                show(memory.memory_comparison(model, images, first, second, gate, units, run))

    if tabs[3].open:
        with tabs[3]:
            st.caption(
                "Press play, or drag the slider, to watch the gates and the cell state block by block."
            )
            show(memory.memory_animation(model, images, index, units, run))

    if tabs[4].open:
        with tabs[4]:
            dataset = selection.dataset
            class_names = list(selection.card.get("class_names") or [])
            sources = ["Gallery images"] + ([f"Test images of {dataset}"] if dataset and class_names else [])
            source = st.segmented_control(
                "Images", sources, default=sources[0], required=True, key="lstm_stats_source"
            )
            stats = None
            if source == "Gallery images":
                entries = list_gallery(dataset) or list_gallery()
                gallery = [SelectedImage.from_path(e.path, label=e.label) for e in entries]
                labels = class_labels([image.label for image in gallery], class_names)
                stats = run.gate_statistics_images(model, gallery, labels)
                stats_images, stats_source = gallery, "gallery"
                st.caption(f"{stats.count} gallery images, grouped by their {stats.label_source} class.")
            else:
                most = LIMITS.max_statistics_images
                st.number_input(
                    "Number of test images",
                    min(50, most),
                    most,
                    min(500, most),
                    step=50,
                    key="lstm_stats_count",
                )
                # A callback, not the button's return value: callbacks land in the session state before
                # the script runs, so the request survives the rerun that page_start may trigger.
                st.button("Compute over test images", key="lstm_stats_go", on_click=_request_test_statistics)
                wanted = st.session_state.get("lstm_stats_test")
                if wanted:
                    try:
                        stats = run.gate_statistics_test(model, dataset, wanted)
                        stats_images, stats_source = [], f"{dataset} test set ({wanted} requested)"
                        st.caption(
                            f"{stats.count} test images spread over every class, grouped by true class."
                        )
                    except DatasetNotFoundError as err:
                        st.warning(f"The {dataset} test set is not on this machine. {err}")
            if stats is not None:
                show(memory.memory_gate_statistics(stats, gate, stats_images, stats_source))


page_body()
