"""The train/validation split: a stable hash of each ``object_id``.

The same id lands in the same split on every run and machine, whatever order
the rows arrive in.  The split definition (validation fraction and salt) is
stored in every checkpoint, so ``galaxy-ray evaluate --split val`` scores a
model on exactly the rows it never trained on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from galaxy_ray.errors import GalaxyRayError

__all__ = ["DEFAULT_SALT", "SPLITS", "Split", "split_of"]

#: Key of the BLAKE2b hash; changing it reshuffles every split.
DEFAULT_SALT = "galaxy-ray-split-v1"
SPLITS = ("train", "val")


@dataclass(frozen=True)
class Split:
    """A train/validation split definition.

    Attributes
    ----------
    val_fraction : float
        Expected fraction of objects in the validation split, in [0, 1).
    salt : str
        Key of the hash; the same salt and fraction always give the same split.
    """

    val_fraction: float = 0.2
    salt: str = DEFAULT_SALT

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.val_fraction) < 1.0:
            raise GalaxyRayError(f"--val-fraction {self.val_fraction!r}: must be in [0, 1)")

    def of(self, object_id: Any) -> str:
        """``"val"`` or ``"train"`` for one object id."""
        digest = hashlib.blake2b(str(object_id).encode("utf-8"), digest_size=8,
                                 key=self.salt.encode("utf-8")).digest()
        return "val" if int.from_bytes(digest, "big") / 2.0**64 < self.val_fraction else "train"

    def mask(self, object_ids: Iterable[Any], split: str) -> np.ndarray:
        """Boolean mask of the rows in ``split`` (``train`` or ``val``)."""
        if split not in SPLITS:
            raise GalaxyRayError(f"--split {split!r}: one of {', '.join(SPLITS)}")
        return np.array([self.of(i) == split for i in object_ids], dtype=bool)

    def to_dict(self) -> dict[str, Any]:
        return {"val_fraction": float(self.val_fraction), "salt": self.salt}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Split":
        return cls(val_fraction=float(d["val_fraction"]), salt=str(d.get("salt", DEFAULT_SALT)))


def split_of(object_id: Any, val_fraction: float) -> str:
    """``"val"`` or ``"train"`` for one id under the default salt."""
    return Split(val_fraction).of(object_id)


