"""Every command block of README.md and docs/*.md runs as written, in order, on the outputs of `make demo`.

A ```bash or ```python block runs unless the Markdown line just before it is an
HTML comment ``<!-- not-run: REASON -->`` (a cluster, a GPU, AWS, internet, or
a block another test runs); the fast tests check that every such marker gives
a reason and count them, the slow test runs the rest.  The demo runs once, with
small settings, into a temporary folder that stands in for the repository root:
``demo_output/`` is there, and ``.venv``, ``jobs``, ``cluster`` and
``galaxy_ray`` link to this checkout's, so a command reads exactly as in the docs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The pages, in the order their blocks run.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = ("bash", "python")
NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None  # the not-run marker's reason, or None


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the not-run marker just before each."""
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        before = lines[i - 1].strip() if i else ""
        marker = NOT_RUN.match(before)
        out.append(Block(path.name, i + 1, m.group(1).lower(), "\n".join(lines[i + 1:j]),
                         marker.group(1) if marker else None))
        i = j + 1
    return out


def test_every_not_run_marker_names_a_reason_and_sits_on_a_command_block():
    counted = {"run": 0, "not-run": 0}
    for page in PAGES:
        text = page.read_text().splitlines()
        for k, line in enumerate(text):
            if "not-run" in line and line.strip().startswith("<!--"):
                m = NOT_RUN.match(line.strip())
                assert m and m.group(1), f"{page.name}:{k + 1}: write <!-- not-run: REASON -->"
                nxt = text[k + 1] if k + 1 < len(text) else ""
                assert FENCE.match(nxt) and FENCE.match(nxt).group(1) in RUNNABLE, \
                    f"{page.name}:{k + 1}: a not-run marker must sit just above a ```bash or ```python block"
        for b in blocks(page):
            if b.lang in RUNNABLE:
                counted["not-run" if b.skip else "run"] += 1
    print(f"documented command blocks: {counted['run']} run, {counted['not-run']} marked not-run")
    assert counted["run"] >= 15


def test_no_page_names_a_stale_run_or_part_file():
    for page in PAGES:
        text = page.read_text()
        assert "runs/demo-gz2" not in text, page.name
        assert not re.search(r"part-\d{5}\.parquet", text.replace("OUT/part-00000.parquet", "")), page.name


def test_the_readme_is_an_entry():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220, len(lines)
    for page in ("training", "inference", "catalogs", "real-files", "clusters", "measurements", "scale", "api",
                 "similar"):
        assert (ROOT / "docs" / f"{page}.md").is_file(), page
        assert f"docs/{page}.md" in "\n".join(lines), page


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A stand-in repository root holding a small `make demo`'s demo_output/.

    ``GALAXY_RAY_DOCS_ROOT`` names a folder to use (and fill on first use) instead of a fresh one,
    so that a rerun after fixing one page does not pay for the demo again.
    """
    given = os.environ.get("GALAXY_RAY_DOCS_ROOT")
    root = Path(given) if given else tmp_path_factory.mktemp("docs_root")
    root.mkdir(parents=True, exist_ok=True)
    venv = Path(sys.executable).parent.parent
    for name, target in ((".venv", venv), ("jobs", ROOT / "jobs"), ("cluster", ROOT / "cluster"),
                         ("galaxy_ray", ROOT / "galaxy_ray")):
        if not (root / name).is_symlink():
            (root / name).symlink_to(target)
    if (root / "demo_output" / "report" / "index.html").is_file():
        return root
    done = subprocess.run([sys.executable, str(ROOT / "jobs" / "demo.py"), "--out", "demo_output",
                           "--train-size", "300", "--survey-size", "400", "--epochs", "1", "--image-size", "32"],
                          cwd=root, env=_env(), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_block_runs_as_written(demo_root, page):
    for b in blocks(page):
        if b.lang not in RUNNABLE or b.skip:
            continue
        cmd = ["bash", "-e", "-o", "pipefail", "-c", b.code] if b.lang == "bash" else [sys.executable, "-c", b.code]
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=demo_root, env=_env(), capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - start
        where = f"{b.page}:{b.line} ({seconds:.0f} s)"
        print(where)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{where}: exit {done.returncode}\n{b.code}\n{output[-4000:]}"
        assert "Traceback" not in output, f"{where}: a traceback on the console\n{output[-4000:]}"
        assert "\x1b[" not in output, f"{where}: ANSI escape codes in piped output"
