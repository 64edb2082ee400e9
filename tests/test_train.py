"""Ray Train fine-tuning on a real local Ray cluster: learning, checkpoints, resume, S3, job submit."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shapes import shape_png
from PIL import Image

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray import schema
from galaxy_ray.io import storage
from galaxy_ray.cli import run_entry_point

SHAPES = ["round", "cigar", "ring", "pair"]


# --------------------------------------------------------------------------- a small learnable survey


def _votes(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Tree-consistent cumulative GZ2 fractions that depend on the shape, with vote noise."""
    q = {question.number: question.indices for question in schema.GZ2_QUESTIONS}
    cond = np.zeros(37)
    table = {
        1: {"round": [.85, .1, .05], "cigar": [.8, .15, .05], "ring": [.2, .75, .05], "pair": [.5, .45, .05]},
        2: {"cigar": [.7, .3]}, 4: {"ring": [.6, .4]}, 6: {"ring": [.85, .15], "pair": [.85, .15]},
        7: {"round": [.8, .15, .05], "cigar": [.05, .25, .7]},
        8: {"ring": [.8, .02, .03, .03, .04, .05, .03], "pair": [.02, .02, .1, .05, .03, .75, .03]},
    }
    default = {2: [.1, .9], 3: [.3, .7], 4: [.2, .8], 5: [.25] * 4, 6: [.1, .9], 7: [.3, .5, .2],
               8: [1 / 7] * 7, 9: [.4, .3, .3], 10: [.3, .4, .3], 11: [.1, .5, .2, .1, .05, .05]}
    for number, idx in q.items():
        p = np.asarray(table.get(number, {}).get(kind, default.get(number)), dtype=float)
        p = np.clip(p + rng.normal(0, 0.03, len(p)), 0.001, None)
        cond[idx] = p / p.sum()
    return schema.conditional_to_cumulative(cond).astype(np.float32)


def cutout_table(n: int, size: int = 32, seed: int = 0, labels: bool = True) -> pa.Table:
    rng = np.random.default_rng(seed)
    kinds = [SHAPES[i % len(SHAPES)] for i in range(n)]
    images = []
    for kind in kinds:
        images.append(shape_png(kind, rng, size))
    votes = [_votes(k, rng).tolist() for k in kinds]
    return pa.table({
        "object_id": pa.array([f"g{seed}-{i:05d}" for i in range(n)]),
        "ra": pa.array(rng.uniform(0, 360, n)),
        "dec": pa.array(rng.uniform(-30, 60, n)),
        "image": pa.array(images, pa.binary()),
        "source": pa.array([f"hand[{i}]" for i in range(n)]),
        "votes": pa.array(votes if labels else [None] * n, pa.list_(pa.float32())),
        "label": pa.array(kinds if labels else [None] * n, pa.string()),
    })


@pytest.fixture(scope="module")
def labelled_shards(tmp_path_factory, write_shards) -> str:
    """192 learnable labelled cutouts (votes and classes) in 2 shards."""
    out = str(tmp_path_factory.mktemp("survey") / "shards")
    write_shards(cutout_table(192, size=32, seed=1), out, rows_per_shard=96)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, write_shards) -> str:
    out = str(tmp_path_factory.mktemp("tiny") / "shards")
    write_shards(cutout_table(40, size=32, seed=2), out, rows_per_shard=20)
    return out


def _train(argv: list[str], train_loop=None) -> int:
    """``galaxy-ray train ARGV`` (its exit code); ``train_loop`` replaces the worker function."""
    from galaxy_ray.train import config_from_args, run_training

    def main(args) -> int:
        run_training(config_from_args(args), train_loop=train_loop)
        return 0

    return run_entry_point(main, argv)


def _dying_loop(epoch: int, marker: Path):
    """A worker function whose last worker ends its process at the start of ``epoch``, once.

    It first lets the controller register the previous epoch's report (Ray Train
    polls workers every 2 s; a report made less than that before a crash is lost
    with the worker, and the run then resumes one epoch earlier).  ``marker``
    records that it happened.
    """
    from galaxy_ray.train.loop import train_loop_per_worker

    def loop(config):
        import os
        import time

        import ray.train

        def die(current: int) -> None:
            ctx = ray.train.get_context()
            if current != epoch or ctx.get_world_rank() != ctx.get_world_size() - 1 or marker.exists():
                return
            time.sleep(6.0)
            marker.write_text(f"worker {ctx.get_world_rank()} died in epoch {current}\n")
            os._exit(1)

        train_loop_per_worker(config, on_epoch_start=die)

    return loop


def _metrics(run_dir) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(storage.read_bytes(storage.join(str(run_dir), "metrics.csv")).decode())))


FAST = ["--image-size", "32", "--batch-size", "8", "--lr", "1e-3"]


# --------------------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def gz2_run(ray_cluster, labelled_shards, tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    # a frozen-backbone first epoch too: DDP is rebuilt when the backbone thaws.  From scratch on
    # 150 cutouts, validation is noisy for the first full epochs (BatchNorm statistics still
    # settling) and then falls well below the baseline; early stopping must not cut that short.
    assert _train(["--source", labelled_shards, "--task", "gz2", "--workers", "2", "--epochs", "8", *FAST,
                   "--freeze-epochs", "1", "--finetune-lr-scale", "1", "--patience", "8",
                   "--name", "gz2", "--storage", str(runs)]) == 0
    return runs / "gz2"


@pytest.mark.slow
def test_two_worker_gz2_run_learns_and_fills_its_run_directory(gz2_run):
    for name in ["model.pt", "metrics.csv", "curves.png", "evaluation.json", "rmse_per_answer.png",
                 "config.json", "validation_predictions.parquet"]:
        assert (gz2_run / name).stat().st_size > 0, name
    rows = _metrics(gz2_run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert [r["phase"] for r in rows] == ["frozen"] + ["full"] * 7
    assert list(rows[0]) == ["epoch", "phase", "train_loss", "val_loss", "val_rmse", "lr", "seconds"]
    report = json.loads((gz2_run / "evaluation.json").read_text())["gz2"]
    config = json.loads((gz2_run / "config.json").read_text())
    baseline_mse = config["data"]["baseline_val_rmse"] ** 2
    # validation loss clearly below predicting the training mean
    assert min(float(r["val_loss"]) for r in rows) < 0.7 * baseline_mse, (rows, baseline_mse)
    assert report["rmse"] < 0.85 * report["baseline_rmse"]
    assert len(report["per_answer"]) == 37 and report["baseline"] == "training mean"
    assert config["data"]["n_train"] + config["data"]["n_val"] == 192


@pytest.mark.slow
def test_checkpoint_reloads_to_identical_predictions_that_obey_the_tree(gz2_run, labelled_shards):
    from galaxy_ray.data.transforms import preprocess_batch
    from galaxy_ray.model import load_checkpoint, predict_numpy

    preds = pq.read_table(gz2_run / "validation_predictions.parquet")
    assert preds.schema.field("y_pred").type == pa.list_(pa.float32())
    y_pred = np.array(preds.column("y_pred").to_pylist(), dtype=np.float32)
    assert y_pred.shape[1] == 37 and schema.tree_violation(y_pred).max() < 1e-5
    # the same validation galaxies through a freshly loaded model.pt, outside Ray: the same numbers
    model, spec = load_checkpoint(gz2_run / "model.pt")
    table = pq.read_table(labelled_shards).to_pydict()
    index = {oid: i for i, oid in enumerate(table["object_id"])}
    ids = preds.column("object_id").to_pylist()
    rows = [index[i] for i in ids]
    batch = {k: np.array([table[k][r] for r in rows], dtype=object) for k in ("object_id", "image", "source")}
    pixels = preprocess_batch(batch, spec.preprocess)["pixels"]
    np.testing.assert_allclose(predict_numpy(model, pixels), y_pred, rtol=0, atol=1e-6)
    truth = np.array(preds.column("y_true").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(truth, np.array([table["votes"][r] for r in rows]), atol=0)


@pytest.mark.slow
def test_split_is_stable_and_disjoint(gz2_run, labelled_shards):
    from galaxy_ray.train import split_of

    ids = pq.read_table(labelled_shards).column("object_id").to_pylist()
    val = {i for i in ids if split_of(i, 0.2) == "val"}
    assert val == {i for i in ids if split_of(i, 0.2) == "val"}
    assert 0.1 < len(val) / len(ids) < 0.3
    assert set(pq.read_table(gz2_run / "validation_predictions.parquet").column("object_id").to_pylist()) == val


@pytest.mark.slow
def test_evaluate_command_on_a_labelled_source(gz2_run, labelled_shards, tmp_path, capsys):
    from galaxy_ray.evaluate import main

    assert run_entry_point(main, [str(gz2_run / "model.pt"), labelled_shards, "--out", str(tmp_path / "ev"), "--split", "val"]) == 0
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    at_end = json.loads((gz2_run / "evaluation.json").read_text())
    assert report["gz2"]["rmse"] == pytest.approx(at_end["gz2"]["rmse"], abs=1e-6)
    assert report["merger"]["output"] == "Class8.6" and "precision" in report["merger"]
    assert "validation RMSE" in capsys.readouterr().out
    assert (tmp_path / "ev" / "curves.png").stat().st_size > 0 and (tmp_path / "ev" / "predictions.parquet").exists()
    # --tta: the average over rotations and flips, still obeying the tree (a mean of consistent outputs)
    assert run_entry_point(main, [str(gz2_run / "model.pt"), labelled_shards, "--out", str(tmp_path / "tta"), "--split", "val",
                                  "--tta"]) == 0
    assert json.loads((tmp_path / "tta" / "evaluation.json").read_text())["tta"] is True
    plain = np.array(pq.read_table(tmp_path / "ev" / "predictions.parquet").column("y_pred").to_pylist())
    tta = np.array(pq.read_table(tmp_path / "tta" / "predictions.parquet").column("y_pred").to_pylist())
    assert plain.shape == tta.shape and not np.allclose(plain, tta, atol=1e-4)
    assert schema.tree_violation(tta).max() < 1e-5


@pytest.mark.slow
def test_evaluate_split_val_scores_the_validation_rows_of_the_checkpoints_split(ray_cluster, labelled_shards, tmp_path):
    import torch

    from galaxy_ray.data.split import Split
    from galaxy_ray.evaluate import main
    from galaxy_ray.model import ModelSpec, build_model, save_checkpoint

    torch.manual_seed(0)
    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    model = save_checkpoint(tmp_path / "model.pt", build_model(spec), spec,
                            {"split": Split(0.1).to_dict(), "merger_threshold": 0.5})
    assert run_entry_point(main, [model, labelled_shards, "--out", str(tmp_path / "ev"), "--split", "val"]) == 0
    scored = pq.read_table(tmp_path / "ev" / "predictions.parquet").column("object_id").to_pylist()
    # counted here from the definition: BLAKE2b-64 of the id keyed by the salt, as a fraction of 2**64, below 0.1
    ids = pq.read_table(labelled_shards).column("object_id").to_pylist()
    val = sorted(i for i in ids if int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8,
                                                                  key=b"galaxy-ray-split-v1").digest(), "big")
                 < 0.1 * 2**64)
    assert 0 < len(val) < int(Split(0.2).mask(ids, "val").sum())  # the old 0.2 default would score more rows
    assert sorted(scored) == val
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert report["rows"] == len(val) and report["split_definition"] == Split(0.1).to_dict()


@pytest.mark.slow
def test_classes_run_recovers_from_a_dead_worker_and_learns(ray_cluster, labelled_shards, tmp_path):
    marker = tmp_path / "worker-died"
    assert _train(["--source", labelled_shards, "--task", "classes", "--workers", "2", "--epochs", "5", *FAST,
                   "--class-weights", "balanced", "--label-smoothing", "0.05", "--merger", "pair",
                   "--name", "cls", "--storage", str(tmp_path / "runs"), "--max-failures", "1"],
                  train_loop=_dying_loop(2, marker)) == 0
    assert marker.exists()  # a worker really died in epoch 2 ...
    run = tmp_path / "runs" / "cls"
    assert [int(r["epoch"]) for r in _metrics(run)] == [1, 2, 3, 4, 5]
    assert json.loads((run / "config.json").read_text())["resumes"] == [1]  # ... and the run went on from epoch 1
    report = json.loads((run / "evaluation.json").read_text())
    assert report["classes"]["class_names"] == sorted(SHAPES)
    # chance is 0.25; model.pt is the best epoch, so its accuracy is the best in metrics.csv
    assert report["classes"]["accuracy"] > 0.5
    assert report["classes"]["accuracy"] == pytest.approx(max(float(r["val_accuracy"]) for r in _metrics(run)), abs=0.03)
    assert report["merger"]["output"] == "pair"
    assert (run / "confusion_matrix.png").stat().st_size > 0


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_epoch(ray_cluster, tiny, tmp_path):
    common = ["--source", tiny, "--task", "gz2", "--workers", "1", *FAST, "--freeze-epochs", "1",
              "--name", "resume", "--storage", str(tmp_path / "runs")]
    marker = tmp_path / "died"
    # the worker dies in epoch 2 (of 2) with no retries left: the command fails, one line
    assert _train([*common, "--epochs", "2", "--max-failures", "0"], train_loop=_dying_loop(2, marker)) == 2
    first = _metrics(tmp_path / "runs" / "resume")
    assert [int(r["epoch"]) for r in first] == [1]
    assert _train([*common, "--epochs", "2"]) == 0
    again = _metrics(tmp_path / "runs" / "resume")
    assert [int(r["epoch"]) for r in again] == [1, 2]
    assert again[0] == first[0]  # epoch 1 was not trained again: its row, timing included, is the same
    assert [r["phase"] for r in again] == ["frozen", "full"]
    assert json.loads((tmp_path / "runs" / "resume" / "config.json").read_text())["resumes"] == [1]


@pytest.mark.slow
def test_same_seed_gives_the_same_metrics_cached_or_not_and_another_seed_does_not(ray_cluster, tiny, tmp_path):
    from galaxy_ray.data.split import Split
    from galaxy_ray.model import load_checkpoint

    common = ["--source", tiny, "--task", "gz2", "--workers", "1", *FAST, "--epochs", "2", "--val-fraction", "0.25",
              "--storage", str(tmp_path / "runs")]
    # "a" decodes once and trains from Ray's object store (--cache auto at this size); "b" decodes every epoch
    for name, seed, cache in (("a", "5", "auto"), ("b", "5", "no"), ("c", "6", "auto")):
        assert _train([*common, "--seed", seed, "--cache", cache, "--name", name]) == 0, name

    def rows(name: str) -> list[dict[str, str]]:  # all but the wall-clock column
        return [{k: v for k, v in r.items() if k != "seconds"} for r in _metrics(tmp_path / "runs" / name)]

    assert len(rows("a")) == 2 and rows("a") == rows("b")
    assert [r["train_loss"] for r in rows("c")] != [r["train_loss"] for r in rows("a")]
    assert [r["val_loss"] for r in rows("c")] != [r["val_loss"] for r in rows("a")]
    # the split is part of the checkpoint
    _, _, extra = load_checkpoint(tmp_path / "runs" / "a" / "model.pt", with_extra=True)
    assert extra["split"] == Split(0.25).to_dict()


@pytest.mark.slow
def test_batchnorm_statistics_are_re_estimated_on_the_given_cutouts(ray_cluster):
    import ray.data
    import torch
    from torch.optim.swa_utils import update_bn

    from galaxy_ray.model import ModelSpec, build_model
    from galaxy_ray.train import recompute_batchnorm

    torch.manual_seed(0)
    net = build_model(ModelSpec.for_gz2("resnet18", PreprocessConfig(32)))
    pixels = np.random.default_rng(1).normal(0.3, 2.0, (40, 3, 32, 32)).astype(np.float32)
    ds = ray.data.from_items([{"pixels": p, "target": np.zeros(37, np.float32)} for p in pixels])
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:  # statistics that fit nothing: as if gathered on other (augmented) images
        m.running_mean.fill_(5.0)
        m.running_var.fill_(9.0)
    dtypes = {"pixels": torch.float32, "target": torch.float32}
    used = recompute_batchnorm(net, ds, 8, dtypes, torch.device("cpu"))
    assert used == 40 and net.training  # the caller's mode is kept
    reference = build_model(ModelSpec.for_gz2("resnet18", PreprocessConfig(32)))
    reference.load_state_dict(net.state_dict())
    update_bn([torch.from_numpy(pixels[i:i + 8]) for i in range(0, 40, 8)], reference)
    for mine, ref in zip(norms, [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]):
        torch.testing.assert_close(mine.running_mean, ref.running_mean)
        torch.testing.assert_close(mine.running_var, ref.running_var)
    assert float(norms[0].running_mean.abs().max()) < 5.0
    # a worker given no cutouts keeps the statistics it had
    before = [m.running_mean.clone() for m in norms]
    assert recompute_batchnorm(net, ds.limit(0), 8, dtypes, torch.device("cpu")) == 0
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))


# --------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_bad_inputs_fail_with_one_line(ray_cluster, tiny, tmp_path, capsys, write_shards):
    unlabelled = str(tmp_path / "unlabelled")
    write_shards(cutout_table(12, seed=3, labels=False), unlabelled, rows_per_shard=6)
    torch_file = tmp_path / "other.pt"
    import torch

    torch.save({"epoch": 3}, torch_file)
    base = ["--storage", str(tmp_path / "runs"), "--epochs", "1", *FAST]
    cases = [
        (["--source", tiny, "--arch", "vgg16"], "--arch 'vgg16'"),
        (["--source", tiny, "--task", "segmentation"], "--task 'segmentation'"),
        (["--source", tiny, "--task", "classes", "--label-column", "hubble_type"], "no column 'hubble_type'"),
        (["--source", unlabelled, "--task", "classes"], "no labels"),
        (["--source", tiny, "--workers", "40"], "for 40 workers"),
        (["--source", tiny, "--weights", str(torch_file)], "neither a galaxy-ray checkpoint nor a torchvision state dict"),
        (["--source", tiny, "--task", "classes", "--class-weights", "1,2"], "--class-weights: 2 values for 4 classes"),
        (["--source", str(tmp_path / "nowhere")], "nowhere"),
    ]
    for argv, needle in cases:
        assert _train([*argv, *base]) == 2, argv
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("galaxy-ray: error: ")]
        assert len(errors) == 1 and needle in errors[0], (argv, errors)
    from galaxy_ray.evaluate import main as evaluate_main

    assert run_entry_point(evaluate_main, [str(torch_file), tiny]) == 2
    assert "not a galaxy-ray checkpoint" in capsys.readouterr().err


def test_weights_imagenet_offline_is_one_line(capsys):
    from galaxy_ray.model import ModelSpec, build_model

    try:
        import urllib.request

        urllib.request.urlopen("https://download.pytorch.org", timeout=3)
        pytest.skip("this machine can reach download.pytorch.org; the offline message cannot be shown here")
    except OSError:
        pass
    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    assert run_entry_point(lambda argv: build_model(spec, "imagenet")) == 2
    err = capsys.readouterr().err.strip()
    assert "--weights imagenet" in err and "\n" not in err


def test_config_file_with_flag_overrides(tmp_path):
    from galaxy_ray.errors import GalaxyRayError
    from galaxy_ray.train import config_from_args

    (tmp_path / "run.yaml").write_text("source: s3://bucket/train\ntask: classes\nimage-size: 96\nepochs: 7\n"
                                       "class_weights: [1, 2, 3]\n")
    cfg = config_from_args(["--config", str(tmp_path / "run.yaml"), "--epochs", "2"])
    assert (cfg.source, cfg.task, cfg.image_size, cfg.epochs, cfg.class_weights) == \
        ("s3://bucket/train", "classes", 96, 2, "1,2,3")
    assert cfg.name == "classes-resnet18-train" and cfg.monitor == ("val_balanced_accuracy", "max")
    (tmp_path / "bad.json").write_text(json.dumps({"source": "x", "learning_rate": 1}))
    with pytest.raises(GalaxyRayError, match="unknown option 'learning_rate'"):
        config_from_args(["--config", str(tmp_path / "bad.json")])


def test_gpu_flag_and_its_config_file_key(tmp_path):
    from galaxy_ray.errors import GalaxyRayError
    from galaxy_ray.train import config_from_args

    assert config_from_args(["--source", "x", "--use-gpu", "true"]).gpu == "yes"
    assert config_from_args(["--source", "x", "--gpu", "no"]).gpu == "no"
    assert config_from_args(["--source", "x"]).gpu == "auto"
    (tmp_path / "run.yaml").write_text("source: x\nuse_gpu: false\n")
    assert config_from_args(["--config", str(tmp_path / "run.yaml")]).gpu == "no"
    (tmp_path / "bad.yaml").write_text("source: x\nuse-gpu: sometimes\n")
    with pytest.raises(GalaxyRayError, match="--gpu 'sometimes'"):
        config_from_args(["--config", str(tmp_path / "bad.yaml")])


def test_augmentation_is_drawn_from_seed_epoch_and_object():
    from galaxy_ray.train import augment_batch
    from galaxy_ray.train.data import row_keys

    pixels = np.random.default_rng(0).integers(0, 256, (3, 3, 40, 40), dtype=np.uint8)
    preprocess = PreprocessConfig(32, 0.8)  # resized to 40, augmented, then cropped to 32
    keys = row_keys(["a", "b", "c"])
    views = augment_batch(pixels, keys, preprocess, seed=1, epoch=1)
    assert views.shape == (3, 3, 32, 32) and views.dtype == np.uint8
    assert np.array_equal(views, augment_batch(pixels, keys, preprocess, seed=1, epoch=1))
    assert np.array_equal(views[1:2], augment_batch(pixels[1:2], keys[1:2], preprocess, seed=1, epoch=1))
    for other in (dict(seed=1, epoch=2), dict(seed=2, epoch=1)):
        changed = augment_batch(pixels, keys, preprocess, **other)
        assert all(not np.array_equal(changed[i], views[i]) for i in range(3)), other
    twins = augment_batch(np.repeat(pixels[:1], 2, axis=0), row_keys(["a", "b"]), preprocess, seed=1, epoch=1)
    assert not np.array_equal(twins[0], twins[1])


def test_dihedral_augmentation_is_one_of_the_eight_lossless_views():
    from galaxy_ray.data.transforms import PreprocessConfig, prepare_image
    from galaxy_ray.train.data import augment_batch, augmentation_for, row_keys

    assert augmentation_for("auto", 1.0) == "dihedral" and augmentation_for("auto", 0.8) == "affine"
    assert augmentation_for("affine", 1.0) == "affine"
    pixels = np.random.default_rng(0).integers(0, 256, (6, 3, 40, 40), dtype=np.uint8)
    preprocess = PreprocessConfig(32, 0.8)
    keys = row_keys([f"g{i}" for i in range(6)])
    views = augment_batch(pixels, keys, preprocess, seed=1, epoch=1, mode="dihedral")
    drawn = set()
    for i in range(6):
        crop = prepare_image(pixels[i].transpose(1, 2, 0) / 255.0, preprocess).numpy()
        matches = [(k, f) for k in range(4) for f in (False, True)
                   if np.array_equal(views[i], np.rot90(crop[:, :, ::-1] if f else crop, k, axes=(1, 2)))]
        assert matches, i  # no pixel invented: no black corners, no resampling
        drawn.add(matches[0])
    assert len(drawn) > 1
    assert np.array_equal(views, augment_batch(pixels, keys, preprocess, seed=1, epoch=1, mode="dihedral"))


# --------------------------------------------------------------------------- ray job submit


# --------------------------------------------------------------------------- metrics (no cluster)


def test_evaluation_metrics_against_hand_computed_values(tmp_path):
    from galaxy_ray.evaluate import classes_metrics, gz2_metrics, merger_metrics, plot_confusion

    truth = np.full((4, 37), 0.5)
    pred = truth + np.array([0.1, -0.1, 0.1, -0.1])[:, None]
    g = gz2_metrics(truth, pred, train_mean=np.full(37, 0.7))
    assert g["rmse"] == pytest.approx(0.1) and g["baseline_rmse"] == pytest.approx(0.2)
    assert g["per_answer"]["Class8.6"]["rmse"] == pytest.approx(0.1)
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    c = classes_metrics(np.array([0, 1, 2, 2]), probs, ["E", "S", "merger"])
    assert c["accuracy"] == 0.75 and c["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert c["per_class"]["S"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert c["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    m = merger_metrics(np.array([True, True, False, False]), np.array([0.9, 0.2, 0.6, 0.1]), 0.5)
    assert (m["precision"], m["recall"], m["true_mergers"], m["predicted_mergers"]) == (0.5, 0.5, 2, 2)
    plot_confusion(c, str(tmp_path / "cm.png"))
    assert Image.open(tmp_path / "cm.png").size[0] > 100
