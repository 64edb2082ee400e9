"""Model heads, losses and checkpoints on real torchvision ResNets (tiny inputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_ray import schema
from galaxy_ray.cli import run_entry_point
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model import (
    GZ2TreeHead,
    ModelSpec,
    build_model,
    load_checkpoint,
    loss_function,
    merger_probability,
    morphology,
    output_columns,
    predict_numpy,
    save_checkpoint,
    set_backbone_trainable,
)

PRE = {"image_size": 32, "crop_fraction": 1.0}


def test_tree_head_obeys_the_sums_to_float_precision():
    torch.manual_seed(0)
    logits = 5 * torch.randn(256, 37)  # wide logits: near-0 and near-1 answers too
    fractions = GZ2TreeHead()(logits).numpy()
    assert fractions.shape == (256, 37) and fractions.min() >= 0.0
    assert schema.tree_violation(fractions).max() < 1e-6
    # and each child question's sum equals its parent's value, checked directly
    for q in schema.GZ2_QUESTIONS:
        parent = 1.0 if q.parent is None else fractions[:, q.parent]
        np.testing.assert_allclose(fractions[:, q.indices].sum(axis=1), parent, atol=1e-6)


def test_gz2_model_predicts_tree_fractions_and_reads_them():
    spec = ModelSpec.for_gz2("resnet18", PRE)
    model = build_model(spec).eval()
    probs = predict_numpy(model, np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32))
    assert probs.shape == (3, 37) and schema.tree_violation(probs).max() < 1e-5
    assert output_columns(spec) == list(schema.GZ2_ANSWER_COLUMNS)
    np.testing.assert_array_equal(merger_probability(spec, probs), probs[:, schema.GZ2_MERGER_INDEX])
    assert set(morphology(spec, probs)) <= {"elliptical", "edge_on", "spiral", "disk", "artifact"}


def test_classes_model_softmax_and_readouts():
    spec = ModelSpec("resnet18", "classes", list(schema.GALAXY10_CLASSES), PRE, "Merging")
    model = build_model(spec)
    x = torch.randn(4, 3, 32, 32)
    probs = predict_numpy(model, x.numpy())
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert output_columns(spec)[1] == "prob_merging"
    np.testing.assert_array_equal(merger_probability(spec, probs), probs[:, 1])
    assert list(morphology(spec, probs)) == [schema.GALAXY10_CLASSES[i] for i in probs.argmax(1)]
    no_merger = ModelSpec("resnet18", "classes", ["elliptical", "spiral"], PRE)
    assert np.isnan(merger_probability(no_merger, probs[:, :2])).all()


def test_losses():
    gz2 = ModelSpec.for_gz2("resnet18", PRE)
    target = torch.rand(5, 37)
    assert loss_function(gz2)(target, target).item() == 0.0
    assert loss_function(gz2)(target, 1 - target).item() > 0.0
    cls = ModelSpec("resnet18", "classes", ["a", "b"], PRE)
    logits = torch.tensor([[4.0, -4.0], [4.0, -4.0]])
    labels = torch.tensor([0, 1])
    plain = loss_function(cls)(logits, labels).item()
    weighted = loss_function(cls, class_weights=[1.0, 3.0])(logits, labels).item()
    smoothed = loss_function(cls, label_smoothing=0.2)(logits[:1], labels[:1]).item()
    assert weighted > plain  # the wrong row is the up-weighted class
    assert smoothed > loss_function(cls)(logits[:1], labels[:1]).item()
    with pytest.raises(GalaxyRayError, match="--class-weights"):
        loss_function(cls, class_weights=[1.0])


def test_checkpoint_round_trip_gives_identical_predictions(tmp_path):
    spec = ModelSpec.for_gz2("resnet18", PRE)
    model = build_model(spec)
    # move the BN running stats away from their defaults so they are checked too
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, 32, 32) * 3 + 1)
    uri = save_checkpoint(tmp_path / "run", model, spec, {"epoch": 4})
    again, spec2, extra = load_checkpoint(tmp_path / "run", with_extra=True)
    assert spec2 == spec and extra == {"epoch": 4} and uri.endswith("model.pt")
    x = np.random.default_rng(1).normal(size=(4, 3, 32, 32)).astype(np.float32)
    np.testing.assert_array_equal(predict_numpy(model, x), predict_numpy(again, x))


def test_starting_weights_from_state_dict_or_checkpoint(tmp_path):
    src = build_model(ModelSpec.for_gz2("resnet18", PRE))
    torch.save(src.backbone.state_dict(), tmp_path / "tv.pt")
    save_checkpoint(tmp_path / "ours.pt", src, ModelSpec.for_gz2("resnet18", PRE))
    spec = ModelSpec("resnet18", "classes", ["a", "b", "c"], PRE)
    for path in ("tv.pt", "ours.pt"):
        model = build_model(spec, str(tmp_path / path))
        assert torch.equal(model.backbone.layer4[1].conv2.weight, src.backbone.layer4[1].conv2.weight)
        assert model.head.out_features == 3
    with pytest.raises(GalaxyRayError, match="does not fit a resnet50"):
        build_model(ModelSpec("resnet50", "classes", ["a", "b"], PRE), str(tmp_path / "tv.pt"))
    set_backbone_trainable(model, False)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_bad_inputs_are_one_line(tmp_path, capsys):
    torch.save({"not": "ours"}, tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    cases = [
        (lambda: ModelSpec("resnet7", "gz2", list(schema.GZ2_KAGGLE_COLUMNS)), "--arch 'resnet7'"),
        (lambda: ModelSpec("resnet18", "votes", ["a", "b"]), "--task 'votes'"),
        (lambda: ModelSpec("resnet18", "classes", ["a", "b"], PRE, "merger"), "--merger 'merger'"),
        (lambda: load_checkpoint(tmp_path / "other.pt"), "not a galaxy-ray checkpoint"),
        (lambda: load_checkpoint(tmp_path / "text.pt"), "not a PyTorch checkpoint"),
        (lambda: load_checkpoint(tmp_path / "missing.pt"), "no such file"),
    ]
    for fn, needle in cases:
        assert run_entry_point(lambda argv: fn()) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err
