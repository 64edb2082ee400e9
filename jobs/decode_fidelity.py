"""How far the uint8 decode stage moves model input and predictions from the float path of earlier versions.

Earlier galaxy-ray versions decoded every 8-bit cutout at full size, divided it
by 255 and resized it with torchvision's antialiased bilinear filter on
float32, then rounded to uint8.  That path is written out here with Pillow
and torchvision alone (:func:`float_reference`), and compared on real JPEGs
with galaxy-ray's ``preprocess_batch`` at preprocessing version 1 (full-size
decode, Pillow's bilinear resize on uint8) and version 2 (the default: a
JPEG at least twice the model's side is DCT-scaled while decoding).

1. Pixels: mean and largest absolute difference, in 0-255, per folder and side.
2. Predictions (``--epochs`` > 0): a demo-like GZ2 ResNet-18 (no pretrained
   weights) trained for ``--epochs`` on the reference pixels of the SDSS GZ2
   sample at ``--model-side`` px, then applied to the three inputs of every
   cutout: the largest change of ``p_merger`` and the fraction of ``is_merger``
   flags that change, at 0.5 and at the threshold that flags 5 % of them.

The last line is one JSON object::

    python jobs/decode_fidelity.py --n 400 --epochs 4
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jobs.bench_decode import DEFAULT_GZ2, DEFAULT_KAGGLE, real_jpegs  # noqa: E402


def float_reference(data: bytes, side: int) -> np.ndarray:
    """Earlier galaxy-ray's model input, (3, S, S) uint8: full decode / 255, torchvision AA bilinear, round."""
    from PIL import Image

    from galaxy_ray.tv import torchvision  # noqa: F401  (safe import next to a CPU torch)
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / np.float32(255.0)
    x = F.resize(torch.from_numpy(rgb).permute(2, 0, 1), [side, side], interpolation=InterpolationMode.BILINEAR,
                 antialias=True)
    return x.clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).numpy()


def inputs(data: list[bytes], side: int) -> dict[str, np.ndarray]:
    """The three model inputs of ``data`` at ``side`` px: ``reference``, ``v1``, ``v2``."""
    from galaxy_ray.data.transforms import PreprocessConfig, preprocess_batch

    images = np.empty(len(data), dtype=object)
    images[:] = data
    out = {"reference": np.stack([float_reference(b, side) for b in data])}
    for version in (1, 2):
        prepared = preprocess_batch({"image": images}, PreprocessConfig(side, 1.0, version))
        assert all(e is None for e in prepared["error"]), next(e for e in prepared["error"] if e)
        out[f"v{version}"] = prepared["pixels"]
    return out


def pixel_rows(folders: dict[str, str], n: int, sides: list[int]) -> list[dict]:
    rows = []
    for name, folder in folders.items():
        data = real_jpegs(folder, n)
        if not data:
            print(f"decode_fidelity: no JPEGs under {folder}: skipped", flush=True)
            continue
        for side in sides:
            x = inputs(data, side)
            for version in ("v1", "v2"):
                diff = np.abs(x[version].astype(np.int16) - x["reference"])
                rows.append({"set": name, "n": len(data), "side": side, "version": version,
                             "mean_abs": round(float(diff.mean()), 3), "max_abs": int(diff.max())})
                print(f"{name:>8} {side:3d} px {version}: mean |diff| {diff.mean():.3f}, max {diff.max()}",
                      flush=True)
    return rows


def demo_model(folder: str, side: int, epochs: int, seed: int = 0):
    """A GZ2 ResNet-18 trained from scratch on the reference pixels of the GZ2 sample; (model, spec, bytes)."""
    import pandas as pd

    from galaxy_ray.data.sources.gz2_catalog import GZ2Catalog
    from galaxy_ray.data.transforms import PreprocessConfig
    from galaxy_ray.model import ModelSpec, build_model
    from galaxy_ray.model.losses import loss_function
    from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS

    meta = GZ2Catalog(folder).metadata()  # the catalog's rows, in order, with the 37 cumulative fractions
    files = pd.read_csv(Path(folder) / "catalog.csv", usecols=["image"])["image"]
    assert len(files) == len(meta), "catalog.csv and the source's rows differ"
    data = [(Path(folder) / f).read_bytes() for f in files]
    targets = torch.tensor(meta[list(GZ2_KAGGLE_COLUMNS)].to_numpy(np.float32))
    spec = ModelSpec.for_gz2("resnet18", PreprocessConfig(side, 1.0, 1))
    model, loss_fn = build_model(spec, "none"), loss_function(spec)
    x = torch.from_numpy(np.stack([float_reference(b, side) for b in data]))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=gen).split(32):
            opt.zero_grad()
            loss_fn(model(x[idx]), targets[idx]).backward()
            opt.step()
    return model.eval(), spec, data


def prediction_row(folder: str, side: int, epochs: int) -> dict:
    from galaxy_ray.model.outputs import merger_probability
    from galaxy_ray.model.predict import predict_numpy

    model, spec, data = demo_model(folder, side, epochs)
    x = inputs(data, side)
    with torch.no_grad():
        p = {k: merger_probability(spec, predict_numpy(model, v)) for k, v in x.items()}
    row = {"n": len(data), "side": side, "epochs": epochs}
    t5 = float(np.quantile(p["reference"], 0.95))
    for version in ("v1", "v2"):
        change = np.abs(p[version] - p["reference"])
        row[version] = {"max_abs_p_merger": float(change.max()), "mean_abs_p_merger": float(change.mean()),
                        "flags_changed_at_0.5": float(np.mean((p[version] >= 0.5) != (p["reference"] >= 0.5))),
                        "flags_changed_at_top5pct": float(np.mean((p[version] >= t5) != (p["reference"] >= t5)))}
        print(f"model at {side} px, {version}: largest |p_merger change| {change.max():.4f} "
              f"(mean {change.mean():.5f}); flags changed {row[version]['flags_changed_at_0.5']:.3%} at 0.5, "
              f"{row[version]['flags_changed_at_top5pct']:.3%} at the top-5% threshold {t5:.4f}", flush=True)
    return row


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=400, help="cutouts per folder for the pixel comparison")
    p.add_argument("--sides", type=_ints, default=[64, 96, 224], help="model sides, comma-separated")
    p.add_argument("--kaggle", default=str(DEFAULT_KAGGLE), help="folder of real Kaggle GZ JPEGs ('' to skip)")
    p.add_argument("--gz2", default=DEFAULT_GZ2, help="the SDSS GZ2 sample (its catalog trains the demo model)")
    p.add_argument("--epochs", type=int, default=4, help="epochs of the demo-like model (0: pixels only)")
    p.add_argument("--model-side", type=int, default=64, help="input side of the demo-like model")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    folders = {k: v for k, v in (("kaggle", args.kaggle), ("gz2", args.gz2)) if v}
    result = {"pixels": pixel_rows(folders, args.n, args.sides)}
    if args.epochs > 0 and args.gz2:
        result["predictions"] = prediction_row(args.gz2, args.model_side, args.epochs)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
