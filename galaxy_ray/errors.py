"""The one exception type that reaches a user as a one-line message."""

from __future__ import annotations


class GalaxyRayError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message names the file or value and says what to do.  Command-line
    entry points print it as one line (``galaxy-ray: error: ...``) and exit
    with status 2 instead of showing a traceback.
    """
