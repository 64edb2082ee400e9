"""The GZ2 image release's file names: ``gz2_filename_mapping.csv`` (``objid``, ``sample``, ``asset_id``).

Galaxy Zoo 2's public cutouts (Zenodo ``images_gz2``) are named
``images/<asset_id>.jpg``, not by SDSS DR7 object id.  The release's mapping
table links the two: a catalog row's ``dr7objid`` is the mapping's ``objid``,
and its cutout is ``<images dir>/<asset_id>.jpg``.  An ``objid`` listed with
several asset ids (one object in several GZ2 samples) is resolved by the
catalog's ``sample`` column; when it cannot be, the source is refused rather
than a cutout picked at random.
"""

from __future__ import annotations

import pandas as pd

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.data.sources.tables import read_table, table_columns

#: The mapping's file name in the release (also read gzip/bzip2-compressed, e.g. ``.csv.gz``).
MAPPING_NAME = "gz2_filename_mapping.csv"
#: Its columns: SDSS DR7 object id, GZ2 sample, and the cutout's file stem.
OBJID, SAMPLE, ASSET_ID = "objid", "sample", "asset_id"
#: Cutout file name of an asset id.
ASSET_SUFFIX = ".jpg"


def read_mapping(uri: str) -> pd.DataFrame:
    """The mapping's ``objid``, ``asset_id`` (and ``sample`` when present) as stripped strings, deduplicated.

    Raises
    ------
    GalaxyRayError
        The file is not a table with ``objid`` and ``asset_id`` columns.
    """
    columns = table_columns(uri)
    missing = [c for c in (OBJID, ASSET_ID) if c not in columns]
    if missing:
        raise GalaxyRayError(
            f"{uri}: no {' or '.join(repr(c) for c in missing)} column; a GZ2 filename mapping has "
            f"{OBJID}, {SAMPLE}, {ASSET_ID} (columns here start {', '.join(columns[:6])})"
        )
    wanted = [c for c in (OBJID, SAMPLE, ASSET_ID) if c in columns]
    table = read_table(uri, columns_as_string=wanted, columns=wanted, id_columns=[OBJID])
    table = table.dropna(subset=[OBJID, ASSET_ID])
    for c in wanted:
        table[c] = table[c].str.strip()
    return table.drop_duplicates().reset_index(drop=True)


def asset_ids(ids: pd.Series, samples: pd.Series | None, mapping: pd.DataFrame, where: str) -> pd.Series:
    """Each catalog row's ``asset_id`` (None where the mapping lists no such object).

    Parameters
    ----------
    ids : pandas.Series of str
        The catalog's DR7 object ids.
    samples : pandas.Series of str, optional
        The catalog's ``sample`` column, to choose among several asset ids of one object.
    mapping : pandas.DataFrame
        From :func:`read_mapping`.
    where : str
        The mapping's URI, for messages.

    Raises
    ------
    GalaxyRayError
        An object of the catalog with several asset ids that its sample does not resolve.
    """
    ids = ids.reset_index(drop=True)
    several = mapping[OBJID].duplicated(keep=False)
    single = mapping[~several].set_index(OBJID)[ASSET_ID]
    out = ids.map(single).astype(object)
    ambiguous = ids.isin(set(mapping.loc[several, OBJID]))
    if not ambiguous.any():
        return out.where(out.notna(), None)
    if samples is not None and SAMPLE in mapping.columns:
        by_sample = mapping[several].drop_duplicates([OBJID, SAMPLE], keep=False).set_index([OBJID, SAMPLE])[ASSET_ID]
        keys = pd.MultiIndex.from_arrays([ids[ambiguous], samples.reset_index(drop=True)[ambiguous].astype(str)])
        out[ambiguous] = by_sample.reindex(keys).to_numpy()
    unresolved = ambiguous & out.isna()
    if unresolved.any():
        first = ids[unresolved].iloc[0]
        options = ", ".join(mapping.loc[mapping[OBJID] == first, ASSET_ID].tolist()[:4])
        raise GalaxyRayError(
            f"{where}: objid {first} has several asset ids ({options}) and the catalog's '{SAMPLE}' does not pick "
            f"one ({int(unresolved.sum())} objects like it); give the catalog an image column naming each cutout"
        )
    return out.where(out.notna(), None)
