"""Cutouts as data: the input formats (``sources``), the train/validation split (``split``),
and the pixels the model sees (``preprocess``)."""
