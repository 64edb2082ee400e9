"""The merger flag, from truth to corrected fraction: one owner for the rule every stage applies.

``truth``
    What counts as a true merger on validation (the GZ2 vote cut and its
    source), the calibration fit and the operating-point choice at the end of
    training, reliability for the report.
``calibration``
    Temperature scaling and the merger map fitted on validation, stored in the
    checkpoint's spec; reliability diagrams with binomial intervals.
``parametric``, ``choice``
    Platt, beta and shrunk isotonic merger maps, and the choice among them by
    cross-validated log loss.
``operating``
    The threshold, its validation precision-recall table and rates, stored in
    the checkpoint.
``rule``
    :class:`~galaxy_ray.merger.rule.MergerRule`: a checkpoint's flag, the one
    way ``p_merger`` becomes ``is_merger`` in ``infer``, ``evaluate`` and ``predict``.
``fractions``
    Merger fractions corrected for the flag's validation purity and completeness.

The package imports nothing here, so that :mod:`galaxy_ray.model` can use its
calibration maps without importing the rest.
"""
