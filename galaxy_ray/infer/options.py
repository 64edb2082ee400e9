"""Checks of ``infer``'s sizing options, shared by the command line and the API (one line each)."""

from __future__ import annotations

import numbers
from typing import Any

from galaxy_ray.errors import GalaxyRayError

__all__ = ["check_decode_tasks", "check_num_actors"]

_ACTORS_HELP = "give N or MIN,MAX model actors, whole numbers with 1 <= MIN <= MAX"


def _shown(value: Any) -> str:
    """A value as the message shows it: text as typed on the command line, anything else as its repr."""
    return value if isinstance(value, str) and value.strip() == value and value else repr(value)


def _whole(value: Any) -> int | None:
    """``value`` as an int when it is a whole number (an int, or its digits as text), else None."""
    if isinstance(value, bool):  # True is an int to Python, never a number of actors
        return None
    if isinstance(value, numbers.Integral):  # int, numpy's integers
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def check_num_actors(value: Any, flag: str = "--num-actors") -> int | tuple[int, int] | None:
    """The model-actor pool a value asks for: None (the default), N, or (MIN, MAX).

    Parameters
    ----------
    value : None, int, str or sequence of two ints
        ``4``, ``"4"``, ``"2,4"``, ``(2, 4)``.
    flag : str
        How the message names the option.

    Raises
    ------
    GalaxyRayError
        Not a whole number of at least 1, nor two with 1 <= MIN <= MAX
        (``0``, ``-2``, ``"two"``, ``(0, 4)``, ``True``), in one line.
    """
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (tuple, list)) else [value]
    numbers = [_whole(p) for p in parts]
    if len(numbers) not in (1, 2):
        raise GalaxyRayError(f"{flag} {_shown(value)}: {_ACTORS_HELP}")
    if any(n is None for n in numbers):
        raise GalaxyRayError(f"{flag} {_shown(value)}: not a whole number; {_ACTORS_HELP}")
    if len(numbers) == 1:
        if numbers[0] < 1:
            raise GalaxyRayError(f"{flag} {_shown(value)}: at least one model actor is needed; {_ACTORS_HELP}")
        return numbers[0]
    low, high = numbers
    if not 1 <= low <= high:
        raise GalaxyRayError(f"{flag} {_shown(value)}: {_ACTORS_HELP}")
    return low, high


def check_decode_tasks(value: Any, flag: str = "--decode-tasks") -> int | None:
    """A cap on concurrent decode tasks: None (the default) or a whole number of at least 1.

    Raises
    ------
    GalaxyRayError
        ``0``, a negative number or not a whole number, in one line.
    """
    if value is None:
        return None
    n = _whole(value)
    if n is None or n < 1:
        raise GalaxyRayError(f"{flag} {_shown(value)}: give a whole number of at least 1, or leave it out for the "
                             "default (one per model actor on CPUs, no cap on GPUs)")
    return n
