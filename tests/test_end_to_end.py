"""The whole flow over S3 through `ray job submit`, as on a real cluster.

Input shards, checkpoints and the catalog all live on ``s3://`` (the moto server
on loopback); training and inference are submitted as Ray jobs to a head node the
test starts and ends itself; the catalog is then queried from S3.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from galaxy_ray import catalog
from galaxy_ray.io import storage
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, tree_violation
from galaxy_ray.synthetic import synthesize


@pytest.mark.slow
def test_train_infer_query_over_s3_with_ray_job_submit(submit_job, s3_bucket):
    train, survey = f"{s3_bucket}/shards/train", f"{s3_bucket}/shards/survey"
    synthesize(train, n=96, size=32, fmt="shards", seed=11, rows_per_shard=48)
    synthesize(survey, n=120, size=32, fmt="shards", seed=12, rows_per_shard=40)
    runs, out = f"{s3_bucket}/runs", f"{s3_bucket}/catalogs/survey"

    log = submit_job("python", "jobs/train.py", "--source", train, "--task", "gz2", "--arch", "resnet18",
                     "--image-size", "32", "--epochs", "2", "--workers", "2", "--batch-size", "16",
                     "--name", "e2e", "--storage", runs)
    assert "epoch" in log.lower()
    checkpoint = storage.join(runs, "e2e", "model.pt")
    assert storage.exists(checkpoint)
    assert storage.exists(storage.join(runs, "e2e", "metrics.csv"))

    submit_job("python", "jobs/infer.py", "--checkpoint", checkpoint, "--source", survey, "--out", out,
               "--batch-size", "32", "--rows-per-file", "60")

    prov = catalog.read_provenance(out)
    assert prov["rows"] == 120 and prov["error_rows"] == 0
    assert prov["task"] == "gz2"
    full = catalog.query(out)
    assert len(full) == 120 and full["object_id"].is_unique
    assert np.allclose(tree_violation(full[list(GZ2_ANSWER_COLUMNS)].to_numpy()), 0, atol=1e-5)

    # A cone on the S3 catalog returns exactly the rows a brute-force separation keeps.
    ra0, dec0 = float(full["ra"].iloc[0]), float(full["dec"].iloc[0])
    cone = catalog.cone_search(out, ra0, dec0, 20.0)
    sep = SkyCoord(full["ra"].to_numpy() * u.deg, full["dec"].to_numpy() * u.deg).separation(
        SkyCoord(ra0 * u.deg, dec0 * u.deg))
    assert set(cone["object_id"]) == set(full.loc[sep.deg <= 20.0, "object_id"])
    assert len(cone) >= 1

    # Every survey galaxy exactly once, with the RA/Dec it came with.
    fs, path = storage.pyarrow_filesystem(survey)
    truth = pq.read_table(path, filesystem=fs, columns=["object_id", "ra", "dec"]).to_pandas()
    merged = truth.merge(full[["object_id", "ra", "dec"]], on="object_id", suffixes=("_in", "_out"))
    assert len(merged) == len(truth) == 120
    assert np.array_equal(merged["ra_in"], merged["ra_out"]) and np.array_equal(merged["dec_in"], merged["dec_out"])
