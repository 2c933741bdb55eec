"""What the app shows, written once for the three front ends.

* :mod:`~crmn_viz.views.applicability`: which view suits which model, and what to suggest.
* :mod:`~crmn_viz.views.model_info`: a model's architecture summary and model card rows.
* :mod:`~crmn_viz.views.running`: the network run on chosen images (traces, the model's view).
* :mod:`~crmn_viz.views.class_statistics`, :mod:`~crmn_viz.views.test_images`: gate statistics
  by class, over gallery or test images.
"""
