"""Decode once (``--cache``): how much memory a run's prepared cutouts need, when they are kept, and that the
kept rows are exactly the prepared ones, no longer needing the source."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.synthetic import synthesize
from galaxy_ray.train import TrainConfig, build_datasets, validate
from galaxy_ray.train.cache import OBJECT_STORE_SHARE, cache_datasets, plan_cache, prepared_bytes
from galaxy_ray.train.data import open_training_source


def test_prepared_bytes_counts_training_rows_at_the_resize_side_and_the_rest_at_the_input_side():
    # 64 px with a 0.8 centre crop: training rows are kept at round(64 / 0.8) = 80 px for the augmentation
    expected = 3 * (100 * 80 * 80 + (20 + 50) * 64 * 64)
    assert prepared_bytes(100, 20, 50, PreprocessConfig(64, 0.8)) == expected
    assert prepared_bytes(10, 0, 0, PreprocessConfig(32)) == 10 * 3 * 32 * 32


def test_auto_caches_up_to_its_share_of_the_object_store():
    store = 8 * 2**30
    limit = int(OBJECT_STORE_SHARE * store)
    assert plan_cache("auto", limit, store).enabled
    over = plan_cache("auto", limit + 1, store)
    assert not over.enabled and "galaxy-ray pack --image-size" in over.reason
    assert plan_cache("yes", 10 * store, store).enabled  # Ray spills what does not fit
    assert not plan_cache("no", 1, store).enabled


def test_bad_cache_flag_is_one_line():
    from galaxy_ray.errors import GalaxyRayError

    with pytest.raises(GalaxyRayError, match="--cache 'maybe': one of auto, yes, no"):
        validate(TrainConfig(source="x", cache="maybe"))


@pytest.mark.slow
def test_cached_rows_are_the_prepared_rows_and_outlive_the_source(ray_cluster, tmp_path):
    src = synthesize(str(tmp_path / "src"), 40, size=48, fmt="manifest", seed=4, workers=1)
    cfg = validate(TrainConfig(source=src, image_size=32, crop_fraction=0.8, bn_samples=0, val_fraction=0.25,
                               storage=str(tmp_path / "runs")))
    ds = open_training_source(cfg).dataset()
    preprocess = PreprocessConfig(32, 0.8)
    expected = {name: d.take_all() for name, d in build_datasets(ds, cfg, None, preprocess).items()}
    cached = cache_datasets(build_datasets(ds, cfg, None, preprocess))
    shutil.rmtree(tmp_path / "src")  # every cutout file is gone: only a cache can still give the rows
    for name, rows in expected.items():
        for _ in range(2):  # two epochs
            got = cached[name].take_all()
            assert len(got) == len(rows) > 0, name
            for a, b in zip(got, rows):  # the same rows, in the same order
                np.testing.assert_array_equal(a["pixels"], b["pixels"])
                np.testing.assert_array_equal(a["target"], b["target"])
    assert expected["train"][0]["pixels"].shape == (3, 40, 40)  # kept at round(32 / 0.8) for the augmentation
