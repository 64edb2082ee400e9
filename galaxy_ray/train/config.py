"""The options of a training run: :class:`TrainConfig`, the ``galaxy-ray train`` flags, and ``--config`` files."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from galaxy_ray import runtime, schema, tasks
from galaxy_ray.data.split import Split
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.io import storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.merger.truth import MERGER_VOTE_CUT
from galaxy_ray.train.cache import CACHE_CHOICES
from galaxy_ray.train.scaling import AUTO, parse_workers
from galaxy_ray.train.yaml_bounds import bounded_yaml

__all__ = ["TrainConfig", "build_parser", "check_types", "coerce_option", "config_from_args", "load_config_file",
           "validate"]

#: Keys a ``--config`` file may use for an option whose flag was renamed.
CONFIG_ALIASES = {"use_gpu": "gpu"}
#: Largest ``--config`` file read, bytes (a file of options is a few hundred).
MAX_CONFIG_BYTES = 1 << 20
#: Most values a ``--config`` file may hold once its YAML aliases are expanded (a "billion laughs" has 9**9).
MAX_CONFIG_VALUES = 10_000


@dataclass
class TrainConfig:
    """Every option of a training run (the flags of ``galaxy-ray train``)."""

    source: str = ""
    format: str | None = None
    task: str = tasks.DEFAULT_TASK
    schema: str | None = None
    label_column: str | None = None
    arch: str = "resnet18"
    weights: str = "none"
    image_size: int = 64
    crop_fraction: float = 1.0
    augment: str = "auto"
    epochs: int = 10
    freeze_epochs: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    finetune_lr_scale: float = 0.1
    weight_decay: float = 0.05
    schedule: str = "cosine"
    patience: int = 5
    workers: int | str = AUTO
    gpu: str = "auto"
    verbose: bool = False
    name: str | None = None
    storage: str = "runs"
    merger: str | None = None
    merger_threshold: float | str = "auto"
    merger_precision: float | None = None
    merger_vote_cut: float = MERGER_VOTE_CUT
    class_weights: str | None = None
    label_smoothing: float = 0.0
    val_fraction: float = 0.2
    seed: int = 0
    max_failures: int = 3
    keep_checkpoints: int = 3
    bn_samples: int = 1024
    votes: str = "fraction"
    cache: str = "auto"
    allow_outside_paths: bool = False

    @property
    def label(self) -> str:
        """The target column: ``votes`` (gz2), ``vote_counts`` (votes, assembled from the tree's
        count columns by :func:`galaxy_ray.data.vote_counts.attach_vote_counts`) or ``label``."""
        return tasks.get(self.task).label_column(self.label_column)

    @property
    def monitor(self) -> tuple[str, str]:
        """Validation metric that picks the best checkpoint and stops early, and its direction.

        Classes: balanced accuracy (mean per-class recall), not accuracy, which
        rewards predicting the majority class and on an imbalanced set keeps the
        epoch that never predicts the rare class.  Not macro-F1 either: F1 needs
        each class's precision, which for a class of a few validation galaxies
        swings with every stray false positive among thousands of others, and
        depends on the base rate; the merger flag's precision is set afterwards
        by its threshold, chosen on validation.  Votes: the validation
        Dirichlet-multinomial negative log-likelihood (``val_loss``), which weighs
        each galaxy by its number of votes.
        """
        return tasks.get(self.task).monitor

    @property
    def split(self) -> Split:
        """The train/validation split of this run (stored in its checkpoints)."""
        return Split(float(self.val_fraction))

    def resolved_freeze_epochs(self) -> int:
        if self.freeze_epochs is not None:
            return int(self.freeze_epochs)
        # A randomly initialised backbone has nothing worth protecting from the new head.
        return 0 if self.weights in ("none", "", None) else 1


def _at_least(value: Any, flag: str, kind=int, minimum: float = 1) -> Any:
    try:
        v = kind(value)
    except (TypeError, ValueError):
        raise GalaxyRayError(f"{flag} {value!r}: not a number") from None
    if v < minimum:
        raise GalaxyRayError(f"{flag} {value!r}: must be at least {minimum}")
    return v


def _threshold(value: Any) -> float | str:
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise GalaxyRayError(f"--merger-threshold {value!r}: 'auto' or a number between 0 and 1") from None
    if not 0.0 <= t <= 1.0:
        raise GalaxyRayError(f"--merger-threshold {value}: must be between 0 and 1")
    return t


def _kinds(name: str) -> set[str]:
    """The types an option's annotation allows (``"int | None"`` -> ``{"int", "None"}``)."""
    annotation = {f.name: f.type for f in fields(TrainConfig)}[name]
    return {part.strip() for part in str(annotation).split("|")}


def _expected(kinds: set[str]) -> str:
    words = {"int": "a whole number", "float": "a number", "str": "a string", "bool": "true or false"}
    allowed = [words[k] for k in ("int", "float", "str", "bool") if k in kinds]
    if "int" in kinds and "float" in kinds:
        allowed.remove("a whole number")
    return " or ".join(allowed + (["null"] if "None" in kinds else []))


def _from_text(text: str, kinds: set[str]) -> Any:
    """A number given as text (``"0.2"`` in YAML or JSON quotes), or None when it is not one."""
    for kind, parse in (("int", int), ("float", float)):
        if kind in kinds:
            try:
                return parse(text.strip())
            except ValueError:
                continue
    return None


def coerce_option(name: str, value: Any, where: str) -> Any:
    """``value`` as option ``name``'s type, or a one-line refusal naming the option, the value and the type.

    Whole numbers, numbers and strings are what the flags give; a ``--config``
    file or the API can hand in anything, and a list, a mapping or a boolean
    for a number (``val_fraction: [0.2]``, ``epochs: true``) would fail deep
    inside training, or silently count as 1.

    Parameters
    ----------
    name : str
        A :class:`TrainConfig` field.
    where : str
        The option as the message names it (``--val-fraction``, ``--config f.yaml: val_fraction``).

    Raises
    ------
    GalaxyRayError
        A value of a type the option does not take.
    """
    from galaxy_ray.model.spec import described  # bounded: a value can be an alias bomb's shared list

    kinds = _kinds(name)
    if value is None and "None" in kinds:
        return None
    if name == "gpu" and isinstance(value, bool):  # YAML reads `use_gpu: true` as a boolean
        return "yes" if value else "no"
    if name == "class_weights" and isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(str(v) for v in value)  # a YAML list of weights, in class order
    if isinstance(value, bool):
        if "bool" in kinds:
            return value
    elif isinstance(value, int) and ({"int", "float"} & kinds):
        return value if "int" in kinds else float(value)
    elif isinstance(value, float) and "float" in kinds:
        return value
    elif isinstance(value, float) and "int" in kinds and value.is_integer():
        return int(value)
    elif isinstance(value, (int, float)) and "str" in kinds:
        return str(value)  # name: 2024
    elif isinstance(value, str) and "str" in kinds:
        return value
    elif isinstance(value, str) and _from_text(value, kinds) is not None:
        return _from_text(value, kinds)
    raise GalaxyRayError(f"{where} {described(value)}: expected {_expected(kinds)}")


def check_types(cfg: TrainConfig) -> None:
    """Coerce every option of ``cfg`` to its type in place (:func:`coerce_option`, named by its flag)."""
    for f in fields(TrainConfig):
        setattr(cfg, f.name, coerce_option(f.name, getattr(cfg, f.name), "--" + f.name.replace("_", "-")))


def _check_ranges(cfg: TrainConfig) -> None:
    if not 0.0 < float(cfg.val_fraction) < 1.0:
        raise GalaxyRayError(f"--val-fraction {cfg.val_fraction}: must be between 0 and 1")
    cfg.merger_threshold = _threshold(cfg.merger_threshold)
    if cfg.merger_precision is not None and not 0.0 < float(cfg.merger_precision) <= 1.0:
        raise GalaxyRayError(f"--merger-precision {cfg.merger_precision}: must be in (0, 1]")
    if not 0.0 <= float(cfg.merger_vote_cut) < 1.0:
        raise GalaxyRayError(f"--merger-vote-cut {cfg.merger_vote_cut}: must be in [0, 1)")
    if not 0.0 <= float(cfg.label_smoothing) < 1.0:
        raise GalaxyRayError(f"--label-smoothing {cfg.label_smoothing}: must be in [0, 1)")
    if cfg.schedule not in ("cosine", "plateau"):
        raise GalaxyRayError(f"--schedule {cfg.schedule!r}: one of cosine, plateau")
    tasks.get(cfg.task).check_config(cfg)
    if cfg.schema is not None:
        from galaxy_ray.trees import get_schema

        cfg.schema = get_schema(cfg.schema).name
    if cfg.augment not in ("auto", "affine", "dihedral"):
        raise GalaxyRayError(f"--augment {cfg.augment!r}: one of auto, affine, dihedral")
    if cfg.votes not in ("fraction", "debiased"):
        raise GalaxyRayError(f"--votes {cfg.votes!r}: one of fraction, debiased")


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check and normalise every option in place; fill in the run name.

    Raises
    ------
    GalaxyRayError
        The first invalid option, in one line naming its flag.
    """
    from galaxy_ray.model import ARCHS, TASKS

    check_types(cfg)
    if not cfg.source:
        raise GalaxyRayError("--source is required: a path or s3:// URI of labelled cutouts")
    if cfg.task not in TASKS:
        raise GalaxyRayError(f"--task {cfg.task!r}: unknown task; one of {', '.join(TASKS)}")
    tasks.get(cfg.task).label_column(cfg.label_column)  # a task without a default label column needs the flag
    if cfg.arch not in ARCHS:
        raise GalaxyRayError(f"--arch {cfg.arch!r}: unknown architecture; one of {', '.join(ARCHS)}")
    cfg.epochs = _at_least(cfg.epochs, "--epochs")
    cfg.batch_size = _at_least(cfg.batch_size, "--batch-size")
    cfg.workers = parse_workers(cfg.workers)
    cfg.lr = _at_least(cfg.lr, "--lr", float, 1e-12)
    if cfg.freeze_epochs is not None:
        cfg.freeze_epochs = _at_least(cfg.freeze_epochs, "--freeze-epochs", int, 0)
    cfg.bn_samples = _at_least(cfg.bn_samples, "--bn-samples", int, 0)
    if cfg.cache not in CACHE_CHOICES:
        raise GalaxyRayError(f"--cache {cfg.cache!r}: one of {', '.join(CACHE_CHOICES)}")
    _check_ranges(cfg)
    runtime.resolve_gpu(cfg.gpu, cluster_gpus=1)  # a bad value from a --config file fails here, as a bad flag would
    PreprocessConfig(int(cfg.image_size), float(cfg.crop_fraction))  # validates both
    if not cfg.name:
        stem = Path(str(cfg.source).rstrip("/")).name.split(".")[0] or "source"
        cfg.name = f"{cfg.task}-{cfg.arch}-{schema.slugify(stem)}"
    if not storage.is_remote(cfg.storage):
        cfg.storage = str(Path(cfg.storage).expanduser().resolve())
    return cfg


def build_parser() -> argparse.ArgumentParser:
    D = TrainConfig()  # every default below is the dataclass's: one place to change it
    p = argparse.ArgumentParser(
        prog="galaxy-ray train",
        description="Fine-tune a ResNet on labelled galaxy cutouts with Ray Train (all workers of the cluster).",
    )
    p.add_argument("--config", help="YAML or JSON file of the same options (keys as below, - or _); flags override it")
    p.add_argument("--source", help="labelled cutouts: path or s3:// URI of any supported format")
    p.add_argument("--format", help="source format, when detection is not enough")
    p.add_argument("--task", help="; ".join(f"{t.name}: {t.summary}" for t in map(tasks.get, tasks.TASKS))
                   + f" (default {tasks.DEFAULT_TASK})")
    p.add_argument("--schema", help="votes: the tree, gz2, decals-dr5 or decals-dr8 (gz-desi); default: the tree "
                                    "whose vote-count columns the source has")
    p.add_argument("--label-column", help="target column(s) (default: votes for gz2, vote_counts for votes, label for "
                                          "classes; regression: required, COLUMN[,COLUMN...])")
    p.add_argument("--arch", help="resnet18 (default), resnet34 or resnet50")
    p.add_argument("--weights", help="starting weights: none (default), imagenet, hf-hub:OWNER/NAME (timm ResNet encoder, e.g. "
                   "hf-hub:mwalmsley/zoobot-encoder-resnet18; HF cache offline), or PATH (state dict / our checkpoint)")
    p.add_argument("--image-size", type=int, help=f"model input side in pixels (default {D.image_size})")
    p.add_argument("--crop-fraction", type=float, help=f"centre crop kept before resizing (default {D.crop_fraction})")
    p.add_argument("--augment",
                   help="training augmentation: auto (default: dihedral when --crop-fraction is 1, which leaves no "
                        "sky to fill rotated corners, else affine), affine (rotation by any angle, small shift and "
                        "zoom, flip, brightness) or dihedral (the 8 rotations by 90 degrees and flips, lossless)")
    p.add_argument("--epochs", type=int, help=f"total epochs (default {D.epochs})")
    p.add_argument("--freeze-epochs", type=int, help="epochs with a frozen backbone first (default 1 with pretrained weights, else 0)")
    p.add_argument("--batch-size", type=int,
                   help=f"per-worker batch size (default {D.batch_size}: from scratch on a few thousand galaxies, more optimizer "
                        "steps per epoch beat a bigger batch; raise it on GPUs and large sets)")
    p.add_argument("--lr", type=float, help=f"AdamW learning rate (default {D.lr:g}); the whole-network phase after a frozen one uses lr x --finetune-lr-scale")
    p.add_argument("--finetune-lr-scale", type=float, help=f"(default {D.finetune_lr_scale})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW weight decay (default {D.weight_decay})")
    p.add_argument("--schedule", help=f"cosine or plateau (default {D.schedule})")
    p.add_argument("--patience", type=int, help=f"early stopping: epochs without improvement (default {D.patience})")
    p.add_argument("--workers",
                   help="Ray Train workers: auto (default: one per GPU; on CPU clusters one single-threaded worker "
                        "per 2 CPUs of each node, the other half left to decoding) or a number (1 CPU each)")
    runtime.add_gpu_argument(p, "train on GPUs")
    runtime.add_verbose_argument(p)
    p.set_defaults(gpu=None, verbose=None)  # unset, so that a --config file's value is not overridden by the default
    p.add_argument("--name", help="run name; rerunning with the same name and storage resumes (default from task, arch, source)")
    p.add_argument("--storage", help="where runs live: local path or s3:// URI (default ./runs)")
    p.add_argument("--merger", help="what the merger probability is: Class8.6 for gz2 (default), a class name for classes")
    p.add_argument("--merger-threshold",
                   help="p_merger at or above which a galaxy is a merger: auto (default: chosen on the validation "
                        "split, F1-optimal) or a number")
    p.add_argument("--merger-precision", type=float,
                   help="with --merger-threshold auto: the lowest threshold whose validation precision reaches this")
    p.add_argument("--merger-vote-cut", type=float,
                   help="gz2: a validation galaxy is a true merger when its Class8.6 vote fraction exceeds this "
                        f"(default {D.merger_vote_cut}, the Galaxy Zoo merger cut of Darg et al. 2010)")
    p.add_argument("--class-weights", help="classes: 'balanced' or comma-separated weights in class order")
    p.add_argument("--label-smoothing", type=float, help=f"classes: cross-entropy label smoothing (default {D.label_smoothing})")
    p.add_argument("--val-fraction", type=float, help=f"fraction of galaxies held out for validation (default {D.val_fraction})")
    p.add_argument("--seed", type=int,
                   help=f"random seed of the model, the shuffles and the augmentation (default {D.seed}); with one worker "
                        "the same seed and data give the same metrics")
    p.add_argument("--max-failures", type=int, help=f"worker failures the run recovers from (default {D.max_failures})")
    p.add_argument("--keep-checkpoints", type=int, help=f"best checkpoints kept (default {D.keep_checkpoints})")
    p.add_argument("--bn-samples", type=int,
                   help="un-augmented training cutouts that re-estimate the BatchNorm statistics before each "
                        f"validation (default {D.bn_samples}; 0 keeps the running averages of augmented batches)")
    p.add_argument("--votes", help="gz2-catalog sources: fraction (default) or debiased")
    p.add_argument("--allow-outside-paths", action="store_true", default=None,
                   help="let a manifest name files outside its own folder (default: refused; only for a table "
                        "you trust)")
    p.add_argument("--cache",
                   help="keep the decoded, resized cutouts in Ray's object store after the first pass: auto "
                        "(default: when they need at most a quarter of it), yes or no (decode every epoch)")
    return p


def load_config_file(path: str) -> dict[str, Any]:
    """Options from a YAML or JSON file, keys as the flags (``-`` or ``_``).

    Memory stays bounded whatever the file holds: it is read only up to
    :data:`MAX_CONFIG_BYTES`, and YAML aliases may expand it to at most
    :data:`MAX_CONFIG_VALUES` values (:func:`galaxy_ray.train.yaml_bounds.bounded_yaml`).

    Raises
    ------
    GalaxyRayError
        Missing or oversized file, unparsable text, an alias bomb, not a mapping, an
        unknown option, or a value of the wrong type (naming the file and the key).
    """
    try:
        fs, local = storage.fsspec_filesystem(path)
        if fs.size(local) > MAX_CONFIG_BYTES:
            raise GalaxyRayError(f"--config {path}: larger than {MAX_CONFIG_BYTES >> 20} MiB; a file of options "
                                 "is a few hundred bytes: is it the right file?")
        text = storage.read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        raise GalaxyRayError(f"--config {path}: no such file") from None
    except UnicodeDecodeError:
        raise GalaxyRayError(f"--config {path}: not UTF-8 text; give a YAML or JSON file of options") from None
    try:
        data = json.loads(text) if path.endswith(".json") else bounded_yaml(text, f"--config {path}", MAX_CONFIG_VALUES)
    except GalaxyRayError:
        raise
    except Exception as exc:
        raise GalaxyRayError(f"--config {path}: not valid YAML/JSON ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise GalaxyRayError(f"--config {path}: expected a mapping of option: value")
    known = {f.name for f in fields(TrainConfig)}
    out = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        k = CONFIG_ALIASES.get(k, k)
        if k not in known:
            raise GalaxyRayError(f"--config {path}: unknown option {key!r}")
        out[k] = coerce_option(k, value, f"--config {path}: {key}")
    return out


def config_from_args(argv: Sequence[str] | None) -> TrainConfig:
    """Parse flags (over an optional ``--config`` file) into a validated :class:`TrainConfig`."""
    args = build_parser().parse_args(argv)
    values = load_config_file(args.config) if args.config else {}
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    return validate(TrainConfig(**values))
