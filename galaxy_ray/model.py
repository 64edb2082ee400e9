"""ResNet backbones, the GZ2 decision-tree head, the classes head, losses and checkpoints.

Two tasks share one network shape, a torchvision ResNet whose ``fc`` layer is
replaced by a linear head:

``gz2``
    37 outputs in Kaggle order.  The head normalises each question's answers
    with a softmax and multiplies them by the value of the answer that leads to
    the question (Dieleman et al. 2015, the Kaggle Galaxy Challenge winner), so
    the outputs are cumulative vote fractions that obey the tree's sums by
    construction.  Trained with MSE against the cumulative fractions; RMSE is
    the reported metric, as in the challenge.
``classes``
    K class logits; cross-entropy with optional class weights and label
    smoothing; probabilities by softmax.

``model(x)`` gives the training outputs (tree fractions or logits),
``model.predict(x)`` probabilities (tree fractions or softmax).
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from galaxy_ray import schema
from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError

__all__ = [
    "ARCHS",
    "TASKS",
    "CHECKPOINT_FORMAT",
    "ModelSpec",
    "GZ2TreeHead",
    "GalaxyNet",
    "build_model",
    "load_weights",
    "set_backbone_trainable",
    "loss_function",
    "save_checkpoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "output_columns",
    "merger_index",
    "merger_probability",
    "morphology",
    "predict_numpy",
    "dihedral_predict",
]

#: Supported torchvision architectures -> name of their ImageNet weights enum.
ARCHS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}
TASKS = ("gz2", "classes")
CHECKPOINT_FORMAT = "galaxy-ray-checkpoint"
CHECKPOINT_VERSION = 1
#: File name of our checkpoint inside a directory (run directory or Ray Train checkpoint).
CHECKPOINT_NAME = "model.pt"


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model and read its outputs.

    Attributes
    ----------
    arch : str
        ``resnet18``, ``resnet34`` or ``resnet50``.
    task : str
        ``gz2`` (37 tree-consistent vote fractions) or ``classes``.
    output_names : list of str
        The 37 Kaggle column names (``Class1.1`` ...) or the class names.
    preprocess : dict
        :class:`galaxy_ray.data.preprocess.PreprocessConfig` as a dict.
    merger : str or None
        What the merger probability is: ``"Class8.6"`` for gz2, a class name
        for classes (None when no class is a merger).
    """

    arch: str
    task: str
    output_names: list[str]
    preprocess: dict[str, Any] = field(default_factory=lambda: {"image_size": 64, "crop_fraction": 1.0})
    merger: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise GalaxyRayError(f"--arch {self.arch!r}: unknown architecture; one of {', '.join(ARCHS)}")
        if self.task not in TASKS:
            raise GalaxyRayError(f"--task {self.task!r}: unknown task; one of {', '.join(TASKS)}")
        self.output_names = [str(n) for n in self.output_names]
        if self.task == "gz2":
            if tuple(self.output_names) != schema.GZ2_KAGGLE_COLUMNS:
                raise GalaxyRayError("gz2 models have the 37 Kaggle outputs Class1.1 ... Class11.6, in order")
            if self.merger is None:
                self.merger = schema.GZ2_KAGGLE_COLUMNS[schema.GZ2_MERGER_INDEX]
        elif len(self.output_names) < 2:
            raise GalaxyRayError(f"classes task needs at least 2 classes, got {self.output_names}")
        if len(set(self.output_names)) != len(self.output_names):
            raise GalaxyRayError(f"class names repeat: {self.output_names}")
        if self.merger is not None and self.merger not in self.output_names:
            raise GalaxyRayError(f"--merger {self.merger!r}: not one of the outputs {self.output_names}")

    @classmethod
    def for_gz2(cls, arch: str, preprocess: Mapping[str, Any], merger: str | None = None) -> "ModelSpec":
        return cls(arch, "gz2", list(schema.GZ2_KAGGLE_COLUMNS), dict(preprocess), merger)

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "task": self.task,
            "output_names": list(self.output_names),
            "preprocess": dict(self.preprocess),
            "merger": self.merger,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        return cls(d["arch"], d["task"], list(d["output_names"]), dict(d["preprocess"]), d.get("merger"))

    @property
    def num_outputs(self) -> int:
        return len(self.output_names)


# --------------------------------------------------------------------------- network


class GZ2TreeHead(nn.Module):
    """37 logits -> cumulative GZ2 vote fractions consistent with the decision tree.

    Each question's answers go through a softmax (they sum to 1) and are then
    multiplied by the cumulative value of the parent answer, so every
    question's answers sum exactly to the value that leads to it.
    """

    def __init__(self) -> None:
        super().__init__()
        # Each question's answers are contiguous in Kaggle order, and questions
        # come parent-first in schema.GZ2_QUESTIONS, so one pass fills the tree.
        self._groups = [(q.indices[0], q.indices[-1] + 1, q.parent) for q in schema.GZ2_QUESTIONS]
        for q, (start, stop, _) in zip(schema.GZ2_QUESTIONS, self._groups):
            assert q.indices == list(range(start, stop))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()  # the tree's products run in float32 even under bf16 autocast
        out = [None] * logits.shape[1]
        for start, stop, parent in self._groups:
            probs = torch.softmax(logits[:, start:stop], dim=1)
            if parent is not None:
                probs = probs * out[parent]
            for k in range(start, stop):
                out[k] = probs[:, k - start : k - start + 1]
        return torch.cat(out, dim=1)


class GalaxyNet(nn.Module):
    """A torchvision ResNet backbone with a linear head for one of our tasks."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        from galaxy_ray.tv import torchvision

        self.task = spec.task
        backbone = getattr(torchvision.models, spec.arch)(weights=None)
        features = backbone.fc.in_features
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(features, spec.num_outputs)
        self.tree = GZ2TreeHead() if spec.task == "gz2" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training outputs: tree-consistent fractions (gz2) or class logits (classes)."""
        out = self.head(self.backbone(x))
        return self.tree(out) if self.tree is not None else out

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities: vote fractions (gz2) or softmax class probabilities."""
        out = self.forward(x)
        return out.float() if self.tree is not None else torch.softmax(out.float(), dim=1)


def _unwrap(model: nn.Module) -> GalaxyNet:
    return model.module if hasattr(model, "module") else model  # DistributedDataParallel


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze the backbone (the head always trains)."""
    for p in _unwrap(model).backbone.parameters():
        p.requires_grad_(trainable)


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    from galaxy_ray.tv import torchvision

    weights = getattr(torchvision.models, ARCHS[arch]).IMAGENET1K_V1
    try:
        # torch.hub announces the download on stderr; an offline failure should stay one line.
        with contextlib.redirect_stderr(io.StringIO()):
            return weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, socket errors, HTTP errors: all mean "not reachable"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GalaxyRayError(
            f"--weights imagenet: cannot download torchvision's {arch} ImageNet weights ({reason}); "
            f"without internet, copy {weights.url} into $TORCH_HOME/hub/checkpoints or pass --weights PATH or none"
        ) from None


def _read_torch(uri: str) -> Any:
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: no such file; check the path") from None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise GalaxyRayError(f"{uri}: not a PyTorch checkpoint this program can load safely ({reason[:200]})") from None


def _resolve_checkpoint_uri(uri: str) -> str:
    uri = str(uri)
    if not uri.endswith((".pt", ".pth")) and storage.isdir(uri):
        return storage.join(uri, CHECKPOINT_NAME)
    return uri


def load_weights(model: nn.Module, weights: str, spec: ModelSpec) -> None:
    """Load starting weights into ``model``.

    Parameters
    ----------
    weights : str
        ``none``, ``imagenet``, or a path/URI to a torchvision ResNet state dict
        or to one of our checkpoints.  Backbone weights always load; a head
        loads too when its shape matches (same task and outputs).
    """
    net = _unwrap(model)
    if weights in (None, "", "none"):
        return
    if weights == "imagenet":
        state = _imagenet_state(spec.arch)
    else:
        uri = _resolve_checkpoint_uri(weights)
        obj = _read_torch(uri)
        if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
            if obj["spec"]["arch"] != spec.arch:
                raise GalaxyRayError(f"--weights {weights}: a {obj['spec']['arch']} checkpoint, not {spec.arch}; pass --arch {obj['spec']['arch']}")
            state = obj["model_state"]
            head = {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")}
            if all(head.get(k) is not None and head[k].shape == v.shape for k, v in net.head.state_dict().items()):
                net.head.load_state_dict(head)
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            state = obj
        else:
            raise GalaxyRayError(f"--weights {weights}: neither a galaxy-ray checkpoint nor a torchvision state dict")
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


def build_model(spec: ModelSpec, weights: str = "none") -> GalaxyNet:
    """A :class:`GalaxyNet` for ``spec`` with the given starting weights (see :func:`load_weights`)."""
    model = GalaxyNet(spec)
    load_weights(model, weights, spec)
    return model


# --------------------------------------------------------------------------- losses


def loss_function(
    spec: ModelSpec, class_weights: Sequence[float] | None = None, label_smoothing: float = 0.0
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss of a task: ``loss(model(x), target)``.

    gz2: mean squared error between predicted and true cumulative fractions
    (targets float (N, 37)).  classes: cross-entropy on class indices (targets
    int64 (N,)) with optional per-class weights and label smoothing.
    """
    if spec.task == "gz2":
        return lambda out, target: nn.functional.mse_loss(out.float(), target.float())
    if not 0.0 <= label_smoothing < 1.0:
        raise GalaxyRayError(f"--label-smoothing {label_smoothing}: must be in [0, 1)")
    weight = None
    if class_weights is not None:
        if len(class_weights) != spec.num_outputs:
            raise GalaxyRayError(f"--class-weights: {len(class_weights)} values for {spec.num_outputs} classes")
        weight = torch.tensor(list(class_weights), dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weight, label_smoothing=float(label_smoothing))

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if ce.weight is not None and ce.weight.device != out.device:
            ce.to(out.device)
        return ce(out.float(), target.long())

    return loss


# --------------------------------------------------------------------------- checkpoints


def checkpoint_bytes(model: nn.Module, spec: ModelSpec, extra: Mapping[str, Any] | None = None) -> bytes:
    """Our checkpoint format as bytes: plain tensors, strings and numbers only."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in _unwrap(model).state_dict().items()}
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
    """Write a checkpoint (a ``.pt`` file, or ``model.pt`` in a directory); returns its URI."""
    uri = str(path_or_dir)
    if not uri.endswith((".pt", ".pth")):
        uri = storage.join(uri, CHECKPOINT_NAME)
    storage.write_bytes_atomic(uri, checkpoint_bytes(model, spec, extra))
    return uri


def load_checkpoint(uri: str | os.PathLike, map_location: str | torch.device = "cpu",
                    with_extra: bool = False) -> tuple:
    """Load one of our checkpoints (file, or a directory holding ``model.pt``).

    Returns
    -------
    (model, spec), or (model, spec, extra) with ``with_extra``
        The model is in eval mode on ``map_location``.

    Raises
    ------
    GalaxyRayError
        Missing file, or a file that is not a galaxy-ray checkpoint.
    """
    uri = _resolve_checkpoint_uri(str(uri))
    obj = _read_torch(uri)
    if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT and "model_state" in obj):
        raise GalaxyRayError(f"{uri}: not a galaxy-ray checkpoint (expected model.pt written by `galaxy-ray train`)")
    if int(obj.get("version", 0)) > CHECKPOINT_VERSION:
        raise GalaxyRayError(f"{uri}: checkpoint version {obj['version']} is newer than this galaxy-ray; upgrade it")
    spec = ModelSpec.from_dict(obj["spec"])
    model = GalaxyNet(spec)
    try:
        model.load_state_dict(obj["model_state"])
    except RuntimeError as exc:
        raise GalaxyRayError(f"{uri}: weights do not match its {spec.arch} spec ({str(exc).splitlines()[0]})") from None
    model.to(map_location).eval()
    return (model, spec, obj.get("extra", {})) if with_extra else (model, spec)


# --------------------------------------------------------------------------- outputs


def output_columns(spec: ModelSpec) -> list[str]:
    """Catalog column names of the model's outputs, in output order."""
    if spec.task == "gz2":
        return list(schema.GZ2_ANSWER_COLUMNS)
    return [schema.class_column(name) for name in spec.output_names]


def merger_index(spec: ModelSpec) -> int | None:
    """Index of the merger output, or None when the model has none."""
    return None if spec.merger is None else spec.output_names.index(spec.merger)


def merger_probability(spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
    """Merger probability per row (NaN when the model has no merger output)."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
    index = merger_index(spec)
    if index is None:
        return np.full(len(probs), np.nan, dtype=np.float32)
    return probs[:, index].astype(np.float32)


def morphology(spec: ModelSpec, probs: np.ndarray) -> np.ndarray:
    """The label a person would quote: GZ2 tree reading, or the most probable class."""
    probs = np.atleast_2d(np.asarray(probs, dtype=np.float32))
    if spec.task == "gz2":
        return schema.gz2_morphology(probs)
    names = np.asarray(spec.output_names, dtype=object)
    return names[np.argmax(probs, axis=1)]


def dihedral_predict(predict, x):
    """Average ``predict`` over the 8 rotations and flips (the dihedral group D4).

    Parameters
    ----------
    predict : callable
        Tensor (N, C, H, W) -> probabilities (N, K).
    x : torch.Tensor, shape (N, C, H, W), square images
    """
    total = None
    for flipped in (x, x.flip(-1)):
        for k in range(4):
            p = predict(flipped.rot90(k, dims=(-2, -1))).float()
            total = p if total is None else total + p
    return total / 8.0


def predict_numpy(model: nn.Module, pixels: np.ndarray, tta: bool = False) -> np.ndarray:
    """Probabilities for a batch of preprocessed pixels (N, 3, S, S), in eval mode.

    Runs on the model's device, in bf16 autocast and channels_last on a GPU;
    ``tta`` averages over the 8 rotations and flips (:func:`dihedral_predict`).
    Returns float32 (N, outputs).
    """
    net = _unwrap(model)
    net.eval()
    device = next(net.parameters()).device
    x = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).to(device, non_blocking=True)
    cuda = device.type == "cuda"
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        out = dihedral_predict(net.predict, x) if tta else net.predict(x)
    return out.float().cpu().numpy()
