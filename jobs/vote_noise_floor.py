"""The lowest GZ2 RMSE any model can reach on a synthetic survey.

Synthetic vote fractions are drawn by simulated volunteers around each galaxy's
answer probabilities (``synthetic.expected_votes``); that scatter is not in the
pixels.  This prints the RMSE of those probabilities against the votes (the
floor) beside the training-mean baseline, for galaxies ``0 .. n-1`` of a seed:

    python jobs/vote_noise_floor.py --n 2000 --seed 3

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runs from a checkout without installing

from galaxy_ray.synthetic import expected_votes, render_galaxy  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="galaxies (default 2000)")
    p.add_argument("--seed", type=int, default=3, help="survey seed (default 3)")
    args = p.parse_args(argv)

    # votes do not depend on the cutout size: render the smallest allowed
    votes = np.stack([render_galaxy(args.seed, i, 16).votes for i in range(args.n)]).astype(np.float64)
    expected = np.stack([expected_votes(args.seed, i) for i in range(args.n)])
    floor = float(np.sqrt(((votes - expected) ** 2).mean()))
    baseline = float(np.sqrt(((votes - votes.mean(axis=0)) ** 2).mean()))
    print(f"{args.n} synthetic galaxies (seed {args.seed}): RMSE floor {floor:.4f} "
          f"(true answer probabilities), mean-label baseline {baseline:.4f}, ratio {floor / baseline:.3f}")
    print(json.dumps({"bench": "vote_noise_floor", "n": args.n, "seed": args.seed, "rmse_floor": round(floor, 4),
                      "rmse_baseline": round(baseline, 4), "ratio": round(floor / baseline, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
