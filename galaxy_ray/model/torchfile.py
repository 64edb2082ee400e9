"""Reading PyTorch files safely (tensors, strings and numbers only), and our checkpoint's marker."""

from __future__ import annotations

import io
import pickle
import re
from typing import Any

import torch

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage

__all__ = ["CHECKPOINT_FORMAT", "read_torch"]

#: The ``format`` entry of every checkpoint galaxy-ray writes.
CHECKPOINT_FORMAT = "galaxy-ray-checkpoint"

#: torch's marker of a file refused by ``weights_only`` (it holds pickled objects), and the object it named.
_REFUSED = "Weights only load failed"
_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]{1,200})")


def _unsafe_message(uri: str, exc: BaseException) -> str:
    """galaxy-ray's own line for a file ``weights_only`` refused (torch's runs to 900 characters)."""
    named = _GLOBAL.search(str(exc))
    what = f" (the first is {named.group(1)})" if named else ""
    return (f"{uri}: holds Python objects other than tensors and plain data{what}, and loading such a file can run "
            "code from it; galaxy-ray loads only tensors, numbers and strings. Use a model.pt written by "
            "`galaxy-ray train`; any other loading is safe only if you trust the file's source")


def read_torch(uri: str) -> Any:
    """Load a PyTorch file onto the CPU with ``weights_only`` (no code runs from the file).

    Raises
    ------
    GalaxyRayError
        The file is missing, holds objects other than tensors and plain values
        (one line saying so, never torch's advice to turn ``weights_only`` off),
        or is not a PyTorch file.
    """
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: no such file; check the path") from None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if _REFUSED in str(exc):
            raise GalaxyRayError(_unsafe_message(uri, exc)) from None
        raise GalaxyRayError(f"{uri}: not a PyTorch checkpoint ({one_line(exc)[:200]})") from None
    except Exception as exc:  # zip and storage errors all mean "not loadable"
        reason = one_line(exc)[:200]
        raise GalaxyRayError(f"{uri}: not a PyTorch checkpoint this program can load safely ({reason})") from None
