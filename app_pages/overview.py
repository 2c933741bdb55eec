"""Overview: what the model predicts, what it is, and (CRMN) how the prediction forms block by block."""

import streamlit as st

from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import faces, prediction, training_curves
from crmn_viz.views.model_info import card_summary

selection = page_start(
    "overview",
    "Overview",
    "The chosen network's prediction for each image, its model card and its architecture.",
)
model, key = selection.model, selection.key
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    st.subheader("Prediction")
    left, right = st.columns([1, 3], gap="large")
    with left:
        index = image_picker(selection)
        image = selection.images[index]
        if not selection.is_keypoints:
            caption = image.name + (f" (true: {image.label})" if image.label else "")
            st.image(image.enlarged(200), caption=caption, width=200)
    with right:
        if selection.is_keypoints:
            result = faces.face_keypoints(model, image, None, run)
            if isinstance(result, str):
                st.info(f"{result}. The Face keypoints page lets you draw the face box yourself.")
            else:
                found, figure = result
                st.metric("Faces found", len(found))
                show(figure, max_width=560)
        else:
            ranked, figure = prediction.class_prediction(model, selection.images, index, 10, run)
            best, probability = ranked[0]
            st.metric("Predicted class", best, f"{100 * probability:.1f}% probability", delta_color="off")
            show(figure)

    if model.has_stepwise_readout:
        st.subheader("Prediction after every block")
        st.caption(
            "Iterative inference: the CRMN's output layer applied to the LSTM state after each residual "
            "block. The last step is the model's actual output."
        )
        if selection.is_keypoints:
            steps = faces.face_steps_view(model, image, 0, None, "grid", run)
            if steps is None:
                st.caption("No face found in this image, so there is nothing to follow.")
            else:
                show(steps)
        else:
            show(prediction.stepwise_prediction(model, selection.images, index, 5, run))

    summary = compute.summary(model, key)
    st.subheader("Model")
    facts = st.columns(4)
    facts[0].metric("Architecture", summary.arch.upper())
    facts[1].metric(
        "Parameters",
        f"{summary.parameters / 1e6:.2f} M" if summary.parameters >= 1e5 else f"{summary.parameters:,}",
    )
    facts[2].metric("Input", "×".join(map(str, summary.input_shape)))
    facts[3].metric("Keypoints" if summary.task == "keypoints" else "Classes", summary.outputs)
    st.caption(summary.title)

    card_tab, trace_tab, config_tab, curves_tab = st.tabs(
        ["Model card", "Trace names", "Configuration", "Training curves"]
    )
    with card_tab:
        st.dataframe(
            [{"field": field, "value": value} for field, value in card_summary(selection.card).items()],
            hide_index=True,
            width="stretch",
        )
    with trace_tab:
        st.caption("Every internal the app can draw, by trace name (shapes for one image).")
        st.dataframe(summary.trace_groups, hide_index=True, width="stretch")
        if summary.lstm_taps:
            st.markdown(
                "**Where the LSTM taps the ResNet**: step *l* reads block *l*'s output, "
                "mean-pooled and flattened."
            )
            st.dataframe(summary.lstm_taps, hide_index=True, width="stretch")
    with config_tab:
        st.json(summary.config)
    with curves_tab:
        try:
            show(training_curves.training_curves_view([selection.name]), key="overview_curves")
        except (FileNotFoundError, ValueError) as err:
            st.caption(f"No training log for this checkpoint ({err}).")


page_body()
