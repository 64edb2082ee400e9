"""Report figures of a labelled source: label histograms, answer correlations, prototypical images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from galaxy_ray.data.sources import open_source
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.report.images import Cutouts, highest, plot_image_grid
from galaxy_ray.report.page import Report, literal_text, panel_grid, short
from galaxy_ray.report.style import PANEL_FONT, TITLE_FONT, hist_weights, panel_title
from galaxy_ray.schema import GZ2_ANSWER_COLUMNS, GZ2_KAGGLE_COLUMNS, CatalogColumns as C

__all__ = ["Labelled", "read_labelled", "prototypes", "answer_correlation", "source_figures"]

#: Rows read from a source per ``read_rows`` call.
_READ_BATCH = 256


@dataclass
class Labelled:
    """Labels (and cutouts) of up to ``max_rows`` galaxies of a source."""

    uri: str
    object_id: np.ndarray  # (N,) of str
    votes: np.ndarray | None  # (N, 37) cumulative GZ2 vote fractions, NaN rows where unknown; or None
    label: np.ndarray | None  # (N,) of str/None, or None
    images: Cutouts


def _vote_matrix(votes: list) -> np.ndarray | None:
    """(N, 37) float64 of the rows' votes (NaN rows for None), or None when no row has votes."""
    if not votes or all(v is None for v in votes):
        return None
    blank = [np.nan] * len(GZ2_ANSWER_COLUMNS)
    return np.array([v if v is not None else blank for v in votes], dtype=np.float64)


def read_labelled(uri: str, max_rows: int = 2000, seed: int = 0, want_images: bool = True,
                  source_options: dict | None = None) -> Labelled:
    """Read labels and cutouts of a source without a cluster (``Source.read_rows``).

    A source larger than ``max_rows`` galaxies is sampled at random (fixed ``seed``);
    ``source_options`` are :func:`galaxy_ray.data.sources.open_source` keywords.

    Raises
    ------
    GalaxyRayError
        The source cannot be opened or lists no cutouts.
    """
    src = open_source(uri, **(source_options or {}))
    meta = src.metadata()
    if meta.empty:
        raise GalaxyRayError(f"{uri}: no cutouts found")
    if len(meta) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(meta), max_rows, replace=False))
        meta = meta.iloc[keep]
    ids, votes, labels, images = [], [], [], {}
    for start in range(0, len(meta), _READ_BATCH):
        t = src.read_rows(meta.iloc[start : start + _READ_BATCH])
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
    label_arr = np.array(labels, dtype=object) if labels and any(v is not None for v in labels) else None
    return Labelled(uri, np.array(ids, dtype=object), _vote_matrix(votes), label_arr, images)


def prototypes(data: Labelled, top: int) -> dict[str, np.ndarray]:
    """The most prototypical galaxies of each GZ2 answer: the ``top`` highest vote fractions.

    Returns
    -------
    dict
        GZ2 answer column -> row indices into ``data`` (highest vote fraction
        first; galaxies without votes last).

    Raises
    ------
    GalaxyRayError
        ``data`` has no votes.
    """
    if data.votes is None:
        raise GalaxyRayError(f"{data.uri}: no GZ2 votes")
    return dict(zip(GZ2_ANSWER_COLUMNS, highest(data.votes, top)))


def answer_correlation(votes: np.ndarray) -> np.ndarray:
    """(37, 37) Pearson correlation of the answers' vote fractions over galaxies with all 37 known.

    NaN in the rows and columns of answers that never vary.
    """
    complete = votes[~np.isnan(votes).any(axis=1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(complete, rowvar=False)


def _vote_figures(rep: Report, data: Labelled, top: int) -> None:
    """Vote-fraction histograms, the answer correlation matrix and the prototypes of each answer."""
    votes = data.votes[~np.isnan(data.votes).any(axis=1)]
    fig, axes = panel_grid(len(GZ2_ANSWER_COLUMNS), 2.4, layout="constrained")
    weights = hist_weights(votes)
    for i, (ax, name) in enumerate(zip(axes, GZ2_ANSWER_COLUMNS)):
        ax.hist(votes[:, i], bins=np.linspace(0, 1, 21), weights=weights, color="C0")
        ax.set_title(panel_title(name), fontsize=TITLE_FONT)
        ax.set_xlabel("cumulative vote fraction", fontsize=PANEL_FONT)
        ax.set_ylabel("fraction of galaxies", fontsize=PANEL_FONT)
        ax.tick_params(labelsize=PANEL_FONT - 1)
    rep.save(fig, "label_histograms.png", "Label histograms (GZ2 answers)",
             f"Distribution of each answer's cumulative vote fraction over {len(votes)} galaxies (Kaggle "
             "ClassQ.k order); each bar is the fraction of them in its bin of width 0.05.")
    fig = Figure(figsize=(11, 10))
    ax = fig.subplots()
    im = ax.imshow(answer_correlation(data.votes), cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [f"{k} {short(a, 22)}" for k, a in zip(GZ2_KAGGLE_COLUMNS, GZ2_ANSWER_COLUMNS)]
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.colorbar(im, ax=ax, fraction=0.046, label="Pearson correlation")
    ax.set_title("correlation of the 37 GZ2 answers")
    rep.save(fig, "answer_correlation.png", "Correlation matrix of the GZ2 answers",
             "Pearson correlation between the cumulative vote fractions (NaN where an answer never varies).")
    rows = [(name, [(str(data.object_id[j]), f"{data.votes[j, i]:.2f}") for j in idx])
            for i, (name, idx) in enumerate(prototypes(data, top).items())]
    plot_image_grid(rep, rows, data.images, "prototypes.png", "Most prototypical galaxies per answer",
                    f"The {top} galaxies with the highest vote fraction for each answer (value above each).")


def _class_figures(rep: Report, data: Labelled, top: int) -> None:
    """Galaxies per class, and the first ``top`` galaxies of each class."""
    ok = np.array([v is not None for v in data.label])
    names, counts = np.unique(data.label[ok].astype(str), return_counts=True)
    fig = Figure(figsize=(8, 0.4 * len(names) + 1.5))
    ax = fig.subplots()
    ax.barh(names, counts, color="C1")
    ax.set_xlabel("galaxies")
    ax.invert_yaxis()
    ax.set_title(f"class counts ({ok.sum()} labelled of {len(data.object_id)})")
    rep.save(fig, "class_counts.png", "Label histogram (classes)", "Galaxies per class label.")
    rows = []
    for name in names:
        idx = np.flatnonzero(data.label.astype(str) == name)[:top]
        rows.append((name, [(str(data.object_id[j]), str(data.object_id[j])[-12:]) for j in idx]))
    plot_image_grid(rep, rows, data.images, "class_examples.png", "Examples of each class",
                    f"The first {top} galaxies of each class.")


@literal_text
def source_figures(rep: Report, data: Labelled, top: int = 4) -> None:
    """Label histograms, GZ2 answer correlations and prototypical images of a labelled source."""
    if data.votes is None and data.label is None:
        rep.notes.append(f"{data.uri}: no votes or labels; label figures skipped")
        return
    if data.votes is not None:
        _vote_figures(rep, data, top)
    if data.label is not None:
        _class_figures(rep, data, top)
