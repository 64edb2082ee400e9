"""The merger flag's operating point, chosen on the validation split.

The point, the precision-recall table and the rates at a threshold are
computed in :mod:`galaxy_ray.model.operating` (a checkpoint's caller re-derives
them from the stored table); this module chooses the point from validation
predictions.

References
----------
Bickley, R. W. et al. 2021, MNRAS 504, 372: post-merger identification at
low base rates.
Davis, J. & Goadrich, M. 2006, ICML: precision-recall curves.
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.model.operating import (OperatingPoint, choose_from_curve, point_at, precision_recall_curve,
                                        wilson)

__all__ = ["OperatingPoint", "choose_threshold", "point_at", "precision_recall_curve", "wilson"]


def choose_threshold(is_merger: np.ndarray, p_merger: np.ndarray, precision: float | None = None) -> OperatingPoint:
    """The F1-optimal threshold, or the lowest one whose validation precision reaches ``precision``.

    Parameters
    ----------
    is_merger, p_merger : arrays, shape (N,)
        Validation truth and scores.
    precision : float, optional
        Target purity in (0, 1].  The lowest threshold meeting it keeps the
        most mergers (highest recall) at that purity.

    Returns
    -------
    OperatingPoint

    Raises
    ------
    GalaxyRayError
        No validation merger (nothing to choose from), or no threshold reaches
        ``precision``.
    """
    y = np.asarray(is_merger, dtype=bool)
    p = np.asarray(p_merger, dtype=np.float64)
    ok = np.isfinite(p)
    return choose_from_curve(precision_recall_curve(y[ok], p[ok]), int(y[ok].sum()), int((~y[ok]).sum()),
                             precision)
