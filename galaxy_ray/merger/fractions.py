"""Merger fractions corrected for the classifier that flagged them.

The flagged fraction of a catalog is not the merger fraction: a classifier
with completeness ``c`` (recall) and false-positive rate ``e`` flags, in
expectation, ``c f + e (1 - f)`` of a population whose true fraction is
``f``.  At a true fraction of a few per cent, a false-positive rate of a few
per cent doubles the flagged fraction.  Inverting that relation is the
standard misclassification correction (Rogan & Gladen 1978):

    f = (f_flagged - e) / (c - e),

clipped to [0, 1].  ``c`` and ``e`` are measured on the validation split, so
they carry sampling noise of their own; the interval here comes from a
bootstrap that redraws the validation galaxies (hence ``c`` and ``e``) and
the catalog's flags together, so it is wide when validation held few mergers.

A group (or catalog) with fewer than :data:`MIN_FLAGGED` flagged galaxies, or
fewer than that many not flagged, is too small for the correction, and one
whose bootstrap draws all give the same value (its flagged fraction lies
outside the range the validation rates map onto [0, 1]) gets none either:
both would print an interval of zero width, which reads as certainty.

What the validation evidence allows (the rule every printed corrected fraction follows):

- **n/a** when validation held fewer than :data:`MIN_VALIDATION_MERGERS` mergers (the
  completeness then rests on a handful of galaxies); when the flagged fraction lies outside the
  false-positive rate to completeness range (no fraction in [0, 1] produces it with those rates: the
  point estimate would be clipped to 0 or 1, and on the demo a group flagged at 0.85 against a
  completeness of 0.73 printed 1.0000 (0.90 - 1.00) for a true 0.37); or when the 95% interval is
  wider than :data:`MAX_INTERVAL_WIDTH` (it then spans most of what a fraction can be and measures
  nothing);
- **a caveat** (``caveat``, printed after the number) when the completeness's 95% Wilson
  interval is wider than :data:`MAX_RATE_WIDTH` (a corrected fraction scales as ``1 / c``, so
  ``c`` known to +-0.1 moves it by about 10% / c of itself, more than the bootstrap of a plug-in
  binomial shows when ``c`` is near 1), or when the interval reaches 0 or 1, where the correction
  is clipped: that end is a bound of the method, not a measurement.

References
----------
Rogan, W. J. & Gladen, B. 1978, American Journal of Epidemiology 107, 71,
"Estimating prevalence from the results of a screening test".
Efron, B. & Tibshirani, R. 1993, An Introduction to the Bootstrap (percentile
intervals).
Brown, L. D., Cai, T. T. & DasGupta, A. 2001, Statistical Science 16, 101,
"Interval estimation for a binomial proportion" (plug-in intervals at small counts).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

__all__ = ["MAX_INTERVAL_WIDTH", "MAX_RATE_WIDTH", "MIN_FLAGGED", "MIN_VALIDATION_MERGERS", "classifier_rates",
           "corrected_fraction", "corrected_from_provenance", "format_corrected"]

#: Fewest flagged (and fewest unflagged) galaxies a group needs for a corrected fraction.  The
#: bootstrap draws the group's flag count from a binomial at its observed fraction; below about 10
#: counts that plug-in distribution is too discrete and skewed for a percentile interval to hold its
#: coverage (the n p >= 10 rule for binomial approximations; Brown, Cai & DasGupta 2001), and at 0 it
#: has no spread at all: the interval is [0, 0] whatever the group's size.
MIN_FLAGGED = 10
#: Fewest validation mergers behind a corrected fraction: with 9 mergers the completeness's 95% Wilson
#: interval is already about 0.45 wide at c = 0.7, and one merger more or less moves c by 0.11.
MIN_VALIDATION_MERGERS = 10
#: Widest 95% interval printed as a corrected fraction: wider, it says only that the fraction is "something".
MAX_INTERVAL_WIDTH = 0.5
#: Widest 95% Wilson interval of the completeness (or false-positive rate) printed without a caveat.
MAX_RATE_WIDTH = 0.2


def corrected_fraction(flagged: int, total: int, *, val_positives: int, val_true_positives: int,
                       val_negatives: int, val_false_positives: int, confidence: float = 0.95,
                       draws: int = 4000, seed: int = 0) -> dict[str, Any]:
    """The merger fraction corrected for completeness and false positives, with an interval.

    Parameters
    ----------
    flagged, total : int
        Galaxies flagged as mergers, and galaxies classified, in the catalog (or one group of it).
    val_positives, val_true_positives : int
        Validation mergers, and how many of them the flag caught (completeness = ratio).
    val_negatives, val_false_positives : int
        Validation non-mergers, and how many of them the flag caught (false-positive rate = ratio).
    confidence : float
        Coverage of the interval.
    draws : int
        Bootstrap draws.
    seed : int
        Seed of the bootstrap (the same inputs give the same interval).

    Returns
    -------
    dict
        ``fraction`` (point estimate), ``interval`` [lo, hi], ``completeness``,
        ``false_positive_rate``, ``method``, ``reason`` (None, or why there is
        no estimate) and, with an estimate, ``caveat`` (None, or what limits
        it).  The fraction and interval are NaN when the catalog is
        empty, when the classifier cannot tell mergers apart on validation
        (``c <= e``), when validation held fewer than :data:`MIN_VALIDATION_MERGERS`
        mergers, when fewer than :data:`MIN_FLAGGED` galaxies are flagged or not
        flagged, when every bootstrap draw gives the same value, or when the
        interval is wider than :data:`MAX_INTERVAL_WIDTH`.
    """
    c = val_true_positives / val_positives if val_positives else np.nan
    e = val_false_positives / val_negatives if val_negatives else np.nan
    out: dict[str, Any] = {"completeness": float(c), "false_positive_rate": float(e),
                           "method": "Rogan & Gladen (1978), bootstrap over validation and catalog"}
    nan = {"fraction": float("nan"), "interval": [float("nan"), float("nan")]}
    if total == 0 or not np.isfinite(c - e) or c <= e:
        return {**out, **nan, "reason": "no classified rows, or the flag does not separate mergers on "
                                        "validation (completeness <= false-positive rate)"}
    if val_positives < MIN_VALIDATION_MERGERS:
        return {**out, **nan, "reason": f"too few validation mergers: {val_positives}; the completeness needs at "
                                        f"least {MIN_VALIDATION_MERGERS}"}
    if min(flagged, total - flagged) < MIN_FLAGGED:
        return {**out, **nan, "reason": f"too few galaxies: {flagged} flagged and {total - flagged} not, of "
                                        f"{total}; the correction needs at least {MIN_FLAGGED} of each"}
    if not e <= flagged / total <= c:
        return {**out, **nan, "reason": f"the flagged fraction {flagged / total:.4f} lies outside the validation "
                                        f"false-positive rate {e:.4f} to completeness {c:.4f}: no merger fraction "
                                        "in [0, 1] gives it with those rates, so the classifier does not work here "
                                        "as on validation"}
    point = (flagged / total - e) / (c - e)
    rng = np.random.default_rng(seed)
    c_b = rng.binomial(val_positives, c, draws) / val_positives
    e_b = rng.binomial(val_negatives, e, draws) / val_negatives
    f_b = rng.binomial(total, flagged / total, draws) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.clip((f_b - e_b) / (c_b - e_b), 0.0, 1.0)
    est = np.where(c_b > e_b, est, np.nan)  # a draw where the classifier is no better than chance says nothing
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(est, [alpha, 1 - alpha])
    if lo == hi:
        return {**out, **nan, "reason": f"every bootstrap draw gives {lo:g}: the flagged fraction "
                                        f"{flagged / total:.4f} lies outside the false-positive rate {e:.4f} to "
                                        f"completeness {c:.4f} range the correction maps onto [0, 1]"}
    if hi - lo > MAX_INTERVAL_WIDTH:
        return {**out, **nan, "reason": f"95% interval {lo:.2f} - {hi:.2f} is wider than {MAX_INTERVAL_WIDTH:g}: "
                                        f"{val_positives} validation mergers and {flagged} flagged of {total} "
                                        "do not measure it"}
    caveat = _caveats(lo, hi, val_true_positives, val_positives, val_false_positives, val_negatives)
    return {**out, "fraction": point, "interval": [float(lo), float(hi)], "reason": None, "caveat": caveat}


def _caveats(lo: float, hi: float, tp: int, positives: int, fp: int, negatives: int) -> str | None:
    """The caveats of :data:`MAX_RATE_WIDTH` and of a clipped interval end, joined; None when there are none."""
    from galaxy_ray.merger.operating import wilson

    out = []
    for what, k, n in (("completeness", tp, positives), ("false-positive rate", fp, negatives)):
        a, b = wilson(k, n)
        if b - a > MAX_RATE_WIDTH:
            out.append(f"{what} {k / n:.2f} (95% {a:.2f} - {b:.2f}) rests on {n} validation "
                       f"{'mergers' if what == 'completeness' else 'non-mergers'}")
    for end, value in (("lower", lo), ("upper", hi)):
        if value in (0.0, 1.0):
            out.append(f"the {end} end {value:g} is where the correction is clipped, a bound, not a measurement")
    return "; ".join(out) or None


def classifier_rates(provenance: Mapping[str, Any] | None) -> dict[str, int] | None:
    """The validation counts behind a catalog's merger flag, from its provenance; None when absent.

    ``galaxy-ray infer`` records them as ``merger_validation`` (from the
    checkpoint's validation precision-recall table, at the catalog's threshold).

    Returns
    -------
    dict or None
        ``val_positives``, ``val_true_positives``, ``val_negatives``,
        ``val_false_positives`` (the keywords of :func:`corrected_fraction`).
    """
    v = (provenance or {}).get("merger_validation") or {}
    try:
        rates = {"val_positives": int(v["positives"]), "val_true_positives": int(v["true_positives"]),
                 "val_negatives": int(v["negatives"]), "val_false_positives": int(v["false_positives"])}
    except (KeyError, TypeError, ValueError):
        return None
    return rates if rates["val_positives"] > 0 and rates["val_negatives"] > 0 else None


def corrected_from_provenance(flagged: int, total: int, provenance: Mapping[str, Any] | None,
                              **kwargs: Any) -> dict[str, Any]:
    """:func:`corrected_fraction` of ``flagged`` of ``total`` with the rates a catalog's provenance holds.

    Parameters
    ----------
    flagged, total : int
        Classified rows flagged ``is_merger``, and classified rows (overall or in one group).
    provenance : mapping
        The catalog's provenance (``_catalog.json`` or a file's footer).
    **kwargs
        ``confidence``, ``draws``, ``seed`` of :func:`corrected_fraction`.

    Returns
    -------
    dict
        JSON-ready: ``corrected_fraction`` and ``corrected_fraction_95`` ([lo, hi]),
        ``completeness``, ``false_positive_rate``, ``correction`` (method) and
        ``truth`` (what a true merger was on validation); the two fractions are
        None, with ``correction`` saying why, when the provenance has no rates,
        the catalog part is empty, the classifier is no better than chance, the
        group is too small (:data:`MIN_FLAGGED`), validation held too few mergers
        (:data:`MIN_VALIDATION_MERGERS`) or its interval would have no width or be
        wider than :data:`MAX_INTERVAL_WIDTH`; ``caveat`` (None or text) says what
        limits a printed estimate (module text).
    """
    rates = classifier_rates(provenance)
    if rates is None:
        return {"corrected_fraction": None, "corrected_fraction_95": None, "completeness": None,
                "false_positive_rate": None, "truth": None, "caveat": None,
                "correction": "unavailable: the catalog records no validation rates (a model trained before "
                              "operating points were stored, or a validation split without mergers)"}
    est = corrected_fraction(int(flagged), int(total), **rates, **kwargs)

    def num(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    ok = est["fraction"] is not None and np.isfinite(est["fraction"])
    return {"corrected_fraction": num(est["fraction"]),
            "corrected_fraction_95": [num(est["interval"][0]), num(est["interval"][1])] if ok else None,
            "completeness": num(est["completeness"]), "false_positive_rate": num(est["false_positive_rate"]),
            "truth": (provenance or {}).get("merger_validation", {}).get("truth"),
            "correction": est["method"] if ok else f"unavailable: {est['reason']}",
            "caveat": est.get("caveat") if ok else None}


def format_corrected(d: Mapping[str, Any], brief: bool = False) -> str:
    """A corrected fraction as galaxy-ray prints it: the number, interval and caveat, or ``n/a (why)``.

    Parameters
    ----------
    d : mapping
        :func:`corrected_from_provenance`'s result (or a ``stats`` row holding its keys).
    brief : bool
        Only the first clause of a reason, and ``*`` in place of a caveat (a table's footnote says it).
    """
    if d.get("corrected_fraction") is None:
        reason = str(d.get("correction") or "").removeprefix("unavailable: ")
        return f"n/a ({reason.split('; ')[0] if brief else reason})" if reason else "n/a"
    lo, hi = d["corrected_fraction_95"]
    point = d["corrected_fraction"]
    # a point clipped at 0 (or 1) is a bound of the method, not a measurement: print the limit
    if point <= 0.0 and lo <= 0.0:
        return f"< {hi:.4f} (95% upper limit" + (")" if brief else "; the correction is clipped at 0)")
    if point >= 1.0 and hi >= 1.0:
        return f"> {lo:.4f} (95% lower limit" + (")" if brief else "; the correction is clipped at 1)")
    text = f"{point:.4f} (95% interval {lo:.4f} - {hi:.4f})"
    if d.get("caveat"):
        text += "*" if brief else f" [caveat: {d['caveat']}]"
    return text
