"""What a model is: architecture, task, outputs and the preprocessing it was trained with.

Three tasks share one network shape, a torchvision ResNet whose ``fc`` layer is
replaced by a linear head:

``gz2``
    37 outputs in Kaggle order: cumulative GZ2 vote fractions that obey the
    decision tree's sums (see :class:`galaxy_ray.model.nets.GZ2TreeHead`).
``votes``
    One Dirichlet concentration per answer of a Galaxy Zoo tree (``tree``: ``gz2``,
    ``decals-dr5``, ``decals-dr8``), trained on vote counts with the Dirichlet-multinomial
    likelihood (Walmsley et al. 2022, MNRAS 509, 3966); read as expected *conditional* vote
    fractions (see :class:`galaxy_ray.model.nets.ConcentrationHead`).
``classes``
    K class logits, read as probabilities by softmax.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from galaxy_ray import schema, tasks
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.tasks.gz2 import GZ2Task
from galaxy_ray.tasks.votes import VotesTask

__all__ = ["ARCHS", "TASKS", "ModelSpec", "check_spec_dict"]

#: Supported torchvision architectures -> name of their ImageNet weights enum.
ARCHS: dict[str, str] = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}
TASKS = tasks.TASKS


#: What a stored spec's damage means, and what to do (the end of every refusal of a stored spec).
DAMAGED = ("a damaged checkpoint, or one not written by `galaxy-ray train`; retrain, or use the model.pt a "
           "training run published")


def described(value: Any) -> str:
    """A stored value as a refusal shows it: its repr, cut at 60 characters, and its type in words.

    The repr is bounded before it is built (:mod:`reprlib`): a pickle, like YAML,
    can share one list many times over, and a full repr of it would not fit in memory.
    """
    import reprlib

    short = reprlib.Repr()  # Python 3.11's takes no keywords
    short.maxlevel, short.maxstring, short.maxother = 3, 50, 50
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    kind = ("null" if value is None else "a boolean" if isinstance(value, bool) else "a mapping"
            if isinstance(value, Mapping) else f"a {type(value).__name__}")
    text = short.repr(value)
    text = f"{text[:57]}..." if len(text) > 60 else text
    return text if value is None else f"{text} ({kind})"


def _refuse(where: str, key: str, value: Any, expected: str) -> GalaxyRayError:
    return GalaxyRayError(f"{where}: key '{key}' is {described(value)}; expected {expected}: {DAMAGED}")


def _is_whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_preprocess(d: Any, where: str) -> None:
    if not isinstance(d, Mapping):
        raise _refuse(where, "preprocess", d, "a mapping with image_size (whole pixels) and crop_fraction")
    if "image_size" not in d:
        raise GalaxyRayError(f"{where}: key 'preprocess' is {described(dict(d))} without image_size; expected "
                             f"a mapping with image_size (whole pixels) and crop_fraction: {DAMAGED}")
    if not _is_whole(d["image_size"]):
        raise _refuse(where, "preprocess.image_size", d["image_size"], "a whole number of pixels")
    if "crop_fraction" in d and not _is_number(d["crop_fraction"]):
        raise _refuse(where, "preprocess.crop_fraction", d["crop_fraction"], "a number between 0.1 and 1")


def _check_calibration(d: Any, where: str) -> None:
    if d is None:
        return
    if not isinstance(d, Mapping):
        raise _refuse(where, "calibration", d, "a mapping of the fitted maps (probabilities, merger) or null")
    for part in ("probabilities", "merger"):
        if d.get(part) is not None and not isinstance(d[part], Mapping):
            raise _refuse(where, f"calibration.{part}", d[part], "a mapping (a fitted map's method and "
                                                                  "parameters) or null")


def check_spec_dict(d: Any, where: str = "model spec") -> None:
    """Refuse a stored spec whose keys are missing or of the wrong type, in one line naming the key.

    Stored specs come from files (checkpoints); a value of the wrong type would
    otherwise fail deep inside the code that uses it, as a traceback.  Keys this
    function does not know are left alone (a newer field is checked where it is read).

    Parameters
    ----------
    d : Any
        The stored spec (:meth:`ModelSpec.to_dict`'s form).
    where : str
        What holds it, for the message (``"<checkpoint>: model spec"``).

    Raises
    ------
    GalaxyRayError
        ``d`` is not a mapping, lacks ``arch``, ``task``, ``output_names`` or
        ``preprocess``, or holds a key of the wrong type: the message names the
        key, its value and the type expected.
    """
    if not isinstance(d, Mapping):
        raise GalaxyRayError(f"{where}: is {described(d)}; expected a mapping of arch, task, output_names, "
                             f"preprocess, ...: {DAMAGED}")
    missing = [key for key in ("arch", "task", "output_names", "preprocess") if key not in d]
    if missing:
        raise GalaxyRayError(f"{where} without {', '.join(missing)}: {DAMAGED}")
    for key, expected in (("arch", f"a string, one of {', '.join(ARCHS)}"),
                          ("task", f"a string, one of {', '.join(TASKS)}")):
        if not isinstance(d[key], str):
            raise _refuse(where, key, d[key], expected)
    names = d["output_names"]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise _refuse(where, "output_names", names, "a list of strings (the outputs' names, in order)")
    _check_preprocess(d["preprocess"], where)
    for key in ("merger", "tree"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise _refuse(where, key, d[key], "a string or null")
    _check_calibration(d.get("calibration"), where)


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model and read its outputs.

    Attributes
    ----------
    arch : str
        ``resnet18``, ``resnet34`` or ``resnet50``.
    task : str
        ``gz2`` (37 tree-consistent vote fractions), ``votes`` (Dirichlet concentrations
        over a tree's answers) or ``classes``.
    output_names : list of str
        The 37 Kaggle column names (``Class1.1`` ...), the tree's answer names
        (``{question}_{answer}``, votes) or the class names.
    preprocess : PreprocessConfig
        How cutouts become this model's input (image size, crop, the stored
        side packed shards must have).  Stored dicts become one in
        :meth:`from_dict`, the one converter.
    merger : str or None
        What the merger probability is: ``"Class8.6"`` for gz2, a class name
        for classes (None when no class is a merger).
    calibration : dict or None
        Maps fitted on the validation split at the end of training
        (:mod:`galaxy_ray.merger.calibration`): ``probabilities`` (temperature
        scaling of class probabilities, or None) and ``merger`` (a map of the
        merger output to ``p_merger``: Platt, beta or shrunk isotonic; isotonic in
        older checkpoints; or None).  None: outputs as the
        network gives them.
    tree : str or None
        votes: the Galaxy Zoo tree (:func:`galaxy_ray.trees.get_schema` name); None otherwise.

    Raises
    ------
    GalaxyRayError
        Unknown architecture, task or tree, wrong gz2 or votes outputs, fewer
        than 2 or repeated class names, or a merger that is not an output.
    """

    arch: str
    task: str
    output_names: list[str]
    preprocess: PreprocessConfig = field(default_factory=lambda: PreprocessConfig(64))
    merger: str | None = None
    calibration: dict[str, Any] | None = None
    tree: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise GalaxyRayError(f"--arch {self.arch!r}: unknown architecture; one of {', '.join(ARCHS)}")
        task = tasks.get(self.task)
        self.output_names = [str(n) for n in self.output_names]
        if not isinstance(self.preprocess, PreprocessConfig):
            raise GalaxyRayError(f"preprocess {self.preprocess!r}: a PreprocessConfig (stored dicts: ModelSpec.from_dict)")
        task.check_spec(self)
        if len(set(self.output_names)) != len(self.output_names):
            raise GalaxyRayError(f"class names repeat: {self.output_names}")
        if self.merger is not None and self.merger not in self.output_names:
            raise GalaxyRayError(f"--merger {self.merger!r}: not one of the outputs {self.output_names}")

    @classmethod
    def for_gz2(cls, arch: str, preprocess: PreprocessConfig, merger: str | None = None) -> "ModelSpec":
        """A gz2 spec: the 37 Kaggle outputs, merger ``Class8.6`` unless given."""
        return cls(arch, GZ2Task.name, list(schema.GZ2_KAGGLE_COLUMNS), preprocess, merger)

    @classmethod
    def for_votes(cls, arch: str, tree: str, preprocess: PreprocessConfig, merger: str | None = None) -> "ModelSpec":
        """A votes spec: one concentration per answer of ``tree``; merger the tree's merger answer unless given."""
        from galaxy_ray.trees import get_schema

        answers = get_schema(tree).answer_names
        return cls(arch, VotesTask.name, list(answers), preprocess, merger, tree=get_schema(tree).name)

    @property
    def task_of(self) -> tasks.Task:
        """The :class:`~galaxy_ray.tasks.Task` this spec's ``task`` names."""
        return tasks.get(self.task)

    @property
    def schema_tree(self):
        """The :class:`~galaxy_ray.trees.Schema` of a vote model's ``tree`` (None without one).

        Raises
        ------
        GalaxyRayError
            An unknown tree name.
        """
        if self.tree is None:
            return None
        from galaxy_ray.trees import get_schema

        return get_schema(self.tree)

    def to_dict(self) -> dict[str, Any]:
        """Plain strings, numbers and lists (stored in checkpoints and JSON)."""
        return {
            "arch": self.arch,
            "task": self.task,
            "output_names": list(self.output_names),
            "preprocess": self.preprocess.to_dict(),
            "merger": self.merger,
            "calibration": self.calibration,
            "tree": self.tree,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """Inverse of :meth:`to_dict`, and the one converter of stored specs (old checkpoints' too).

        Raises
        ------
        GalaxyRayError
            ``d`` lacks one of ``arch``, ``task``, ``output_names``, ``preprocess``,
            or holds a key of the wrong type (:func:`check_spec_dict`).
        """
        check_spec_dict(d)
        return cls(d["arch"], d["task"], list(d["output_names"]), PreprocessConfig.from_dict(d["preprocess"]),
                   d.get("merger"), d.get("calibration"), d.get("tree"))

    @property
    def num_outputs(self) -> int:
        """Number of model outputs (37 for gz2, the tree's answers for votes, the number of classes otherwise)."""
        return len(self.output_names)
