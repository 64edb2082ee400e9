"""Issue 33, section 3: ``train --config`` values of the wrong type, and YAML alias bombs, are one line.

A value of the wrong type is refused naming the file, the key, the value and
the type expected; an alias bomb is refused before it is expanded, so memory
stays bounded (checked under an address-space limit that HEAD's expansion
exceeds).
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from galaxy_ray import api
from galaxy_ray.cli import main as cli_main
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.train import config_from_args


def _config(tmp_path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(f"source: {tmp_path}\n{text}")
    return str(path)


@pytest.mark.parametrize("line, message", [
    ("val_fraction: [0.2]", "val_fraction [0.2] (a list): expected a number"),  # the issue's
    ("epochs: true", "epochs True (a boolean): expected a whole number"),  # a variant: HEAD trained 1 epoch
    ("seed: {a: 1}", "seed {'a': 1} (a mapping): expected a whole number"),
    ("epochs: 2.5", "epochs 2.5 (a float): expected a whole number"),  # HEAD: 2 epochs, silently
])
def test_a_config_value_of_the_wrong_type_is_one_line_naming_the_key(tmp_path, capsys, line, message):
    config = _config(tmp_path, line + "\n")
    assert cli_main(["train", "--config", config]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"galaxy-ray: error: --config {config}: {message}\n" and captured.out == ""


def test_values_the_flags_would_give_still_read(tmp_path):
    config = _config(tmp_path, "val_fraction: '0.3'\nlr: 1e-4\nepochs: 3.0\nname: 2024\nuse_gpu: false\n"
                               "task: classes\nclass_weights: [1, 2.5]\n")
    cfg = config_from_args(["--config", config])
    assert (cfg.val_fraction, cfg.lr, cfg.epochs, cfg.name, cfg.gpu, cfg.class_weights) == (
        0.3, 1e-4, 3, "2024", "no", "1,2.5")


def test_the_api_refuses_a_wrong_type_in_one_line(tmp_path):
    with pytest.raises(GalaxyRayError) as err:
        api.train(str(tmp_path), val_fraction=[0.2])
    assert str(err.value) == "--val-fraction [0.2] (a list): expected a number"


def _bomb(levels: int = 9, width: int = 9, mapping: bool = False) -> str:
    """A "billion laughs": ``levels`` anchors, each ``width`` aliases of the one before, under ``class_weights``."""
    if mapping:  # a variant: the bomb made of mappings rather than lists
        items = [f'&l0 {{{", ".join(f"k{i}: lol" for i in range(width))}}}']
        items += [f'&l{k} {{{", ".join(f"k{i}: *l{k - 1}" for i in range(width))}}}' for k in range(1, levels)]
    else:
        items = [f'&l0 [{", ".join(["lol"] * width)}]']
        items += [f'&l{k} [{", ".join([f"*l{k - 1}"] * width)}]' for k in range(1, levels)]
    return "class_weights: [" + ",\n  ".join(items) + "]\n"


def _limited_address_space() -> None:
    gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (4 * gib, 4 * gib))  # torch's imports take ~2.2 GiB of it


@pytest.mark.slow
@pytest.mark.parametrize("mapping", [False, True], ids=["lists", "mappings"])
def test_a_yaml_alias_bomb_is_one_line_in_bounded_memory(tmp_path, mapping):
    config = _config(tmp_path, _bomb(mapping=mapping))
    assert len(open(config).read()) < 1024  # under a kilobyte ...
    done = subprocess.run([sys.executable, "-m", "galaxy_ray.cli", "train", "--config", config],
                          capture_output=True, text=True, timeout=300, preexec_fn=_limited_address_space)
    # ... that HEAD expanded to 9**9 strings: MemoryError at 1.8 GB, a traceback
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr == (f"galaxy-ray: error: --config {config}: its YAML aliases expand to more than 10,000 "
                           "values (an alias bomb, or a recursive alias); write the options out without anchors\n")


def test_a_recursive_alias_and_a_small_shared_anchor(tmp_path):
    config = _config(tmp_path, "class_weights: &r [1, *r]\n")
    with pytest.raises(GalaxyRayError, match="expand to more than 10,000 values"):
        config_from_args(["--config", config])
    # anchors used as people use them, a value shared a few times, still read
    config = _config(tmp_path, "task: classes\nseed: &s 7\nepochs: *s\n", "shared.yaml")
    cfg = config_from_args(["--config", config])
    assert (cfg.seed, cfg.epochs) == (7, 7)
