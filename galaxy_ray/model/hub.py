"""Starting weights from a timm ResNet encoder on the Hugging Face hub (Zoobot's, for one).

``--weights hf-hub:OWNER/NAME`` (or ``hf_hub:``, timm's spelling; ``@REVISION`` optional)
names a model repository written by timm's ``push_to_hf_hub``: a ``config.json`` whose
``architecture`` names the timm model, and ``model.safetensors`` (older repositories:
``pytorch_model.bin``).  Zoobot publishes its encoders this way, e.g.
``mwalmsley/zoobot-encoder-resnet18`` and ``mwalmsley/zoobot-encoder-resnet50``, which Zoobot's
docs load with ``timm.create_model('hf_hub:mwalmsley/zoobot-encoder-resnet18', pretrained=True,
num_classes=0)``.

timm is not needed: timm's ``resnet18/34/50`` use torchvision's parameter names (``conv1``,
``bn1``, ``layer1`` ... ``layer4``, ``fc``) and shapes, key for key (checked against timm 1.0.31
in ``tests/model/test_hub.py``), so the state dict loads into the torchvision backbone as it is,
less ``fc``.

Files come through :func:`huggingface_hub.hf_hub_download`: from the hub when it is reachable
(and kept in the Hugging Face cache), else from that cache.  huggingface_hub reads
``HF_HUB_OFFLINE`` and the cache location once, when it is imported; this module reads them
(and ``HF_ENDPOINT``, a mirror) again at each call, so a setting made later in the process
(a test, a notebook) still counts.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from galaxy_ray.errors import GalaxyRayError, one_line
from galaxy_ray.model.spec import ARCHS

__all__ = ["HUB_PREFIXES", "is_hub_weights", "hub_cache_dir", "hub_offline", "hub_state"]

#: How ``--weights`` names a hub repository: galaxy-ray's and timm's spellings.
HUB_PREFIXES = ("hf-hub:", "hf_hub:")
CONFIG = "config.json"
#: Weight files, in the order tried (timm's own preference: safetensors first).
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def is_hub_weights(weights: str | None) -> bool:
    """Whether ``--weights`` names a Hugging Face hub repository (``hf-hub:`` or ``hf_hub:``)."""
    return isinstance(weights, str) and weights.startswith(HUB_PREFIXES)


def hub_cache_dir() -> str:
    """The Hugging Face hub cache as the environment names it now.

    ``HF_HUB_CACHE``, else the legacy ``HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``,
    where ``HF_HOME`` defaults to ``$XDG_CACHE_HOME/huggingface`` (``~/.cache/huggingface``):
    huggingface_hub's own order (``huggingface_hub/constants.py``).
    """
    env = os.environ
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    path = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(path))


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to 1/true/on/yes, now or at import."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return constants.HF_HUB_OFFLINE or value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _repo(weights: str) -> tuple[str, str | None]:
    """``hf-hub:OWNER/NAME[@REVISION]`` -> (``OWNER/NAME``, revision or None)."""
    name = weights.split(":", 1)[1].strip()
    repo, _, revision = name.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise GalaxyRayError(f"--weights {weights}: name a hub repository as hf-hub:OWNER/NAME, "
                             "e.g. hf-hub:mwalmsley/zoobot-encoder-resnet18")
    return repo, revision or None


def _not_here(weights: str, repo: str, files: str) -> GalaxyRayError:
    """The one line for files neither on a reachable hub nor in the cache."""
    cache = hub_cache_dir()
    folder = os.path.join(cache, "models--" + repo.replace("/", "--"))
    why = "HF_HUB_OFFLINE is set" if hub_offline() else "the hub is not reachable"
    return GalaxyRayError(
        f"--weights {weights}: {files} of {repo} not in the Hugging Face cache {cache} and {why}; "
        f"on a machine with internet run `hf download {repo} {files}` (huggingface-cli download in older "
        f"huggingface_hub) and copy its {os.path.basename(folder)} folder into {cache} (HF_HUB_CACHE), "
        "or pass --weights PATH to a torchvision state dict")


class _NotCached(Exception):
    """A file neither in the cache nor on a reachable hub (offline, or no network)."""


def _fetch(weights: str, repo: str, revision: str | None, filename: str) -> str | None:
    """Local path of ``filename``, downloaded or cached; None when the hub says the repository has no such file.

    Raises
    ------
    _NotCached
        Not in the cache, and the hub is offline or unreachable.
    GalaxyRayError
        An unknown, gated or private repository, an unknown revision, any other failure.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    # the environment as it is now (see the module's docstring); HF_ENDPOINT names a mirror
    endpoint, offline = os.environ.get("HF_ENDPOINT") or None, hub_offline()
    if not offline:
        _probe(repo, revision, filename, endpoint)
    try:
        return hf_hub_download(repo, filename, revision=revision, cache_dir=hub_cache_dir(),
                               local_files_only=offline, endpoint=endpoint)
    except GatedRepoError:
        raise GalaxyRayError(f"--weights {weights}: {repo} is gated; accept its terms on huggingface.co "
                             "and log in with `hf auth login`") from None
    except RepositoryNotFoundError:
        raise GalaxyRayError(f"--weights {weights}: no repository {repo} on the Hugging Face hub "
                             "(a private one needs `hf auth login`); check the name") from None
    except RevisionNotFoundError:
        raise GalaxyRayError(f"--weights {weights}: {repo} has no revision {revision}") from None
    except LocalEntryNotFoundError:  # before EntryNotFoundError, its base: this one means "not cached, no hub"
        raise _NotCached(filename) from None
    except EntryNotFoundError:  # the hub answered: no such file in this repository
        return None
    except Exception as exc:  # other HTTP errors, a full disk, a broken cache entry
        raise GalaxyRayError(f"--weights {weights}: cannot fetch {filename} of {repo} "
                             f"({one_line(exc)[:200]})") from None


def _probe(repo: str, revision: str | None, filename: str, endpoint: str | None) -> None:
    """Raise _NotCached at once for a file neither cached nor reachable.

    hf_hub_download retries an unreachable hub five times with backoff (about 20 s, and a
    warning each time) before it says a file that is not cached cannot be had; one HEAD
    without retries tells the same sooner.  A cached file needs no probe: hf_hub_download
    falls back to it after one failed HEAD, without retrying.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir(), revision=revision), str):
        return
    try:
        get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision, endpoint=endpoint), endpoint=endpoint)
    except HfHubHTTPError:
        return  # the hub answered (no such repository or file, gated...): hf_hub_download says which
    except Exception:  # no connection, DNS, timeout, proxy: the hub is not reachable
        raise _NotCached(filename) from None


def _config_file(weights: str, repo: str, revision: str | None) -> str:
    try:
        path = _fetch(weights, repo, revision, CONFIG)
    except _NotCached:
        raise _not_here(weights, repo, f"{CONFIG} {WEIGHT_FILES[0]}") from None
    if path is None:
        raise GalaxyRayError(f"--weights {weights}: {repo} has no {CONFIG}, so it is not a timm model")
    return path


def _weights_file(weights: str, repo: str, revision: str | None) -> str:
    """model.safetensors, else pytorch_model.bin (repositories timm wrote before safetensors)."""
    not_cached = False
    for filename in WEIGHT_FILES:
        try:
            path = _fetch(weights, repo, revision, filename)
        except _NotCached:
            not_cached, path = True, None
        if path is not None:
            return path
    if not_cached:
        raise _not_here(weights, repo, WEIGHT_FILES[0])
    raise GalaxyRayError(f"--weights {weights}: {repo} has neither {' nor '.join(WEIGHT_FILES)}")


def _architecture(weights: str, repo: str, path: str, arch: str) -> None:
    """Refuse a config.json that is not a 3-channel timm ResNet of ``arch``."""
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as exc:
        raise GalaxyRayError(f"--weights {weights}: {path} is not a readable config.json ({one_line(exc)})") from None
    # timm writes "architecture" at the top (config.json of push_to_hf_hub); a tag may follow a dot
    name = str(cfg.get("architecture") or cfg.get("pretrained_cfg", {}).get("architecture") or "").split(".")[0]
    if name not in ARCHS:
        raise GalaxyRayError(f"--weights {weights}: {repo} is a {name or 'non-timm'} model, not a ResNet galaxy-ray "
                             f"can start from ({', '.join(ARCHS)}); choose an encoder of one of those")
    if name != arch:
        raise GalaxyRayError(f"--weights {weights}: {repo} is a {name} encoder, not {arch}; pass --arch {name}")
    channels = (cfg.get("model_args") or {}).get("in_chans", 3)
    if channels != 3:
        raise GalaxyRayError(f"--weights {weights}: {repo} takes {channels}-channel images; galaxy-ray's "
                             "backbones take 3 (RGB): choose a colour encoder")


def _read_state(weights: str, path: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or (weights-only) PyTorch file, on the CPU."""
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            state: Any = load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download, a pickle weights_only refuses
        raise GalaxyRayError(f"--weights {weights}: cannot read {path} ({one_line(exc)[:200]}); "
                             "delete it and download again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GalaxyRayError(f"--weights {weights}: {path} is not a state dict of tensors")
    return state


def hub_state(weights: str, arch: str, own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The backbone state dict of a timm ResNet encoder on the hub, checked to fit ``own``.

    Parameters
    ----------
    weights : str
        ``hf-hub:OWNER/NAME`` or ``hf_hub:OWNER/NAME``, optionally ``@REVISION``.
    arch : str
        The backbone's architecture (``--arch``), e.g. ``resnet18``.
    own : dict of str to Tensor
        The torchvision backbone's state dict (its ``fc`` is an Identity, so it has no ``fc.*``).

    Returns
    -------
    dict of str to Tensor
        The encoder's tensors under torchvision's names, without ``fc.*``; every key of ``own``
        present with its shape.

    Raises
    ------
    GalaxyRayError
        A malformed name; an unknown, private or gated repository; files neither on a reachable
        hub nor in the cache (the line says what to download and where to put it); an encoder of
        another architecture (the line names the ``--arch`` to pass) or channel count; or tensors
        that do not fit the backbone.
    """
    repo, revision = _repo(weights)
    _architecture(weights, repo, _config_file(weights, repo, revision), arch)
    path = _weights_file(weights, repo, revision)
    state = {k: v for k, v in _read_state(weights, path).items() if not k.startswith("fc.")}
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or bad:
        first = (missing or extra or bad)[0]
        raise GalaxyRayError(f"--weights {weights}: {os.path.basename(path)} does not fit a torchvision {arch} "
                             f"({len(missing)} tensors missing, {len(extra)} unknown, {len(bad)} of another shape, "
                             f"e.g. {first}); it is not a plain timm {arch}")
    return state
