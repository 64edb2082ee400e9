"""The network: a torchvision ResNet backbone, a linear head, and the GZ2 tree or Dirichlet head.

``model(x)`` gives the training outputs (tree fractions, concentrations or logits),
``model.predict(x)`` probabilities (tree fractions, expected fractions or softmax).  Both take the
pixels :func:`galaxy_ray.data.transforms.preprocess_batch` makes, uint8
(N, 3, H, W), or the same image as float in [0, 1]; the network applies the
ImageNet mean/std normalisation the torchvision backbones expect itself, so
every caller (training, evaluation, CPU and GPU inference) feeds identical
input and normalisation happens exactly once.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import nn

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import layout
from galaxy_ray.model.hub import hub_state, is_hub_weights
from galaxy_ray.model.spec import ARCHS, ModelSpec
from galaxy_ray.model.torchfile import CHECKPOINT_FORMAT, read_torch
from galaxy_ray.tasks.heads import MAX_EXTRA_CONCENTRATION, ConcentrationHead, GZ2TreeHead

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "GZ2TreeHead",
    "ConcentrationHead",
    "MAX_EXTRA_CONCENTRATION",
    "GalaxyNet",
    "unwrap",
    "build_model",
    "load_weights",
    "set_backbone_trainable",
]

#: Per-channel RGB mean and standard deviation of ImageNet, on [0, 1] pixels
#: (torchvision's pretrained ResNets were trained on inputs normalised by them).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _imagenet_buffer(values: tuple[float, float, float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)


class GalaxyNet(nn.Module):
    """A torchvision ResNet backbone with a linear head for one of our tasks.

    The buffers ``mean`` and ``std`` (shape (1, 3, 1, 1), ImageNet values) are
    part of the state dict, so a checkpoint carries its input normalisation.
    A state dict without them (checkpoint version 1, from before the network
    normalised its own input) loads with the ImageNet values those models
    were trained with.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        from galaxy_ray.tv import torchvision

        task = spec.task_of
        self.task = spec.task
        backbone = getattr(torchvision.models, spec.arch)(weights=None)
        features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(features, spec.num_outputs)
        #: what the task puts between the linear head and the training outputs (tree fractions, concentrations)
        self.activation = task.activation(spec)
        self.read = task.probabilities
        #: votes: each question's (start, stop) in the output order (for expected fractions)
        self.question_slices = task.question_slices(spec)
        self.register_buffer("mean", _imagenet_buffer(IMAGENET_MEAN))
        self.register_buffer("std", _imagenet_buffer(IMAGENET_STD))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        for name, values in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            state_dict.setdefault(prefix + name, _imagenet_buffer(values))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (N, 3, H, W), uint8 in [0, 255] or float in [0, 1] -> float32 ``(x - mean) / std``."""
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.to(self.mean.dtype)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training outputs, (N, K): tree-consistent fractions (gz2), Dirichlet concentrations (votes),
        class logits (classes) or the values themselves (regression)."""
        out = self.head(self.backbone(self.normalise(x)))
        return self.activation(out) if self.activation is not None else out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs a catalog reads, (N, K) float32 (the task's :meth:`~galaxy_ray.tasks.Task.probabilities`):
        cumulative vote fractions (gz2), expected conditional vote fractions (votes), softmax class
        probabilities (classes)."""
        return self.read(self, self.forward(x).float())

    def expected_fractions(self, concentrations: torch.Tensor) -> torch.Tensor:
        """Dirichlet means per question, alpha_k / sum of alpha over k's question, (N, K) float32.

        The torch twin of :func:`galaxy_ray.trees.dirichlet.expected_fractions`.
        """
        return torch.cat([a / a.sum(dim=1, keepdim=True)
                          for a in (concentrations[:, start:stop] for start, stop in self.question_slices)], dim=1)


def unwrap(model: nn.Module) -> GalaxyNet:
    """The :class:`GalaxyNet` inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the backbone (the head always trains)."""
    for p in unwrap(model).backbone.parameters():
        p.requires_grad_(trainable)


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    from galaxy_ray.tv import torchvision

    weights = getattr(torchvision.models, ARCHS[arch]).IMAGENET1K_V1
    try:
        # torch.hub announces the download on stderr; an offline failure should stay one line.
        with contextlib.redirect_stderr(io.StringIO()):
            return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "not reachable"
        raise GalaxyRayError(
            f"--weights imagenet: cannot download torchvision's {arch} ImageNet weights ({one_line(exc)}); "
            f"without internet, copy {weights.url} into $TORCH_HOME/hub/checkpoints or pass --weights PATH or none"
        ) from None


def _file_state(net: GalaxyNet, weights: str, spec: ModelSpec) -> dict[str, Any]:
    """Backbone state from a file; loads the head of a checkpoint with a matching head on the way."""
    try:
        uri = layout.checkpoint_file(weights)
    except GalaxyRayError:
        raise GalaxyRayError(f"--weights {weights}: no such file; give a model.pt, a run directory "
                             "or a torchvision state dict") from None
    obj = read_torch(uri)
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj["spec"]["arch"] != spec.arch:
            raise GalaxyRayError(f"--weights {weights}: a {obj['spec']['arch']} checkpoint, not {spec.arch}; "
                                 f"pass --arch {obj['spec']['arch']}")
        state = obj["model_state"]
        head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
        if all(head.get(k) is not None and head[k].shape == v.shape for k, v in net.head.state_dict().items()):
            net.head.load_state_dict(head)
        return {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise GalaxyRayError(f"--weights {weights}: neither a galaxy-ray checkpoint nor a torchvision state dict")


def load_weights(model: nn.Module, weights: str | None, spec: ModelSpec) -> None:
    """Load starting weights into ``model``.

    Parameters
    ----------
    weights : str or None
        ``none``, ``imagenet``, ``hf-hub:OWNER/NAME`` (or ``hf_hub:``), or a
        path/URI to a torchvision ResNet state dict or to one of our
        checkpoints (file or run directory).  Backbone weights always load; a
        head loads too when its shape matches (same task and outputs).

    Notes
    -----
    ``hf-hub:OWNER/NAME`` starts from a timm ResNet encoder on the Hugging Face
    hub, such as Zoobot's ``hf-hub:mwalmsley/zoobot-encoder-resnet18`` (``--arch
    resnet18``) or ``-resnet50``: its ``config.json`` must name ``spec.arch``,
    and its ``model.safetensors`` (or ``pytorch_model.bin``) loads into the
    torchvision backbone without timm (the names match; see
    :mod:`galaxy_ray.model.hub`).  The files come from the hub when it is
    reachable and from the Hugging Face cache (``HF_HUB_CACHE``, default
    ``~/.cache/huggingface/hub``) when it is not or ``HF_HUB_OFFLINE=1``.

    Raises
    ------
    GalaxyRayError
        Missing or unreadable file, hub files neither reachable nor cached,
        another architecture, or weights that do not fit the backbone.
    """
    net = unwrap(model)
    if weights in (None, "", "none"):
        return
    if is_hub_weights(weights):
        state = hub_state(weights, spec.arch, net.backbone.state_dict())
    else:
        state = _imagenet_state(spec.arch) if weights == "imagenet" else _file_state(net, weights, spec)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if state and all(k.startswith("backbone.") for k in state):
        state = {k[len("backbone."):]: v for k, v in state.items()}
    own = net.backbone.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    if bad or len(missing) > 0.1 * len(own):
        raise GalaxyRayError(f"--weights {weights}: does not fit a {spec.arch} backbone "
                             f"({len(bad)} tensors of the wrong shape, {len(missing)} missing); check --arch")
    net.backbone.load_state_dict(state, strict=False)


def build_model(spec: ModelSpec, weights: str | None = "none") -> GalaxyNet:
    """A :class:`GalaxyNet` for ``spec`` with the given starting weights (see :func:`load_weights`)."""
    model = GalaxyNet(spec)
    load_weights(model, weights, spec)
    return model
