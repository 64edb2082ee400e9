"""Issue 32: checkpoints written in the format of the releases before ``galaxy_ray.tasks`` still load.

Each checkpoint is built here by hand, as the earlier ``checkpoint_bytes`` wrote it: a
``torch.save`` of ``{"format", "version": 2, "spec": {...}, "model_state": {...}, "extra": {...}}``
whose spec is a plain dict naming the task as a string, and whose state holds a torchvision
ResNet-18 as ``backbone.*``, the linear ``head.*`` and the ``mean``/``std`` buffers.  Nothing of
galaxy-ray writes it, so a change in how the spec or the task is stored cannot change the file too.
The expected outputs are worked out from the stored tensors with torchvision and torch alone.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_ray.model import load_checkpoint, morphology, output_columns

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
KAGGLE_37 = [f"Class{q}.{a}" for q, n in ((1, 3), (2, 2), (3, 2), (4, 2), (5, 4), (6, 2), (7, 3), (8, 7),
                                          (9, 3), (10, 3), (11, 6)) for a in range(1, n + 1)]


def old_state(num_outputs: int, seed: int) -> dict[str, torch.Tensor]:
    """A ResNet-18 state as earlier releases stored it: ``backbone.*`` without ``fc``, ``head.*``, ``mean``, ``std``."""
    from galaxy_ray.tv import torchvision

    torch.manual_seed(seed)
    net = torchvision.models.resnet18(weights=None)
    state = {f"backbone.{k}": v.clone() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    state["head.weight"] = torch.randn(num_outputs, 512) * 0.05
    state["head.bias"] = torch.randn(num_outputs) * 0.05
    state["mean"] = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    state["std"] = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return state


def write_old_checkpoint(path, spec: dict, num_outputs: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write ``path`` in the pre-tasks format; returns the stored state."""
    state = old_state(num_outputs, seed)
    extra = {"epoch": 3, "val_rmse": 0.2, "task": spec["task"], "train_mean": None, "source": "synthetic",
             "run": "old", "split": {"val_fraction": 0.2, "salt": "galaxy-ray-split-v1"}}
    payload = {"format": "galaxy-ray-checkpoint", "version": 2, "spec": spec, "model_state": state,
               "extra": extra}
    torch.save(payload, path)
    return state


def head_logits(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The stored network's linear outputs, from torchvision and the stored tensors only."""
    from galaxy_ray.tv import torchvision

    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Linear(512, state["head.weight"].shape[0])
    own = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    own.update({"fc.weight": state["head.weight"], "fc.bias": state["head.bias"]})
    net.load_state_dict(own)
    net.eval()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return net((x.float() / 255.0 - mean) / std)


def pixels(n: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(1).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))


PREPROCESS = {"image_size": 32, "crop_fraction": 1.0}


def test_an_old_classes_checkpoint_loads_and_predicts_the_softmax_of_its_head(tmp_path):
    spec = {"arch": "resnet18", "task": "classes", "output_names": ["spiral", "elliptical", "merger"],
            "preprocess": PREPROCESS, "merger": "merger", "calibration": None, "tree": None}
    state = write_old_checkpoint(tmp_path / "model.pt", spec, 3)
    model, loaded, extra = load_checkpoint(tmp_path / "model.pt", with_extra=True)
    assert (loaded.task, loaded.output_names, loaded.merger) == ("classes", ["spiral", "elliptical", "merger"], "merger")
    assert extra["epoch"] == 3 and extra["split"]["val_fraction"] == 0.2
    x = pixels()
    with torch.no_grad():
        probs = model.predict(x)
    expected = torch.softmax(head_logits(state, x), dim=1)
    assert torch.allclose(probs, expected, atol=1e-5)
    assert output_columns(loaded) == ["prob_spiral", "prob_elliptical", "prob_merger"]
    names = np.array(["spiral", "elliptical", "merger"], dtype=object)
    assert list(morphology(loaded, probs.numpy())) == list(names[expected.argmax(dim=1).numpy()])


def test_an_old_gz2_checkpoint_loads_and_its_first_question_is_the_softmax_of_its_logits(tmp_path):
    spec = {"arch": "resnet18", "task": "gz2", "output_names": KAGGLE_37, "preprocess": PREPROCESS,
            "merger": "Class8.6", "calibration": None, "tree": None}
    state = write_old_checkpoint(tmp_path / "model.pt", spec, 37, seed=2)
    model, loaded = load_checkpoint(tmp_path / "model.pt")
    assert (loaded.task, loaded.merger, loaded.num_outputs) == ("gz2", "Class8.6", 37)
    x = pixels()
    with torch.no_grad():
        probs = model.predict(x)
    logits = head_logits(state, x)
    # Q1 (smooth, features, star) has no parent: its fractions are the softmax of its three logits;
    # Q2 (edge-on yes/no) follows features (Class1.2), so its two fractions sum to Class1.2.
    assert torch.allclose(probs[:, :3], torch.softmax(logits[:, :3], dim=1), atol=1e-5)
    assert torch.allclose(probs[:, 3:5].sum(dim=1), probs[:, 1], atol=1e-5)
    columns = output_columns(loaded)
    assert len(columns) == 37 and columns[0] != "Class1.1"  # the catalog's descriptive names


def test_an_old_votes_checkpoint_loads_with_its_tree(tmp_path):
    from galaxy_ray.trees import get_schema

    tree = get_schema("decals-dr5")
    spec = {"arch": "resnet18", "task": "votes", "output_names": list(tree.answer_names), "preprocess": PREPROCESS,
            "merger": None, "calibration": None, "tree": "decals-dr5"}
    state = write_old_checkpoint(tmp_path / "model.pt", spec, len(tree.answer_names), seed=3)
    model, loaded = load_checkpoint(tmp_path / "model.pt")
    assert (loaded.task, loaded.tree) == ("votes", "decals-dr5")
    assert loaded.merger == tree.merger_answers[0]  # the tree's merger answer, filled in on load as before
    x = pixels()
    with torch.no_grad():
        probs = model.predict(x).numpy()
    alpha = (1.0 + 100.0 * torch.sigmoid(head_logits(state, x))).numpy()
    start, stop = tree.slices[0]
    expected = alpha[:, start:stop] / alpha[:, start:stop].sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs[:, start:stop], expected, atol=1e-5)
    for a, b in tree.slices:
        np.testing.assert_allclose(probs[:, a:b].sum(axis=1), 1.0, atol=1e-5)


def test_a_checkpoint_of_an_unknown_task_is_one_line(tmp_path):
    from galaxy_ray.errors import GalaxyRayError

    spec = {"arch": "resnet18", "task": "nonsense", "output_names": ["a", "b"], "preprocess": PREPROCESS,
            "merger": None, "calibration": None, "tree": None}
    write_old_checkpoint(tmp_path / "model.pt", spec, 2)
    with pytest.raises(GalaxyRayError, match="nonsense"):
        load_checkpoint(tmp_path / "model.pt")
