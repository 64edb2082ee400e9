"""The rest of the command line as functions: query, pack, synthesize, to_hats, crossmatch, report.

Each is the function its command runs (``galaxy-ray query``, ``pack``, ``synth``, ``hats``,
``crossmatch``, ``report``), re-exported here so that ``galaxy_ray.api`` covers every command;
:func:`report` builds the same page as the command.  None imports torch at import time.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

from galaxy_ray.catalog.convert import to_hats
from galaxy_ray.catalog.crossmatch import crossmatch
from galaxy_ray.catalog.query import query
from galaxy_ray.errors import GalaxyRayError

__all__ = ["query", "pack", "synthesize", "to_hats", "crossmatch", "report"]


def pack(source: str, out: str, rows_per_shard: int = 1000, format: str | None = None, **options: Any) -> dict:
    """Write any source into Parquet shards of cutouts (``galaxy-ray pack``).

    Parameters
    ----------
    source : str
        A source in any format galaxy-ray reads (a folder of images, a manifest, ...), path or ``s3://``.
    out : str
        The shards' folder, path or ``s3://``; rerunning writes only the missing shards.
    rows_per_shard : int
        Cutouts per shard.
    format : str, optional
        The source's format; detected when None.
    **options
        ``votes``, ``id_column``, ``image_size``, ``crop_fraction``, ... as
        :func:`galaxy_ray.data.sources.pack` takes them.

    Returns
    -------
    dict
        The summary: ``rows``, ``shards``, ``written``, ``skipped``, ``seconds``, ...

    Raises
    ------
    GalaxyRayError
        An unreadable source or an output that cannot be written (one line).

    Examples
    --------
    >>> gr.pack("demo_output/survey_files/images", "demo_output/images_packed")["rows"]  # doctest: +SKIP
    3000
    """
    from galaxy_ray.data.sources import pack as _pack

    return _pack(source, out, rows_per_shard, format, verbose=False, **options)


def synthesize(out: str, n: int, size: int = 128, fmt: str = "shards", seed: int = 0, **options: Any) -> str:
    """Write a synthetic labelled survey (``galaxy-ray synth``), the demo's data.

    Parameters
    ----------
    out : str
        Output folder, path or ``s3://``.
    n : int
        Number of galaxies.
    size : int
        Cutout side, pixels.
    fmt : str
        Layout: ``shards``, ``manifest``, ``fits``, ``galaxy10-h5``, ``kaggle-gz2`` or ``gz2-catalog``.
    seed : int
        Survey seed: the same seed gives the same galaxies.
    **options
        ``footprint`` (ra_min, ra_max, dec_min, dec_max in degrees), ``tree`` (a Galaxy Zoo tree
        whose vote counts to simulate, e.g. ``"decals-dr8"``), ``rows_per_shard``, ``preview``.

    Returns
    -------
    str
        A one-line description of what was written.

    Raises
    ------
    GalaxyRayError
        An unknown layout or tree, or an output that cannot be written.
    """
    from galaxy_ray.synthetic import synthesize as _synthesize

    return _synthesize(out, n, size, fmt, seed, **options)


def report(input: str, out: str, *, catalog: str | None = None, source: str | None = None, top: int = 4) -> list[str]:
    """Figures and an ``index.html`` for a training run, a catalog or a source (``galaxy-ray report``).

    Parameters
    ----------
    input : str
        A run folder (``<storage>/<name>``), a catalog or a labelled source.
    out : str
        The report's folder.
    catalog : str, optional
        With a run: a catalog whose figures (histograms, sky map) join the run's.
    source : str, optional
        The labelled source, for the galaxies' images in the top-galaxies figures.
    top : int
        Galaxies shown per answer in the top-galaxies figures.

    Returns
    -------
    list of str
        The files written, ``index.html`` first.

    Raises
    ------
    GalaxyRayError
        An input that is none of the three, or an output that cannot be written.

    Examples
    --------
    >>> gr.report("demo_output/runs/demo-votes", "demo_output/report3",
    ...           catalog="demo_output/catalog")[0]  # doctest: +SKIP
    'demo_output/report3/index.html'
    """
    from galaxy_ray.report.cli import main

    argv = [str(input), str(out), "--top", str(int(top))]
    argv += ["--catalog", str(catalog)] if catalog else []
    argv += ["--source", str(source)] if source else []
    printed = io.StringIO()
    with redirect_stdout(printed):
        if main(argv) != 0:
            raise GalaxyRayError(f"report {input}: failed")
    lines = printed.getvalue().splitlines()
    index = [line.split("and ", 1)[-1].strip() for line in lines if line.startswith("wrote ")]
    return index + [line.split()[0] for line in lines if line.startswith("  ")]
