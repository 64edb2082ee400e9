"""Stream a survey through a trained model into a Parquet morphology catalog with Ray Data.

On a cluster (one GPU per model actor when the cluster has GPUs)::

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/infer.py --checkpoint s3://bucket/runs/gz2/model.pt \\
            --source s3://bucket/survey-shards --out s3://bucket/catalog

or plainly (starts a local Ray)::

    python jobs/infer.py --checkpoint demo_output/runs/demo-gz2/model.pt \\
        --source demo_output/survey --out demo_output/catalog

Rerunning the same command after a crash or kill finishes the catalog without
duplicates.  Same flags as ``galaxy-ray infer --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# A job's working directory is the project root; make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxy_ray.cli import run_entry_point  # noqa: E402
from galaxy_ray.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
