"""Class names are data in evaluation figures too: `$...$` is drawn as written, not parsed as mathtext."""

from __future__ import annotations

from PIL import Image

from galaxy_ray.evaluate.plots import plot_confusion


def test_a_class_name_with_mathtext_draws_a_confusion_matrix(tmp_path):
    names = [r"$\x$ odd", "spiral"]  # r"$\x$" stops matplotlib's mathtext parser
    out = tmp_path / "confusion_matrix.png"
    plot_confusion({"confusion_matrix": [[3, 1], [0, 4]], "class_names": names, "accuracy": 0.875,
                    "balanced_accuracy": 0.875}, str(out))
    with Image.open(out) as im:
        assert im.size[0] > 100 and im.getextrema() != ((255, 255), (255, 255), (255, 255), (255, 255))
