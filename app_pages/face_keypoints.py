"""Face keypoints: detect faces, draw the 68 predicted points, follow them block by block."""

import streamlit as st

from crmn_viz.analysis.keypoint_evaluation import normalised_mean_error
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import faces

selection = page_start(
    "faces",
    "Face keypoints",
    "The face is found with OpenCV's detector (or a box you give), cropped as in training, and the "
    "network predicts 68 iBUG keypoints. Gallery faces come with their ground truth.",
)
model = selection.model
run = compute.CACHED


@st.fragment
def page_body() -> None:
    """Everything below the title: a widget here reruns this function only, not the sidebar."""
    index = image_picker(selection, label="Photo", columns=True)
    image = selection.images[index]
    width, height = image.size

    boxes = ["Detect"] + (["Ground-truth box"] if image.keypoints is not None else []) + ["Draw a box"]
    how = st.segmented_control("Face box", boxes, default="Detect", required=True, key="faces_box_mode")
    box = None
    if how == "Ground-truth box":
        points = image.keypoints
        box = (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        )
        st.caption("The crop is made from the true keypoints exactly as in training.")
    elif how == "Draw a box":
        st.caption("Frame the face from brow to chin and jaw to jaw (the keypoints' bounding box).")
        sliders = st.columns(2)
        x0, x1 = sliders[0].slider("Left and right", 0, width, (width // 4, 3 * width // 4), key="faces_x")
        y0, y1 = sliders[1].slider("Top and bottom", 0, height, (height // 4, 3 * height // 4), key="faces_y")
        box = (float(x0), float(y0), float(max(x1, x0 + 2)), float(max(y1, y0 + 2)))

    result = faces.face_keypoints(model, image, box, run, how)
    if isinstance(result, str):
        st.warning(f"{result[0].upper()}{result[1:]}.")
        st.stop()
    found, keypoint_figure = result

    face_index = 0
    if len(found) > 1:
        face_index = st.selectbox(
            "Face",
            range(len(found)),
            format_func=lambda k: f"face {k + 1} (detector score {found[k].score:.0f})",
            key="faces_index",
        )
    face = found[face_index]

    facts = st.columns(3)
    facts[0].metric("Faces found" if box is None else "Faces", len(found))
    facts[1].metric("Crop side", f"{face.crop_box.side:.0f} px")
    if image.keypoints is not None:
        error = normalised_mean_error(face.keypoints, image.keypoints)
        facts[2].metric(
            "NME vs ground truth",
            f"{100 * error:.1f}%",
            help="Mean point error / outer-eye-corner distance (300-W).",
        )

    st.subheader("Keypoints")
    show(keypoint_figure, max_width=620)

    @st.fragment
    def block_by_block() -> None:
        """The Layout control reruns only this section."""
        st.subheader("Block by block")
        if not model.has_stepwise_readout:
            st.info(
                "Only a CRMN can be read out after every block: "
                "this network gives its keypoints at the end only."
            )
        else:
            st.caption(
                "The CRMN's output layer applied to its memory after each residual block: the points "
                "settle as the LSTM reads deeper blocks. The last block is the network's answer."
            )
            layout = st.segmented_control(
                "Layout",
                ["grid", "slider"],
                default="grid",
                required=True,
                key="faces_layout",
                format_func={"grid": "Six steps", "slider": "Every step (slider)"}.get,
                # A run that stops before this control (an empty upload) would otherwise bring it back
                # showing "Six steps" while the figure keeps the slider (streamlit/streamlit#3512).
                persist_state="page",
            )
            steps = faces.face_steps_view(model, image, face_index, box, layout, run, how)
            if steps is not None:
                show(steps)

    block_by_block()


page_body()
