"""Cutouts as data: the input formats (``sources``), the train/validation split (``split``),
decoding bytes to pixels (``decode``) and the transforms that make model input (``transforms``)."""
