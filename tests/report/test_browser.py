"""The report as a reader sees it: ``index.html`` opened in a real headless Chromium.

The other report tests read the HTML text and the matplotlib objects; this one
renders the page (Debian's ``/usr/bin/chromium``, driven by Playwright, which
downloads no browser of its own) and checks what is on screen: every image
loaded, every figure drawn (its on-page screenshot is not a blank rectangle),
the model summary readable, nothing wider than the window.  The page and each
figure's screenshot are left in the test's ``tmp_path`` for a person to look at.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from galaxy_ray import evaluate, report
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.io.layout import VALIDATION_PREDICTIONS
from galaxy_ray.merger.truth import choose_operating_point
from galaxy_ray.model.spec import ModelSpec
from galaxy_ray.report.run import read_predictions
from galaxy_ray.schema import GALAXY10_CLASSES, GALAXY10_MERGER_CLASS
from test_report import fake_run, source, write_catalog  # noqa: F401  (source: the shared 30-galaxy survey)
from test_votes_report import votes_run

CHROMIUM = "/usr/bin/chromium"
#: Headless, and no calls home: without the background-networking flags Chromium hangs on a closed network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Merger threshold written into the run's evaluation; the page must show it as given.
THRESHOLD = 0.3


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium for the module (a missing browser fails the test: CI's .ci/run installs it)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} not found: the browser test needs Debian's chromium "
                    "(`apt-get install -y chromium`, which .ci/run does when it is missing)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        yield browser
        browser.close()


def _run_with_evaluation(tmp_path, source, task):
    """A run directory (test_report.fake_run) plus evaluation.json and its PNGs, as training's finalize writes them.

    The merger section carries the precision-recall curve of the operating point (merger.truth), so the
    run has the merger_precision_recall.png that evaluate draws from it.
    """
    if task == "votes":  # built with its evaluation and precision-recall curve at THRESHOLD
        return votes_run(tmp_path, source)[0]
    run = fake_run(tmp_path, source, task)
    ids, y_true, y_pred = read_predictions(str(run / VALIDATION_PREDICTIONS))
    pre = PreprocessConfig(32)
    spec = (ModelSpec("resnet18", "classes", list(GALAXY10_CLASSES), pre, GALAXY10_MERGER_CLASS)
            if task == "classes" else ModelSpec.for_gz2("resnet18", pre))
    evaluation = evaluate.evaluate_predictions(
        spec, {"y_true": y_true, "y_pred": y_pred, "error": np.array([None] * len(ids), dtype=object)},
        threshold=THRESHOLD, vote_cut=None if task == "classes" else 0.4)
    point = choose_operating_point(spec, y_true, y_pred, threshold=THRESHOLD,
                                   vote_cut=None if task == "classes" else 0.4)
    evaluation["merger"]["curve"] = point["curve"]
    evaluate.write_report(evaluation, str(run))
    return run


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def _drawn(pixels: np.ndarray) -> tuple[int, float, float]:
    """(distinct colours, pixel standard deviation, fraction of pixels that are not the background)."""
    flat = pixels.reshape(-1, 3)
    colours = len(np.unique(flat, axis=0))
    background = np.median(flat, axis=0)
    inked = float((np.abs(flat - background).sum(axis=1) > 30).mean())
    return colours, float(flat.std()), inked


@pytest.mark.slow  # ~30 s per task on 2 cores: a report, then two viewports of screenshots
@pytest.mark.parametrize("task", ["classes", "gz2", "votes"])
def test_the_page_in_a_real_browser(chromium, source, tmp_path, task, capsys):
    run = _run_with_evaluation(tmp_path, source, task)
    cat_dir = tmp_path / "catalog"
    write_catalog(cat_dir, 3000)
    out = tmp_path / "report"
    assert run_entry_point(report.main, [str(run), str(out), "--catalog", str(cat_dir), "--top", "2"]) == 0
    # what the run holds decides the figures: its own (training's and evaluation's), then the prediction
    # figures of its task, then the catalog's
    expected = ["curves.png", "merger_precision_recall.png",
                "confusion_matrix.png" if task == "classes" else "predicted_vs_true.png",  # votes: conditional
                "prediction_histograms.png", "top_predictions.png",
                "sky_map.png", "catalog_histograms.png", "morphology.png"]
    err = capsys.readouterr().err
    for name in expected:  # progress on stderr: a line as each figure is written (the demo's report takes minutes)
        assert f"galaxy-ray report: wrote {name}" in err, err

    for width in (1280, 760):
        page = chromium.new_page(viewport={"width": width, "height": 900})
        try:
            page.goto((out / "index.html").as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({src: e.getAttribute('src'), complete: e.complete, "
                       "w: e.naturalWidth, h: e.naturalHeight}))")
            assert sorted(i["src"] for i in images) == sorted(expected)
            for i in images:
                assert i["complete"] and i["w"] > 0 and i["h"] > 0, i  # loaded and decoded, not a broken icon

            # nothing wider than the window: no horizontal scrolling, every figure inside the page
            scroll, client = page.evaluate("[document.documentElement.scrollWidth, "
                                           "document.documentElement.clientWidth]")
            assert scroll <= client, (width, scroll, client)
            for name in expected:
                img = page.locator(f"figure[id='{name}'] img")
                img.scroll_into_view_if_needed()
                box = img.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= client + 0.5, (name, box, client)
                assert box["width"] > 100 and box["height"] > 50, (name, box)
                shot = img.screenshot()
                if width == 1280:
                    (tmp_path / f"shot-{name}").write_bytes(shot)
                colours, std, inked = _drawn(_pixels(shot))
                # a drawn figure: many colours (lines, text, colour maps), real contrast, ink beyond a frame
                assert colours > 20 and std > 15 and inked > 0.02, (name, colours, std, inked)
                title = page.locator(f"figure[id='{name}'] h2")
                assert title.is_visible() and title.inner_text().strip(), name

            # the model summary, readable at the top of the page
            summary = page.locator("table.summary")
            assert summary.is_visible()
            rows = dict(zip(summary.locator("th").all_inner_texts(), summary.locator("td").all_inner_texts()))
            if task == "classes":
                assert rows["task"].startswith(f"classes ({len(GALAXY10_CLASSES)} classes)"), rows
            elif task == "votes":
                assert rows["task"].startswith("votes on the GZ DECaLS DR5 tree (decals-dr5)"), rows
                assert rows["evaluation"].startswith("validation conditional-fraction RMSE 0."), rows
                assert rows["fraction RMSE per question"].startswith("smooth-or-featured 0."), rows
            else:
                assert rows["task"].startswith("gz2") and "37" in rows["task"], rows
            assert rows["architecture"].startswith("resnet18 at"), rows  # fake_run's config: arch resnet18
            assert rows["merger flag"].startswith(f"p_merger >= {THRESHOLD} "), rows
            assert "precision" in rows["merger flag"] and "recall" in rows["merger flag"], rows
            assert rows["catalog"].endswith(": 3000 rows, 0 error rows"), rows
            shown = ["task", "architecture", "merger flag"] + (["fraction RMSE per question"] if task == "votes" else [])
            for what in shown:
                cell = summary.locator("tr", has=page.locator(f"th:text-is('{what}')")).locator("td")
                assert cell.is_visible(), what
                cbox = cell.bounding_box()
                assert cbox["x"] + cbox["width"] <= client + 0.5, (what, cbox, client)
            if width == 1280:
                page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            page.close()
