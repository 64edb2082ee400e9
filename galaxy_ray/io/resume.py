"""Resumable output units: a directory of ``part-*.parquet`` files, each published whole.

``galaxy-ray pack`` (``part-00000.parquet``, ...) and ``galaxy-ray infer``
(``part-<first>-<last>.parquet``, named by the input it covers) both split their
work into units known before anything runs and publish each as one file with
:func:`storage.write_bytes_atomic`.  A
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
    published : set[str]
        File names of every complete ``part-*.parquet``.
    temps : list[str]
        URIs of half-written files of a killed run.
    """

    published: set[str] = field(default_factory=set)
    temps: list[str] = field(default_factory=list)

    @property
    def indices(self) -> set[int]:
        """Unit indices of the published files named by :func:`layout.part_name`."""
        return {i for i in map(part_index, self.published) if i is not None}


def part_index(name: str) -> int | None:
    """``7`` for ``part-00007.parquet``; None for any other name."""
    match = _PART.match(name)
    return int(match.group(1)) if match else None


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
        if name.startswith(layout.PART_PREFIX) and name.endswith(layout.PART_SUFFIX):
            state.published.add(name)
    return state


def remove_temps(state: OutputState) -> int:
    """Delete the leftover temporaries found by :func:`scan_output`; returns how many."""
    for uri in state.temps:
        storage.remove(uri)
    removed = len(state.temps)
    state.temps = []
    return removed
