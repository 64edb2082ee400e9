"""Issue 32: the tasks package: a registry, no torch on import, one labelled-row filter, the regression metrics."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from galaxy_ray import tasks
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model import ModelSpec
from galaxy_ray.data.transforms import PreprocessConfig


def test_importing_the_tasks_imports_no_torch():
    code = "import sys, galaxy_ray.tasks as t; print(sorted(t.TASKS)); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "['classes', 'gz2', 'regression', 'votes']" and out[1] == "False"


def test_an_unknown_task_is_one_line_naming_the_known_ones():
    with pytest.raises(GalaxyRayError) as err:
        tasks.get("regresion")
    assert str(err.value) == "--task 'regresion': unknown task; one of gz2, votes, classes, regression"


def test_every_task_is_found_under_its_name_and_the_default_is_gz2():
    assert [tasks.get(n).name for n in tasks.TASKS] == list(tasks.TASKS)
    assert tasks.DEFAULT_TASK == "gz2"


def test_classes_keep_only_rows_labelled_with_one_of_the_model_classes():
    values = np.array(["spiral", None, "merger", "star", float("nan")], dtype=object)
    classes = tasks.get("classes")
    assert classes.labelled(values, ["spiral", "merger"]).tolist() == [True, False, True, False, False]
    assert classes.labelled(values).tolist() == [True, False, True, True, False]  # before the classes are known
    assert classes.targets(values[[0, 2]], ["spiral", "merger"]).tolist() == [0, 1]
    np.testing.assert_array_equal(classes.target_matrix(values[[2, 0]], ["spiral", "merger"]), [[0, 1], [1, 0]])


def test_regression_labels_must_be_finite_numbers():
    values = np.array([0.5, None, float("nan"), [1.0, 2.0], [1.0, float("inf")], "x"], dtype=object)
    assert tasks.get("regression").labelled(values).tolist() == [True, False, False, True, False, False]


def test_regression_metrics_against_hand_worked_values():
    spec = ModelSpec("resnet18", "regression", ["size", "flux"], PreprocessConfig(32))
    y_true = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    y_pred = np.array([[1.0, 10.0], [2.0, 20.0], [4.0, 30.0]])
    # training means 2 and 20: the baseline's squared errors are 1 + 0 + 1 (size) and 100 + 0 + 100 (flux)
    m = tasks.get("regression").metrics(spec, y_true, y_pred, [2.0, 20.0], None)
    assert m["per_output"]["size"] == {"rmse": pytest.approx(np.sqrt(1 / 3)),
                                       "baseline_rmse": pytest.approx(np.sqrt(2 / 3)), "r2": pytest.approx(0.5)}
    assert m["per_output"]["flux"]["r2"] == pytest.approx(1.0) and m["per_output"]["flux"]["rmse"] == 0.0
    assert m["r2"] == pytest.approx(1 - 1 / 202) and m["rmse"] == pytest.approx(np.sqrt(1 / 6))
    assert m["baseline"] == "training mean" and len(m["sample"]["true"]) == 3


def test_regression_spec_columns_and_descriptions():
    from galaxy_ray.catalog.galaxy_zoo import column_descriptions
    from galaxy_ray.model import output_columns

    spec = ModelSpec("resnet18", "regression", ["Size (arcsec)"], PreprocessConfig(32))
    assert output_columns(spec) == ["size_arcsec_pred"] and spec.merger is None
    d = column_descriptions("regression", spec.output_names)
    assert d["size_arcsec_pred"].startswith("predicted Size (arcsec)") and d["p_merger"].startswith("no merger")
    with pytest.raises(GalaxyRayError, match="no merger output"):
        ModelSpec("resnet18", "regression", ["size"], PreprocessConfig(32), merger="size")


def test_regression_needs_its_label_column(tmp_path):
    from galaxy_ray.train import TrainConfig, validate

    with pytest.raises(GalaxyRayError, match="--task regression needs --label-column"):
        validate(TrainConfig(source=str(tmp_path), task="regression"))
