"""Fine-tune a torchvision ResNet on galaxy cutouts with Ray Train (``galaxy-ray train``).

The flow, driver side (:mod:`~galaxy_ray.train.driver`):

1. read the source as a Ray Dataset; one light pass over ``object_id`` and the
   label column gives the class list, the training mean (the baseline) and the
   split sizes (:mod:`~galaxy_ray.train.data`);
2. split by a stable hash of ``object_id`` (:class:`galaxy_ray.data.split.Split`,
   stored in every checkpoint): the same galaxies are in validation on every
   run and every machine, and ``galaxy-ray evaluate`` knows which they are;
3. decode in CPU ``map_batches`` stages; training cutouts are augmented on the
   worker, seeded by (``--seed``, epoch, object id); cutouts packed at the
   model's size (``galaxy-ray pack --image-size``) are used as stored, and a
   model of another size is refused before anything trains;
4. ``--workers auto`` sizes the run to the cluster (:mod:`~galaxy_ray.train.scaling`:
   one worker per GPU, or one single-threaded worker per 2 CPUs);
   a :class:`ray.train.torch.TorchTrainer` runs
   :func:`~galaxy_ray.train.loop.train_loop_per_worker` on every worker;
5. the best checkpoint becomes ``<storage>/<name>/model.pt`` next to
   ``metrics.csv``, ``curves.png``, ``config.json``, the evaluation report and
   ``validation_predictions.parquet``.

Rerunning with the same ``--name`` and ``--storage`` resumes from the last
checkpoint, and a worker that dies is replaced and the run recovers by itself.
"""

from galaxy_ray.data.split import split_of
from galaxy_ray.train.config import TrainConfig, build_parser, config_from_args, validate
from galaxy_ray.train.data import augment_batch, build_datasets, prepare_training_batch, summarize_labels
from galaxy_ray.train.driver import RunPlan, main, make_trainer, plan_run, run_training
from galaxy_ray.train.loop import recompute_batchnorm, train_loop_per_worker
from galaxy_ray.train.scaling import WorkerLayout, auto_layout, worker_layout

__all__ = [
    "RunPlan",
    "TrainConfig",
    "WorkerLayout",
    "auto_layout",
    "augment_batch",
    "build_datasets",
    "build_parser",
    "config_from_args",
    "main",
    "make_trainer",
    "plan_run",
    "prepare_training_batch",
    "recompute_batchnorm",
    "run_training",
    "split_of",
    "summarize_labels",
    "train_loop_per_worker",
    "validate",
    "worker_layout",
]
