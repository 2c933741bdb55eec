"""LSTM memory: the CRMN's gates and cell state, block by block."""

import streamlit as st

from crmn_viz.analysis import LSTM_QUANTITIES
from crmn_viz.app_support.gallery import list_gallery
from crmn_viz.app_support.selection import SelectedImage
from crmn_viz.app_support.summaries import class_labels, per_class_arrays
from crmn_viz.data import DatasetNotFoundError
from crmn_viz.figures.memory import (
    plot_cell_state,
    plot_gate_comparison,
    plot_gate_heatmap,
    plot_gate_statistics,
    plot_gate_trajectories,
    plot_memory_animation,
)
from crmn_viz.limits import LIMITS
from crmn_viz.streamlit_ui import compute
from crmn_viz.streamlit_ui.figures import show_figure
from crmn_viz.streamlit_ui.state import image_picker, page_start

GATE_LABELS = {
    "input_gate": "input gate i",
    "forget_gate": "forget gate f",
    "output_gate": "output gate o",
    "cell_candidate": "cell candidate s",
    "cell": "cell state c",
    "hidden": "hidden state h",
}


def _request_test_statistics() -> None:
    """Remember how many test images the statistics were asked for (the button's callback)."""
    st.session_state["lstm_stats_test"] = int(st.session_state["lstm_stats_count"])


selection = page_start(
    "lstm",
    "LSTM memory",
    "The CRMN's peephole LSTM reads one residual block per step (Moniz & Pal 2016, eqs. 2-7). "
    "Forget gates near 1 keep what earlier blocks wrote; input gates decide what each block adds.",
)
model, key = selection.model, selection.key
names = tuple(f"lstm.{q}" for q in LSTM_QUANTITIES)
trace = compute.trace(model, key, selection.pngs, names)
hidden = int(model.config.hidden_size)

controls = st.columns([2, 2, 3])
with controls[0]:
    index = image_picker(selection)
with controls[1]:
    gate = st.selectbox("Quantity", list(GATE_LABELS), format_func=GATE_LABELS.get, index=1, key="lstm_gate")
with controls[2]:
    mode = st.segmented_control(
        "Memory units", ["All", "Range", "Pick"], default="All", required=True, key="lstm_units_mode"
    )
    if mode == "Range":
        low, high = st.slider("Units", 0, hidden - 1, (0, min(hidden, 32) - 1), key="lstm_units_range")
        units = list(range(low, high + 1))
    elif mode == "Pick":
        units = st.multiselect(
            "Units", range(hidden), default=list(range(min(hidden, 8))), key="lstm_units_pick"
        )
        units = units or None
    else:
        units = None

image = selection.images[index]
name = image.stem
unit_setting = {"units": "all" if units is None else units}
# Lazy tabs: only the open tab's figures are built on a rerun (the others are not drawn at all).
tabs = st.tabs(
    ["Gates", "Cell state", "Compare two images", "Animation", "Class statistics"],
    key="lstm_tab",
    on_change="rerun",
)

if tabs[0].open:
    with tabs[0]:
        st.markdown(f"**{GATE_LABELS[gate].capitalize()}** of every memory unit after every block")
        show_figure(
            plot_gate_heatmap(trace, gate, index, units, columns=2),
            f"gate_heatmap_{gate}_{name}",
            images=[image],
            settings={"quantity": gate, **unit_setting},
        )
        st.markdown("**Input, forget and output gates**: mean over the units, with their spread")
        show_figure(
            plot_gate_trajectories(trace, image_index=index, units=units, columns=2),
            f"gate_trajectories_{name}",
            images=[image],
            settings=unit_setting,
        )

if tabs[1].open:
    with tabs[1]:
        st.markdown("**Cell state c** (eq. 5): what the memory holds after each block")
        show_figure(
            plot_cell_state(trace, index, units, columns=2),
            f"cell_state_{name}",
            images=[image],
            settings=unit_setting,
        )

if tabs[2].open:
    with tabs[2]:
        if len(selection.images) < 2:
            st.info("Choose at least two images in the sidebar to compare their memories side by side.")
        else:
            pick = st.columns(2)
            labels = [f"{k + 1}. {image.name}" for k, image in enumerate(selection.images)]
            first = pick[0].selectbox(
                "Image A", range(len(labels)), format_func=labels.__getitem__, key="lstm_a"
            )
            second = pick[1].selectbox(
                "Image B", range(len(labels)), index=1, format_func=labels.__getitem__, key="lstm_b"
            )
            figure = plot_gate_comparison(
                trace,
                trace,
                gate,
                (selection.images[first].name, selection.images[second].name),
                image_indices=(first, second),
                units=units,
            )
            show_figure(
                figure,
                f"gate_comparison_{gate}_{first}_{second}",
                images=[selection.images[first], selection.images[second]],
                settings={"quantity": gate, **unit_setting},
            )

if tabs[3].open:
    with tabs[3]:
        st.caption("Press play, or drag the slider, to watch the gates and the cell state block by block.")
        show_figure(
            plot_memory_animation(trace, index, units),
            f"memory_animation_{name}",
            images=[image],
            settings=unit_setting,
        )

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
            images = [SelectedImage.from_path(e.path, label=e.label) for e in entries]
            labels = class_labels([image.label for image in images], class_names)
            stats = compute.gate_statistics_images(model, key, tuple(i.png for i in images), labels)
            stats_images, stats_source = images, {"images": "gallery"}
            st.caption(f"{stats.count} gallery images, grouped by their {stats.label_source} class.")
        else:
            most = LIMITS.max_statistics_images
            st.number_input(
                "Number of test images", min(50, most), most, min(500, most), step=50, key="lstm_stats_count"
            )
            # A callback, not the button's return value: callbacks land in the session state before
            # the script runs, so the request survives the rerun that page_start may trigger.
            st.button(
                "Compute over test images",
                key="lstm_stats_go",
                on_click=_request_test_statistics,
            )
            wanted = st.session_state.get("lstm_stats_test")
            if wanted:
                try:
                    stats = compute.gate_statistics_test(model, key, dataset, wanted)
                    stats_images, stats_source = [], {"images": f"{dataset} test set", "requested": wanted}
                    st.caption(f"{stats.count} test images spread over every class, grouped by true class.")
                except DatasetNotFoundError as err:
                    st.warning(f"The {dataset} test set is not on this machine. {err}")
        if stats is not None:
            summarised = gate if gate in stats.quantities else "forget_gate"
            if summarised != gate:
                st.caption(
                    f"Statistics cover the gates and the cell state: showing the forget gate, not {gate}."
                )
            means, stds, class_list = per_class_arrays(stats, summarised)
            show_figure(
                plot_gate_statistics(means, stds, class_list, summarised, columns=2),
                f"gate_statistics_{summarised}",
                images=stats_images,
                settings={"quantity": summarised, "count": stats.count, **stats_source},
            )
