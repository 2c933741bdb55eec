"""Streamlit glue shared by ``app.py`` and the pages: session state, cached calls into the core,
figure display with downloads. Everything that computes lives in :mod:`crmn_viz`."""
