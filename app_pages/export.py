"""Export: figures seen in this session as PDF, SVG or PNG at paper sizes, with their data."""

import streamlit as st

from crmn_viz.figures import FigureExportError
from crmn_viz.figures.files import FigureItem, export_bundle, safe_figure_name
from crmn_viz.frontends.streamlit import compute
from crmn_viz.frontends.streamlit.figures import data_of, remembered
from crmn_viz.frontends.streamlit.state import current
from crmn_viz.limits import LIMITS
from crmn_viz.views import report

st.title("Export")
st.caption(
    "Every figure you have looked at in this session, styled for print (one column 3.5 in, two columns "
    "7.16 in, 8 pt type) and written with its numbers beside it (CSV or NPZ, plus a JSON description)."
)

seen = remembered()
selection = current()
if selection is not None and selection.images:
    with st.expander("Every figure of one image", icon=":material/auto_awesome_mosaic:"):
        st.caption(
            "Every view that applies to this checkpoint, with its default settings: the figures "
            '`crmn-viz analyze` writes and the Gradio demo\'s "All figures" tab shows. They join the list '
            "below, selected for export."
        )
        labels = [image.name for image in selection.images]
        which = st.selectbox(
            "Image", range(len(labels)), format_func=labels.__getitem__, key="export_all_image"
        )
        if st.button("Make every figure", key="export_all_go"):
            with st.spinner("Making every figure…"):
                made = report.report_figures(selection.model, selection.images[which], compute=compute.CACHED)
            added = []
            for item in made:
                provenance = item.shown.provenance(selection.model, checkpoint=selection.name)
                stem = safe_figure_name(f"{selection.name}__{item.shown.name}")
                added.append(seen.add(stem, item.figure, provenance.with_settings(figure=item.name)))
            st.session_state["export_figures"] = added  # the list below opens with them selected
            st.success(f"{len(added)} figures made for {labels[which]}.")
figures = seen.entries
if not figures:
    st.info("Open the other pages first: every figure you see there is listed here for export.")
    st.stop()

names = list(figures)
st.caption(
    f"{len(names)} figure(s) seen in this session, most recent last. Each file is named after its "
    "checkpoint and carries what made it (checkpoint, weights SHA-256, images, settings) inside it "
    "and in its `.meta.json`."
)
let_go = seen.dropped
if let_go:
    st.warning(
        f"The list holds the {seen.capacity} most recent figures, so {len(let_go)} older one(s) were "
        f"dropped: {', '.join(let_go[-5:])}{' and more' if len(let_go) > 5 else ''}. Open them again to "
        "export them.",
        icon=":material/playlist_remove:",
    )


def describe(name: str) -> str:
    provenance = figures[name].provenance
    images = ", ".join(image.name for image in provenance.images[:3])
    return f"{name} · {images or 'no image'} · {provenance.describe_settings()}"


if "export_figures" in st.session_state:  # keep only figures still in the list
    st.session_state["export_figures"] = [n for n in st.session_state["export_figures"] if n in figures]
    default = None
else:
    default = names[-3:]
chosen = st.multiselect("Figures", names, default=default, format_func=describe, key="export_figures")
browser = compute.browser_available()
formats_offered = ["pdf", "svg", "png"] if browser else ["html", "json"]
if not browser:
    st.warning("Chromium is not installed, so PDF, SVG and PNG cannot be drawn here: HTML and JSON only.")
settings = st.columns(4)
formats = settings[0].multiselect(
    "Formats", formats_offered, default=formats_offered[:1], key="export_formats"
)
columns = settings[1].segmented_control(
    "Width",
    [1, 2],
    default=1,
    required=True,
    key="export_columns",
    format_func={1: "One column", 2: "Two columns"}.get,
)
most_dpi = int(LIMITS.max_export_dpi)
dpi = settings[2].number_input(
    "PNG resolution (dpi)", min(72, most_dpi), most_dpi, min(300, most_dpi), step=50, key="export_dpi"
)
with settings[3]:
    keep_title = st.checkbox("Keep titles", value=False, key="export_titles")
    include_data = st.checkbox("Data beside each figure", value=True, key="export_data")
single = len(chosen) == 1 and len(formats) == 1
as_zip = st.toggle("One zip file", value=not single, disabled=not single, key="export_zip")

request = (tuple(chosen), tuple(formats), columns, dpi, keep_title, include_data, single and not as_zip)
if st.button("Prepare the files", type="primary", disabled=not chosen or not formats, key="export_go"):
    items = [
        FigureItem(name, figures[name].figure, data_of(figures[name].figure), figures[name].provenance)
        for name in chosen
    ]
    try:
        st.session_state["export_result"] = (
            request,
            compute.run_heavy(
                "Drawing the figures…",
                lambda: export_bundle(
                    items, formats, columns, dpi, keep_title, include_data, single_file=single and not as_zip
                ),
                ("export", request),
            ),
        )
    except (FigureExportError, ValueError) as err:
        st.session_state.pop("export_result", None)
        st.error(f"The export failed: {err}")

prepared = st.session_state.get("export_result")
if prepared is not None and prepared[0] == request:
    result = prepared[1]
    st.download_button(
        f"Download {result.name} ({len(result.data) / 1024:.0f} kB)",
        data=result.data,
        file_name=result.name,
        mime=result.mime,
        icon=":material/download:",
        key="export_download",
        on_click="ignore",
    )
