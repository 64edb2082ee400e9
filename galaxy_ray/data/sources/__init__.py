"""Input sources: every supported format read as the cutout table (a Ray Dataset).

The cutout table (docs/contracts.md) has ``object_id`` (string), ``ra`` and
``dec`` (ICRS degrees, nullable), ``image`` (encoded bytes or ``.npy`` bytes,
null when the file is missing), ``source`` (where the row came from), ``votes``
(37 cumulative GZ2 fractions, nullable), ``label`` (class name, nullable) and
any carried-through columns.

Formats (one module each): ``image-folder`` (:mod:`.image_folder`), ``galaxy10-h5`` (:mod:`.galaxy10_h5`),
``kaggle-gz2`` (:mod:`.kaggle`), ``gz2-catalog`` (:mod:`.gz2_catalog`),
``fits`` (:mod:`.fits`), ``manifest`` (:mod:`.manifest`) and ``shards``
(:mod:`.shards`).  :mod:`.listing` lists a source once, :mod:`.detect` tells
the formats apart from that listing, :mod:`.read` builds the format's reader
from the same listing, and :mod:`.pack` writes shards.

Examples
--------
>>> from galaxy_ray.data.sources import read_source                # doctest: +SKIP
>>> ds = read_source("s3://survey/gz2/", votes="debiased")    # doctest: +SKIP
>>> ds.schema()                                               # doctest: +SKIP
"""

from __future__ import annotations

from galaxy_ray.data.sources._common import CUTOUT_COLUMNS, CUTOUT_SCHEMA, Source, read_parquet
from galaxy_ray.data.sources.detect import FORMATS, check_format, detect_format
from galaxy_ray.data.sources.identity import (IdentityReport, cutout_digest, digest_column, find_identity,
                                              refuse_duplicate_ids, split_keys, table_identity)
from galaxy_ray.data.sources.listing import SourceListing, list_source
from galaxy_ray.data.sources.pack import pack, pack_main
from galaxy_ray.data.sources.read import add_source_options, open_source, read_source, source_options

__all__ = [
    "FORMATS",
    "CUTOUT_COLUMNS",
    "CUTOUT_SCHEMA",
    "Source",
    "SourceListing",
    "check_format",
    "detect_format",
    "list_source",
    "open_source",
    "add_source_options",
    "source_options",
    "read_source",
    "read_parquet",
    "pack",
    "pack_main",
    "IdentityReport",
    "cutout_digest",
    "digest_column",
    "find_identity",
    "refuse_duplicate_ids",
    "split_keys",
    "table_identity",
]
