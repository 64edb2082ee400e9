"""Merger statistics of a catalog: counts, morphology mix, merger fractions.

Two fractions for every group: the raw flagged fraction with a Wilson interval
(the fraction of classified galaxies the flag selected), and the fraction
corrected for the classifier's completeness and false-positive rate measured
on its validation split (:mod:`galaxy_ray.merger.fractions`), which is the
number to compare with a merger fraction from the literature.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
from astropy.stats import binom_conf_interval

from galaxy_ray.merger.fractions import MIN_FLAGGED, corrected_from_provenance, format_corrected
from galaxy_ray.merger.operating import format_threshold
from galaxy_ray.catalog.query import (
    check_columns,
    quote_identifier,
    run_sql,
    source_connection,
    quote_known_columns,
    validate_where,
    where_clause,
)
from galaxy_ray.catalog.regions import Box, Cone, as_region
from galaxy_ray.catalog.scan import Catalog, as_catalog
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["LOCAL_MERGER_FRACTION", "wilson_interval", "wilson_intervals", "merger_stats", "format_stats"]

#: Local (z < 1) galaxy merger fraction the seed study compared with (Lotz et al. 2011).
LOCAL_MERGER_FRACTION = 0.05
#: Rows, error rows, classified rows and classified mergers, in one SELECT list.
_COUNTS = ('count(*), count("error"), count(*) FILTER (WHERE "error" IS NULL), '
           'count(*) FILTER (WHERE "error" IS NULL AND "is_merger")')


def wilson_intervals(k: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score intervals of binomial fractions ``k / n``, element by element.

    ``astropy.stats.binom_conf_interval(k, n, confidence, interval="wilson")``
    (Wilson 1927), NaN where ``n`` is 0.

    Parameters
    ----------
    k, n : array_like of int, shape (G,)
        Successes and trials.
    confidence : float
        Confidence level, e.g. 0.95.

    Returns
    -------
    (low, high) : two numpy.ndarray of float64, shape (G,)
    """
    k, n = np.atleast_1d(np.asarray(k, dtype=np.int64)), np.atleast_1d(np.asarray(n, dtype=np.int64))
    lo, hi = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    some = n > 0
    if some.any():
        lo[some], hi[some] = binom_conf_interval(k[some], n[some], confidence_level=confidence, interval="wilson")
    return lo, hi


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of one binomial fraction ``k / n``; ``(nan, nan)`` when ``n`` is 0."""
    lo, hi = wilson_intervals([k], [n], confidence)
    return float(lo[0]), float(hi[0])


def _merger_rows(counts: np.ndarray, provenance: dict | None = None) -> list[dict]:
    """One dict per row of ``counts`` (rows, error rows, classified rows, mergers), with the fractions."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, 4)
    lo, hi = wilson_intervals(counts[:, 3], counts[:, 2])
    out = []
    for (rows, errors, ok, mergers), a, b in zip(counts.tolist(), lo.tolist(), hi.tolist()):
        out.append({
            "rows": rows, "error_rows": errors, "classified_rows": ok, "mergers": mergers,
            "merger_fraction": (mergers / ok) if ok else None,
            "merger_fraction_95": [a, b] if ok else None,
            **corrected_from_provenance(mergers, ok, provenance),
        })
    return out


def _bin_edges(con, rel: str, column: str, bins: str | int | None) -> list[float]:
    """Explicit comma-separated edges, or ``bins`` (default 10) equal-width bins over the column's range."""
    if bins is not None and not isinstance(bins, int) and "," in str(bins):
        try:
            edges = sorted(float(b) for b in str(bins).split(","))
        except ValueError:
            raise GalaxyRayError(f"--bins {bins!r}: give a number of bins or comma-separated edges") from None
        if len(edges) < 2:
            raise GalaxyRayError(f"--bins {bins!r}: give at least two edges")
        return edges
    try:
        count = 10 if bins is None else int(bins)
    except ValueError:
        raise GalaxyRayError(f"--bins {bins!r}: give a number of bins or comma-separated edges") from None
    if count < 1:
        raise GalaxyRayError(f"--bins {bins}: must be >= 1")
    col = quote_identifier(column)
    lo, hi = con.execute(f"SELECT min({col}), max({col}) FROM {rel}").fetchall()[0]
    if lo is None:
        return [0.0, 1.0]
    lo, hi = float(lo), float(hi)
    if hi <= lo:
        hi = lo + 1.0
    return [float(e) for e in np.linspace(lo, hi, count + 1)]


def _group_key(con, rel: str, cat: Catalog, by: str, bins: str | int | None) -> tuple[str, list[str] | None]:
    """SQL expression of the group of each row, and bin labels when binned."""
    ftype = cat.schema.field(by).type
    numeric = pa.types.is_integer(ftype) or pa.types.is_floating(ftype)
    if bins is None and not pa.types.is_floating(ftype):
        return quote_identifier(by), None
    if not numeric:
        raise GalaxyRayError(f"--bins: column {by!r} is {ftype}, not numeric; drop --bins to group by value")
    edges = _bin_edges(con, rel, by, bins)
    col = quote_identifier(by)
    cases, labels = [], []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        cases.append(f"WHEN {col} >= {a!r} AND {col} {'<=' if last else '<'} {b!r} THEN {i}")
        labels.append(f"[{a:.4g}, {b:.4g}{']' if last else ')'}")
    return "CASE " + " ".join(cases) + " END", labels


def _group_stats(con, rel: str, cat: Catalog, by: str, bins: str | int | None) -> list[dict]:
    """:func:`merger_stats`'s counts per group of ``by`` (by value, or per bin)."""
    key, labels = _group_key(con, rel, cat, by, bins)
    groups = con.execute(f"SELECT {key} AS grp, {_COUNTS} FROM {rel} GROUP BY grp ORDER BY grp NULLS LAST").fetchall()
    out = []
    for (grp, *_), row in zip(groups, _merger_rows([counts for _, *counts in groups], cat.provenance)):
        label = (labels[grp] if grp is not None else "(outside bins)") if labels else grp
        if not (isinstance(label, (str, int, float, bool)) or label is None):
            label = str(label)
        out.append({"group": label, **row})
    return out


#: Half a unit of the 4th decimal: a threshold printed with 4 decimals moves at most this far.
ROUNDING = 5e-5


def _near_threshold(con, rel: str, provenance: dict | None, names: Sequence[str]) -> dict:
    """The threshold as stored and printed, and the classified rows within :data:`ROUNDING` of it.

    Those rows are the ones a threshold rounded to 4 decimals (or a score read
    off a rounded table) could flag the other way; galaxy-ray's own thresholds
    sit between validation scores (:func:`galaxy_ray.merger.operating.printable_threshold`),
    so the count is usually 0, but a ``--merger-threshold`` given by hand may land on a tie.
    """
    threshold = (provenance or {}).get("merger_threshold")
    if threshold is None or C.P_MERGER not in names:
        return {}
    near = con.execute(f'SELECT count(*) FROM {rel} WHERE "error" IS NULL AND '
                       f'abs(CAST("p_merger" AS DOUBLE) - {float(threshold)!r}) < {ROUNDING!r}').fetchone()[0]
    return {"merger_threshold": float(threshold), "merger_threshold_printed": format_threshold(threshold),
            "near_threshold_rows": int(near)}


def merger_stats(
    catalog: Catalog | str,
    cone: Sequence[float] | Cone | None = None,
    box: Sequence[float] | Box | None = None,
    where: str | None = None,
    by: str | None = None,
    bins: str | int | None = None,
) -> dict:
    """Row counts, morphology mix and merger fraction (95% Wilson interval).

    Parameters
    ----------
    catalog, cone, box, where
        As for :func:`galaxy_ray.catalog.query`.
    by : str, optional
        Group by this column: by value, or in bins for floating-point columns
        (10 equal-width bins unless ``bins`` says otherwise).
    bins : int or str, optional
        Number of equal-width bins, or comma-separated bin edges.

    Returns
    -------
    dict
        ``rows``, ``error_rows``, ``classified_rows``, ``mergers``,
        ``merger_fraction`` (of classified rows) and ``merger_fraction_95``
        ``[low, high]``, the classifier-corrected ``corrected_fraction`` and
        ``corrected_fraction_95`` with the ``completeness`` and
        ``false_positive_rate`` behind them (None, with ``correction`` saying
        why, when the catalog records no validation rates), ``morphology``
        counts, the reference local merger fraction, and ``groups`` (one such
        dict per group) when ``by`` is given.  With a recorded threshold:
        ``merger_threshold``, ``merger_threshold_printed`` (every digit) and
        ``near_threshold_rows`` (classified rows within :data:`ROUNDING` of it).

    Raises
    ------
    GalaxyRayError
        A bad region, filter, column or bins, or a catalog that cannot be opened.
    """
    cat = as_catalog(catalog)
    region = as_region(cone, box)
    names = cat.columns
    where = quote_known_columns(where, names) if where else where
    where_cols = validate_where(where, names) if where else set()
    by_col = check_columns([by], names, "--by")[0] if by else None
    needed_set = {C.MORPHOLOGY, C.IS_MERGER, C.ERROR, C.P_MERGER} | where_cols | ({by_col} if by_col else set())
    con = source_connection(cat, region, [c for c in names if c in needed_set])
    if where:
        # a bad filter fails here, as one line naming it, before any statistic runs
        run_sql(con, "SELECT 1 FROM catalog" + where_clause(where) + " LIMIT 0", where)
    rel = f"(SELECT * FROM catalog{where_clause(where)})"
    counts = con.execute(f"SELECT {_COUNTS} FROM {rel}").fetchall()
    result: dict[str, Any] = {
        "catalog": cat.uri,
        "region": None if region is None else {type(region).__name__.lower(): list(region.__dict__.values())},
        "where": where,
        **_merger_rows(counts, cat.provenance)[0],
        "reference_merger_fraction": LOCAL_MERGER_FRACTION,
        "reference": "Lotz et al. 2011",
    }
    result.update(_near_threshold(con, rel, cat.provenance, names))
    morph = con.execute(
        f'SELECT "morphology", count(*) AS n FROM {rel} WHERE "error" IS NULL GROUP BY 1 ORDER BY n DESC, 1'
    ).fetchall()
    result["morphology"] = {str(m): int(n) for m, n in morph}
    if by_col:
        result["by"] = by_col
        result["groups"] = _group_stats(con, rel, cat, by_col, bins)
    return result


def _region_text(region: dict) -> str:
    """``cone of 0.5 deg around (RA, Dec) = (180, 30) deg`` in place of the region's dict."""
    if "cone" in region:
        ra, dec, radius = region["cone"]
        return f"cone of radius {radius:g} deg around (RA, Dec) = ({ra:g}, {dec:g}) deg"
    if "box" in region:
        ra0, ra1, dec0, dec1 = region["box"]
        return f"box RA {ra0:g} - {ra1:g} deg, Dec {dec0:g} - {dec1:g} deg"
    return str(region)


def format_stats(stats: dict) -> str:
    """Human-readable text of :func:`merger_stats`'s result."""

    def frac(d: dict) -> str:
        if d["merger_fraction"] is None:
            return "n/a (no classified rows)"
        lo, hi = d["merger_fraction_95"]
        return f"{d['merger_fraction']:.4f} (95% Wilson interval {lo:.4f} - {hi:.4f})"

    corrected = format_corrected  # the number with its caveat, or n/a and why (merger.fractions' rule)

    lines = [f"catalog:          {stats['catalog']}"]
    if stats["region"]:
        lines.append(f"region:           {_region_text(stats['region'])}")
    if stats["where"]:
        lines.append(f"where:            {stats['where']}")
    lines += [
        f"rows:             {stats['rows']}",
        f"error rows:       {stats['error_rows']}",
        f"mergers:          {stats['mergers']} of {stats['classified_rows']} classified"
        + (f" (is_merger = p_merger >= {stats['merger_threshold_printed']}; {stats['near_threshold_rows']} "
           f"within {ROUNDING:g} of it, where a rounded threshold would flag differently)"
           if "merger_threshold_printed" in stats else ""),
        f"flagged fraction: {frac(stats)}",
        f"merger fraction corrected for the classifier: {corrected(stats)}"
        + (f" (completeness {stats['completeness']:.3f}, false-positive rate {stats['false_positive_rate']:.4f}"
           " on validation)" if stats.get("completeness") is not None else ""),
        f"local merger fraction ({stats['reference']}): {stats['reference_merger_fraction']:.2f}",
        "morphology:",
    ]
    total = max(1, stats["classified_rows"])
    lines += [f"  {m:<24} {n:>10}  {n / total:7.2%}" for m, n in stats["morphology"].items()]
    if "groups" in stats:
        lines.append(f"by {stats['by']}:")
        lines.append(f"  {'group':<24} {'rows':>10} {'errors':>8} {'mergers':>8}  flagged fraction; corrected")
        for g in stats["groups"]:
            lines.append(f"  {str(g['group']):<24} {g['rows']:>10} {g['error_rows']:>8} {g['mergers']:>8}  "
                         f"{frac(g)}; {corrected(g, brief=True)}")
        if any(str(g.get("correction")).startswith("unavailable: too few galaxies") for g in stats["groups"]):
            lines.append(f"  corrected n/a (too few galaxies): a group needs at least {MIN_FLAGGED} flagged and "
                         f"{MIN_FLAGGED} unflagged galaxies; below that the bootstrap interval cannot be trusted")
        lines += [f"  * {g['group']}: {g['caveat']}" for g in stats["groups"]
                  if g.get("corrected_fraction") is not None and g.get("caveat")]
    return "\n".join(lines)
