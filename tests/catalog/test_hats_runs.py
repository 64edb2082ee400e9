"""`galaxy-ray hats` is judged by what it wrote, and its temporary space is its own (issue 21, item 7)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from galaxy_ray import catalog as cat
from galaxy_ray.catalog.convert import _incomplete, work_dir
from galaxy_ray.cli import run_entry_point
from test_catalog import PROVENANCE, random_rows

pytest.importorskip("hats_import")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
OPTIONS = dict(partition_rows=800, highest_order=5, workers=1)


def _plain(root: Path, n: int = 3000, seed: int = 4) -> tuple[Path, int]:
    """A plain catalog and how many of its rows have a position (some have no RA)."""
    table = random_rows(n, seed=seed)
    cat.write_catalog_file(table, str(root / "part-00000.parquet"), PROVENANCE, row_group_size=500)
    cat.write_catalog_summary(str(root), PROVENANCE)
    return root, int(pc.sum(pc.and_(pc.is_valid(table["ra"]), pc.is_valid(table["dec"]))).as_py())


def _our_system_temp() -> list[str]:
    return [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(("galaxy_ray_hats_", "galaxy-ray-hats-tmp"))]


@pytest.mark.slow
def test_a_dask_shutdown_past_its_timeout_after_a_complete_write_is_a_warning(tmp_path, capsys):
    plain, positioned = _plain(tmp_path / "plain")
    out = tmp_path / "hats" / "morph"
    before = _our_system_temp()
    # a real Dask shutdown that cannot finish in time, as on the loaded machine of the report
    got = cat.to_hats(str(plain), str(out), shutdown_timeout=1e-6, **OPTIONS)
    assert got["rows"] == positioned and got["rows_without_position"] == 3000 - positioned
    assert len(got["warnings"]) == 1 and "TimeoutError" in got["warnings"][0]
    err = capsys.readouterr().err
    assert f"galaxy-ray: warning: {out} is complete ({positioned} rows, checked with hats)" in err
    assert "Dask client shutdown: TimeoutError" in err
    assert _incomplete(str(out), positioned) is None  # hats reads it whole
    assert not os.path.exists(work_dir(str(out))) and _our_system_temp() == before
    # a rerun of a complete collection is still refused, in one line
    assert run_entry_point(cat.hats_main, [str(plain), str(out), "--workers", "1"]) == 2
    assert "already holds a HATS collection" in capsys.readouterr().err


@pytest.mark.slow
def test_what_is_missing_or_short_is_named(tmp_path):
    plain, positioned = _plain(tmp_path / "plain", n=1500, seed=6)
    out = tmp_path / "morph"
    cat.to_hats(str(plain), str(out), **OPTIONS)
    assert _incomplete(str(out), positioned + 1) == f"it holds {positioned} rows, not the {positioned + 1} with a position"
    part = next((out / "morph").rglob("Npix=*.parquet"))
    part.unlink()  # a partition lost: hats's strict check sees it
    assert _incomplete(str(out), positioned) == "hats does not read it as a complete collection"


def test_an_out_holding_something_else_is_refused(tmp_path, capsys):
    plain, _ = _plain(tmp_path / "plain", n=300, seed=7)
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert run_entry_point(cat.hats_main, [str(plain), str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "exists and is not a HATS collection" in err and "\n" not in err
    assert (out / "mine.txt").read_text() == "keep me"


@pytest.mark.slow
def test_a_killed_run_leaves_only_its_own_folder_and_the_next_run_empties_it(tmp_path):
    plain, positioned = _plain(tmp_path / "plain", n=60000, seed=8)
    out = tmp_path / "morph"
    work = Path(work_dir(str(out)))
    assert work == tmp_path / "morph.galaxy-ray-hats-tmp"
    before = _our_system_temp()
    cmd = [str(Path(sys.executable).with_name("galaxy-ray")), "hats", str(plain), str(out), "--workers", "1",
           "--partition-rows", "5000", "--highest-order", "6"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while not any((work / "scratch").rglob("*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # killed while hats-import works
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the conversion ended before it could be killed"
    assert any(work.rglob("*")) and not out.exists()  # the scratch files are in galaxy-ray's folder, OUT untouched
    assert _our_system_temp() == before
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"removed {work}" in done.stderr and "left by an interrupted hats run" in done.stderr
    assert not work.exists() and _incomplete(str(out), positioned) is None
