"""In a real Jupyter kernel, galaxy-ray's progress is tqdm's notebook widget; outside one, nothing changes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tqdm import std as tqdm_std

from galaxy_ray import progress as progress_mod

ROOT = Path(__file__).resolve().parents[2]

CELL = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from galaxy_ray.progress import Progress, in_notebook
p = Progress(10, "infer", "rows", errors=True)
for _ in range(10):
    p.update(1)
p.close()
print(in_notebook(), p.live, [c.__module__ for c in type(p._bar).__mro__][:2])
"""


def test_outside_a_kernel_the_bar_is_tqdms_text_bar_and_a_log_gets_lines():
    assert not progress_mod.in_notebook()
    assert issubclass(progress_mod.tqdm, tqdm_std.tqdm)  # tqdm.auto resolved to the terminal bar
    assert not any(c.__module__ == "tqdm.notebook" for c in progress_mod.tqdm.__mro__)
    log = io.StringIO()
    with progress_mod.Progress(4, "pack", "shards", stream=log, step=0.5) as p:
        p.update(4)
    assert not p.live and log.getvalue().startswith("pack: 4/4 shards (100%)")


def test_in_a_jupyter_kernel_the_bar_is_the_notebook_widget():
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipywidgets")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    texts = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "True True ['tqdm.auto', 'tqdm.notebook']" in texts
    widgets = [o for o in outputs if o.output_type == "display_data"
               and "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, f"no widget displayed: {outputs}"
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [str(w["state"].get("value", "")) for w in state.values()]
    assert any("10/10" in v and "rows/s" in v for v in values), values  # the widget's last text
