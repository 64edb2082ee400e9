"""Science report: figures and an index page for a source, a training run or a catalog.

``galaxy-ray report INPUT OUT_DIR [--catalog C] [--source S]`` detects what
INPUT is:

a training run directory (it holds ``metrics.csv``)
    training and validation curves; the confusion matrix (classes); predicted
    versus true for every GZ2 answer (hexbins with the 1:1 line); the galaxies
    with the highest predicted value of each answer or class, shown with the
    predicted and the true value; histograms of predicted vote fractions or
    probabilities against the true ones.  Images come from the run's source
    (``config.json``) or ``--source``.
a catalog (it holds ``_catalog.json``)
    HEALPix sky maps (Mollweide) of galaxy density and merger fraction;
    histograms of the predicted columns and ``p_merger``; the morphology mix.
anything else: a labelled source (:func:`galaxy_ray.data.sources.open_source`)
    label histograms per GZ2 answer or class counts; the 37 x 37 correlation
    matrix of the GZ2 answers; the most prototypical images of each answer
    (highest vote fraction) or examples of each class.

``--catalog`` adds the catalog figures to a run's report, ``--source`` the
source's.  Every figure is a PNG in OUT_DIR, listed in ``index.html``.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, CatalogColumns as C

__all__ = ["Report", "detect_input", "run_figures", "catalog_figures", "source_figures", "main"]


# --------------------------------------------------------------------------- plumbing


@dataclass
class Report:
    """Figures written so far (file name, title, caption) and an output directory."""

    out: str
    title: str
    figures: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def save(self, fig, name: str, title: str, caption: str = "") -> str:
        """Write ``fig`` as ``OUT/name`` (PNG) and list it."""
        import matplotlib.pyplot as plt

        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        uri = storage.join(self.out, name)
        storage.write_bytes_atomic(uri, buf.getvalue())
        self.figures.append((name, title, caption))
        return uri

    def write_index(self) -> str:
        """``index.html`` listing every figure; returns its URI."""
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%}"
            "figure{margin:2em 0}figcaption{color:#444}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        parts += [f"<p>{html.escape(n)}</p>" for n in self.notes]
        parts.append("<ul>" + "".join(f"<li><a href='#{html.escape(n)}'>{html.escape(t)}</a></li>"
                                      for n, t, _ in self.figures) + "</ul>")
        for name, title, caption in self.figures:
            parts.append(f"<figure id='{html.escape(name)}'><h2>{html.escape(title)}</h2>"
                         f"<img src='{html.escape(name)}' alt='{html.escape(title)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        uri = storage.join(self.out, "index.html")
        storage.write_bytes_atomic(uri, "\n".join(parts).encode("utf-8"))
        return uri


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n: int, ncols: int) -> tuple[int, int]:
    return math.ceil(n / ncols), ncols


def detect_input(uri: str) -> str:
    """``"run"``, ``"catalog"`` or ``"source"``: what ``uri`` holds."""
    if not storage.exists(uri):
        raise GalaxyRayError(f"{uri}: no such file or directory; give a run directory, catalog or source")
    if storage.isdir(uri):
        if storage.exists(storage.join(uri, "metrics.csv")):
            return "run"
        if storage.exists(storage.join(uri, "_catalog.json")):
            return "catalog"
    return "source"


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _image_rgb(data: bytes | None, where: str) -> np.ndarray | None:
    """RGB float image in [0, 1] (the same decoding as training), or None if it cannot be read."""
    from galaxy_ray.data.preprocess import decode_image

    try:
        return decode_image(data, where)
    except Exception:  # a bad cutout is left blank in a figure, never a failed report
        return None


# --------------------------------------------------------------------------- sources


@dataclass
class Labelled:
    """Labels (and cutouts) of up to ``max_rows`` galaxies of a source."""

    uri: str
    object_id: np.ndarray
    votes: np.ndarray | None  # (N, 37) or None
    label: np.ndarray | None  # (N,) of str/None or None
    images: dict[str, tuple[bytes | None, str]]


def read_labelled(uri: str, max_rows: int = 2000, seed: int = 0, want_images: bool = True) -> Labelled:
    """Read labels and cutouts of a source without a cluster (:meth:`Source.read_rows`).

    A source larger than ``max_rows`` galaxies is sampled at random (fixed seed).
    """
    from galaxy_ray.data.sources import open_source

    src = open_source(uri)
    meta = src.metadata()
    if meta.empty:
        raise GalaxyRayError(f"{uri}: no cutouts found")
    if len(meta) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(meta), max_rows, replace=False))
        meta = meta.iloc[keep]
    ids, votes, labels, images = [], [], [], {}
    for start in range(0, len(meta), 256):
        t = src.read_rows(meta.iloc[start : start + 256])
        oid = [str(v) for v in t.column(C.OBJECT_ID).to_pylist()]
        ids += oid
        if C.VOTES in t.column_names:
            votes += t.column(C.VOTES).to_pylist()
        if C.LABEL in t.column_names:
            labels += t.column(C.LABEL).to_pylist()
        if want_images and C.IMAGE in t.column_names:
            srcs = t.column(C.SOURCE).to_pylist() if C.SOURCE in t.column_names else oid
            for o, img, s in zip(oid, t.column(C.IMAGE).to_pylist(), srcs):
                images[o] = (img, str(s))
    vote_arr = None
    if votes and any(v is not None for v in votes):
        vote_arr = np.array([v if v is not None else [np.nan] * len(GZ2_ANSWER_COLUMNS) for v in votes],
                            dtype=np.float64)
    label_arr = None
    if labels and any(v is not None for v in labels):
        label_arr = np.array(labels, dtype=object)
    return Labelled(uri, np.array(ids, dtype=object), vote_arr, label_arr, images)


def _plot_image_grid(rep: Report, rows: list[tuple[str, list[tuple[str, str]]]], images: dict, name: str,
                     title: str, caption: str) -> None:
    """Image strips, one per answer/class, laid out several strips side by side."""
    plt = _pyplot()
    per = max((len(cells) for _, cells in rows), default=1) or 1
    blocks = max(1, 12 // per)  # strips side by side
    nrows = math.ceil(len(rows) / blocks)
    fig, axes = plt.subplots(nrows, blocks * per, figsize=(1.5 * blocks * per, 1.75 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (row_title, cells) in enumerate(rows):
        r, b = divmod(k, blocks)
        for c, (oid, text) in enumerate(cells):
            ax = axes[r][b * per + c]
            data, where = images.get(oid, (None, oid))
            rgb = _image_rgb(data, where)
            if rgb is not None:
                ax.imshow(np.clip(rgb, 0, 1))
            label = f"{_short(row_title, 30)}\n{text}" if c == 0 else f"\n{text}"
            ax.set_title(label, fontsize=6, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    rep.save(fig, name, title, caption)


def source_figures(rep: Report, data: Labelled, top: int = 4) -> None:
    """Label histograms, GZ2 answer correlations and prototypical images of a labelled source."""
    plt = _pyplot()
    n = len(data.object_id)
    if data.votes is None and data.label is None:
        rep.notes.append(f"{data.uri}: no votes or labels; label figures skipped")
        return
    if data.votes is not None:
        votes = data.votes[~np.isnan(data.votes).any(axis=1)]
        nrows, ncols = _grid(len(GZ2_ANSWER_COLUMNS), 7)
        fig, axes = plt.subplots(nrows, ncols, figsize=(16, 2.0 * nrows), squeeze=False)
        for i, name in enumerate(GZ2_ANSWER_COLUMNS):
            ax = axes.flat[i]
            ax.hist(votes[:, i], bins=np.linspace(0, 1, 21), color="C0")
            ax.set_title(f"{GZ2_KAGGLE_COLUMNS[i]} {_short(name, 24)}", fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(GZ2_ANSWER_COLUMNS):]:
            ax.axis("off")
        fig.suptitle(f"cumulative GZ2 vote fractions of {len(votes)} galaxies")
        fig.tight_layout()
        rep.save(fig, "label_histograms.png", "Label histograms (GZ2 answers)",
                 "Distribution of each answer's cumulative vote fraction (Kaggle ClassQ.k order).")
        corr = np.corrcoef(votes, rowvar=False)
        fig, ax = plt.subplots(figsize=(11, 10))
        im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
        labels = [f"{k} {_short(a, 22)}" for k, a in zip(GZ2_KAGGLE_COLUMNS, GZ2_ANSWER_COLUMNS)]
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, label="Pearson correlation")
        ax.set_title("correlation of the 37 GZ2 answers")
        rep.save(fig, "answer_correlation.png", "Correlation matrix of the GZ2 answers",
                 "Pearson correlation between the cumulative vote fractions (NaN where an answer never varies).")
        rows = []
        for i, name in enumerate(GZ2_ANSWER_COLUMNS):
            order = np.argsort(-np.nan_to_num(data.votes[:, i], nan=-1))[:top]
            rows.append((f"{GZ2_KAGGLE_COLUMNS[i]} {name}",
                         [(str(data.object_id[j]), f"{data.votes[j, i]:.2f}") for j in order]))
        _plot_image_grid(rep, rows, data.images, "prototypes.png", "Most prototypical galaxies per answer",
                         f"The {top} galaxies with the highest vote fraction for each answer (value above each).")
    if data.label is not None:
        ok = np.array([v is not None for v in data.label])
        names, counts = np.unique(data.label[ok].astype(str), return_counts=True)
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(names) + 1.5))
        ax.barh(names, counts, color="C1")
        ax.set_xlabel("galaxies")
        ax.invert_yaxis()
        ax.set_title(f"class counts ({ok.sum()} labelled of {n})")
        rep.save(fig, "class_counts.png", "Label histogram (classes)", "Galaxies per class label.")
        rows = []
        for name in names:
            idx = np.flatnonzero(data.label.astype(str) == name)[:top]
            rows.append((name, [(str(data.object_id[j]), str(data.object_id[j])[-12:]) for j in idx]))
        _plot_image_grid(rep, rows, data.images, "class_examples.png", "Examples of each class",
                         f"The first {top} galaxies of each class.")


# --------------------------------------------------------------------------- training runs


def _read_json(uri: str) -> dict:
    try:
        return json.loads(storage.read_bytes(uri))
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: missing; is this a complete training run directory?") from None
    except json.JSONDecodeError as exc:
        raise GalaxyRayError(f"{uri}: not valid JSON ({exc})") from None


def _read_predictions(uri: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    fs, path = storage.pyarrow_filesystem(uri)
    try:
        t = pq.read_table(path, filesystem=fs)
    except FileNotFoundError:
        raise GalaxyRayError(f"{uri}: missing; the run's evaluation did not finish") from None
    ids = np.array([str(v) for v in t.column(C.OBJECT_ID).to_pylist()], dtype=object)

    def matrix(name: str) -> np.ndarray:
        rows = t.column(name).to_pylist()
        width = max((len(r) for r in rows if r is not None), default=0)
        return np.array([r if r is not None and len(r) == width else [np.nan] * width for r in rows],
                        dtype=np.float64).reshape(len(rows), width)

    return ids, matrix("y_true"), matrix("y_pred")


def run_figures(rep: Report, run_dir: str, source: str | None = None, top: int = 4) -> None:
    """Curves, confusion matrix, predicted vs true, top images and prediction histograms of a run."""
    from galaxy_ray import evaluate

    plt = _pyplot()
    evaluate.curves_from_csv(storage.join(run_dir, "metrics.csv"), storage.join(rep.out, "curves.png"))
    rep.figures.append(("curves.png", "Training and validation curves",
                        "Loss per epoch (training, validation) and the validation metric; grey: frozen backbone."))
    config = _read_json(storage.join(run_dir, "config.json"))
    spec = config.get("spec", {})
    task = spec.get("task") or config.get("config", {}).get("task", "gz2")
    names = list(spec.get("output_names") or config.get("output_columns") or [])
    ids, y_true, y_pred = _read_predictions(storage.join(run_dir, "validation_predictions.parquet"))
    ok = ~(np.isnan(y_pred).any(axis=1) | np.isnan(y_true).any(axis=1)) if y_pred.size else np.zeros(0, bool)
    ids, y_true, y_pred = ids[ok], y_true[ok], y_pred[ok]
    if not len(ids):
        rep.notes.append(f"{run_dir}: no validation predictions; prediction figures skipped")
        return
    if len(names) != y_pred.shape[1]:
        names = [f"output {i}" for i in range(y_pred.shape[1])]
    columns = list(GZ2_ANSWER_COLUMNS) if task == "gz2" and len(names) == len(GZ2_ANSWER_COLUMNS) else names
    rep.notes.append(f"run {run_dir}: task {task}, {len(ids)} validation galaxies")
    if task != "gz2":
        metrics = evaluate.classes_metrics(y_true.argmax(axis=1), y_pred, names)
        evaluate.plot_confusion(metrics, storage.join(rep.out, "confusion_matrix.png"))
        rep.figures.append(("confusion_matrix.png", "Confusion matrix",
                            "Validation galaxies, rows normalised by the true class; counts in the cells."))
    else:
        nrows, ncols = _grid(len(columns), 7)
        fig, axes = plt.subplots(nrows, ncols, figsize=(16, 2.3 * nrows), squeeze=False)
        for i, name in enumerate(columns):
            ax = axes.flat[i]
            ax.hexbin(y_true[:, i], y_pred[:, i], gridsize=15, extent=(0, 1, 0, 1), mincnt=1, cmap="viridis", bins="log")
            ax.plot([0, 1], [0, 1], "r-", lw=0.8)
            rmse = float(np.sqrt(np.mean((y_true[:, i] - y_pred[:, i]) ** 2)))
            ax.set_title(f"{GZ2_KAGGLE_COLUMNS[i]} {_short(name, 20)}\nRMSE {rmse:.3f}", fontsize=7)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(columns):]:
            ax.axis("off")
        fig.supxlabel("true cumulative vote fraction")
        fig.supylabel("predicted")
        fig.tight_layout()
        rep.save(fig, "predicted_vs_true.png", "Predicted versus true vote fractions",
                 "Validation galaxies, one panel per GZ2 answer (log-scaled hexbin counts); red: the 1:1 line.")
    # histograms of predictions against the truth
    nrows, ncols = _grid(len(columns), 7)
    fig, axes = plt.subplots(nrows, ncols, figsize=(16, 2.0 * nrows), squeeze=False)
    bins = np.linspace(0, 1, 21)
    for i, name in enumerate(columns):
        ax = axes.flat[i]
        ax.hist(y_true[:, i], bins=bins, color="0.75", label="true")
        ax.hist(y_pred[:, i], bins=bins, histtype="step", color="C3", lw=1.2, label="predicted")
        ax.set_title(_short(name, 26), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    what = "vote fractions" if task == "gz2" else "class probabilities"
    rep.save(fig, "prediction_histograms.png", f"Histograms of predicted {what}",
             f"Predicted {what} (red) against the true values (grey), validation galaxies.")
    # top galaxies per output, actual versus predicted
    source = source or config.get("config", {}).get("source")
    images: dict = {}
    if source:
        try:
            images = _images_for(source, set(_top_ids(ids, y_pred, top)))
        except GalaxyRayError as exc:
            rep.notes.append(f"images of the top galaxies not shown: {exc}")
    rows = []
    for i, name in enumerate(columns):
        order = np.argsort(-y_pred[:, i])[:top]
        rows.append((name, [(str(ids[j]), f"pred {y_pred[j, i]:.2f} / true {y_true[j, i]:.2f}") for j in order]))
    _plot_image_grid(rep, rows, images, "top_predictions.png", "Top galaxies per answer or class",
                     f"The {top} validation galaxies with the highest predicted value of each output, "
                     "with the predicted and the true value.")


def _top_ids(ids: np.ndarray, y_pred: np.ndarray, top: int) -> list[str]:
    return [str(ids[j]) for i in range(y_pred.shape[1]) for j in np.argsort(-y_pred[:, i])[:top]]


def _images_for(source: str, wanted: set[str]) -> dict[str, tuple[bytes | None, str]]:
    """Cutouts of the ``wanted`` object ids, read directly from the source (no cluster)."""
    from galaxy_ray.data.sources import open_source

    src = open_source(source)
    meta = src.metadata()
    if C.OBJECT_ID in meta.columns:
        meta = meta[meta[C.OBJECT_ID].astype(str).isin(wanted)]
    found: dict[str, tuple[bytes | None, str]] = {}
    for start in range(0, len(meta), 256):
        t = src.read_rows(meta.iloc[start : start + 256])
        oids = [str(v) for v in t.column(C.OBJECT_ID).to_pylist()]
        srcs = t.column(C.SOURCE).to_pylist() if C.SOURCE in t.column_names else oids
        for o, img, s in zip(oids, t.column(C.IMAGE).to_pylist(), srcs):
            if o in wanted:
                found[o] = (img, str(s))
        if len(found) == len(wanted):
            break
    return found


# --------------------------------------------------------------------------- catalogs


def _sky_xy(ra_deg: np.ndarray, dec_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mollweide axes coordinates (radians), RA increasing to the left as on the sky."""
    lon = np.radians(np.mod(np.asarray(ra_deg) + 180.0, 360.0) - 180.0)
    return -lon, np.radians(dec_deg)


def sky_cells(cat, order: int) -> dict[str, np.ndarray]:
    """Galaxy and merger counts per HEALPix cell of ``order`` (from ``_healpix_29``)."""
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


def catalog_figures(rep: Report, catalog_uri: str, order: int | None = None) -> None:
    """Sky maps of density and merger fraction, prediction histograms and morphology mix."""
    import astropy.units as u
    from cdshealpix import nested

    from galaxy_ray import catalog as catmod

    plt = _pyplot()
    cat = catmod.open_catalog(catalog_uri)
    stats = catmod.merger_stats(cat)
    rep.notes.append(
        f"catalog {catalog_uri}: {stats['rows']} rows, {stats['error_rows']} error rows, merger fraction "
        + ("n/a" if stats["merger_fraction"] is None else
           f"{stats['merger_fraction']:.4f} (95% Wilson {stats['merger_fraction_95'][0]:.4f}-"
           f"{stats['merger_fraction_95'][1]:.4f}) vs the local {catmod.LOCAL_MERGER_FRACTION} (Lotz et al. 2011)")
    )
    order = _auto_order(stats["rows"]) if order is None else int(order)
    cells = sky_cells(cat, order)
    if len(cells["cell"]):
        lon, lat = nested.healpix_to_lonlat(cells["cell"].astype(np.uint64), order)
        x, y = _sky_xy(lon.to_value(u.deg), lat.to_value(u.deg))
        cell_area = 4 * math.pi * (180 / math.pi) ** 2 / (12 * 4**order)  # deg^2
        density = cells["rows"] / cell_area
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(cells["classified"] > 0, cells["mergers"] / np.maximum(cells["classified"], 1), np.nan)
        fig = plt.figure(figsize=(14, 4.6))
        size = max(1.0, 2.5e4 / 4**order)  # marker area ~ cell area on a 14-inch figure
        for k, (values, label, cmap) in enumerate([(density, "galaxies per deg$^2$", "magma"),
                                                   (frac, "merger fraction", "coolwarm")]):
            ax = fig.add_subplot(1, 2, k + 1, projection="mollweide")
            good = np.isfinite(values)
            sc = ax.scatter(x[good], y[good], c=values[good], s=size, marker="s", cmap=cmap, linewidths=0)
            ax.grid(True, alpha=0.3)
            ax.set_xticklabels([f"{int(t)}°" for t in [150, 120, 90, 60, 30, 0, 330, 300, 270, 240, 210]], fontsize=7)
            ax.set_title(f"{label} (HEALPix order {order})", fontsize=10)
            fig.colorbar(sc, ax=ax, orientation="horizontal", pad=0.08, fraction=0.05, label=label)
        rep.save(fig, "sky_map.png", "Sky maps: galaxy density and merger fraction",
                 f"Mollweide projection (ICRS, RA increasing to the left), HEALPix order-{order} cells "
                 f"({math.sqrt(cell_area):.2f} deg across) from _healpix_29; merger fraction of classified rows.")
    else:
        rep.notes.append(f"{catalog_uri}: no positions (RA/Dec null); sky maps skipped")
    # distributions of predictions
    columns = cat.output_columns + [C.P_MERGER]
    con = cat.connection()
    con.register("catalog", cat.dataset())
    table = con.sql(
        "SELECT " + ", ".join(f'"{c}"' for c in columns) + ' FROM catalog WHERE "error" IS NULL USING SAMPLE 200000 ROWS'
    ).to_arrow_table()
    nrows, ncols = _grid(len(columns), 7)
    fig, axes = plt.subplots(nrows, ncols, figsize=(16, 2.0 * nrows), squeeze=False)
    for i, name in enumerate(columns):
        ax = axes.flat[i]
        vals = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        ax.hist(vals[np.isfinite(vals)], bins=np.linspace(0, 1, 21), color="C2" if name == C.P_MERGER else "C0")
        ax.set_title(_short(name, 26), fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.tight_layout()
    rep.save(fig, "catalog_histograms.png", "Histograms of predicted values in the catalog",
             "Predicted vote fractions or class probabilities, and p_merger (green), of classified rows "
             "(a random sample of at most 200,000).")
    morph = stats["morphology"]
    if morph:
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(morph) + 1.5))
        ax.barh(list(morph), list(morph.values()), color="C4")
        ax.invert_yaxis()
        ax.set_xlabel("galaxies")
        ax.set_title("morphology of classified rows")
        rep.save(fig, "morphology.png", "Morphology mix", "Rows per morphology label (error rows excluded).")


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="galaxy-ray report", description=__doc__.split("\n\n")[0])
    p.add_argument("input", help="training run directory, catalog, or labelled source")
    p.add_argument("out", help="output directory (local or s3://) for the PNGs and index.html")
    p.add_argument("--catalog", help="also draw this catalog's sky maps and histograms")
    p.add_argument("--source", help="source of the cutouts (a run: overrides config.json's; else adds its figures)")
    p.add_argument("--top", type=int, default=4, help="images per answer or class (default 4)")
    p.add_argument("--max-rows", type=int, default=2000, help="galaxies of a source to read (random sample)")
    p.add_argument("--order", type=int, help="HEALPix order of the sky maps (default: from the catalog size)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``galaxy-ray report``: PNGs and ``index.html`` for a run, a catalog or a source."""
    args = build_parser().parse_args(argv)
    if args.top < 1 or args.max_rows < 1:
        raise GalaxyRayError("--top and --max-rows must be >= 1")
    if args.order is not None and not 0 <= args.order <= 12:
        raise GalaxyRayError(f"--order {args.order}: give a HEALPix order from 0 to 12")
    _pyplot()
    kind = detect_input(args.input)
    storage.makedirs(args.out)
    rep = Report(args.out, f"galaxy-ray report: {args.input}")
    if kind == "run":
        run_figures(rep, args.input, source=args.source, top=args.top)
    elif kind == "catalog":
        catalog_figures(rep, args.input, order=args.order)
    else:
        source_figures(rep, read_labelled(args.input, args.max_rows), top=args.top)
    if args.catalog and kind != "catalog":
        catalog_figures(rep, args.catalog, order=args.order)
    if args.source and kind == "catalog":
        source_figures(rep, read_labelled(args.source, args.max_rows), top=args.top)
    index = rep.write_index()
    print(f"wrote {len(rep.figures)} figures and {index}")
    for name, title, _ in rep.figures:
        print(f"  {storage.join(args.out, name)}  {title}")
    return 0
