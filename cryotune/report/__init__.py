"""The paper's results table regenerated from cryotune's records (``cryotune report``): built in
``table``, rendered in ``render`` and ``heatmap``, seed repeats read by ``repeats``."""
