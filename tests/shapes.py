"""Synthetic galaxy-like shapes for the learning tests: the class is in the shape, not in one pixel statistic."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def render_shape(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """A noisy galaxy-like shape at a random angle: the class is in the shape, not in one pixel statistic."""
    yy, xx = (np.mgrid[:size, :size] - size / 2 + 0.5) / size
    th = rng.uniform(0, np.pi)
    u, v = np.cos(th) * xx + np.sin(th) * yy, -np.sin(th) * xx + np.cos(th) * yy
    r = rng.uniform(0.08, 0.12)
    if kind == "round":
        img = np.exp(-(u**2 + v**2) / (2 * r**2))
    elif kind == "cigar":
        img = np.exp(-(u**2 / (2 * (1.8 * r) ** 2) + v**2 / (2 * (0.45 * r) ** 2)))
    elif kind == "ring":
        img = np.exp(-((np.hypot(u, v) - 1.5 * r) ** 2) / (2 * (0.35 * r) ** 2))
    else:
        img = sum(np.exp(-((u + s * r) ** 2 + v**2) / (2 * (0.6 * r) ** 2)) for s in (-1, 1))
    img = img / img.max() * rng.uniform(0.6, 1.0) + rng.normal(0, 0.04, img.shape)
    return (255 * np.clip(np.stack([img, 0.85 * img, 0.7 * img], -1), 0, 1)).astype(np.uint8)


def shape_png(kind: str, rng: np.random.Generator, size: int = 32) -> bytes:
    """:func:`render_shape` encoded as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(render_shape(kind, rng, size)).save(buf, "PNG")
    return buf.getvalue()
