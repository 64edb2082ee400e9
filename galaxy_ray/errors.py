"""The one exception type that reaches a user as a one-line message."""

from __future__ import annotations


class GalaxyRayError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option.

    The message names the file or value and says what to do.  Command-line
    entry points print it as one line (``galaxy-ray: error: ...``) and exit
    with status 2 instead of showing a traceback.
    """


def one_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name.

    Library errors (Pillow, astropy, pyarrow, HDF5) often span many lines; a
    message built for :class:`GalaxyRayError` or a row's ``error`` keeps one.
    """
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def error_reason(message: str, width: int = 60) -> str:
    """The reason of a row's error message, without the cutout it names, for counting by reason.

    Row errors read ``"<source>: <reason> (<detail>); <what to do>"``; a URI's
    ``s3://`` has no space after its colon, so the first ``": "`` ends the source.
    ``"d.png: corrupt or truncated PNG (image file is truncated); re-fetch it"``
    gives ``"corrupt or truncated PNG"``; ``"x: no signal: blank ..."`` gives ``"no signal"``.
    """
    _, sep, rest = str(message).partition(": ")
    reason = rest if sep else str(message)
    for stop in (" (", "; ", ": "):
        reason = reason.split(stop, 1)[0]
    return reason.strip()[:width] or "unknown"


def os_error_line(exc: OSError) -> str:
    """One line for a failure to read or write a file: the file, what went wrong, what to do.

    A command that stops on a full disk, an ``--out`` that is a file, or a
    folder it may not write prints this instead of a traceback; every stage
    publishes its files atomically, so rerunning the same command after the
    fix completes the run.
    """
    import errno

    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
    advice = {
        errno.ENOSPC: "no space left on the device; free space or write to another --out, then rerun the "
                      "same command to finish",
        errno.EDQUOT: "disk quota exceeded; free space or write to another --out, then rerun the same command",
        errno.EEXIST: "a file is in the way of a folder; give a folder path (remove or rename the file)",
        errno.ENOTDIR: "a file is in the way of a folder; give a folder path (remove or rename the file)",
        errno.EISDIR: "a folder where a file was expected; give a file path",
        errno.EACCES: "permission denied; choose a place you may write, or fix the permissions",
        errno.EPERM: "operation not permitted; choose a place you may write, or fix the permissions",
        errno.ENOENT: "no such file or folder; check the path",
        errno.EROFS: "read-only file system; write to another place",
    }.get(exc.errno, (exc.strerror or one_line(exc)).lower())
    return f"{where}: {advice}"
