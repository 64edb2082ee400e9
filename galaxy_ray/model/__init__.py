"""The model: ResNet backbones with GZ2 decision-tree or class heads, losses, checkpoints, prediction.

``spec``
    :class:`ModelSpec`: architecture, task, outputs, preprocessing.
``nets``
    :class:`GalaxyNet` (normalises its own uint8 or [0, 1] input), the GZ2 tree head,
    starting weights.
``losses``
    The training loss of each task.
``checkpoint``
    Saving and loading ``model.pt``.
``outputs``
    Catalog columns, merger probability, morphology label from probabilities, spread over views.
``predict``
    :class:`Predictor`, the one way pixels become probabilities.
"""

from galaxy_ray.io.layout import MODEL as CHECKPOINT_NAME
from galaxy_ray.model.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    checkpoint_bytes,
    checkpoint_spec,
    load_checkpoint,
    save_checkpoint,
)
from galaxy_ray.model.losses import loss_function
from galaxy_ray.model.nets import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    GalaxyNet,
    GZ2TreeHead,
    build_model,
    load_weights,
    set_backbone_trainable,
)
from galaxy_ray.model.outputs import (merger_index, merger_probability, morphology, morphology_probability,
                                      output_columns, view_spread)
from galaxy_ray.model.predict import Predictor, dihedral_predict, dihedral_views, predict_numpy
from galaxy_ray.model.spec import ARCHS, TASKS, ModelSpec

__all__ = [
    "ARCHS",
    "TASKS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CHECKPOINT_VERSION",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModelSpec",
    "GZ2TreeHead",
    "GalaxyNet",
    "build_model",
    "load_weights",
    "set_backbone_trainable",
    "loss_function",
    "checkpoint_bytes",
    "save_checkpoint",
    "checkpoint_spec",
    "load_checkpoint",
    "output_columns",
    "merger_index",
    "merger_probability",
    "morphology",
    "morphology_probability",
    "view_spread",
    "Predictor",
    "dihedral_predict",
    "dihedral_views",
    "predict_numpy",
]
