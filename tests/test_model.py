"""Model heads, losses and checkpoints on real torchvision ResNets (tiny inputs)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from galaxy_ray import schema
from galaxy_ray.cli import run_entry_point
from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model import (
    CHECKPOINT_FORMAT,
    GZ2TreeHead,
    ModelSpec,
    Predictor,
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

PRE = PreprocessConfig(32)


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    """Model input as preprocessing makes it: uint8 (N, 3, 32, 32)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _trained_bn(model):
    """Move the BN running stats away from their defaults so that they matter."""
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 3, 32, 32) * 0.5 + 0.25)
    return model.eval()


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
    probs = predict_numpy(model, _pixels(3))
    assert probs.shape == (3, 37) and schema.tree_violation(probs).max() < 1e-5
    assert output_columns(spec) == list(schema.GZ2_ANSWER_COLUMNS)
    np.testing.assert_array_equal(merger_probability(spec, probs), probs[:, schema.GZ2_MERGER_INDEX])
    assert set(morphology(spec, probs)) <= {"elliptical", "edge_on", "spiral", "disk", "artifact"}


def test_classes_model_softmax_and_readouts():
    spec = ModelSpec("resnet18", "classes", list(schema.GALAXY10_CLASSES), PRE, "Merging")
    model = build_model(spec)
    probs = predict_numpy(model, np.random.default_rng(0).random((4, 3, 32, 32), dtype=np.float32))
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
    model = _trained_bn(build_model(spec))
    uri = save_checkpoint(tmp_path / "run", model, spec, {"epoch": 4})
    again, spec2, extra = load_checkpoint(tmp_path / "run", with_extra=True)
    assert spec2 == spec and extra == {"epoch": 4} and uri.endswith("model.pt")
    x = _pixels(4, seed=1)
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
        (lambda: ModelSpec("resnet18", "counts", ["a", "b"]), "--task 'counts'"),
        (lambda: ModelSpec("resnet18", "votes", ["a", "b"]), "needs its tree"),
        (lambda: ModelSpec("resnet18", "classes", ["a", "b"], PRE, "merger"), "--merger 'merger'"),
        (lambda: load_checkpoint(tmp_path / "other.pt"), "not a galaxy-ray checkpoint"),
        (lambda: load_checkpoint(tmp_path / "text.pt"), "not a PyTorch checkpoint"),
        (lambda: load_checkpoint(tmp_path / "missing.pt"), "no such checkpoint"),
    ]
    for fn, needle in cases:
        assert run_entry_point(lambda argv: fn()) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err


def _reference(model, pixels: np.ndarray) -> np.ndarray:
    """The network applied by hand to ImageNet-normalised [0, 1] pixels: normalisation exactly once."""
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        return model.activation(model.head(model.backbone((x - mean) / std))).numpy()


def _png(size: int, seed: int) -> bytes:
    yy, xx = np.mgrid[:size, :size] - size / 2
    img = np.exp(-((xx - seed) ** 2 / 40.0 + yy**2 / 12.0))
    rgb = (255 * np.stack([img, 0.8 * img, 0.5 * img], axis=-1)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_catalog_prediction_is_the_net_on_uint8_pixels_normalised_once():
    spec = ModelSpec.for_gz2("resnet18", PRE)
    model = _trained_bn(build_model(spec))
    batch = {"object_id": np.array(["a", "b", "c"], dtype=object),
             "image": np.array([_png(40, s) for s in (0, 3, -4)], dtype=object)}
    pixels = preprocess_batch(batch, PRE)["pixels"]
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 3, 32, 32)
    predict = Predictor(model, spec, device="cpu")
    as_uint8 = predict(pixels)
    # uint8 (what crosses to a GPU) and [0, 1] floats are the same input: identical probabilities
    np.testing.assert_array_equal(as_uint8, predict(pixels.astype(np.float32) / 255.0))
    np.testing.assert_allclose(as_uint8, _reference(model, pixels), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(as_uint8, predict_numpy(model, pixels))


def test_tta_is_invariant_to_rotating_and_flipping_the_input():
    spec = ModelSpec("resnet18", "classes", ["a", "b", "c"], PRE)
    predict = Predictor(_trained_bn(build_model(spec)), spec, device="cpu", tta=True)
    x = _pixels(2, seed=5)
    turned = np.ascontiguousarray(np.rot90(x, 1, axes=(2, 3))[..., ::-1])
    np.testing.assert_allclose(predict(turned), predict(x), rtol=0, atol=1e-5)
    assert predict(x[:0]).shape == (0, 3)


def test_checkpoint_carries_normalisation_and_old_checkpoints_load(tmp_path):
    spec = ModelSpec.for_gz2("resnet18", PRE)
    model = _trained_bn(build_model(spec))
    with torch.no_grad():
        model.mean.fill_(0.25)
    save_checkpoint(tmp_path / "run", model, spec, {"epoch": 2})
    predict = Predictor.from_checkpoint(str(tmp_path / "run"), device="auto")
    assert predict.spec == spec and predict.extra == {"epoch": 2} and predict.uri.endswith("model.pt")
    assert torch.equal(predict.model.mean.cpu(), torch.full((1, 3, 1, 1), 0.25))
    # a version-1 checkpoint has no mean/std: it was trained on ImageNet-normalised input
    with torch.no_grad():
        model.mean.copy_(torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
    state = {k: v for k, v in model.state_dict().items() if k not in ("mean", "std")}
    torch.save({"format": CHECKPOINT_FORMAT, "version": 1, "spec": spec.to_dict(), "model_state": state,
                "extra": {}}, tmp_path / "v1.pt")
    old, _ = load_checkpoint(tmp_path / "v1.pt")
    x = _pixels(2, seed=2)
    np.testing.assert_array_equal(predict_numpy(old, x), predict_numpy(model, x))


def test_a_loaded_checkpoint_holds_every_stored_tensor_and_none_on_the_meta_device(tmp_path):
    import torch

    from galaxy_ray.model import ModelSpec, build_model, checkpoint_spec, load_checkpoint, save_checkpoint

    torch.manual_seed(3)
    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    net = build_model(spec).eval()
    uri = save_checkpoint(str(tmp_path / "model.pt"), net, spec, {"epoch": 4})
    loaded, _ = load_checkpoint(uri)
    stored = net.state_dict()
    assert all(not t.is_meta for t in loaded.state_dict().values())
    assert all(torch.equal(loaded.state_dict()[k], stored[k]) for k in stored)
    assert checkpoint_spec(uri) == (spec, {"epoch": 4})


def test_weights_that_do_not_fit_the_spec_are_one_line(tmp_path):
    import torch

    from galaxy_ray.errors import GalaxyRayError
    from galaxy_ray.model import ModelSpec, build_model, checkpoint_spec, load_checkpoint, save_checkpoint

    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(32))
    uri = save_checkpoint(str(tmp_path / "model.pt"), build_model(spec), spec)
    stored = torch.load(uri, weights_only=True)
    name = next(k for k, v in stored["model_state"].items() if v.ndim == 2)  # the head's weight
    stored["model_state"][name] = torch.zeros(5, 5)
    torch.save(stored, tmp_path / "reshaped.pt")
    for read in (checkpoint_spec, load_checkpoint):
        with pytest.raises(GalaxyRayError, match=r"reshaped.pt: weights do not match its resnet18 spec"):
            read(str(tmp_path / "reshaped.pt"))
