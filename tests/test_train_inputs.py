"""What training refuses before any work: inputs whose ids would leak galaxies across the split."""

from __future__ import annotations

import pandas as pd
import pytest

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.synthetic import synthesize
from galaxy_ray.train import config_from_args
from galaxy_ray.train.driver import run_training


@pytest.mark.slow
def test_training_refuses_an_object_id_on_two_rows_and_names_it(ray_cluster, tmp_path):
    synthesize(str(tmp_path / "src"), n=12, size=32, fmt="manifest", seed=4)
    manifest = tmp_path / "src" / "manifest.csv"
    table = pd.read_csv(manifest)
    repeated = table.loc[0, "object_id"]
    table.loc[5, "object_id"] = repeated  # a second galaxy under the first one's id
    table.to_csv(manifest, index=False)
    cfg = config_from_args(["--source", str(manifest), "--task", "classes", "--image-size", "32", "--epochs", "1",
                            "--workers", "1", "--name", "dup", "--storage", str(tmp_path / "runs")])
    with pytest.raises(GalaxyRayError, match=rf"1 object_id is on several rows \({repeated} \(2 rows\)"):
        run_training(cfg)
