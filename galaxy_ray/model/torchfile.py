"""Reading PyTorch files safely (tensors, strings and numbers only), and our checkpoint's marker."""

from __future__ import annotations

import io
from typing import Any

import torch

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage

__all__ = ["CHECKPOINT_FORMAT", "read_torch"]

#: The ``format`` entry of every checkpoint galaxy-ray writes.
CHECKPOINT_FORMAT = "galaxy-ray-checkpoint"


def read_torch(uri: str) -> Any:
    """Load a PyTorch file onto the CPU with ``weights_only`` (no code runs from the file).

    Raises
    ------
    GalaxyRayError
        The file is missing or is not a PyTorch file of plain tensors and values.
    """
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: no such file; check the path") from None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unpickler errors all mean "not loadable"
        reason = one_line(exc)[:200]
        raise GalaxyRayError(f"{uri}: not a PyTorch checkpoint this program can load safely ({reason})") from None
