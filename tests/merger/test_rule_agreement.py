"""One merger rule: ``predict``, ``evaluate`` and ``infer`` flag the same cutouts the same way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from galaxy_ray import infer, model
from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch
from galaxy_ray.evaluate import main as evaluate_main
from galaxy_ray.infer.predict import predict_files
from galaxy_ray.merger.operating import curve_to_dict, precision_recall_curve
from galaxy_ray.merger.rule import MergerRule
from galaxy_ray.schema import CatalogColumns as C
from galaxy_ray.synthetic import synthetic_table

SIZE = 32


def _p_merger(checkpoint: str, table) -> np.ndarray:
    """The checkpoint's p_merger of each row, computed here in one batch (float32)."""
    predictor = model.Predictor.from_checkpoint(checkpoint, device="cpu")
    prepared = preprocess_batch({k: np.asarray(table[k].to_pylist(), dtype=object) for k in (C.IMAGE, C.OBJECT_ID)},
                                predictor.spec.preprocess)
    return model.merger_probability(predictor.spec, predictor(prepared["pixels"])).astype(np.float32)


def _threshold_in_a_gap(p: np.ndarray) -> float:
    """A threshold in the widest gap of the middle half of the scores: far from every score, not 0.5."""
    s = np.sort(p.astype(np.float64))
    lo, hi = len(s) // 4, 3 * len(s) // 4
    k = lo + int(np.argmax(np.diff(s[lo:hi + 1])))
    return float((s[k] + s[k + 1]) / 2)


@pytest.fixture(scope="module")
def flagged_survey(tmp_path_factory, write_shards):
    """24 labelled cutouts (shards and PNG files) and a checkpoint whose stored threshold splits them."""
    root = tmp_path_factory.mktemp("rule")
    table = synthetic_table(24, size=SIZE, seed=5)
    write_shards(table, str(root / "shards"), rows_per_shard=8)
    files = []
    for oid, png in zip(table[C.OBJECT_ID].to_pylist(), table[C.IMAGE].to_pylist()):
        files.append(str(root / "png" / f"{oid}.png"))
        Path(files[-1]).parent.mkdir(exist_ok=True)
        Path(files[-1]).write_bytes(png)
    torch.manual_seed(1)
    spec = model.ModelSpec.for_gz2("resnet18", PreprocessConfig(SIZE))
    plain = model.save_checkpoint(str(root / "plain.pt"), model.build_model(spec), spec)
    p = _p_merger(plain, table)
    threshold = _threshold_in_a_gap(p)
    truth = p > np.median(p)  # any truth: the rates are not what this test checks
    merger = {"threshold": threshold, "rule": "f1", "positives": int(truth.sum()), "negatives": int((~truth).sum()),
              "curve": curve_to_dict(precision_recall_curve(truth, p)), "vote_cut": 0.4, "truth": "test"}
    net, spec = model.load_checkpoint(plain)
    checkpoint = model.save_checkpoint(str(root / "model.pt"), net, spec, {"merger": merger})
    return {"root": root, "table": table, "files": files, "checkpoint": checkpoint, "threshold": threshold, "p": p}


def _flags_by_id(ray_cluster, s, threshold: str | None) -> dict[str, dict[str, bool]]:
    """is_merger of every cutout from predict, evaluate --split all and infer."""
    options = [] if threshold is None else ["--merger-threshold", threshold]
    tag = threshold or "auto"
    results = predict_files(s["checkpoint"], s["files"], merger_threshold=threshold or "auto")
    by_predict = {Path(r["image"]).stem: r["is_merger"] for r in results}
    out = s["root"] / f"eval-{tag}"
    assert evaluate_main([s["checkpoint"], str(s["root"] / "shards"), "--split", "all", "--out", str(out)]
                         + options) == 0
    ev = pq.read_table(out / "predictions.parquet").to_pydict()
    by_evaluate = dict(zip(ev[C.OBJECT_ID], ev[C.IS_MERGER]))
    cat = s["root"] / f"catalog-{tag}"
    infer.run_inference(s["checkpoint"], str(s["root"] / "shards"), str(cat), batch_size=5, num_actors=1,
                        merger_threshold=float(threshold) if threshold else "auto", log=lambda _: None)
    rows = pq.read_table(cat).to_pydict()
    by_infer = dict(zip(rows[C.OBJECT_ID], rows[C.IS_MERGER]))
    return {"predict": by_predict, "evaluate": by_evaluate, "infer": by_infer}


@pytest.mark.slow
def test_predict_evaluate_and_infer_flag_by_the_checkpoints_stored_threshold(ray_cluster, flagged_survey):
    s = flagged_survey
    assert abs(s["threshold"] - 0.5) > 0.01
    flags = _flags_by_id(ray_cluster, s, None)
    ids = s["table"][C.OBJECT_ID].to_pylist()
    expected = {i: bool(p >= s["threshold"]) for i, p in zip(ids, s["p"])}
    assert 0 < sum(expected.values()) < len(ids)  # the stored threshold splits the survey
    for stage, got in flags.items():
        assert got == expected, stage


@pytest.mark.slow
def test_a_users_threshold_overrides_the_stored_one_in_all_three(ray_cluster, flagged_survey):
    s = flagged_survey
    user = float(np.quantile(s["p"].astype(np.float64), 0.8))
    user = _threshold_in_a_gap(s["p"][s["p"] > np.median(s["p"])]) if np.any(s["p"] == user) else user
    flags = _flags_by_id(ray_cluster, s, repr(user))
    ids = s["table"][C.OBJECT_ID].to_pylist()
    expected = {i: bool(p >= np.float32(user)) for i, p in zip(ids, s["p"])}
    assert expected != {i: bool(p >= s["threshold"]) for i, p in zip(ids, s["p"])}  # it changes the flags
    for stage, got in flags.items():
        assert got == expected, stage


def test_the_rule_compares_in_float32_so_a_stored_float32_score_at_the_threshold_is_flagged():
    spec = model.ModelSpec.for_gz2("resnet18", PreprocessConfig(SIZE))
    t = float(np.float32(0.46666667))  # stored as float64 from a float32 score
    rule = MergerRule.from_checkpoint(spec, {"merger_threshold": 0.46666667})
    assert rule.flag(np.array([t, np.nextafter(np.float32(t), np.float32(0))], dtype=np.float32)).tolist() == [True,
                                                                                                               False]
    assert rule.vote_cut == 0.4  # old checkpoints: the cut they were trained with
