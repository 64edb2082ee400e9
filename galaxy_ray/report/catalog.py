"""Report figures of a catalog: HEALPix sky maps, prediction histograms, morphology mix."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from galaxy_ray import tasks
from galaxy_ray.catalog import LOCAL_MERGER_FRACTION, Catalog, merger_stats, open_catalog
from galaxy_ray.report.page import Report, literal_text, panel_grid
from galaxy_ray.report.sky import MIN_CELL_GALAXIES, sky_figure
from galaxy_ray.report.style import PANEL_FONT, TITLE_FONT, hist_weights, panel_title
from galaxy_ray.schema import CatalogColumns as C

__all__ = ["sky_cells", "catalog_figures"]

#: Rows of a catalog sampled for its histograms.
_HISTOGRAM_SAMPLE = 200_000


def sky_cells(cat: Catalog, order: int) -> dict[str, np.ndarray]:
    """Galaxy and merger counts per HEALPix cell of ``order`` (from ``_healpix_29``).

    Returns
    -------
    dict of numpy.ndarray of int64, each shape (M,)
        ``cell`` (NESTED index at ``order``, occupied cells only, ascending),
        ``rows``, ``classified`` (no error) and ``mergers`` (classified mergers).
    """
    shift = 2 * (C.HEALPIX_ORDER - order)
    con = cat.connection()
    con.register("catalog", cat.dataset())
    rows = con.execute(
        f'SELECT "_healpix_29" >> {shift} AS cell, count(*), count(*) FILTER (WHERE "error" IS NULL), '
        f'count(*) FILTER (WHERE "error" IS NULL AND "is_merger") FROM catalog '
        f'WHERE "_healpix_29" IS NOT NULL GROUP BY cell ORDER BY cell'
    ).fetchall()
    arr = np.array(rows, dtype=np.int64).reshape(-1, 4)
    return {"cell": arr[:, 0], "rows": arr[:, 1], "classified": arr[:, 2], "mergers": arr[:, 3]}


def _auto_order(rows: int) -> int:
    """HEALPix order with a few galaxies per occupied cell on average (4 .. 6)."""
    return int(np.clip(round(math.log(max(rows, 1) / 5.0 / 12.0, 4)), 4, 6))


def _sky_maps(rep: Report, cells: dict[str, np.ndarray], order: int) -> None:
    """Mollweide maps of galaxy density, merger fraction and its uncertainty, centred on the data."""
    fig, shown = sky_figure(cells, order)
    rep.save(fig, "sky_map.png", "Sky maps: galaxy density and flagged merger fraction",
             f"Mollweide projection (ICRS, RA increasing to the left) centred on RA {shown['centre']:.0f}°, "
             f"HEALPix order-{order} cells ({math.sqrt(shown['cell_area']):.2f} deg across) from _healpix_29. "
             f"Flagged fraction (is_merger) of classified rows, not corrected for the classifier (galaxy-ray "
             f"stats gives the corrected value), and the width of its 95% Wilson interval per order-"
             f"{shown['merger_order']} cell; the {shown['sparse_cells']} of {shown['merger_cells']} cells with "
             f"fewer than {MIN_CELL_GALAXIES} classified galaxies are grey.")


def _prediction_histograms(rep: Report, cat: Catalog) -> None:
    """Histograms of the output columns and ``p_merger`` over a sample of classified rows."""
    columns = cat.output_columns + [C.P_MERGER]
    con = cat.connection()
    con.register("catalog", cat.dataset())
    table = con.sql(
        "SELECT " + ", ".join(f'"{c}"' for c in columns)
        + f' FROM catalog WHERE "error" IS NULL USING SAMPLE {_HISTOGRAM_SAMPLE} ROWS'
    ).to_arrow_table()
    fig, axes = panel_grid(len(columns), 2.4, layout="constrained")
    task = cat.provenance.get("task")
    what = tasks.get(task).catalog_value if task in tasks.TASKS else "class probability"
    for ax, name in zip(axes, columns):
        vals = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        vals = vals[np.isfinite(vals)]
        ax.hist(vals, bins=np.linspace(0, 1, 21), weights=hist_weights(vals),
                color="C2" if name == C.P_MERGER else "C0")
        ax.set_title(name if name == C.P_MERGER else panel_title(name), fontsize=TITLE_FONT)
        ax.set_xlabel("calibrated merger probability" if name == C.P_MERGER else what, fontsize=PANEL_FONT)
        ax.set_ylabel("fraction of galaxies", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    rep.save(fig, "catalog_histograms.png", "Histograms of predicted values in the catalog",
             "Predicted vote fractions or class probabilities, and p_merger (green), of classified rows "
             f"(a random sample of at most {_HISTOGRAM_SAMPLE:,}); each bar is the fraction of them in its bin.")


def _morphology(rep: Report, morph: dict[str, int]) -> None:
    """Bar chart of rows per morphology label."""
    fig = Figure(figsize=(8, 0.4 * len(morph) + 1.5))
    ax = fig.subplots()
    ax.barh(list(morph), list(morph.values()), color="C4")
    ax.invert_yaxis()
    ax.set_xlabel("galaxies")
    ax.set_title("morphology of classified rows")
    rep.save(fig, "morphology.png", "Morphology mix", "Rows per morphology label (error rows excluded).")


@literal_text
def catalog_figures(rep: Report, catalog_uri: str, order: int | None = None) -> None:
    """Sky maps of density and merger fraction, prediction histograms and morphology mix.

    ``order``: HEALPix order of the sky maps (default: from the catalog's size).
    """
    cat = open_catalog(catalog_uri)
    stats = merger_stats(cat)
    if stats["merger_fraction"] is None:
        fraction = "n/a"
    else:
        lo, hi = stats["merger_fraction_95"]
        fraction = f"{stats['merger_fraction']:.4f} (95% Wilson {lo:.4f}-{hi:.4f})"
    if stats.get("corrected_fraction") is not None:
        lo, hi = stats["corrected_fraction_95"]
        corrected = (f"{stats['corrected_fraction']:.4f} (95% {lo:.4f}-{hi:.4f}; completeness "
                     f"{stats['completeness']:.3f}, false-positive rate {stats['false_positive_rate']:.4f} on validation)"
                     + (f" [caveat: {stats['caveat']}]" if stats.get("caveat") else ""))
    else:
        corrected = f"n/a ({stats.get('correction')})"
    rep.summary += [("catalog", f"{catalog_uri}: {stats['rows']} rows, {stats['error_rows']} error rows"),
                    ("flagged merger fraction", fraction),
                    ("merger fraction corrected for the classifier",
                     f"{corrected}; the local value is {LOCAL_MERGER_FRACTION} (Lotz et al. 2011)")]
    rep.say(f"catalog {catalog_uri}: {stats['rows']} rows; drawing the sky maps and histograms")
    order = _auto_order(stats["rows"]) if order is None else int(order)
    cells = sky_cells(cat, order)
    if len(cells["cell"]):
        _sky_maps(rep, cells, order)
    else:
        rep.notes.append(f"{catalog_uri}: no positions (RA/Dec null); sky maps skipped")
    _prediction_histograms(rep, cat)
    if stats["morphology"]:
        _morphology(rep, stats["morphology"])
