"""Resumable output units: a directory of ``part-NNNNN.parquet`` files, each published whole.

``galaxy-ray pack`` and ``galaxy-ray infer`` both split their work into numbered
units and publish each as one file with :func:`storage.write_bytes_atomic`.  A
rerun after a crash lists the directory once, skips the units already there,
and removes the half-written temporaries a killed process left (they are never
published files, so removing them is always safe).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from galaxy_ray.io import layout, storage

_PART = re.compile(rf"^{re.escape(layout.PART_PREFIX)}(\d{{5,}}){re.escape(layout.PART_SUFFIX)}$")


@dataclass
class OutputState:
    """What an output directory already holds.

    Attributes
    ----------
    published : dict[str, int]
        File name -> unit index, for every complete ``part-NNNNN.parquet``.
    temps : list[str]
        URIs of half-written files of a killed run.
    """

    published: dict[str, int] = field(default_factory=dict)
    temps: list[str] = field(default_factory=list)

    @property
    def indices(self) -> set[int]:
        return set(self.published.values())


def scan_output(out: str) -> OutputState:
    """List ``out`` once and sort what it holds into published parts and leftover temporaries."""
    state = OutputState()
    if not storage.exists(out) or not storage.isdir(out):
        return state
    for uri in storage.list_files(out):
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        if storage.is_temp_file(name):
            if name.startswith(layout.PART_PREFIX):
                state.temps.append(uri)
            continue
        match = _PART.match(name)
        if match:
            state.published[name] = int(match.group(1))
    return state


def remove_temps(state: OutputState) -> int:
    """Delete the leftover temporaries found by :func:`scan_output`; returns how many."""
    for uri in state.temps:
        storage.remove(uri)
    removed = len(state.temps)
    state.temps = []
    return removed
