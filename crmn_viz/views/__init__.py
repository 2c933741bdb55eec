"""What the app shows, written once for the three front ends.

* :mod:`~crmn_viz.views.applicability`: which view suits which model, and what to suggest.
* :mod:`~crmn_viz.views.model_info`: a model's architecture summary and model card rows.
* :mod:`~crmn_viz.views.running`: the network run on chosen images (traces, the model's view).
* :mod:`~crmn_viz.views.class_statistics`, :mod:`~crmn_viz.views.test_images`: gate statistics
  by class, over gallery or test images; one test image by its file name.
* :mod:`~crmn_viz.views.population`, :mod:`~crmn_viz.views.probes`: unit x class selectivity,
  dataset exemplars, nearest trajectories and linear probes over a population pass.
* :mod:`~crmn_viz.views.comparison`, :mod:`~crmn_viz.views.training_curves`: a CRMN beside its own
  ResNet, and the shipped training logs.
* :mod:`~crmn_viz.views.blocks`, :mod:`~crmn_viz.views.sweeps`, :mod:`~crmn_viz.views.streams`:
  every block's channels, ReNet's sweeps and their gates, RiR's streams.
"""
