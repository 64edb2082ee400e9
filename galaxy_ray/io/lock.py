"""One writer per output directory: a lock file created atomically, naming its owner.

Two ``infer`` runs writing one ``--out`` at once mix their rows (a scheduler's
retry, two people sharing a folder).  The first run creates ``_infer.lock`` in
the output with an exclusive create, so exactly one of two racing runs gets it;
the other is refused in one line naming the owner.

* Locally the create is ``open(O_CREAT | O_EXCL)``: atomic on local file
  systems and on NFSv3+.
* On S3 it is a conditional PUT (``If-None-Match: *``), which AWS S3 honours
  since 2024 (as do MinIO and moto).  A server that ignores the condition
  makes the lock best effort: the run reads the lock back and proceeds only
  when it holds its own token, which narrows but cannot close the race.

The lock records the owner's host, pid, start time and a random token.  A run
killed with ``kill -9`` cannot remove its lock, so a lock whose owner is on
this host and whose pid is no longer alive is stale: the next run removes it,
says so, and takes the lock.  A lock from another host cannot be checked from
here; the refusal names the file to delete once that run is known to be gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Callable

from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.io import storage

__all__ = ["LOCK_NAME", "OutputLock", "create_exclusive", "pid_alive"]

#: The lock file an ``infer`` run holds in its ``--out`` while it writes there.
LOCK_NAME = "_infer.lock"


def create_exclusive(uri: str, data: bytes) -> bool:
    """Create ``uri`` holding ``data`` only if nothing exists there; True when this call created it.

    Raises
    ------
    OSError
        The create failed for another reason than the file existing (no permission, a full disk).
    """
    if storage.is_remote(uri):
        fs, path = storage.fsspec_filesystem(uri)
        try:
            fs.pipe_file(path, data, mode="create")
        except (FileExistsError, OSError) as exc:
            if isinstance(exc, FileExistsError) or "PreconditionFailed" in str(exc) or "412" in str(exc):
                return False
            raise
        return True
    path = storage.strip_scheme(uri)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists on this host (a zombie counts as gone only once reaped)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    except (OverflowError, ValueError):
        return False
    return True


class OutputLock:
    """The lock of one output directory, held from :meth:`acquire` to :meth:`release`.

    Parameters
    ----------
    out : str
        Output directory, path or ``s3://`` prefix.
    what : str
        What holds it (``"galaxy-ray infer"``), for the refusal.
    log : callable
        Receives a line when a stale lock is removed.
    """

    def __init__(self, out: str, what: str = "galaxy-ray infer", log: Callable[[str], None] = print):
        self.uri = storage.join(out, LOCK_NAME)
        self.out = out
        self.what = what
        self.log = log
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex,
                      "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": what}
        self.held = False

    def _read(self) -> dict | None:
        try:
            return json.loads(storage.read_bytes(self.uri))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or damaged: an owner we cannot name

    def acquire(self) -> None:
        """Take the lock, removing a stale one of a dead process on this host first.

        Raises
        ------
        GalaxyRayError
            Another live run holds it (or one on another host, which cannot be checked).
        """
        data = json.dumps(self.owner, indent=2).encode()
        for _ in range(2):
            if create_exclusive(self.uri, data):
                if self._read() == self.owner:  # a server that ignored the condition: the last writer wins
                    self.held = True
                    return
                break
            holder = self._read()
            if holder is None:
                continue  # removed between our create and our read: try once more
            if not self._stale(holder):
                break
            storage.remove(self.uri)
            self.log(f"removed the stale lock {self.uri} of pid {holder.get('pid')} (no longer running on this host)")
        self._refuse(self._read() or {})

    def _stale(self, holder: dict) -> bool:
        return bool(holder) and holder.get("host") == self.owner["host"] and not pid_alive(holder.get("pid", -1))

    def _refuse(self, holder: dict) -> None:
        who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}" if holder
               else "owner unknown")
        raise GalaxyRayError(
            f"{self.out}: another {self.what} is writing this catalog ({who}); wait for it to end or write to "
            f"another --out; if no such run is going on any more, delete {self.uri} and rerun")

    def release(self) -> None:
        """Remove the lock if this run still holds it (never another run's)."""
        if not self.held:
            return
        self.held = False
        try:
            if self._read() == self.owner:
                storage.remove(self.uri)
        except OSError:  # the output went away or became read-only: the next run finds a stale lock
            pass

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
