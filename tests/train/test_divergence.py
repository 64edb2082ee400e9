"""Training that diverges publishes nothing and says so in one line (issue 33, section 2)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.train.driver import _best_checkpoint, _refuse_non_finite, refuse_diverged
from galaxy_ray.train.finalize import refuse_non_finite_predictions
from galaxy_ray.train.loop import divergence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _row(train_loss: float, val_loss: float) -> dict:
    return {"epoch": 2, "phase": "full", "train_loss": train_loss, "val_loss": val_loss, "val_accuracy": 0.5}


def test_finite_epochs_are_not_divergence():
    assert divergence(_row(0.7, 0.8), torch.nn.Linear(3, 2)) is None


@pytest.mark.parametrize("train_loss, val_loss, said", [
    (math.nan, 0.8, "train_loss nan"),
    (0.7, math.inf, "val_loss inf"),
    (math.nan, math.nan, "train_loss nan, val_loss nan"),
])
def test_non_finite_losses_are_divergence(train_loss, val_loss, said):
    assert divergence(_row(train_loss, val_loss)) == said


def test_non_finite_weights_are_divergence_even_with_finite_losses():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight[0, 1] = float("nan")
        net.bias[1] = float("inf")
    assert divergence(_row(0.7, 0.8), net) == "2 non-finite weights"


def test_the_driver_refuses_a_diverged_run_in_one_line(tmp_path):
    cfg = SimpleNamespace(name="g10", lr=1e6, weights="none")
    run_dir = str(tmp_path)
    refuse_diverged({"diverged_epoch": 0, "diverged": ""}, cfg, run_dir)  # a healthy run (no metrics.csv) passes
    with pytest.raises(GalaxyRayError) as err:
        refuse_diverged({"diverged_epoch": 1, "diverged": "train_loss nan"}, cfg, run_dir)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("training run g10 diverged in epoch 1 (train_loss nan) at --lr 1e+06: no model.pt published")


def test_the_driver_reads_divergence_from_metrics_csv_when_the_result_has_no_metrics(tmp_path):
    """Ray Train's result holds the last checkpoint's metrics; a diverged epoch reports no checkpoint."""
    cfg = SimpleNamespace(name="g10", lr=1e6, weights="none")
    (tmp_path / "metrics.csv").write_text("epoch,phase,train_loss,val_loss\n1,full,0.9,0.8\n")
    refuse_diverged(None, cfg, str(tmp_path))
    (tmp_path / "metrics.csv").write_text("epoch,phase,train_loss,val_loss\n1,full,0.9,0.8\n2,full,nan,inf\n")
    with pytest.raises(GalaxyRayError, match=r"diverged in epoch 2 \(train_loss nan, val_loss inf\)"):
        refuse_diverged(None, cfg, str(tmp_path))


def test_a_nan_metric_never_picks_the_best_checkpoint():
    result = SimpleNamespace(best_checkpoints=[("epoch1", {"val_loss": 0.9}), ("epoch2", {"val_loss": math.nan}),
                                               ("epoch3", {"val_loss": 0.95})], checkpoint="epoch3")
    # min() over keys holding a NaN keeps whichever came first: epoch2 when it is listed first
    assert _best_checkpoint(result, "val_loss", "min") == "epoch1"
    result.best_checkpoints.insert(0, result.best_checkpoints.pop(1))
    assert _best_checkpoint(result, "val_loss", "min") == "epoch1"


def test_finalize_refuses_weights_that_predict_nan():
    refuse_non_finite_predictions(np.full((4, 3), 0.3), "runs/x/_staged.pt")
    y = np.full((4, 3), 0.3)
    y[2, 1] = np.nan
    with pytest.raises(GalaxyRayError, match=r"_staged.pt: the best epoch's weights predict NaN or infinity for 1 of "
                                             r"4 validation rows: training diverged, no model.pt published"):
        refuse_non_finite_predictions(y, "runs/x/_staged.pt")


def test_infinite_weights_given_with_weights_are_refused_before_training():
    """Variant not in the issue (it names NaN): an encoder whose weights overflowed to infinity."""
    net = torch.nn.Linear(3, 2)
    _refuse_non_finite(net, "w.pt")  # finite: nothing said
    with torch.no_grad():
        net.weight.fill_(float("inf"))
    with pytest.raises(GalaxyRayError, match=r"--weights w.pt: 6 of its 8 loaded weights are NaN or infinite"):
        _refuse_non_finite(net, "w.pt")


def test_nan_encoder_weights_are_refused_by_train_in_one_line(tmp_path, capsys, write_shards):
    """``train --weights`` of a ResNet-18 state dict whose encoder holds NaN: exit 2, one line, no run directory."""
    from galaxy_ray.cli import run_entry_point
    from galaxy_ray.train import config_from_args, run_training
    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.model import ModelSpec, build_model

    from test_train import cutout_table

    state = build_model(ModelSpec.for_gz2("resnet18", PreprocessConfig(32))).backbone.state_dict()
    state["layer1.0.conv1.weight"] = torch.full_like(state["layer1.0.conv1.weight"], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    source = str(tmp_path / "shards")
    write_shards(cutout_table(12, size=32, seed=3), source, rows_per_shard=12)
    argv = ["--source", source, "--task", "classes", "--weights", str(tmp_path / "nan.pt"), "--image-size", "32",
            "--storage", str(tmp_path / "runs"), "--name", "n"]
    assert run_entry_point(lambda a: run_training(config_from_args(a)) or 0, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "36864 of its" in err[0] and "loaded weights are NaN or infinite" in err[0]
    assert not (tmp_path / "runs" / "n" / "model.pt").exists()


@pytest.mark.slow
def test_lr_1e6_run_stops_in_one_line_and_publishes_nothing(ray_cluster, tmp_path, capsys, write_shards):
    """The issue's case end to end: ``--lr 1e6`` typed for ``1e-6`` on a real 1-worker Ray Train run."""
    from galaxy_ray.cli import run_entry_point
    from galaxy_ray.train import config_from_args, run_training

    from test_train import cutout_table

    source = str(tmp_path / "shards")
    write_shards(cutout_table(40, size=32, seed=2), source, rows_per_shard=20)
    argv = ["--source", source, "--task", "classes", "--workers", "1", "--epochs", "2", "--image-size", "32",
            "--batch-size", "8", "--lr", "1e6", "--bn-samples", "16", "--storage", str(tmp_path / "runs"),
            "--name", "d"]
    assert run_entry_point(lambda a: run_training(config_from_args(a)) or 0, argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("galaxy-ray: error:")]
    assert len(errors) == 1
    assert errors[0].startswith("galaxy-ray: error: training run d diverged in epoch 1 (train_loss nan")
    assert "at --lr 1e+06: no model.pt published" in errors[0]
    run = tmp_path / "runs" / "d"
    assert not (run / "model.pt").exists() and not (run / "evaluation.json").exists()
    assert (run / "metrics.csv").read_text().splitlines()[1].split(",")[2] == "nan"  # the epoch is on record
