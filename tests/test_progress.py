"""Progress display (a bar in a terminal, plain lines in a log) and the quiet console."""

from __future__ import annotations

import argparse
import io
import logging

import pytest

from galaxy_ray import runtime
from galaxy_ray.progress import Progress, format_seconds


def test_plain_lines_in_a_log_every_step_and_a_last_one():
    log = io.StringIO()  # not a terminal: what a `ray job submit` log gets
    with Progress(100, "infer", "rows", errors=True, stream=log, interval=3600, step=0.25) as progress:
        assert not progress.live
        for _ in range(10):
            progress.update(10, errors=1)
            progress._last_line_at -= 2  # as if a few seconds passed between batches
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and 4 <= len(lines) <= 6  # one per 25 % (and the last), not one per batch
    assert lines[-1].startswith("infer: 100/100 rows (100%), ") and lines[-1].endswith(", 10 errors")
    assert "rows/s" in lines[-1] and "left 0:00" in lines[-1]


def test_a_terminal_gets_a_live_bar_and_logged_lines_lift_it():
    tty = io.StringIO()
    progress = Progress(50, "pack", "shards", stream=tty, live=True)
    progress.update(20)
    progress.write("published part-00000.parquet", lambda s: print(s, file=tty))
    progress.update(30)
    progress.close()
    out = tty.getvalue()
    assert "\r" in out and "published part-00000.parquet\n" in out
    assert "50/50" in out and "shards/s" in out


def test_disabled_progress_counts_but_shows_nothing():
    stream = io.StringIO()
    with Progress(5, "x", stream=stream, enabled=False) as progress:
        progress.update(5, errors=2)
    assert (progress.done, progress.errors, stream.getvalue()) == (5, 2, "")


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 59.6, 61, 3725, float("nan"))] == ["0:00", "1:00", "1:01", "1:02:05", "?"]


def test_verbose_flag_and_quiet_filter(monkeypatch):
    monkeypatch.delenv(runtime.VERBOSE_ENV, raising=False)
    parser = argparse.ArgumentParser()
    runtime.add_verbose_argument(parser)
    assert parser.parse_args([]).verbose is False and parser.parse_args(["--verbose"]).verbose is True
    assert runtime.is_verbose() is False

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("ray")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        runtime.quiet_worker_logs(verbose=False)
        logger.info("Reporting training result 1: TrainingReport(...)")
        logger.warning("a warning that matters")
        logger.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE ...")
        assert stream.getvalue().splitlines() == ["a warning that matters"]
        runtime.quiet_worker_logs(verbose=True)  # --verbose: everything again
        logger.info("Reporting training result 2")
        assert stream.getvalue().splitlines()[-1] == "Reporting training result 2"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    runtime.set_verbosity(True)
    assert runtime.is_verbose()
    runtime.set_verbosity(False)
    assert not runtime.is_verbose()


@pytest.mark.parametrize("total", [0, 1])
def test_tiny_totals(total):
    stream = io.StringIO()
    with Progress(total, "t", stream=stream) as progress:
        progress.update(total)
    assert f"t: {total}/{total}" in stream.getvalue() or total == 0
