"""Population: which units respond to which classes, which test images drive a unit, and what each
block holds, over many test images of the checkpoint's data set."""

import streamlit as st

from crmn_viz.data import DatasetNotFoundError
from crmn_viz.figures.population import quantity_label
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import focus_units, image_picker, page_start, send_to_pages
from crmn_viz.limits import LIMITS
from crmn_viz.views import population, probes

selection = page_start(
    "population",
    "Population",
    "Study units over a data set, not one image: which memory units (or block channels) prefer which "
    "classes, which test images drive a unit most, and how much of the class a linear read-out finds "
    "in each block and in the memory. One pass over the test images records every unit; it is kept on "
    "disk by the weights' digest, so every query after it answers at once.",
    needs_images=False,
)
model, card = selection.model, selection.card
run = compute.CACHED
dataset = selection.dataset
TABS = ["Selectivity", "Exemplars", "Linear probes"]


def _request_pass() -> None:
    st.session_state["pop_pass"] = int(st.session_state["pop_count"])


def _request_probes() -> None:
    st.session_state["pop_probes"] = (int(st.session_state["pop_train"]), int(st.session_state["pop_pass"]))


def _exemplar_grid(rows, pictures, key: str) -> None:  # type: ignore[no-untyped-def]
    """The exemplar pictures in a row of columns, each with its value and a button to use it."""
    columns = st.columns(min(len(pictures), 8) or 1)
    for rank, (row, picture) in enumerate(zip(rows, pictures)):
        with columns[rank % len(columns)]:
            st.image(picture.enlarged(96), caption=f"{row[1].removeprefix('test/')} · {row[2]:.3g}")
            st.button(
                "Use",
                key=f"{key}_{rank}",
                on_click=send_to_pages,
                args=(picture,),
                help="Add this test image to the images every page shows (sidebar: Picked).",
            )


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    if not dataset:
        st.info("This checkpoint's card names no data set, so there are no test images to study.")
        return
    most = LIMITS.max_statistics_images
    controls = st.columns([2, 2, 3])
    controls[0].number_input("Test images", min(100, most), most, min(1000, most), step=100, key="pop_count")
    controls[1].button("Record the test images", key="pop_go", on_click=_request_pass, type="primary")
    count = st.session_state.get("pop_pass")
    if not count:
        controls[2].caption(
            f"One pass records every unit of every quantity over that many {dataset} test images, spread "
            "over the test split (about 10 s per 1000 images on 2 CPU cores)."
        )
        return
    try:
        table = run.population(model, dataset, count)
    except DatasetNotFoundError as err:
        st.warning(f"The {dataset} test set is not on this machine. {err}")
        return
    controls[2].caption(f"Recorded: {len(table)} test images of {dataset}.")
    names = list(table.quantities)
    st.session_state.setdefault("pop_tab", TABS[0])  # other buttons set it: no default argument
    tab = st.segmented_control("Show", TABS, required=True, key="pop_tab")

    if tab == "Selectivity":
        if table.task != "classification":
            st.info("Selectivity compares classes; this model predicts keypoints.")
            return
        pick = st.columns([2, 3, 2])
        quantity = pick[0].selectbox(
            "Quantity",
            names,
            index=names.index("hidden") if "hidden" in names else 0,
            format_func=quantity_label,
            key="pop_quantity",
        )
        steps = table.quantities[quantity].steps
        if not 1 <= st.session_state.setdefault("pop_step", steps) <= steps:
            st.session_state["pop_step"] = steps
        step = pick[1].slider("Step (block)", 1, steps, key="pop_step") - 1
        ordering = pick[2].segmented_control(
            "Order units",
            ["cluster", "selectivity"],
            default="cluster",
            required=True,
            key="pop_order",
            format_func={"cluster": "by class profile", "selectivity": "by selectivity"}.get,
        )
        result, shown = population.population_selectivity_view(
            model, dataset, count, quantity, step, run, ordering=ordering
        )
        show(shown, key="pop_selectivity")
        st.markdown("**Most selective units**")
        st.markdown(population.selectivity_markdown(result, k=8))
        top = [unit for unit, _, _ in result.most_selective(8)]
        buttons = st.container(horizontal=True)
        for unit in top:
            buttons.button(
                f"Exemplars of unit {unit}",
                key=f"pop_ex_{unit}",
                on_click=_show_exemplars,
                args=(quantity, step, unit),
            )
        if model.has_memory and quantity in model.memory_quantities:
            st.button(
                f"Show units {', '.join(map(str, top[:4]))} on the LSTM memory page",
                key="pop_focus",
                on_click=focus_units,
                args=(top[:4],),
            )

    if tab == "Exemplars":
        pick = st.columns([2, 3, 2, 2, 2])
        st.session_state.setdefault("pop_ex_quantity", "hidden" if "hidden" in names else names[0])
        quantity = pick[0].selectbox("Quantity", names, format_func=quantity_label, key="pop_ex_quantity")
        described = table.quantities[quantity]
        steps = described.steps
        if not 1 <= st.session_state.setdefault("pop_ex_step", steps) <= steps:
            st.session_state["pop_ex_step"] = steps
        step = pick[1].slider("Step (block)", 1, steps, key="pop_ex_step") - 1
        units = int(described.units[step])
        st.session_state.setdefault("pop_ex_unit", 0)
        if st.session_state["pop_ex_unit"] >= units:
            st.session_state["pop_ex_unit"] = 0
        unit = int(pick[2].number_input("Unit", 0, units - 1, key="pop_ex_unit"))
        k = int(pick[3].number_input("Images", 1, 32, 8, key="pop_ex_k"))
        lowest = pick[4].toggle("Lowest", False, key="pop_ex_low")
        rows, pictures, shown = population.exemplars_view(
            model, dataset, count, quantity, step, unit, k, run, lowest=lowest
        )
        st.caption(shown.caption)
        _exemplar_grid([(row.index, row.image, row.value) for row in rows], pictures, "pop_use")
        with st.expander("As a figure (export, data)"):
            show(shown, key="pop_exemplars")
        st.subheader("Test images whose memory moves like this one's")
        if not selection.images:
            st.info("Choose an image in the sidebar to find the test images nearest to it.")
            return
        index = image_picker(selection)
        matches, near, shown_near = population.nearest_view(
            model, dataset, count, quantity, selection.images[index], k, run
        )
        st.caption(shown_near.caption)
        _exemplar_grid(matches, near, "pop_near")

    if tab == "Linear probes":
        if table.task != "classification":
            st.info("Linear probes predict the class; this model predicts keypoints.")
            return
        pick = st.columns([2, 2, 3])
        pick[0].number_input("Training images", 200, 10000, 2000, step=200, key="pop_train")
        pick[1].button("Train the probes", key="pop_probe_go", on_click=_request_probes)
        wanted = st.session_state.get("pop_probes")
        if not wanted or wanted[1] != count:
            pick[2].caption(
                f"A logistic-regression probe per block (and per memory step) on that many {dataset} "
                f"training images, scored on the {count} test images."
            )
            return
        try:
            result = run.probes(model, dataset, wanted[0], wanted[1])
        except (DatasetNotFoundError, ValueError) as err:
            st.warning(str(err))
            return
        shown = probes.probes_view(model, result)
        show(shown, key="pop_probes_fig")
        st.markdown(probes.probes_markdown(result))


def _show_exemplars(quantity: str, step: int, unit: int) -> None:
    st.session_state.update(
        pop_tab="Exemplars", pop_ex_quantity=quantity, pop_ex_step=step + 1, pop_ex_unit=unit
    )


page_body()
