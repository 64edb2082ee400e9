"""Fine-tune a ResNet on galaxy cutouts with Ray Train.

On a cluster::

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python jobs/train.py --source s3://bucket/train --task gz2 --workers 8 --storage s3://bucket/runs

or plainly (starts a local Ray)::

    python jobs/train.py --source demo_output/train --task classes --epochs 5

Same flags as ``galaxy-ray train --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# A job's working directory is the project root; make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from galaxy_ray.cli import run_entry_point  # noqa: E402
from galaxy_ray.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_entry_point(main))
