"""The merger rule of a checkpoint: which output, what counted as a merger, and where the flag is set.

Every stage that flags mergers (``infer``, ``evaluate``, ``predict``) builds
one :class:`MergerRule` from the checkpoint with :meth:`MergerRule.from_checkpoint`
and flags with :meth:`MergerRule.flag`, so that the same cutouts with the same
checkpoint and the same options get the same ``is_merger`` everywhere.  The
threshold is the one training chose on validation and stored in the
checkpoint (``extra["merger"]``, :mod:`galaxy_ray.merger.operating`), unless
the user gives ``--merger-threshold`` (a number) or ``--merger-precision``;
those override it the same way in all three stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from galaxy_ray.merger.operating import stored_operating_point
from galaxy_ray.merger.truth import MERGER_VOTE_CUT

__all__ = ["MergerRule"]


@dataclass(frozen=True)
class MergerRule:
    """How a checkpoint's ``p_merger`` becomes ``is_merger``.

    Attributes
    ----------
    output : str or None
        The model output read as the merger probability (``Class8.6`` for gz2,
        a class name), None for a model with no merger output.
    threshold : float
        ``is_merger = p_merger >= threshold``, compared in float32, the type
        ``p_merger`` has in every catalog and prediction file.
    threshold_source : str
        Where the threshold came from (``validation (F1-optimal)``, ``given``, ...).
    truth : str or None
        What counted as a true merger on validation (with its reference).
    vote_cut : float or None
        The GZ2 vote-fraction cut of that truth; checkpoints written before it
        was stored used :data:`galaxy_ray.merger.truth.MERGER_VOTE_CUT`.  None
        for class labels.
    validation : dict or None
        The validation rates at ``threshold``
        (:meth:`galaxy_ray.merger.operating.OperatingPoint.to_dict` plus
        ``truth``, ``vote_cut``, ``calibration``); None when the checkpoint
        holds no validation table.
    """

    output: str | None
    threshold: float
    threshold_source: str
    truth: str | None = None
    vote_cut: float | None = None
    validation: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(cls, spec, extra: Mapping[str, Any], threshold: float | str = "auto",
                        precision: float | None = None) -> "MergerRule":
        """The rule of a loaded checkpoint, with the user's override if any.

        Parameters
        ----------
        spec : galaxy_ray.model.ModelSpec
            The checkpoint's spec (its ``merger`` output).
        extra : mapping
            The checkpoint's ``extra`` (``extra["merger"]`` from training).
        threshold : "auto" or float
            ``auto``: the stored point; a number in [0, 1] overrides it.
        precision : float, optional
            With ``auto``: the lowest stored threshold whose validation precision reaches this.

        Raises
        ------
        GalaxyRayError
            A threshold outside [0, 1], or a precision no stored threshold meets.
        """
        t, validation, how = stored_operating_point(extra, threshold, precision)
        stored = dict(extra.get("merger") or {})
        vote_cut = stored.get("vote_cut", MERGER_VOTE_CUT if spec.task_of.vote_truth else None)
        return cls(output=spec.merger, threshold=float(t), threshold_source=how, truth=stored.get("truth"),
                   vote_cut=None if vote_cut is None else float(vote_cut), validation=validation)

    def flag(self, p_merger: np.ndarray) -> np.ndarray:
        """``is_merger`` for ``p_merger`` (any shape); NaN scores are not flagged.

        Both sides are float32, so a score printed or stored as float32 and the
        stored threshold compare the same way in every stage.
        """
        return np.asarray(p_merger, dtype=np.float32) >= np.float32(self.threshold)

    def provenance(self) -> dict[str, Any]:
        """The catalog provenance entries that say what the flag is and what it is worth."""
        return {"merger_threshold": self.threshold, "merger_threshold_source": self.threshold_source,
                "merger_validation": self.validation}
