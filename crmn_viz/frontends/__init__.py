"""The three front ends over the core and its views: Streamlit (``streamlit``, with the pages in
``app_pages/`` and the frame in ``app.py``), Gradio (``gradio_app``) and the command line (``cli``).

They draw and take input; every computation, figure and file comes from the core.
"""
