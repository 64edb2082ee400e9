"""``--weights hf-hub:OWNER/NAME``: timm ResNet encoders (Zoobot's) from the Hugging Face hub or its cache.

No network: each test writes a real timm encoder with timm's own exporter (``save_for_hf``, what
``push_to_hf_hub`` uploads) into a Hugging Face cache laid out as huggingface_hub writes it
(``models--OWNER--NAME/{blobs,refs/main,snapshots/<commit>/FILE -> ../../blobs/<hash>}``), and the
real huggingface_hub reads it back, offline or with the hub unreachable.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest
import torch

import galaxy_ray.tv  # noqa: F401  (before timm, which imports torchvision)
import timm
from timm.models._hub import save_config_for_hf, save_for_hf

from galaxy_ray.data.transforms import PreprocessConfig
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.model import ModelSpec, build_model
from galaxy_ray.tv import torchvision

REPO = "zooboteers/zoobot-encoder-resnet18"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
PRE = PreprocessConfig(64, 1.0)


def _encoder(arch: str = "resnet18", seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(arch, num_classes=0, pretrained=False, **kwargs).eval()


def _put(cache: Path, repo: str, export: Path) -> None:
    """Files of ``export`` into ``cache`` as huggingface_hub stores a download: blobs linked from the snapshot."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)  # no newline: huggingface_hub reads the whole file as the commit
    (root / "blobs").mkdir(exist_ok=True)
    snapshot = root / "snapshots" / COMMIT
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in export.iterdir():
        blob = hashlib.sha256(f.read_bytes()).hexdigest()
        (root / "blobs" / blob).write_bytes(f.read_bytes())
        (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob))


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in tmp_path, offline; ``publish(repo, model, ...)`` puts an encoder in it."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def publish(repo: str, model: torch.nn.Module | None, safe: bool = True, config_of=None) -> Path:
        export = tmp_path / "export" / repo.replace("/", "--")
        if model is not None:
            save_for_hf(model, export, safe_serialization=safe)
        if config_of is not None:  # a config.json of another model than the weights
            export.mkdir(parents=True, exist_ok=True)
            save_config_for_hf(config_of, export / "config.json")
        _put(cache, repo, export)
        return cache

    return publish


def _error(weights: str, arch: str = "resnet18") -> str:
    with pytest.raises(GalaxyRayError) as info:
        build_model(ModelSpec.for_gz2(arch, PRE), weights)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_timm_resnets_use_torchvisions_names_and_shapes():
    for arch in ("resnet18", "resnet34", "resnet50"):
        ours = {k: v.shape for k, v in getattr(torchvision.models, arch)(weights=None).state_dict().items()
                if not k.startswith("fc.")}
        theirs = {k: v.shape for k, v in _encoder(arch).state_dict().items()}
        assert ours == theirs, arch


def test_encoder_from_the_cache_gives_timms_features(hub_cache):
    encoder = _encoder(seed=7)
    hub_cache(REPO, encoder)
    net = build_model(ModelSpec.for_gz2("resnet18", PRE), f"hf-hub:{REPO}").eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = net.backbone(x), encoder(x)
        fresh = build_model(ModelSpec.for_gz2("resnet18", PRE), "none").eval().backbone(x)
    assert ours.shape == (3, 512)
    torch.testing.assert_close(ours, theirs)
    assert not torch.allclose(fresh, theirs, atol=1e-3)  # the check can fail: random weights differ


def test_timm_spelling_pytorch_bin_and_resnet50(hub_cache):
    encoder = _encoder("resnet50", seed=3)
    hub_cache("someone/resnet50-encoder", encoder, safe=False)  # pytorch_model.bin only, as older timm uploads
    net = build_model(ModelSpec.for_gz2("resnet50", PRE), "hf_hub:someone/resnet50-encoder").eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.backbone(x), encoder(x))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket goes: a connection there is refused


def test_unreachable_hub_falls_back_to_the_cache(hub_cache, monkeypatch):
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE was set when huggingface_hub was imported: this test needs it online")
    encoder = _encoder(seed=11)
    hub_cache(REPO, encoder)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    net = build_model(ModelSpec.for_gz2("resnet18", PRE), f"hf-hub:{REPO}")
    torch.testing.assert_close(net.backbone.conv1.weight, encoder.conv1.weight)


def test_unreachable_hub_without_cache_says_so(hub_cache, monkeypatch):
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE was set when huggingface_hub was imported: this test needs it online")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    message = _error("hf-hub:zooboteers/not-cached")
    assert "not in the Hugging Face cache" in message and "and the hub is not reachable" in message
    assert "`hf download zooboteers/not-cached config.json model.safetensors`" in message


def test_offline_without_cache_says_what_to_put_where(hub_cache):
    cache = hub_cache(REPO, _encoder())
    message = _error("hf-hub:mwalmsley/zoobot-encoder-resnet18")
    assert f"Hugging Face cache {cache}" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "`hf download mwalmsley/zoobot-encoder-resnet18 config.json model.safetensors`" in message
    assert "models--mwalmsley--zoobot-encoder-resnet18 folder" in message and "--weights PATH" in message


def test_config_without_weights_in_the_cache(hub_cache):
    hub_cache(REPO, None, config_of=_encoder())
    message = _error(f"hf-hub:{REPO}")
    assert f"model.safetensors of {REPO} not in the Hugging Face cache" in message


def test_another_architecture_names_the_arch_to_pass(hub_cache):
    hub_cache("mwalmsley/zoobot-encoder-resnet50", None, config_of=_encoder("resnet50"))
    message = _error("hf-hub:mwalmsley/zoobot-encoder-resnet50", arch="resnet18")
    assert "is a resnet50 encoder, not resnet18; pass --arch resnet50" in message


@pytest.mark.parametrize(("model", "expected"), [
    ("convnext_nano", "is a convnext_nano model, not a ResNet galaxy-ray can start from"),
    ("greyscale", "takes 1-channel images"),
    ("resnet34-weights", "model.safetensors does not fit a torchvision resnet18 (0 tensors missing, 96 unknown"),
])
def test_encoders_that_do_not_fit_are_refused(hub_cache, model, expected):
    if model == "greyscale":
        hub_cache("a/b", _encoder(in_chans=1))
    elif model == "resnet34-weights":  # a config.json that says resnet18 beside resnet34's tensors
        hub_cache("a/b", _encoder("resnet34"), config_of=_encoder())
    else:
        hub_cache("a/b", None, config_of=_encoder(model))
    assert expected in _error("hf-hub:a/b")


def test_malformed_name():
    assert "name a hub repository as hf-hub:OWNER/NAME" in _error("hf-hub:zoobot-encoder-resnet18")

