"""The one predictor: pixels in, probabilities out, the same way for every caller.

Inference, evaluation and the benchmarks all predict through :class:`Predictor`,
so CPU and GPU catalogs see the same uint8 pixels and the same arithmetic up to
the GPU's bf16 autocast.  Normalisation happens inside the network
(:meth:`galaxy_ray.model.nets.GalaxyNet.normalise`), never here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from galaxy_ray.io import layout
from galaxy_ray.merger.calibration import probability_calibration
from galaxy_ray.model.checkpoint import load_checkpoint
from galaxy_ray.model.nets import unwrap
from galaxy_ray.model.spec import ModelSpec

__all__ = ["Predictor", "dihedral_predict", "dihedral_views", "predict_numpy", "resolve_device"]


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU -> ``cpu``."""
    if device == "auto" or (str(device).startswith("cuda") and not torch.cuda.is_available()):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def dihedral_views(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``predict`` on each of the 8 rotations and flips (the dihedral group D4).

    Parameters
    ----------
    predict : callable
        Tensor (N, C, H, W) -> probabilities (N, K).
    x : torch.Tensor, shape (N, C, H, W), square images (any dtype ``predict`` takes)

    Returns
    -------
    torch.Tensor
        float32 (8, N, K): the identity and 3 rotations, then the same of the mirror image.
    """
    return torch.stack([predict(flipped.rot90(k, dims=(-2, -1))).float()
                        for flipped in (x, x.flip(-1)) for k in range(4)])


def dihedral_predict(predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Average ``predict`` over the 8 rotations and flips (the dihedral group D4).

    Galaxies have no preferred orientation, so the 8 views are equally valid
    and their mean is a lower-variance prediction.

    Returns
    -------
    torch.Tensor
        float32 (N, K), the mean of :func:`dihedral_views`.
    """
    return dihedral_views(predict, x).mean(dim=0)


class Predictor:
    """Probabilities for batches of model-input pixels, from one model on one device.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`galaxy_ray.model.nets.GalaxyNet` (or one wrapped in
        DistributedDataParallel); it is moved to ``device`` and put in eval mode.
    spec : ModelSpec or None
        What the outputs are; None when only the probabilities are wanted.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; a CUDA
        device when none is visible falls back to the CPU.  On CUDA the model
        runs in bf16 autocast with channels_last memory.
    tta : bool
        Average over the 8 rotations and flips (:func:`dihedral_predict`).
    calibrated : bool
        Apply the class-probability calibration stored in ``spec`` (temperature
        scaling, fitted on validation; see :mod:`galaxy_ray.merger.calibration`).
        False gives the network's own probabilities (training fits the
        calibration on those).  ``p_merger`` is calibrated by
        :func:`galaxy_ray.model.outputs.merger_probability`, from the same spec.

    Attributes
    ----------
    spec : ModelSpec or None
    device : torch.device
    extra : dict
        The checkpoint's ``extra`` (empty unless built by :meth:`from_checkpoint`).
    uri : str or None
        The checkpoint file (None unless built by :meth:`from_checkpoint`).
    """

    def __init__(self, model: nn.Module, spec: ModelSpec | None, *, device: str = "auto", tta: bool = False,
                 calibrated: bool = True) -> None:
        self.device = resolve_device(device)
        self.cuda = self.device.type == "cuda"
        net = unwrap(model).eval().to(self.device)
        self.model = net.to(memory_format=torch.channels_last) if self.cuda else net
        self.spec = spec
        self.tta = bool(tta)
        self.calibration = probability_calibration(spec.calibration) if spec is not None and calibrated else None
        self.extra: dict = {}
        self.uri: str | None = None

    @classmethod
    def from_checkpoint(cls, uri: str, *, device: str = "auto", tta: bool = False,
                        calibrated: bool = True) -> "Predictor":
        """A predictor for a checkpoint file or a run directory holding ``model.pt``.

        Raises
        ------
        GalaxyRayError
            As :func:`galaxy_ray.model.checkpoint.load_checkpoint`.
        """
        uri = layout.checkpoint_file(str(uri))
        model, spec, extra = load_checkpoint(uri, with_extra=True)
        predictor = cls(model, spec, device=device, tta=tta, calibrated=calibrated)
        predictor.extra = dict(extra)
        predictor.uri = uri
        return predictor

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(x)

    def _calibrate(self, probs: np.ndarray) -> np.ndarray:
        return probs if self.calibration is None or not len(probs) else self.calibration(probs)

    def predict_views(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities of every view: the 8 rotations and flips with ``tta``, else the image as given.

        Parameters
        ----------
        pixels : numpy.ndarray, shape (N, 3, S, S)
            As for :meth:`__call__`.

        Returns
        -------
        numpy.ndarray
            float32 (V, N, K), V = 8 with ``tta`` else 1, each view calibrated.
        """
        raw = self._raw_views(pixels)
        return np.stack([self._calibrate(v) for v in raw]) if len(raw) else raw

    def predict_with_views(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`__call__` and :meth:`predict_views` from one pass of the network."""
        raw = self._raw_views(pixels)
        return self._calibrate(raw.mean(axis=0)), np.stack([self._calibrate(v) for v in raw])

    def concentration_views(self, pixels: np.ndarray) -> np.ndarray:
        """A votes model's Dirichlet concentrations for every view (8 with ``tta``, else 1).

        Parameters
        ----------
        pixels : numpy.ndarray, shape (N, 3, S, S)
            As for :meth:`__call__`.

        Returns
        -------
        numpy.ndarray
            float32 (V, N, K), each in (1, 101) (:class:`galaxy_ray.model.nets.ConcentrationHead`).

        Raises
        ------
        ValueError
            The model is not a votes model.
        """
        if not self.spec.task_of.dirichlet:
            raise ValueError(f"concentrations come from vote-count models only, not task {self.spec.task}")
        return self._raw_views(pixels, self.model.forward)

    def _raw_views(self, pixels: np.ndarray, forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
        forward = forward or self._forward
        pixels = np.asarray(pixels)
        if len(pixels) == 0:
            return np.zeros((8 if self.tta else 1, 0, self.model.head.out_features), dtype=np.float32)
        if pixels.dtype != np.uint8:
            pixels = pixels.astype(np.float32, copy=False)
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        if self.cuda:
            # uint8 crosses the bus at a quarter of float32's bytes; the net converts on the GPU.
            x = x.pin_memory().to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            out = dihedral_views(forward, x) if self.tta else forward(x).float()[None]
        return out.float().cpu().numpy()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for pixels from :func:`galaxy_ray.data.transforms.preprocess_batch`.

        Parameters
        ----------
        pixels : numpy.ndarray, shape (N, 3, S, S)
            uint8 in [0, 255], or the same image as float in [0, 1]; both give
            identical probabilities.

        Returns
        -------
        numpy.ndarray
            float32 (N, K): GZ2 vote fractions or class probabilities (with
            ``tta`` the mean over the 8 views), calibrated when the spec holds a
            class-probability calibration.
        """
        return self._calibrate(self._raw_views(pixels).mean(axis=0))


def predict_numpy(model: nn.Module, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
    """Probabilities (N, K) float32 for pixels (N, 3, S, S) on the model's own device.

    A shorthand for ``Predictor(model, None, device=<model's device>, tta=tta)(pixels)``;
    the model is left in eval mode.
    """
    device = next(unwrap(model).parameters()).device
    return Predictor(model, None, device=str(device), tta=tta)(pixels)
