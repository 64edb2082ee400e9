"""Vote fractions and their intervals from the Dirichlet concentrations a vote-count model predicts.

A vote-count model (Walmsley et al. 2022, MNRAS 509, 3966) predicts, per question, Dirichlet
concentrations :math:`\\alpha_k` over the answers' vote probabilities.  The expected vote
fraction of answer i is the Dirichlet mean :math:`\\alpha_i / A` with :math:`A = \\sum_k \\alpha_k`
over the question's answers, and its marginal is :math:`\\mathrm{Beta}(\\alpha_i, A - \\alpha_i)`
(the aggregation property of the Dirichlet; e.g. Kotz, Balakrishnan & Johnson 2000, *Continuous
Multivariate Distributions* vol. 1, ch. 49), whose 5% and 95% quantiles give the per-answer
90% interval.  Zoobot (``zoobot/shared/stats.py``) uses the same Beta marginal; its published
``_90pc-lower``/``_90pc-upper`` columns are found on a grid around the mode, these are the
equal-tailed quantiles (``scipy.stats.beta.ppf``).

numpy and scipy only (no torch), so the catalog side can use it.
"""

from __future__ import annotations

import numpy as np

from galaxy_ray.trees.schema import Schema

__all__ = ["question_totals", "expected_fractions", "fraction_intervals"]


def question_totals(values: np.ndarray, schema: Schema) -> np.ndarray:
    """Each answer's question total: ``out[:, k] = sum of values[:, j]`` over k's question.

    Parameters
    ----------
    values : array_like, shape (N, K)
        One value per answer in ``schema``'s answer order.

    Returns
    -------
    numpy.ndarray, shape (N, K), float64
    """
    values = schema.answer_rows(values)
    out = np.empty_like(values)
    for start, stop in schema.slices:
        out[:, start:stop] = values[:, start:stop].sum(axis=1, keepdims=True)
    return out


def expected_fractions(concentrations: np.ndarray, schema: Schema) -> np.ndarray:
    """Expected conditional vote fractions, :math:`\\alpha_i / \\sum_{k \\in q} \\alpha_k`.

    Parameters
    ----------
    concentrations : array_like, shape (N, K)
        Positive Dirichlet concentrations in ``schema``'s answer order.

    Returns
    -------
    numpy.ndarray, shape (N, K), float64
        Each question's fractions sum to 1.
    """
    alpha = np.atleast_2d(np.asarray(concentrations, dtype=np.float64))
    return alpha / question_totals(alpha, schema)


def fraction_intervals(concentrations: np.ndarray, schema: Schema, width: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed interval of each answer's vote fraction, from its Beta marginal.

    Parameters
    ----------
    concentrations : array_like, shape (N, K)
        Positive Dirichlet concentrations in ``schema``'s answer order.
    width : float
        Probability inside the interval, in (0, 1); 0.9 gives the 5% and 95% quantiles.

    Returns
    -------
    lower, upper : numpy.ndarray, shape (N, K), float64
        Quantiles :math:`(1 \\mp w)/2` of :math:`\\mathrm{Beta}(\\alpha_i, A - \\alpha_i)`, in [0, 1].
    """
    # Imported here: scipy.stats is half a second of every model actor's start-up.
    from scipy.stats import beta

    if not 0.0 < width < 1.0:
        raise ValueError(f"interval width {width} must be in (0, 1)")
    alpha = np.atleast_2d(np.asarray(concentrations, dtype=np.float64))
    rest = question_totals(alpha, schema) - alpha
    tail = (1.0 - width) / 2.0
    return beta.ppf(tail, alpha, rest), beta.ppf(1.0 - tail, alpha, rest)
