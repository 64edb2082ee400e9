"""The end of a training run publishes ``model.pt`` once, calibrated, or not at all."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray import model
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import layout, storage
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table
from galaxy_ray.train.finalize import finalize_run

SIZE = 32


def _stage(run_dir, seed: int) -> str:
    """An untrained gz2 checkpoint staged as the best epoch's, with its split, as the driver stages it."""
    torch.manual_seed(seed)
    spec = model.ModelSpec.for_gz2("resnet18", PreprocessConfig(SIZE))
    staged = storage.join(str(run_dir), layout.STAGED_MODEL)
    storage.write_bytes_atomic(staged, model.checkpoint_bytes(model.build_model(spec), spec,
                                                              {"split": {"val_fraction": 0.5, "salt": "test"}}))
    return staged


def _labelled(n: int, broken: bool = False):
    import ray.data

    table = synthetic_table(n, size=SIZE, seed=11)
    if broken:  # every cutout unreadable: the end of the run fails after the weights were staged
        table = table.set_column(table.column_names.index(C.IMAGE), C.IMAGE,
                                 pa.array([b"not an image"] * n, pa.binary()))
    return ray.data.from_arrow(table)


@pytest.mark.slow
def test_a_finished_run_publishes_a_calibrated_model_and_removes_the_staged_weights(ray_cluster, tmp_path):
    staged = _stage(tmp_path, seed=0)
    finalize_run(str(tmp_path), staged, _labelled(40), C.VOTES, batch_size=16, merger_threshold=0.3, vote_cut=0.4)
    _, spec, extra = model.load_checkpoint(str(tmp_path / layout.MODEL), with_extra=True)
    assert spec.calibration is not None and (spec.calibration or {}).get("merger") is not None or \
        extra["merger"].get("reason")  # isotonic needs mergers on both sides; else the reason is stored
    assert extra["merger"]["threshold"] == pytest.approx(0.3) and extra["merger_threshold"] == pytest.approx(0.3)
    assert not storage.exists(staged)


@pytest.mark.slow
def test_a_run_that_dies_before_publishing_leaves_no_model(ray_cluster, tmp_path):
    staged = _stage(tmp_path, seed=0)
    with pytest.raises(GalaxyRayError, match="could be evaluated"):
        finalize_run(str(tmp_path), staged, _labelled(12, broken=True), C.VOTES, batch_size=16, vote_cut=0.4)
    assert not (tmp_path / layout.MODEL).exists()  # never the uncalibrated weights under the published name


@pytest.mark.slow
def test_a_rerun_that_dies_before_publishing_keeps_the_previous_model(ray_cluster, tmp_path):
    finalize_run(str(tmp_path), _stage(tmp_path, seed=0), _labelled(40), C.VOTES, batch_size=16,
                 merger_threshold=0.3, vote_cut=0.4)
    published = (tmp_path / layout.MODEL).read_bytes()
    with pytest.raises(GalaxyRayError):
        finalize_run(str(tmp_path), _stage(tmp_path, seed=1), _labelled(12, broken=True), C.VOTES, batch_size=16, vote_cut=0.4)
    assert (tmp_path / layout.MODEL).read_bytes() == published
