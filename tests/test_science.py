"""Science an astronomer can publish: the merger flag's threshold and calibration through the real
train / evaluate / infer path, model selection by balanced accuracy, uncertainty per galaxy, corrected
fractions from a catalog's provenance."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from shapes import shape_png
from PIL import Image

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.split import Split
from galaxy_ray.io import storage

# --------------------------------------------------------------------------- a network whose output is known


def brightness_net(spec, slope: float = 1.0):
    """A real ResNet-18 GalaxyNet whose merger logit rises with the brightness of the image.

    Every residual branch is switched off (its last BatchNorm scales by 0), the
    downsampling shortcuts pass channel 0 through, and the stem's channel 0
    averages the normalised pixels under its 7x7 window (shifted positive by
    its BatchNorm), so the pooled feature 0 rises with a brightness added to every
    pixel.  The head reads only that feature.
    """
    import torch

    from galaxy_ray.model import build_model

    net = build_model(spec).eval()
    bb = net.backbone
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0 - m.eps)
                m.weight.fill_(1.0)
        bb.conv1.weight[0] = 1.0 / bb.conv1.weight[0].numel()
        bb.bn1.bias[0] = 10.0
        for layer in (bb.layer1, bb.layer2, bb.layer3, bb.layer4):
            for block in layer:
                block.bn2.weight.zero_()
                if block.downsample is not None:
                    block.downsample[0].weight[0, 0] = 1.0
        index = spec.output_names.index(spec.merger)
        net.head.weight[index, 0] = slope
        net.head.bias[index] = -10.0 * slope
    return net


def _level_png(level: float, size: int = 32) -> bytes:
    """A faint fixed blob on a flat background of ``level``: brighter levels are brighter everywhere."""
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    img = level + 0.08 * np.exp(-(xx**2 + yy**2) / (2 * (size / 6) ** 2))
    buf = io.BytesIO()
    Image.fromarray(np.repeat(np.round(255 * img)[..., None], 3, axis=2).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


#: (brightness, mergers, non-mergers) of the validation galaxies.  The merger fraction rises with
#: brightness (level frequencies 0, 1/4, 4/5, 1), and any increasing calibration keeps that order, so by hand:
#:   flag 0.8 only:        tp 5,  fp 0   F1 = 10/21 = 0.476
#:   flag 0.6 and 0.8:     tp 13, fp 2   F1 = 26/31 = 0.839   <- optimal
#:   flag 0.4 and up:      tp 16, fp 11  F1 = 32/43 = 0.744
#:   flag all:             tp 16, fp 21  F1 = 32/53 = 0.604
LEVELS = [(0.2, 0, 10), (0.4, 3, 9), (0.6, 8, 2), (0.8, 5, 0)]


def _ids_in(split: Split, subset: str, n: int, prefix: str) -> list[str]:
    ids, i = [], 0
    while len(ids) < n:
        if split.of(f"{prefix}{i}") == subset:
            ids.append(f"{prefix}{i}")
        i += 1
    return ids


def known_threshold_source(out: str, write_shards) -> str:
    split = Split(0.5)
    rows = []
    val_ids = iter(_ids_in(split, "val", sum(m + n for _, m, n in LEVELS), "v"))
    for level, mergers, others in LEVELS:
        rows += [(next(val_ids), level, "merger") for _ in range(mergers)]
        rows += [(next(val_ids), level, "other") for _ in range(others)]
    for i, oid in enumerate(_ids_in(split, "train", 8, "t")):
        rows.append((oid, 0.5, "merger" if i % 2 else "other"))
    table = pa.table({
        "object_id": [r[0] for r in rows],
        "ra": np.linspace(10, 20, len(rows)), "dec": np.linspace(-5, 5, len(rows)),
        "image": pa.array([_level_png(r[1]) for r in rows], pa.binary()),
        "source": [f"uniform[{r[1]}]" for r in rows],
        "label": [r[2] for r in rows],
    })
    write_shards(table, out, 30)
    return out


def known_net_loop(config):
    """A Ray Train worker that reports :func:`brightness_net` as its only epoch's checkpoint."""
    import ray.train
    import torch

    from galaxy_ray.io import layout
    from galaxy_ray.model import checkpoint_bytes

    worker = config["worker"]
    spec = worker.spec
    row = {"epoch": 1, "phase": "full", "train_loss": 0.0, "val_loss": 0.0, "val_accuracy": 0.5,
           "val_balanced_accuracy": 0.5, "lr": 0.0, "seconds": 0.0}
    state = {"epoch": 1, "best": 0.5, "bad_epochs": 0, "history": [row], "stopped": False, "resumes": []}
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"epoch": 1, **worker.extra}
        Path(tmp, layout.MODEL).write_bytes(checkpoint_bytes(brightness_net(spec), spec, extra))
        torch.save(state, Path(tmp, layout.TRAIN_STATE))
        ray.train.report(row, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _train(argv, train_loop=None) -> int:
    from galaxy_ray.train import config_from_args, run_training

    def main(args) -> int:
        run_training(config_from_args(args), train_loop=train_loop)
        return 0

    return run_entry_point(main, argv)


@pytest.fixture(scope="module")
def known_run(ray_cluster, tmp_path_factory, write_shards):
    import sys

    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the Ray Train worker cannot import this file
    root = tmp_path_factory.mktemp("known")
    source = known_threshold_source(str(root / "shards"), write_shards)
    assert _train(["--source", source, "--task", "classes", "--merger", "merger", "--workers", "1",
                   "--image-size", "32", "--val-fraction", "0.5", "--name", "known",
                   "--storage", str(root / "runs")], train_loop=known_net_loop) == 0
    return source, root / "runs" / "known"


@pytest.mark.slow
def test_auto_threshold_finds_the_f1_optimum_known_by_construction(known_run):
    from galaxy_ray.model import load_checkpoint

    _, run = known_run
    _, spec, extra = load_checkpoint(run / "model.pt", with_extra=True)
    merger = extra["merger"]
    # flag the 0.6 and 0.8 levels, at a calibrated threshold strictly inside (0, 1)
    assert merger["rule"] == "f1" and 0 < merger["threshold"] < 1
    assert (merger["true_positives"], merger["false_positives"]) == (13, 2)
    assert (merger["positives"], merger["negatives"]) == (16, 21)
    assert merger["precision"] == pytest.approx(13 / 15) and merger["recall"] == pytest.approx(13 / 16)
    assert merger["f1"] == pytest.approx(26 / 31)
    assert extra["merger_threshold"] == merger["threshold"]
    # the stored map (chosen by cross-validated log loss) never claims 0 or 1 from 37 galaxies
    # (isotonic regression stored exactly the level frequencies 0 and 1 here)
    from galaxy_ray.merger.calibration import merger_calibration

    assert spec.calibration["merger"]["method"] in ("platt", "beta", "isotonic-shrunk")
    ends = merger_calibration(spec.calibration)(np.array([0.0, 1.0]))
    assert ends[0] >= 1 / 39 - 1e-7 and ends[1] <= 1 - 1 / 39 + 1e-7
    report = json.loads((run / "evaluation.json").read_text())
    assert report["merger"]["precision"] == pytest.approx(13 / 15)
    assert report["merger"]["reliability"]["calibrated"]["ece"] < report["merger"]["reliability"]["raw"]["ece"]
    assert report["classes"]["per_class"]["merger"]["support"] == 16
    assert report["classes"]["confusion_matrix"] and "precision" in report["classes"]["per_class"]["other"]
    for png in ("merger_precision_recall.png", "reliability.png", "confusion_matrix.png"):
        assert (run / png).stat().st_size > 0, png


@pytest.mark.slow
def test_evaluate_and_infer_use_the_stored_threshold_and_a_number_overrides(known_run, tmp_path, capsys):
    from galaxy_ray.evaluate import main as evaluate_main
    from galaxy_ray.infer import run_inference
    from galaxy_ray.model import load_checkpoint

    source, run = known_run
    out = tmp_path / "ev"
    assert run_entry_point(evaluate_main, [str(run / "model.pt"), source, "--split", "val", "--out", str(out)]) == 0
    m = json.loads((out / "evaluation.json").read_text())["merger"]
    _, _, extra = load_checkpoint(run / "model.pt", with_extra=True)
    stored = extra["merger"]["threshold"]
    assert m["threshold"] == stored and m["threshold_source"].startswith("validation")
    assert (m["true_positives"], m["false_positives"]) == (13, 2)  # same galaxies, calibrated the same way
    # a precision target re-derived from the stored validation table: only the 0.8 level is pure
    assert run_entry_point(evaluate_main, [str(run), source, "--split", "val", "--out", str(out),
                                           "--merger-precision", "0.95"]) == 0
    m = json.loads((out / "evaluation.json").read_text())["merger"]
    assert stored < m["threshold"] < 1.0 and (m["true_positives"], m["false_positives"]) == (5, 0)

    quiet = lambda line: None  # noqa: E731
    summary = run_inference(str(run), source, str(tmp_path / "cat"), log=quiet)
    assert summary["merger_threshold"] == stored
    v = summary["merger_validation"]
    assert (v["positives"], v["true_positives"], v["negatives"], v["false_positives"]) == (16, 13, 21, 2)
    assert summary["calibration"]["p_merger"].split(",")[0] in ("Platt scaling", "beta calibration",
                                                                "isotonic regression shrunk toward beta calibration")
    given = run_inference(str(run), source, str(tmp_path / "cat2"), merger_threshold=0.2, log=quiet)
    assert given["merger_threshold"] == 0.2 and given["merger_threshold_source"] == "given"
    assert (given["merger_validation"]["true_positives"], given["merger_validation"]["false_positives"]) == (16, 11)


# --------------------------------------------------------------------------- calibration stored and applied


def test_predictor_applies_exactly_the_stored_calibration(tmp_path):
    import torch

    from galaxy_ray import model, schema
    from galaxy_ray.merger.calibration import IsotonicCalibration, TemperatureCalibration

    torch.manual_seed(0)
    spec = model.ModelSpec("resnet18", "classes", list(schema.GALAXY10_CLASSES), PreprocessConfig(32),
                           schema.GALAXY10_MERGER_CLASS)
    net = model.build_model(spec)
    iso = IsotonicCalibration((0.0, 0.05, 0.2, 1.0), (0.0, 0.1, 0.7, 0.9))
    calibrated = model.ModelSpec.from_dict({**spec.to_dict(), "calibration": {
        "probabilities": TemperatureCalibration(2.5).to_dict(), "merger": iso.to_dict()}})
    uri = model.save_checkpoint(tmp_path / "m.pt", net, calibrated, {"epoch": 1})
    pixels = np.random.default_rng(0).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    raw = model.Predictor.from_checkpoint(uri, device="cpu", calibrated=False)(pixels)
    got = model.Predictor.from_checkpoint(uri, device="cpu")(pixels)
    np.testing.assert_allclose(got, TemperatureCalibration(2.5)(raw), rtol=1e-5, atol=1e-7)
    index = spec.output_names.index(spec.merger)
    np.testing.assert_allclose(model.merger_probability(calibrated, got), iso(got[:, index]), atol=1e-7)
    # the uncalibrated spec reads the raw column
    np.testing.assert_array_equal(model.merger_probability(spec, raw), raw[:, index])


# --------------------------------------------------------------------------- uncertainty per galaxy


def test_tta_views_and_their_spread(tmp_path):
    import torch

    from galaxy_ray import model

    torch.manual_seed(1)
    spec = model.ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    predictor = model.Predictor(model.build_model(spec), spec, device="cpu", tta=True)
    pixels = np.random.default_rng(2).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    probs, views = predictor.predict_with_views(pixels)
    assert views.shape == (8, 3, 37)
    np.testing.assert_allclose(probs, predictor(pixels), atol=1e-6)
    np.testing.assert_allclose(probs, views.mean(axis=0), atol=1e-6)
    spread = model.view_spread(spec, views, probs)
    np.testing.assert_allclose(spread["p_merger_std"], views[:, :, spec.output_names.index("Class8.6")].std(axis=0),
                               atol=1e-6)
    # the morphology's probability: the vote fraction its label names, e.g. Class1.1 for elliptical
    labels = model.morphology(spec, probs)
    cols = [spec.output_names.index(model.outputs.GZ2_MORPHOLOGY_ANSWER[lab]) for lab in labels]
    want = np.stack([views[:, i, c] for i, c in enumerate(cols)], axis=1).std(axis=0)
    np.testing.assert_allclose(spread["morphology_prob_std"], want, atol=1e-6)
    # a galaxy that looks the same from every side has no spread
    flat = np.full((1, 3, 32, 32), 128, np.uint8)
    _, flat_views = predictor.predict_with_views(flat)
    assert model.view_spread(spec, flat_views, flat_views.mean(0))["p_merger_std"][0] < 1e-6


# --------------------------------------------------------------------------- corrected fractions from provenance


def test_corrected_fraction_from_a_catalog_provenance():
    from galaxy_ray.merger.fractions import corrected_from_provenance

    prov = {"merger_validation": {"positives": 100, "true_positives": 80, "negatives": 900,
                                  "false_positives": 18, "truth": "labelled class 'merger'"}}
    est = corrected_from_provenance(100, 1000, prov, draws=2000)
    assert est["corrected_fraction"] == pytest.approx((0.1 - 0.02) / (0.8 - 0.02))
    lo, hi = est["corrected_fraction_95"]
    assert lo < est["corrected_fraction"] < hi and est["truth"] == "labelled class 'merger'"
    json.dumps(est)  # JSON-ready
    missing = corrected_from_provenance(100, 1000, {"merger_threshold": 0.5})
    assert missing["corrected_fraction"] is None and missing["correction"].startswith("unavailable")


def test_gz2_truth_is_the_documented_vote_cut():
    from galaxy_ray import schema
    from galaxy_ray.merger.truth import MERGER_VOTE_CUT, true_mergers, truth_rule
    from galaxy_ray.model import ModelSpec

    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    votes = np.zeros((3, 37))
    votes[:, schema.GZ2_MERGER_INDEX] = [0.39, 0.40, 0.41]
    assert MERGER_VOTE_CUT == 0.4 and true_mergers(spec, votes, MERGER_VOTE_CUT).tolist() == [False, False, True]
    assert "Darg et al. 2010" in truth_rule(spec, MERGER_VOTE_CUT)


# --------------------------------------------------------------------------- model selection


def _imbalanced_table(n: int, seed: int) -> pa.Table:
    """Three common shapes and 'pair' in about 1 of 20 galaxies."""
    rng = np.random.default_rng(seed)
    kinds = ["pair" if i % 20 == 7 else ("round", "cigar", "ring")[i % 3] for i in range(n)]
    return pa.table({
        "object_id": [f"s{seed}-{i:05d}" for i in range(n)],
        "ra": rng.uniform(0, 360, n), "dec": rng.uniform(-30, 60, n),
        "image": pa.array([shape_png(k, rng) for k in kinds], pa.binary()),
        "source": [f"shape[{i}]" for i in range(n)],
        "label": kinds,
    })


@pytest.mark.slow
def test_classes_run_on_an_imbalanced_set_keeps_the_epoch_with_the_best_balanced_accuracy(
        ray_cluster, tmp_path, write_shards):
    from galaxy_ray.model import load_checkpoint

    table = _imbalanced_table(177, seed=7)  # 145 training rows: the last batch of 16 holds one image
    source = str(tmp_path / "shards")
    write_shards(table, source, 100)
    assert _train(["--source", source, "--task", "classes", "--workers", "1", "--epochs", "3", "--image-size", "32",
                   "--batch-size", "16", "--class-weights", "balanced", "--merger", "pair", "--patience", "10",
                   "--bn-samples", "33",
                   "--name", "imb", "--storage", str(tmp_path / "runs")]) == 0
    run = tmp_path / "runs" / "imb"
    rows = list(csv.DictReader(io.StringIO((run / "metrics.csv").read_text())))
    assert {"val_balanced_accuracy", "val_accuracy"} <= set(rows[0])
    balanced = [float(r["val_balanced_accuracy"]) for r in rows]
    _, _, extra = load_checkpoint(run / "model.pt", with_extra=True)
    assert extra["epoch"] == int(rows[int(np.argmax(balanced))]["epoch"])
    report = json.loads((run / "evaluation.json").read_text())
    assert report["classes"]["balanced_accuracy"] == pytest.approx(max(balanced), abs=0.02)
    assert set(report["classes"]["per_class"]) == {"cigar", "pair", "ring", "round"}
    assert "merger" in report and "threshold" in report["merger"]
    assert storage.exists(str(run / "validation_predictions.parquet"))
