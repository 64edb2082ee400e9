"""Science report: figures and an index page for a source, a training run or a catalog.

``galaxy-ray report INPUT OUT_DIR [--catalog C] [--source S]`` detects what
INPUT is:

a training run directory (it holds ``metrics.csv``)
    training and validation curves; the confusion matrix (classes); predicted
    versus true for every GZ2 answer (hexbins with the 1:1 line); the galaxies
    with the highest predicted value of each answer or class, shown with the
    predicted and the true value; histograms of predicted vote fractions or
    probabilities against the true ones.  Images come from the run's source
    (``config.json``) or ``--source``.  (:mod:`~galaxy_ray.report.run`)
a catalog (it holds ``_catalog.json``)
    HEALPix sky maps (Mollweide) of galaxy density and merger fraction;
    histograms of the predicted columns and ``p_merger``; the morphology mix.
    (:mod:`~galaxy_ray.report.catalog`)
anything else: a labelled source (:func:`galaxy_ray.data.sources.open_source`)
    label histograms per GZ2 answer or class counts; the 37 x 37 correlation
    matrix of the GZ2 answers; the most prototypical images of each answer
    (highest vote fraction) or examples of each class.
    (:mod:`~galaxy_ray.report.source`)

``--catalog`` adds the catalog figures to a run's report, ``--source`` the
source's.  Every figure is a PNG in OUT_DIR, listed in ``index.html``
(:mod:`~galaxy_ray.report.page`).
"""

from galaxy_ray.report.catalog import catalog_figures, sky_cells
from galaxy_ray.report.cli import build_parser, detect_input, main
from galaxy_ray.report.page import Report
from galaxy_ray.report.run import run_figures
from galaxy_ray.report.source import Labelled, answer_correlation, prototypes, read_labelled, source_figures

__all__ = [
    "Report",
    "Labelled",
    "detect_input",
    "read_labelled",
    "prototypes",
    "answer_correlation",
    "sky_cells",
    "run_figures",
    "catalog_figures",
    "source_figures",
    "build_parser",
    "main",
]
