"""The ``galaxy-ray`` command: one sub-command per stage of the flow.

Each stage module owns its own argument parser (``main(argv) -> int``), so
``galaxy-ray train ...`` and ``python jobs/train.py ...`` are the same
command.  Modules are imported only when their sub-command runs: ``galaxy-ray
query`` never pays for importing torch.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Callable, Sequence

from galaxy_ray.errors import GalaxyRayError, os_error_line

#: sub-command -> (module, function, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("galaxy_ray.synthetic", "main", "render a synthetic survey in any input format"),
    "pack": ("galaxy_ray.data.sources", "pack_main", "pack any source into Parquet shards of cutouts"),
    "train": ("galaxy_ray.train", "main", "fine-tune a ResNet with Ray Train"),
    "evaluate": ("galaxy_ray.evaluate", "main", "evaluate a checkpoint on a labelled source"),
    "infer": ("galaxy_ray.infer", "main", "stream a source through a model into a Parquet catalog"),
    "predict": ("galaxy_ray.infer", "predict_main", "classify a few image files, no cluster"),
    "query": ("galaxy_ray.catalog", "query_main", "cone/box searches and filters over a catalog"),
    "stats": ("galaxy_ray.catalog", "stats_main", "row counts, morphology mix and merger fraction"),
    "hats": ("galaxy_ray.catalog", "hats_main", "write a catalog in the HATS layout (LSDB), with a margin cache"),
    "crossmatch": ("galaxy_ray.catalog", "crossmatch_main", "pair a catalog with another catalog by position (LSDB)"),
    "similar": ("galaxy_ray.similar.cli", "main", "galaxies like a given one, and the oddest ones, from embeddings"),
    "report": ("galaxy_ray.report", "main", "figures and an index page for a source, run or catalog"),
}


def help_text(doc: str | None) -> str:
    """A docstring as a ``--help`` description: reST's ``x`` and :role:`x` shown as plain x."""
    text = re.sub(r":[a-z]+:`~?([^`]*)`", r"\1", doc or "")
    return re.sub(r"``([^`]+)``", r"\1", text)


def run_entry_point(fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a stage's ``main``, turning a :class:`GalaxyRayError` or an ``OSError`` into one line and exit 2."""
    try:
        return int(fn(argv) or 0)
    except GalaxyRayError as exc:
        print(f"galaxy-ray: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader of a pipe stopped early (``| head``): what it wanted was printed; as Python's docs advise
        # (signal module, "Note on SIGPIPE"), send what is left to devnull so the exit does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # reading inputs or writing outputs: a full disk, a file where --out should be
        print(f"galaxy-ray: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("galaxy-ray: interrupted", file=sys.stderr)
        return 130


#: The commands in the order of the work, in groups.
WORKFLOW: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("1. cutouts", ("synth", "pack")),
    ("2. train", ("train", "evaluate")),
    ("3. classify", ("infer", "predict")),
    ("4. use the catalog", ("query", "stats", "report", "hats", "crossmatch", "similar")),
)

EXAMPLE = """\
example (after `make demo`; any path may be s3://):
  galaxy-ray train --source demo_output/train --task votes --epochs 2 --name mine --storage demo_output/runs
  galaxy-ray infer --checkpoint demo_output/runs/mine/model.pt --source my_cutouts/ --out my_catalog
  galaxy-ray query my_catalog --cone 180 30 30arcmin --where "p_merger > 0.8"
  galaxy-ray stats my_catalog --by morphology
angles: 5arcsec, 30arcmin, 0.5deg; a bare number is degrees. Docs: README.md and docs/."""


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: galaxy-ray COMMAND [options]   (galaxy-ray COMMAND --help for its options)", "",
             "commands, in the order of the work:"]
    for title, names in WORKFLOW:
        lines.append(f" {title}")
        lines += [f"   {name:<{width}}  {COMMANDS[name][2]}" for name in names]
    return "\n".join(lines) + "\n\n" + EXAMPLE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``galaxy-ray`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from galaxy_ray import __version__

        print(f"galaxy-ray {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"galaxy-ray: error: unknown command {name!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module, func, _ = COMMANDS[name]
    fn = getattr(importlib.import_module(module), func)
    return run_entry_point(fn, rest)


if __name__ == "__main__":
    sys.exit(main())
