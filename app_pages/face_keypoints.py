"""Face keypoints: detect faces, draw the 68 predicted points, follow them block by block."""

import streamlit as st

from crmn_viz.analysis.keypoint_evaluation import normalised_mean_error
from crmn_viz.figures.overlays import plot_keypoints
from crmn_viz.figures.readouts import plot_stepwise_keypoints
from crmn_viz.streamlit_ui import compute
from crmn_viz.streamlit_ui.figures import show_figure
from crmn_viz.streamlit_ui.state import image_picker, page_start

selection = page_start(
    "faces",
    "Face keypoints",
    "The face is found with OpenCV's detector (or a box you give), cropped as in training, and the "
    "network predicts 68 iBUG keypoints. Gallery faces come with their ground truth.",
)
model, key = selection.model, selection.key

index = image_picker(selection, label="Photo", columns=True)
image = selection.images[index]
picture = image.image()
width, height = picture.size

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

found = compute.faces(model, key, image.png, box)
if isinstance(found, str):
    st.warning(f"{found[0].upper()}{found[1:]}.")
    st.stop()

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
crop_boxes = [f.crop_box.corners for f in found]
figure = plot_keypoints(picture, [f.keypoints for f in found], ground_truth=image.keypoints, boxes=crop_boxes)
show_figure(
    figure,
    f"face_keypoints_{image.stem}",
    images=[image],
    settings={
        "box_mode": how,
        "box": list(box) if box is not None else "detected",
        "crop_boxes": [dict(f.crop_box._asdict()) for f in found],
    },
    max_width=620,
)

st.subheader("Block by block")
if model.arch != "crmn":
    st.info(
        "Only a CRMN can be read out after every block: this network gives its keypoints at the end only."
    )
else:
    st.caption(
        "The CRMN's output layer applied to its memory after each residual block: the points settle as "
        "the LSTM reads deeper blocks. The last block is the network's answer."
    )
    layout = st.segmented_control(
        "Layout",
        ["grid", "slider"],
        default="grid",
        required=True,
        key="faces_layout",
        format_func={"grid": "Six steps", "slider": "Every step (slider)"}.get,
    )
    steps = compute.face_steps(model, key, image.png, face_index, box, image.keypoints)
    if steps is not None:
        figure = plot_stepwise_keypoints(
            steps.crop, steps.keypoints_per_step, ground_truth=steps.ground_truth, layout=layout
        )
        show_figure(
            figure,
            f"face_steps_{layout}_{image.stem}",
            images=[image],
            settings={
                "box_mode": how,
                "box": list(box) if box is not None else "detected",
                "crop_box": dict(face.crop_box._asdict()),
                "face": face_index,
                "layout": layout,
            },
        )
