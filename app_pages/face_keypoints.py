"""Face keypoints: detect faces, draw the 68 predicted points, follow them block by block."""

import streamlit as st

from crmn_viz.analysis.keypoint_evaluation import normalised_mean_error
from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import show
from crmn_viz.frontends.streamlit.state import image_picker, page_start
from crmn_viz.views import faces
from crmn_viz.views.keypoint_report import keypoint_zoo_rows

detector = faces.face_detector()
detector_title = faces.DETECTOR_TITLES.get(detector, (detector, ""))[0]
selection = page_start(
    "faces",
    "Face keypoints",
    f"The face is found with {detector_title} (or a box you give), cropped as in training and "
    "re-cropped around the network's own prediction; the network predicts 68 iBUG keypoints. "
    "Gallery faces come with their ground truth.",
)
model = selection.model
run = compute.CACHED

# The photo with its keypoints: 4.6 in printed, so 618 px on screen (enlarged 1.4 times as every
# figure is; at least 500 px wide), within a column of at most 700 px.
KEYPOINT_FIGURE_WIDTH_IN = 4.6
KEYPOINT_FIGURE_MAX_PX = 700


def face_choice(found: list[FaceKeypoints], key: str = "faces_index") -> int:
    """The face whose crops, block-by-block view and errors are shown: a menu when there are several."""
    if len(found) < 2:
        return 0
    choices = list(range(len(found)))
    if st.session_state.get(key) not in choices:  # another photo with fewer faces
        st.session_state.pop(key, None)
    return int(
        st.columns(3)[0].selectbox(  # as narrow as the photo picker
            "Face",
            choices,
            format_func=lambda k: faces.face_label(found[k], k + 1, detector),
            key=key,
            help="The numbers are drawn on the detector's boxes, with their scores.",
        )
    )


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
        st.caption("The crop is made from the true keypoints' box (vermillion) exactly as in training.")
    elif how == "Draw a box":
        st.caption(
            "Frame the face from brow to chin and jaw to jaw (the keypoints' bounding box): the "
            "vermillion rectangle on the photo follows the sliders."
        )
        sliders = st.columns(2)
        x0, x1 = sliders[0].slider("Left and right", 0, width, (width // 4, 3 * width // 4), key="faces_x")
        y0, y1 = sliders[1].slider("Top and bottom", 0, height, (height // 4, 3 * height // 4), key="faces_y")
        box = (float(x0), float(y0), float(max(x1, x0 + 2)), float(max(y1, y0 + 2)))

    found = run.faces(model, image, box)  # cached: the detector ran once for this photo
    if isinstance(found, str):
        st.warning(f"{found[0].upper()}{found[1:]}.")
        st.stop()
    face_index = face_choice(found)
    face = found[face_index]
    result = faces.face_keypoints(
        model,
        image,
        box,
        run,
        how,
        face_index=face_index,
        width_in=KEYPOINT_FIGURE_WIDTH_IN,
        detector=detector,
    )
    if isinstance(result, str):  # pragma: no cover  (the same cached faces as above)
        st.warning(result)
        st.stop()
    _, keypoint_figure = result

    facts = st.columns(4)
    facts[0].metric("Faces found" if box is None else "Faces", len(found))
    facts[1].metric("Crop side", f"{face.crop_box.side:.0f} px")
    facts[2].metric(
        "Crops",
        len(face.rounds) or 1,
        help="The first crop and every re-crop around the model's own prediction.",
    )
    if image.keypoints is not None:
        error = normalised_mean_error(face.keypoints, image.keypoints)
        facts[3].metric(
            "NME vs ground truth",
            f"{100 * error:.1f}%",
            help="Mean point error / outer-eye-corner distance (300-W).",
        )

    summary = faces.face_summary(face, detector)
    if face.source == "whole photo":
        st.info(summary, icon=":material/crop_free:")
    else:
        st.caption(summary)

    st.subheader("Keypoints")
    show(keypoint_figure, max_width=KEYPOINT_FIGURE_MAX_PX)

    rows = faces.group_error_table(face.keypoints, image.keypoints)
    if rows is not None:
        st.subheader("Error by landmark group")
        st.caption(
            "300-W NME of each group of points (mean point error over the group / the face's "
            "outer-eye-corner distance), for the face shown against its ground truth."
        )
        st.dataframe(
            rows,
            hide_index=True,
            width="content",
            key="faces_group_errors",
            column_config={"NME (%)": st.column_config.NumberColumn(format="%.2f")},
        )

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

    zoo_rows = keypoint_zoo_rows()
    if zoo_rows:
        st.subheader("The zoo's keypoint models on the test photos")
        st.caption(
            "From the cards (`crmn-viz eval NAME --write-card`): mean NME over the identity-disjoint "
            "faces68 test photos, overall and per landmark group (percent), with the face box given and "
            "with the face found by the detector and re-cropped, as the 2017 paper's Table 1. The "
            "ResNet has exactly the CRMN's backbone, head and recipe, without the memory. "
            "`crmn-viz faces crmn-faces68 resnet-faces68` re-measures them with paired intervals."
        )
        st.dataframe(zoo_rows, hide_index=True, key="faces_zoo_table")


page_body()
