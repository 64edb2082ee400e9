"""A validation split with no merger: training still ends, and its summary line says why the threshold is 0.5."""

from __future__ import annotations

import numpy as np

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.merger.truth import operating_summary
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.schema import GALAXY10_CLASSES, GALAXY10_MERGER_CLASS
from galaxy_ray.train.finalize import calibrate_and_choose


def test_a_split_without_mergers_keeps_half_and_says_so():
    classes = list(GALAXY10_CLASSES)
    spec = ModelSpec("resnet18", "classes", classes, PreprocessConfig(32), GALAXY10_MERGER_CLASS)
    rng = np.random.default_rng(0)
    labels = rng.choice([i for i, c in enumerate(classes) if c != GALAXY10_MERGER_CLASS], size=40)
    y_true = np.eye(len(classes), dtype=np.float32)[labels]
    y_raw = rng.dirichlet(np.ones(len(classes)), size=40).astype(np.float32)
    _, _, merger = calibrate_and_choose(spec, y_true, y_raw, threshold="auto", vote_cut=None)
    assert merger["threshold"] == 0.5 and "precision_interval" not in merger
    line = operating_summary(merger)  # was a KeyError: the run died after training had finished
    assert line.startswith("mergers at p_merger >= 0.5, not chosen on validation (") and "\n" not in line
    assert merger["reason"] in line
