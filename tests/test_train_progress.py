"""Training progress on the console: per-batch lines in a log, a bar on a terminal, no per-rank report dicts."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest
from ray.data.collate_fn import NumpyBatchCollateFn

from galaxy_ray.train.progress import EpochProgress, epoch_samples
from galaxy_ray.train.steps import train_one_epoch

REPORT_DICT = "Reporting training result"


class _Tensors(NumpyBatchCollateFn):
    """Model input without augmentation."""

    def __call__(self, batch):
        import torch

        return {"pixels": torch.as_tensor(np.array(batch["pixels"]), dtype=torch.float32) / 255.0,
                "target": torch.as_tensor(np.array(batch["target"]), dtype=torch.float32)}


def test_lines_mode_reports_every_sample_of_the_epoch(ray_cluster):
    import ray.data
    import torch

    rng = np.random.default_rng(0)
    n = 33  # batches of 8, 8, 8, 8 and a last single row, which is not trained on (BatchNorm) but is done
    ds = ray.data.from_numpy(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8)).map_batches(
        lambda b: {"pixels": b["data"], "target": np.arange(len(b["data"]), dtype=np.float32)[:, None] / 10},
        batch_format="numpy")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    log = io.StringIO()
    with EpochProgress(2, 3, epoch_samples(n, 1), mode="lines", stream=log) as progress:
        loss_sum, count, _ = train_one_epoch(model, ds.iterator(), torch.nn.functional.mse_loss, opt, _Tensors(),
                                             batch_size=8, shuffle_rows=None, shuffle_seed=0, cuda=False,
                                             progress=progress)
    assert count == 32 and progress.done == n
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and lines
    assert lines[-1].startswith(f"training epoch 2/3: {n}/{n} samples (100%), ")
    assert lines[-1].endswith(f", train_loss {loss_sum / count:.4f}")


def test_progress_counts_all_workers_and_takes_its_total_from_the_epoch_when_unknown():
    # Ray Train's equal split gives each of 2 workers 16 of 33 rows
    assert (epoch_samples(33, 2), epoch_samples(32, 2), epoch_samples(None, 4), epoch_samples(0, 1)) == (32, 32, None,
                                                                                                          None)
    log = io.StringIO()
    with EpochProgress(1, 5, None, world=2, mode="lines", stream=log) as progress:
        progress.update(8, 0.75)
        assert log.getvalue() == ""  # without a total, only the epoch's last line
        progress.update(8, 0.5)
    assert log.getvalue().splitlines() == [log.getvalue().strip()]
    assert log.getvalue().startswith("training epoch 1/5: 32/32 samples (100%), ")
    assert log.getvalue().strip().endswith("train_loss 0.5000")

    quiet = io.StringIO()
    with EpochProgress(1, 1, 10, mode="off", stream=quiet) as off:
        off.update(10, 0.1)
    assert (off.done, quiet.getvalue()) == (10, "")
    with pytest.raises(ValueError, match="progress mode 'bar'"):
        EpochProgress(1, 1, 10, mode="bar")


# --------------------------------------------------------------------------- the console of a real run


@pytest.fixture(scope="module")
def small_survey(tmp_path_factory) -> str:
    from galaxy_ray.synthetic import synthesize

    return synthesize(str(tmp_path_factory.mktemp("survey") / "shards"), 40, size=32, fmt="shards", seed=1,
                      workers=1)


def _train_argv(source: str, storage: str) -> list[str]:
    return [sys.executable, "-m", "galaxy_ray.cli", "train", "--source", source, "--workers", "1", "--epochs", "1",
            "--image-size", "32", "--batch-size", "8", "--name", "console", "--storage", storage]


def _session_env(ray_cluster) -> dict[str, str]:
    """The environment of a ``galaxy-ray train`` subprocess that joins the session's Ray (as a job's driver does).

    The console under test is the driver's: the worker's progress reaches it through Ray's log
    streaming whether the driver started Ray or joined it, and joining saves a Ray start per test.
    """
    return dict(os.environ, RAY_ADDRESS=ray_cluster.get_runtime_context().gcs_address)


def _n_train(console: str) -> int:
    match = re.search(r"on (\d+) training / \d+ validation galaxies", console)
    assert match, console[-3000:]
    return int(match.group(1))


@pytest.mark.slow
def test_a_piped_training_console_has_progress_lines_and_no_report_dicts(ray_cluster, small_survey, tmp_path):
    done = subprocess.run(_train_argv(small_survey, str(tmp_path)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900, env=_session_env(ray_cluster))
    console = done.stdout
    assert done.returncode == 0, console[-3000:]
    n = _n_train(console)
    assert REPORT_DICT not in console
    assert "\r" not in console  # a log gets whole lines, no redrawn bar
    assert re.search(rf"training epoch 1/1: {n}/{n} samples \(100%\), [\d.]+ samples/s, .*train_loss \d", console)
    assert re.search(r"epoch 1/1 \[\w+\] train_loss", console)  # the epoch's summary line stays


def _run_in_terminal(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``argv`` with a 120 x 40 pseudo-terminal as its stdin, stdout and stderr; its exit code and output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the terminal closed: every writer has exited
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
def test_a_terminal_gets_a_live_training_bar_drawn_on_the_driver(ray_cluster, small_survey, tmp_path):
    code, console = _run_in_terminal(_train_argv(small_survey, str(tmp_path)), timeout=900,
                                     env=_session_env(ray_cluster))
    assert code == 0, console[-3000:]
    n = _n_train(console)
    assert REPORT_DICT not in console
    plain = re.sub(r"\x1b\[[0-9;]*m", "", console)  # without colours
    # the worker's bar, redrawn in place by the driver, ends at every sample of the epoch
    assert "\r" in plain and re.search(rf"training epoch 1/1 train_loss [\d.]+: 100%\|.*{n}(\.0)?/{n}(\.0)?", plain)
    assert "samples (100%)" not in plain  # not the plain lines a log gets
