"""Overview: what the model predicts, what it is, and (CRMN) how the prediction forms block by block."""

import streamlit as st

from crmn_viz.app_support.architecture import card_summary
from crmn_viz.figures.overlays import plot_keypoints
from crmn_viz.figures.readouts import (
    plot_prediction_bar,
    plot_stepwise_keypoints,
    plot_stepwise_probabilities,
)
from crmn_viz.streamlit_ui import compute
from crmn_viz.streamlit_ui.figures import show_figure
from crmn_viz.streamlit_ui.state import image_picker, page_start

selection = page_start(
    "overview",
    "Overview",
    "The chosen network's prediction for each image, its model card and its architecture.",
)
model, key = selection.model, selection.key

st.subheader("Prediction")
left, right = st.columns([1, 3], gap="large")
with left:
    index = image_picker(selection)
    image = selection.images[index]
    if not selection.is_keypoints:
        st.image(
            image.image(), caption=image.name + (f" (true: {image.label})" if image.label else ""), width=200
        )
with right:
    if selection.is_keypoints:
        found = compute.faces(model, key, image.png)
        if isinstance(found, str):
            st.info(f"{found}. The Face keypoints page lets you draw the face box yourself.")
        else:
            st.metric("Faces found", len(found))
            crop_boxes = [face.crop_box.corners for face in found]
            figure = plot_keypoints(
                image.image(),
                [face.keypoints for face in found],
                ground_truth=image.keypoints,
                boxes=crop_boxes,
            )
            show_figure(
                figure,
                f"keypoints_{image.stem}",
                images=[image],
                settings={"box": "detected", "faces": len(found)},
                max_width=560,
            )
    else:
        predictions = compute.classify(model, key, selection.pngs, top_k=10)[index]
        best, probability = predictions[0]
        st.metric("Predicted class", best, f"{100 * probability:.1f}% probability", delta_color="off")
        labels, probabilities = zip(*predictions)
        show_figure(
            plot_prediction_bar(labels, probabilities),
            f"prediction_{image.stem}",
            images=[image],
            settings={"top_k": 10},
        )

if model.arch == "crmn":
    st.subheader("Prediction after every block")
    st.caption(
        "Iterative inference: the CRMN's output layer applied to the LSTM state after each residual "
        "block. The last step is the model's actual output."
    )
    if selection.is_keypoints:
        steps = compute.face_steps(model, key, image.png, 0, None, image.keypoints)
        if steps is None:
            st.caption("No face found in this image, so there is nothing to follow.")
        else:
            figure = plot_stepwise_keypoints(
                steps.crop, steps.keypoints_per_step, ground_truth=steps.ground_truth
            )
            show_figure(
                figure,
                f"stepwise_keypoints_{image.stem}",
                images=[image],
                settings={"box": "detected", "face": 0},
            )
    else:
        readout = compute.stepwise(model, key, selection.pngs)
        figure = plot_stepwise_probabilities(
            readout.probabilities[index], readout.class_names, top_k=5, columns=2
        )
        show_figure(figure, f"stepwise_probabilities_{image.stem}", images=[image], settings={"top_k": 5})

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

card_tab, trace_tab, config_tab = st.tabs(["Model card", "Trace names", "Configuration"])
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
