"""The README's "From Python" example runs as written, in a fresh process and an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord

ROOT = Path(__file__).resolve().parents[1]


def readme_python_example() -> str:
    """The first ```python block of the README's "## From Python" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert match, "README.md: no python block in the From Python section"
    return match.group(1)


def test_the_example_is_found_and_uses_the_public_api():
    code = readme_python_example()
    compile(code, "README.md", "exec")
    for name in ("gr.train(", "gr.evaluate(", "gr.infer(", "gr.open_catalog(", "gr.cone(", "gr.merger_stats(",
                 "gr.predict("):
        assert name in code


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", readme_python_example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"^validation: balanced accuracy [01]\.\d\d$", out, re.M), out
    found = re.search(r"^catalog: 240 galaxies, (\d+) within 5 deg of \(180, 30\), (\d+) flagged as mergers$", out,
                      re.M)
    assert found, out
    catalog = pd.read_parquet(tmp_path / "py_demo" / "catalog")
    sep = SkyCoord(catalog["ra"].to_numpy(), catalog["dec"].to_numpy(), unit="deg").separation(
        SkyCoord(180.0, 30.0, unit="deg")).deg
    assert int(found.group(1)) == int((sep <= 5.0).sum()) > 0
    assert int(found.group(2)) == int(catalog["is_merger"].sum())
    table = out.split("object_id", 1)[1].strip().splitlines()[1:]
    assert [line.split()[0] for line in table] == ["0", "1", "2", "3"]
    p_merger = np.array([float(line.split()[-2]) for line in table])
    assert ((0 <= p_merger) & (p_merger <= 1)).all()
    assert (tmp_path / "py_demo" / "runs" / "py" / "model.pt").is_file()
