"""Issue 21, item 9: a checkpoint refused by ``weights_only`` gets galaxy-ray's own line, not torch's advice."""

from __future__ import annotations

import argparse
import collections

import torch

from galaxy_ray.cli import main as cli_main
from galaxy_ray.model import load_checkpoint
from galaxy_ray.model.torchfile import CHECKPOINT_FORMAT


def _checkpoint_with_an_object(path, tiny_checkpoint) -> str:
    """A real galaxy-ray checkpoint whose ``extra`` also holds a pickled Python object."""
    good = tiny_checkpoint(str(path.with_name("good.pt")), size=32)
    payload = torch.load(good, weights_only=True)
    assert payload["format"] == CHECKPOINT_FORMAT
    payload["extra"]["args"] = argparse.Namespace(lr=0.1)  # what a training script might have saved
    torch.save(payload, path)
    return str(path)


def test_a_checkpoint_holding_objects_is_refused_in_galaxy_rays_words(tmp_path, capsys, tiny_checkpoint):
    bad = _checkpoint_with_an_object(tmp_path / "model.pt", tiny_checkpoint)
    for argv in (["predict", bad, str(tmp_path / "a.png")],
                 ["infer", "--checkpoint", bad, "--source", str(tmp_path), "--out", str(tmp_path / "c")]):
        assert cli_main(argv) == 2
        captured = capsys.readouterr()
        err = captured.err.strip()
        assert "\n" not in err and captured.out == "", err
        assert err.startswith(f"galaxy-ray: error: {bad}: holds Python objects other than tensors and plain data")
        assert "argparse.Namespace" in err and "trust the file's source" in err
        # torch's own text, cut at its advice to turn the protection off, is gone
        assert "weights_only" not in err and "Re-running" not in err and "\x1b" not in err
    assert not (tmp_path / "c").exists()


def test_the_same_checkpoint_without_the_object_loads(tmp_path, tiny_checkpoint):
    # the refusal is about the object, not the file: the payload without it loads and has its weights
    bad = _checkpoint_with_an_object(tmp_path / "model.pt", tiny_checkpoint)
    payload = torch.load(bad, weights_only=False)  # the test wrote this file itself: it trusts its source
    del payload["extra"]["args"]
    torch.save(payload, tmp_path / "clean.pt")
    model, spec = load_checkpoint(tmp_path / "clean.pt")
    state = model.state_dict()
    for key, value in payload["model_state"].items():
        assert torch.equal(state[key], value), key
    assert isinstance(payload["model_state"], (dict, collections.OrderedDict)) and spec.arch == "resnet18"
