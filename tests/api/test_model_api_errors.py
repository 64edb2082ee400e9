"""train, evaluate, infer and predict of galaxy_ray.api refuse what they cannot do in one line."""

from __future__ import annotations

import pytest

from galaxy_ray import api
from galaxy_ray.errors import GalaxyRayError


def test_train_names_an_unknown_option_and_the_known_ones():
    with pytest.raises(GalaxyRayError, match=r"train\(\): unknown option 'learning_rate'; the options are .*\blr\b"):
        api.train("somewhere", learning_rate=0.1)


def test_train_checks_its_options_as_the_command_does(tmp_path):
    with pytest.raises(GalaxyRayError, match="--epochs 0: must be at least 1"):
        api.train(str(tmp_path), epochs=0)
    with pytest.raises(GalaxyRayError, match="--task .counts.: unknown task"):
        api.train(str(tmp_path), task="counts")


@pytest.mark.parametrize("call", [
    lambda missing, tmp: api.evaluate(missing, str(tmp)),
    lambda missing, tmp: api.infer(missing, str(tmp), str(tmp / "catalog")),
    lambda missing, tmp: api.predict(missing, [str(tmp / "a.png")]),
])
def test_a_missing_checkpoint_is_one_line(tmp_path, call):
    missing = str(tmp_path / "runs" / "nothing" / "model.pt")
    with pytest.raises(GalaxyRayError) as info:
        call(missing, tmp_path)
    assert "\n" not in str(info.value) and "nothing" in str(info.value)
