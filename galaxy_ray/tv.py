"""Import torchvision safely next to a CPU-only torch.

PyPI's torchvision wheels are CUDA builds.  Installed next to the CPU wheel of
torch, their compiled extension (``torchvision/_C.so``) cannot load, and
``import torchvision`` then fails with ``operator torchvision::nms does not
exist``: torchvision registers fake (meta) kernels for ``torchvision::nms`` and
``torchvision::qnms`` at import and needs those operators to exist.

This module does nothing when the extension loads.  Otherwise it defines the two
operator schemas with :mod:`torch.library` and gives ``nms`` a pure-torch CPU
kernel, so that torchvision imports and its models (the only part of it this
project uses) run.  Images are decoded with Pillow and astropy, never with
``torchvision.io``, whose codecs live in the same missing extension.

It also keeps ``import torchvision`` from importing ``torch._dynamo`` (the
compiler front end: about 1 s of a 2-core machine's 1.3 s torchvision import,
paid again by every fresh model actor).  torchvision 0.28's
``ops/roi_align.py`` imports ``is_compile_supported`` from
``torch._dynamo.utils`` at its top, although its own ``lazy_compile`` exists
to avoid importing dynamo eagerly (pytorch/vision#8436).  While torchvision
imports, :func:`_import_torchvision` gives it an ``is_compile_supported`` that
imports the real one on its first call, then takes its stand-in modules out
of ``sys.modules``: ``torch._dynamo`` and ``torch.compile`` import for real
when first used, and ``roi_align`` behaves as before.

Always import torchvision through this module::

    from galaxy_ray.tv import torchvision
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

__all__ = ["torchvision", "EXTENSION_LOADED", "nms_reference"]

# Keep the Library objects alive: dropping them unregisters the operators.
_LIBRARIES: list[torch.library.Library] = []


def _extension_loads() -> bool:
    """True if torchvision's compiled ops load (or were already loaded)."""
    if hasattr(torch.ops, "torchvision") and hasattr(torch.ops.torchvision, "nms"):
        try:
            torch.ops.torchvision.nms  # noqa: B018 - resolving it is the check
            return True
        except (AttributeError, RuntimeError):
            pass
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    for lib in Path(spec.origin).parent.glob("_C*.so"):
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError, ImportError):
            return False
    return False


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression in plain torch (boxes as x1, y1, x2, y2).

    Returns the indices of the kept boxes in decreasing score order, as the
    compiled ``torchvision::nms`` does.
    """
    order = torch.argsort(scores, descending=True)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for rank, i in enumerate(order.tolist()):
        if suppressed[rank]:
            continue
        keep.append(i)
        rest = order[rank + 1 :]
        w = (torch.minimum(x2[i], x2[rest]) - torch.maximum(x1[i], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[rest]) - torch.maximum(y1[i], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (area[i] + area[rest] - inter)
        suppressed[rank + 1 :] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def _register_fallbacks() -> None:
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define(
        "qnms(Tensor dets, Tensor scores, float iou_threshold, int input_zero_point, "
        "float input_scale) -> Tensor"
    )
    lib.impl("nms", nms_reference, "CPU")
    _LIBRARIES.append(lib)


EXTENSION_LOADED: bool = _extension_loads()
if not EXTENSION_LOADED:
    _register_fallbacks()


def _is_compile_supported(device_type: str) -> bool:
    """``torch._dynamo.utils.is_compile_supported``, imported on the first call (see the module docstring)."""
    from torch._dynamo.utils import is_compile_supported as imported

    return imported(device_type)


def _import_torchvision() -> types.ModuleType:
    """``import torchvision``, with ``torch._dynamo`` left unimported when it is not already."""
    if "torch._dynamo" in sys.modules or "torchvision" in sys.modules:
        import torchvision

        return torchvision
    dynamo = types.ModuleType("torch._dynamo")
    dynamo.__path__ = []  # a package, so that ``torch._dynamo.utils`` resolves to the module below
    utils = types.ModuleType("torch._dynamo.utils")
    utils.is_compile_supported = _is_compile_supported
    dynamo.utils = utils
    stand_ins = {"torch._dynamo": dynamo, "torch._dynamo.utils": utils}
    sys.modules.update(stand_ins)
    try:
        import torchvision
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        if torch.__dict__.get("_dynamo") is dynamo:
            del torch._dynamo  # torch's module __getattr__ imports the real one on first use
    return torchvision


torchvision = _import_torchvision()
