"""Install check of the CPU set-up (run by `make install`): no CUDA wheels were pulled in.

On a laptop or CI machine, an unbounded torch range lets pip backtrack to a CUDA
build and several GB of ``nvidia-*`` wheels.  This is a property of the
environment ``make`` just built, not of galaxy-ray's code, so it is checked
here rather than in the test suite (which must also pass on GPU machines,
where CUDA wheels belong).  Exit status 1 names the offending packages.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys


def cuda_packages() -> list[str]:
    """Names of installed ``nvidia-*`` distributions, sorted."""
    return sorted({d.metadata["Name"].lower() for d in md.distributions() if d.metadata["Name"]
                   and d.metadata["Name"].lower().startswith("nvidia-")})


def main() -> int:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    import torch

    found = cuda_packages()
    if found or torch.version.cuda:
        print(f"check_cpu_install: CUDA packages in a CPU install (torch {torch.__version__}, "
              f"{', '.join(found) or 'torch built with CUDA'}); reinstall torch==2.13.0 from the CPU index "
              "(see README, CPU-only machines)", file=sys.stderr)
        return 1
    print(f"check_cpu_install: ok (torch {torch.__version__}, no nvidia-* packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
