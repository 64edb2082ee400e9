"""galaxy-ray checkpoints: the model's spec, its weights and normalisation, and caller extras.

A checkpoint is a ``torch.save`` of plain tensors, strings and numbers, read
back with ``weights_only`` so loading one never runs code.  Version 2 carries
the network's input normalisation (the ``mean``/``std`` buffers); version 1
files load with the ImageNet values they were trained with.
"""

from __future__ import annotations

import io
import os
from typing import Any, Mapping

import torch
from torch import nn

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import layout, storage
from galaxy_ray.model.nets import GalaxyNet, unwrap
from galaxy_ray.model.spec import DAMAGED, ModelSpec, described, check_spec_dict
from galaxy_ray.model.torchfile import CHECKPOINT_FORMAT, read_torch

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "check_payload", "checkpoint_bytes", "checkpoint_spec",
           "save_checkpoint", "load_checkpoint"]

CHECKPOINT_VERSION = 2


def checkpoint_bytes(model: nn.Module, spec: ModelSpec, extra: Mapping[str, Any] | None = None) -> bytes:
    """Our checkpoint format as bytes: plain tensors, strings and numbers only.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`GalaxyNet`, possibly inside DistributedDataParallel; its
        tensors are copied to the CPU.
    extra : mapping, optional
        Caller information kept beside the weights (epoch, metric, ...).
    """
    state = {k: v.detach().to("cpu").contiguous() for k, v in unwrap(model).state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "spec": spec.to_dict(),
        "model_state": state,
        "extra": dict(extra or {}),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save_checkpoint(
    path_or_dir: str | os.PathLike, model: nn.Module, spec: ModelSpec, extra: Mapping[str, Any] | None = None
) -> str:
    """Write a checkpoint atomically (a ``.pt`` file, or ``model.pt`` in a directory); returns its URI."""
    uri = str(path_or_dir)
    if not uri.endswith((".pt", ".pth")):
        uri = storage.join(uri, layout.MODEL)
    storage.write_bytes_atomic(uri, checkpoint_bytes(model, spec, extra))
    return uri


def _read_payload(uri: str) -> dict:
    """The checkpoint's dict, checked to be ours and not from a newer galaxy-ray."""
    obj = read_torch(uri)
    if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT and "model_state" in obj):
        raise GalaxyRayError(f"{uri}: not a galaxy-ray checkpoint (expected model.pt written by `galaxy-ray train`)")
    if int(obj.get("version", 0)) > CHECKPOINT_VERSION:
        raise GalaxyRayError(f"{uri}: checkpoint version {obj['version']} is newer than this galaxy-ray; upgrade it")
    check_payload(obj, uri)
    return obj


def check_payload(obj: Mapping[str, Any], uri: str) -> None:
    """Refuse a checkpoint whose spec or ``extra`` has a key of the wrong type, in one line naming it.

    Raises
    ------
    GalaxyRayError
        As :func:`galaxy_ray.model.spec.check_spec_dict`, or an ``extra`` that is not a mapping.
    """
    check_spec_dict(obj.get("spec"), f"{uri}: model spec")
    extra = obj.get("extra", {})
    if not isinstance(extra, Mapping):
        raise GalaxyRayError(f"{uri}: key 'extra' is {described(extra)}; expected a mapping (the training run's "
                             f"epoch, metrics, split, merger threshold ...): {DAMAGED}")


def _network(spec: ModelSpec, state: Mapping[str, torch.Tensor], uri: str) -> GalaxyNet:
    """The spec's network holding ``state``.

    Built on the CPU and given the stored tensors themselves
    (``load_state_dict(assign=True)``, no copy).  Not on PyTorch's meta
    device, although that skips the random initialisation: a meta tensor's
    ``normal_`` runs ``torch._refs``, which imports ``torch._dynamo`` on its
    first call (``torch._compile._disable_dynamo``), 0.9 s of every fresh
    model actor's start-up against 0.1 s (ResNet-18) or 0.2 s (ResNet-50) of
    plain initialisation on 2 cores.  A version-1 state lacks the normalisation
    buffers that :class:`GalaxyNet` fills in, so it is copied into the
    initialised network instead.
    """
    model = GalaxyNet(spec)
    complete = set(model.state_dict()) <= set(state)
    try:
        model.load_state_dict(state, assign=complete)
    except RuntimeError as exc:
        raise GalaxyRayError(f"{uri}: weights do not match its {spec.arch} spec ({one_line(exc)})") from None
    return model


def load_checkpoint(uri: str | os.PathLike, map_location: str | torch.device = "cpu",
                    with_extra: bool = False) -> tuple:
    """Load one of our checkpoints (file, or a run directory holding ``model.pt``).

    Returns
    -------
    (model, spec), or (model, spec, extra) with ``with_extra``
        The model is a :class:`GalaxyNet` in eval mode on ``map_location``.

    Raises
    ------
    GalaxyRayError
        Missing file, a file that is not a galaxy-ray checkpoint, one written
        by a newer galaxy-ray, or weights that do not fit its spec.
    """
    uri = layout.checkpoint_file(str(uri))
    obj = _read_payload(uri)
    spec = ModelSpec.from_dict(obj["spec"])
    model = _network(spec, obj["model_state"], uri)
    model.to(map_location).eval()
    return (model, spec, obj.get("extra", {})) if with_extra else (model, spec)


def checkpoint_spec(uri: str | os.PathLike) -> tuple[ModelSpec, dict]:
    """The spec and extra of a checkpoint, its weights checked to fit the spec.

    What a driver needs (``infer`` plans with the spec; the model actors load
    the weights): the network is built and handed the stored tensors, which
    checks their names and shapes against the spec.

    Raises
    ------
    GalaxyRayError
        As :func:`load_checkpoint`.
    """
    uri = layout.checkpoint_file(str(uri))
    obj = _read_payload(uri)
    spec = ModelSpec.from_dict(obj["spec"])
    _network(spec, obj["model_state"], uri)  # the weights are given, not copied
    return spec, obj.get("extra", {})
