"""Which rows of a cutout table carry a label, and which columns a Ray Dataset has.

Training and evaluation both keep only labelled rows; they share these helpers
so that "labelled" means the same thing in both stages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["column_names", "label_present"]


def label_present(values: Any) -> np.ndarray:
    """True where a label is set.

    Parameters
    ----------
    values : array_like of objects, shape (N,)
        One label per row: a class name, a vote-fraction list, or a missing value.

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
        False for None, NaN and pandas' NA; lists (vote fractions) count as set.
    """
    import pandas as pd

    return np.array([v is not None and not (np.ndim(v) == 0 and pd.isna(v)) for v in values], dtype=bool)


def column_names(ds: Any) -> list[str]:
    """Column names of a :class:`ray.data.Dataset` (whatever form its schema takes)."""
    sch = ds.schema()
    names = getattr(sch, "names", None)
    return list(names) if names is not None else [f.name for f in sch]
