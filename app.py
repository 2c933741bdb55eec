"""crmn-viz app: the frame (page setup, navigation, shared sidebar). Run: ``streamlit run app.py``.

The pages in ``app_pages/`` draw; every computation and figure comes from :mod:`crmn_viz`. The
folder is not called ``pages/``, so Streamlit's legacy multipage mode never starts.

``streamlit run`` finds the :class:`streamlit.App` below and serves this same file through it:
imported by the server (``__name__ != "__main__"``), the file only builds the App, whose lifespan
loads the default checkpoint before the first connection
(:mod:`crmn_viz.frontends.streamlit.server`); run for a session (``__main__``), it draws the frame.
"""

import streamlit as st

if __name__ == "__main__":
    from crmn_viz.frontends.streamlit.state import render_sidebar

    st.set_page_config(
        page_title="crmn-viz",
        page_icon=":material/memory:",
        layout="wide",
        menu_items={
            "About": "crmn-viz: look inside recurrent-memory vision networks (CRMN, ResNet, ReNet, RiR)."
        },
    )

    # Each url_path is its file's name, so links stay what they were (/lstm_memory, /export...).
    PAGES = [
        st.Page(
            "app_pages/overview.py",
            title="Overview",
            icon=":material/dashboard:",
            url_path="overview",
            default=True,
        ),
        st.Page(
            "app_pages/lstm_memory.py", title="LSTM memory", icon=":material/memory:", url_path="lstm_memory"
        ),
        st.Page(
            "app_pages/renet_sweeps.py",
            title="ReNet sweeps",
            icon=":material/swap_vert:",
            url_path="renet_sweeps",
        ),
        st.Page(
            "app_pages/rir_streams.py", title="RiR streams", icon=":material/stacks:", url_path="rir_streams"
        ),
        st.Page(
            "app_pages/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"
        ),
        st.Page("app_pages/blocks.py", title="Blocks", icon=":material/view_column:", url_path="blocks"),
        st.Page(
            "app_pages/population.py", title="Population", icon=":material/groups:", url_path="population"
        ),
        st.Page(
            "app_pages/compare.py", title="CRMN vs ResNet", icon=":material/compare:", url_path="compare"
        ),
        st.Page(
            "app_pages/attributions.py",
            title="Attributions",
            icon=":material/flare:",
            url_path="attributions",
        ),
        st.Page(
            "app_pages/face_keypoints.py",
            title="Face keypoints",
            icon=":material/face:",
            url_path="face_keypoints",
        ),
        st.Page("app_pages/export.py", title="Export", icon=":material/ios_share:", url_path="export"),
    ]

    navigation = st.navigation(PAGES)
    render_sidebar()
    navigation.run()
else:
    from crmn_viz.frontends.streamlit.server import lifespan

    app = st.App(__file__, lifespan=lifespan)
