"""Issue 33 section 5: a p_merger that stays inside its evidence, its reliability with error bars, and
corrected fractions that carry the caveat or the n/a their evidence requires."""

from __future__ import annotations

import json

import numpy as np
import pytest

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.merger.calibration import (IsotonicCalibration, calibration_from_dict, describe, reliability,
                                           scores_with_intervals)
from galaxy_ray.merger.choice import LOSS_EPS, fit_merger_calibration, log_losses
from galaxy_ray.merger.fractions import (MAX_INTERVAL_WIDTH, MIN_VALIDATION_MERGERS, corrected_fraction,
                                         format_corrected)
from galaxy_ray.merger.parametric import BetaCalibration, PlattCalibration, ShrunkIsotonicCalibration
from galaxy_ray.model.outputs import merger_probability
from galaxy_ray.model.spec import ModelSpec

Z95 = 1.959963984540054


def true_curve(s: np.ndarray) -> np.ndarray:
    """The known calibration curve: logit p = 1.5 logit s + 1.2 (a Platt/beta-family map)."""
    s = np.clip(s, 1e-12, 1 - 1e-12)
    return 1 / (1 + np.exp(-(1.5 * np.log(s / (1 - s)) + 1.2)))


def draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores piled toward 0, as a 2-5% class's are, and truths drawn from :func:`true_curve`."""
    rng = np.random.default_rng(seed)
    s = rng.beta(0.6, 9.0, n)
    return s, rng.random(n) < true_curve(s)


def hand_wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson (1927) score interval, from its formula."""
    centre = (k + Z95**2 / 2) / (n + Z95**2)
    half = Z95 / (n + Z95**2) * np.sqrt(k * (n - k) / n + Z95**2 / 4)
    return centre - half, centre + half


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_on_a_known_curve_the_choice_stays_inside_0_1_and_beats_isotonic_out_of_sample(seed):
    score, truth = draw(500, seed)  # a validation split with a few dozen mergers
    assert 10 <= truth.sum() <= 60
    chosen, selection = fit_merger_calibration(score, truth)
    iso = IsotonicCalibration.fit(score, truth)
    new_s, new_y = draw(20000, 100 + seed)  # galaxies neither map saw
    new_s = np.r_[new_s, 0.0, 1.0]  # the extremes a network can output
    new_y = np.r_[new_y, False, True]
    p = chosen(new_s).astype(np.float64)
    assert p.min() > 0 and p.max() < 1
    assert p.min() >= 1 / (len(score) + 2) - 1e-9 and p.max() <= 1 - 1 / (len(score) + 2) + 1e-9
    q = iso(new_s).astype(np.float64)
    assert ((q == 0) | (q == 1)).mean() > 0.05  # what the old map did with the same evidence
    assert log_losses(p, new_y).mean() < log_losses(q, new_y).mean()
    # and it is closer to the true curve than isotonic, galaxy by galaxy on average
    assert np.abs(p - true_curve(new_s)).mean() < np.abs(q - true_curve(new_s)).mean()
    assert selection["positives"] == int(truth.sum()) and selection["folds"] == 5
    assert set(selection["log_loss"]) == {"platt", "beta", "isotonic-shrunk"}


def test_with_ample_evidence_for_a_step_the_choice_is_the_flexible_map():
    """A step no sigmoid follows, 8,000 galaxies: the one-standard-error rule must let isotonic-shrunk win."""
    rng = np.random.default_rng(5)
    s = rng.random(8000)
    truth = rng.random(8000) < np.where(s < 0.5, 0.05, 0.6)
    chosen, selection = fit_merger_calibration(s, truth)
    assert isinstance(chosen, ShrunkIsotonicCalibration)
    assert min(selection["log_loss"], key=selection["log_loss"].get) == "isotonic-shrunk"
    assert chosen(np.array([0.25]))[0] == pytest.approx(0.05, abs=0.02)
    assert chosen(np.array([0.75]))[0] == pytest.approx(0.6, abs=0.04)


def test_too_few_mergers_to_compare_gives_platt_and_says_so():
    s = np.linspace(0, 1, 40)
    truth = np.zeros(40, bool)
    truth[[30, 39]] = True  # two mergers: one per fold at best
    chosen, selection = fit_merger_calibration(s, truth)
    assert isinstance(chosen, PlattCalibration) and selection["folds"] == 0 and selection["log_loss"] is None
    assert "without comparison" in selection["rule"]
    assert 0 < chosen(s).min() and chosen(s).max() < 1


def test_platt_and_beta_recover_a_map_in_their_family():
    score, truth = draw(40000, 7)
    platt, beta = PlattCalibration.fit(score, truth), BetaCalibration.fit(score, truth)
    assert platt.a == pytest.approx(1.5, abs=0.1) and platt.b == pytest.approx(1.2, abs=0.25)
    assert beta.a == pytest.approx(1.5, abs=0.15) and beta.b == pytest.approx(1.5, abs=0.5)


def test_an_old_checkpoint_spec_with_isotonic_calibration_loads_and_maps_as_before():
    """A spec dict exactly as checkpoints store it today (ModelSpec.to_dict, isotonic merger map)."""
    stored = {"arch": "resnet18", "task": "classes", "output_names": ["other", "merger"],
              "preprocess": {"image_size": 32, "crop_fraction": 1.0}, "merger": "merger",
              "calibration": {"probabilities": {"method": "temperature", "temperature": 1.0},
                              "merger": {"method": "isotonic", "scores": [0.1, 0.4, 0.6, 0.9],
                                         "frequencies": [0.0, 0.2, 0.5, 1.0]}},
              "tree": None}
    spec = ModelSpec.from_dict(json.loads(json.dumps(stored)))
    probs = np.array([[0.95, 0.05], [0.75, 0.25], [0.5, 0.5], [0.0, 1.0]], dtype=np.float32)
    # np.interp by hand: below the first knot 0; 0.25 halfway 0.1-0.4 -> 0.1; 0.5 halfway 0.4-0.6 -> 0.35; above 1
    assert merger_probability(spec, probs).tolist() == pytest.approx([0.0, 0.1, 0.35, 1.0], abs=1e-6)
    assert describe(spec.calibration["merger"]).startswith("isotonic regression")


@pytest.mark.parametrize("cls, truth_seed", [(PlattCalibration, 0), (BetaCalibration, 1),
                                             (ShrunkIsotonicCalibration, 2)])
def test_new_maps_round_trip_through_the_spec(cls, truth_seed):
    score, truth = draw(800, truth_seed)
    fitted = cls.fit(score, truth)
    back = calibration_from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert np.array_equal(back(score), fitted(score))
    assert np.isnan(back(np.array([np.nan])))[0]


@pytest.mark.parametrize("stored, match", [({"method": "spline"}, "unknown method"),
                                           ({"method": "platt", "a": 1.0}, "missing or malformed")])
def test_an_unreadable_merger_map_is_one_line(stored, match):
    with pytest.raises(GalaxyRayError, match=match) as err:
        calibration_from_dict(stored)
    assert "\n" not in str(err.value)


def test_reliability_bins_carry_wilson_intervals():
    s = np.r_[np.full(5, 0.15), np.full(40, 0.85)]
    y = np.r_[[True, False, False, False, False], np.arange(40) < 30]
    r = reliability(s, y, bins=10)
    assert (r["frequency_lo"][1], r["frequency_hi"][1]) == pytest.approx(hand_wilson(1, 5))
    assert (r["frequency_lo"][8], r["frequency_hi"][8]) == pytest.approx(hand_wilson(30, 40))
    assert np.isnan(r["frequency_lo"][0]) and r["count"][0] == 0


def test_log_loss_and_ece_intervals_hold_the_hand_values():
    p = np.r_[np.full(50, 0.2), np.full(50, 0.7)]
    y = np.r_[np.arange(50) < 10, np.arange(50) < 35]  # exactly calibrated: ECE 0
    out = scores_with_intervals(p, y, draws=400)
    by_hand = -(10 * np.log(0.2) + 40 * np.log(0.8) + 35 * np.log(0.7) + 15 * np.log(0.3)) / 100
    assert out["log_loss"] == pytest.approx(by_hand)
    assert out["log_loss_95"][0] < by_hand < out["log_loss_95"][1]
    assert out["ece"] == pytest.approx(0.0, abs=1e-12) and out["ece_95"][1] > 0  # resampling moves it
    zero = scores_with_intervals(np.array([0.0, 0.5]), np.array([True, False]), draws=50)
    assert zero["exact_0_or_1"] == 0.5 and zero["log_loss"] == pytest.approx((-np.log(LOSS_EPS) + np.log(2)) / 2)


RATES = dict(val_negatives=2000, val_false_positives=40)


@pytest.mark.parametrize("positives, has_estimate", [(MIN_VALIDATION_MERGERS - 1, False),
                                                     (MIN_VALIDATION_MERGERS, True)])
def test_too_few_validation_mergers_is_na_at_the_documented_threshold(positives, has_estimate):
    # completeness 0.9 either way (rounded counts); a wide flagged range keeps the interval narrow enough
    caught = round(0.9 * positives)
    est = corrected_fraction(300, 1000, val_positives=positives, val_true_positives=caught, **RATES, draws=2000)
    assert bool(np.isfinite(est["fraction"])) == has_estimate
    if not has_estimate:
        assert est["reason"] == (f"too few validation mergers: {positives}; the completeness needs at least "
                                 f"{MIN_VALIDATION_MERGERS}")


def test_an_interval_wider_than_the_limit_is_na_and_a_printed_one_never_is():
    # completeness 5 of 10: the bootstrap draws it anywhere from 0.2 to 0.8, and the fraction from 0.35 to 1
    wide = corrected_fraction(300, 1000, val_positives=10, val_true_positives=5, **RATES, draws=2000)
    assert not np.isfinite(wide["fraction"]) and f"wider than {MAX_INTERVAL_WIDTH:g}" in wide["reason"]
    for tp in range(7, 11):
        est = corrected_fraction(300, 1000, val_positives=10, val_true_positives=tp, **RATES, draws=2000)
        if np.isfinite(est["fraction"]):
            assert est["interval"][1] - est["interval"][0] <= MAX_INTERVAL_WIDTH


def test_few_validation_mergers_and_clipped_ends_carry_a_caveat():
    few = corrected_fraction(300, 1000, val_positives=22, val_true_positives=18, **RATES, draws=2000)
    lo, hi = hand_wilson(18, 22)
    assert hi - lo > 0.2
    assert f"completeness 0.82 (95% {lo:.2f} - {hi:.2f}) rests on 22 validation mergers" in few["caveat"]
    many = corrected_fraction(300, 1000, val_positives=600, val_true_positives=480, **RATES, draws=2000)
    assert many["caveat"] is None and np.isfinite(many["fraction"])
    # a group flagged nearly as often as the completeness: draws clip at 1
    high = corrected_fraction(780, 1000, val_positives=600, val_true_positives=480, **RATES, draws=2000)
    assert high["interval"][1] == 1.0 and "upper end 1 is where the correction is clipped" in high["caveat"]
    text = format_corrected({"corrected_fraction": high["fraction"], "corrected_fraction_95": high["interval"],
                             "caveat": high["caveat"]})
    assert text.endswith(f"[caveat: {high['caveat']}]")


def test_stats_by_group_marks_a_caveated_fraction_and_says_why(tmp_path, capsys):
    """The issue's case: 22 validation mergers, a group flagged mostly as mergers (no caveat on HEAD)."""
    import pyarrow as pa

    from galaxy_ray import catalog as cat
    from galaxy_ray.cli import run_entry_point
    from test_catalog import PROVENANCE, random_rows

    groups = {"merging": (200, 150), "spiral": (2000, 300)}  # morphology -> (galaxies, flagged)
    table = random_rows(2200, seed=33, with_nulls=False)
    morph = [m for m, (n, _) in groups.items() for _ in range(n)]
    flag = [i < k for n, k in groups.values() for i in range(n)]
    table = table.set_column(table.schema.get_field_index("morphology"), "morphology", pa.array(morph))
    table = table.set_column(table.schema.get_field_index("is_merger"), "is_merger", pa.array(flag))
    prov = {**PROVENANCE, "merger_validation": {"positives": 22, "true_positives": 18, "negatives": 978,
                                                "false_positives": 20}}
    cat.write_catalog_file(table, str(tmp_path / "part-00000.parquet"), prov)
    cat.write_catalog_summary(str(tmp_path), prov)
    assert run_entry_point(cat.stats_main, [str(tmp_path), "--by", "morphology", "--json"]) == 0
    by = {g["group"]: g for g in json.loads(capsys.readouterr().out)["groups"]}
    lo, hi = hand_wilson(18, 22)
    why = f"completeness 0.82 (95% {lo:.2f} - {hi:.2f}) rests on 22 validation mergers"
    assert by["merging"]["corrected_fraction_95"][1] == 1.0  # 0.75 flagged against completeness 0.82: clipped
    assert by["merging"]["caveat"].startswith(why) and "upper end 1 is where the correction is clipped" in \
        by["merging"]["caveat"]
    assert run_entry_point(cat.stats_main, [str(tmp_path), "--by", "morphology"]) == 0
    text = capsys.readouterr().out
    table_rows = {line.split()[0]: line for line in text.split("by morphology:", 1)[1].splitlines()[2:4]}
    assert table_rows["merging"].endswith(" - 1.0000)*") and table_rows["spiral"].endswith(")*")
    assert f"  * merging: {by['merging']['caveat']}" in text.splitlines()
    overall = next(line for line in text.splitlines() if line.startswith("merger fraction corrected"))
    assert f"[caveat: {why}" in overall


def test_reliability_plot_draws_each_bins_wilson_bar(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    from galaxy_ray.evaluate.plots import _reliability_curve, plot_reliability
    from galaxy_ray.merger.truth import _reliability_lists

    s = np.r_[np.full(5, 0.15), np.full(40, 0.85)]
    y = np.r_[[True, False, False, False, False], np.arange(40) < 30]
    rel = _reliability_lists(s, y, scored=True)
    fig, ax = plt.subplots()
    _reliability_curve(ax, rel, "calibrated", "C0")
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 1
    segments = bars[0].lines[2][0].get_segments()
    ends = sorted((float(seg[0][1]), float(seg[1][1])) for seg in segments)
    assert ends == [pytest.approx(hand_wilson(1, 5)), pytest.approx(hand_wilson(30, 40))]
    assert "log loss" in ax.get_legend_handles_labels()[1][0]
    plt.close(fig)
    old = {k: rel[k] for k in ("mean_score", "frequency", "count", "ece")}  # a report written before the bars
    plot_reliability(old, rel, str(tmp_path / "reliability.png"))
    assert (tmp_path / "reliability.png").stat().st_size > 0


@pytest.mark.parametrize("flagged, total", [(133, 157), (10, 1000)])
def test_a_flagged_fraction_outside_the_validation_rates_is_na(flagged, total):
    """The demo's disk group: 133 of 157 flagged (0.85) against completeness 16/22 = 0.73.  HEAD clipped
    the estimate to 1 and printed 1.0000 (0.90 - 1.00) for a true fraction of 0.37; 10 of 1000 (0.01) sits
    below the false-positive rate 45/218 = 0.21 likewise."""
    est = corrected_fraction(flagged, total, val_positives=22, val_true_positives=16, val_negatives=218,
                             val_false_positives=45, draws=2000)
    assert not np.isfinite(est["fraction"])
    assert est["reason"].startswith(f"the flagged fraction {flagged / total:.4f} lies outside the validation "
                                    f"false-positive rate {45 / 218:.4f} to completeness {16 / 22:.4f}")
    inside = corrected_fraction(120, 157, val_positives=22, val_true_positives=17, val_negatives=218,
                                val_false_positives=45, draws=2000)  # 0.764 <= 17/22 = 0.773
    assert np.isfinite(inside["fraction"]) and "upper end 1" in inside["caveat"]
