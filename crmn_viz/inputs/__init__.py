"""Image input for every front end: chosen images, safe uploads, the shipped gallery.

* :mod:`~crmn_viz.inputs.selection`: :class:`SelectedImage`, an image as canonical PNG bytes
  (the cache key of every result) with its file's SHA-256 (what a figure's provenance names).
* :mod:`~crmn_viz.inputs.uploads`: uploaded images and ``.safetensors`` + ``.json``
  checkpoint pairs (private temporary folder, size limits).
* :mod:`~crmn_viz.inputs.gallery`: the real test images shipped in ``crmn_viz/gallery``
  (rebuilt by :mod:`~crmn_viz.inputs.make_gallery`).
"""
