"""CRMN vs ResNet: each zoo CRMN beside its own ResNet (same backbone, same recipe), over test images."""

import streamlit as st

from crmn_viz.analysis.comparison import zoo_pairs
from crmn_viz.checkpoints import CheckpointError, checkpoint_dir
from crmn_viz.data import DatasetNotFoundError
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start, send_to_pages
from crmn_viz.limits import LIMITS
from crmn_viz.views import attribution, comparison, probes, training_curves

selection = page_start(
    "compare",
    "CRMN vs ResNet",
    "The papers' question: what does the memory add to the backbone it reads? Each zoo CRMN has a "
    "ResNet with exactly its backbone, trained with the same recipe. Here both run over the same test "
    "images: accuracy per class with intervals, where they agree, the images where they disagree, what "
    "a linear read-out finds after each block, how they trained, and both maps of one image.",
    needs_images=False,
)
run = compute.CACHED
DISAGREEMENTS = {
    "any": "they predict different classes",
    "a_right": "only the model with memory is right",
    "b_right": "only the ResNet is right",
    "both_wrong": "both are wrong, differently",
}


def _load(name: str):  # type: ignore[no-untyped-def]
    path = checkpoint_dir() / name
    return compute.zoo_model(str(path), compute.zoo_fingerprint(path))


def _request(count_key: str, flag: str) -> None:
    st.session_state[flag] = int(st.session_state[count_key])


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    pairs = zoo_pairs()
    if not pairs:
        st.info("The zoo holds no matched pair (a model with memory and a ResNet of the same recipe).")
        return
    labels = [f"{pair.name_a} vs {pair.name_b} ({pair.label})" for pair in pairs]
    mine = [k for k, pair in enumerate(pairs) if selection.name in (pair.name_a, pair.name_b)]
    most = LIMITS.max_statistics_images
    controls = st.columns([4, 2, 2])
    chosen = controls[0].selectbox(
        "Pair",
        range(len(pairs)),
        index=mine[0] if mine else 0,
        format_func=labels.__getitem__,
        key="cmp_pair",
    )
    pair = pairs[int(chosen)]
    controls[1].number_input("Test images", min(100, most), most, min(1000, most), step=100, key="cmp_count")
    controls[2].button(
        "Compare", key="cmp_go", type="primary", on_click=_request, args=("cmp_count", "cmp_wanted")
    )
    try:
        model_a, model_b = _load(pair.name_a), _load(pair.name_b)
    except CheckpointError as err:
        st.error(f"Could not load the pair: {err}")
        return
    dataset = str(model_a.card.get("dataset") or "")

    st.subheader("How they trained")
    try:
        st.caption("Solid: with memory; dashed: without. Dotted verticals: warm restarts.")
        show(training_curves.training_curves_view([pair.name_a, pair.name_b]), key="cmp_curves")
        st.dataframe(training_curves.training_summary_rows([pair.name_a, pair.name_b]), hide_index=True)
    except FileNotFoundError as err:
        st.caption(f"No training logs: {err}")

    count = st.session_state.get("cmp_wanted")
    if not count:
        st.caption(f"Press Compare to run both models over that many {dataset} test images.")
    else:
        try:
            result = run.comparison(model_a, model_b, pair.name_b, dataset, count)
        except (DatasetNotFoundError, ValueError) as err:
            st.warning(str(err))
            return
        st.subheader("Over the test images")
        st.markdown(comparison.comparison_markdown(result))
        for k, shown in enumerate(comparison.comparison_views(result)):
            show(shown, key=f"cmp_fig_{k}")

        st.subheader("Where they disagree")
        kind = st.segmented_control(
            "Images where",
            list(DISAGREEMENTS),
            default="any",
            required=True,
            key="cmp_kind",
            format_func=DISAGREEMENTS.get,
        )
        rows = comparison.disagreement_rows(result, kind, limit=16)
        if not rows:
            st.caption("None.")
        else:
            pictures = run.test_images(model_a, dataset, [row["image"] for row in rows])
            columns = st.columns(8)
            for k, (row, picture) in enumerate(zip(rows, pictures)):
                with columns[k % 8]:
                    st.image(
                        picture.enlarged(96),
                        caption=(
                            f"{row['label']} · A: {row['prediction_a']} {row['confidence_a']:.2f} · "
                            f"B: {row['prediction_b']} {row['confidence_b']:.2f}"
                        ),
                    )
                    st.button("Use", key=f"cmp_use_{k}", on_click=send_to_pages, args=(picture,))

        st.subheader("Block by block")
        st.caption(
            f"The CRMN's own read-out after every block beside linear probes of the ResNet's blocks "
            f"(trained on {dataset} training images, scored on the same {count} test images)."
        )
        st.number_input("Probe training images", 200, 10000, 2000, step=200, key="cmp_train")
        st.button(
            "Probe the ResNet's blocks",
            key="cmp_probe_go",
            on_click=_request,
            args=("cmp_train", "cmp_probes"),
        )
        train = st.session_state.get("cmp_probes")
        if train:
            probed = run.probes(model_b, dataset, train, count)
            show(
                probes.probes_view(
                    model_b,
                    probed,
                    readout_accuracy=result.stepwise_accuracy_a,
                    readout_label=f"{pair.name_a} read-out",
                ),
                key="cmp_probes_fig",
            )

    st.subheader("Both maps of one image")
    if not selection.images:
        st.info("Choose an image in the sidebar to see both models' attributions of it.")
        return
    index = image_picker(selection)
    image = selection.images[index]
    columns = st.columns(2)
    options = (("n_steps", 32),)
    for column, (name, model) in zip(columns, ((pair.name_a, model_a), (pair.name_b, model_b))):
        with column:
            result_map, shown = attribution.attribution_view(
                model, image, "integrated_gradients", ("predicted",), options, run
            )
            st.caption(f"**{name}**: integrated gradients of {result_map.target}")
            show(shown, key=f"cmp_attr_{name}", max_width=440)


page_body()
