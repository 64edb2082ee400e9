"""``python -m galaxy_ray.synthetic``: the same as ``galaxy-ray synth``."""

import sys

from galaxy_ray.cli import run_entry_point
from galaxy_ray.synthetic.cli import main

sys.exit(run_entry_point(main))
