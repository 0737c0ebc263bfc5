"""Files the tools write (`triage -o`, `stackmap snapshot --file`): checked first, written atomically.

`check_writable()` refuses, with one line and before any work is done, a path
that is a directory, a special or pseudo file, or in a directory that does not
exist or cannot be written. `write_atomic()` writes a temporary file beside
the target and renames it over: a reader never sees half a report, and a
failed write leaves the old file as it was.
"""

import os
import stat
import tempfile

from .errors import StackMapsError
from .source import PSEUDO_ROOTS
from .text import safe


def check_writable(path: str, what: str = "output") -> None:
    shown = safe(path)
    if not path:
        raise StackMapsError(f"empty {what} file name")
    real = os.path.realpath(path)
    if any(real.startswith(r) for r in PSEUDO_ROOTS):
        raise StackMapsError(f"{shown}: cannot write the {what} into {real.split('/')[1]}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise StackMapsError(f"{shown}: cannot write the {what}: {e.strerror or e}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise StackMapsError(f"{shown}: is {kind}; give a file name for the {what}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise StackMapsError(f"{shown}: no such directory {safe(parent)} for the {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StackMapsError(f"{shown}: directory {safe(parent)} is not writable")
    if st is not None and not os.access(path, os.W_OK):
        raise StackMapsError(f"{shown}: not writable")


def write_atomic(path: str, text: str, what: str = "output") -> None:
    """Write `text` to `path` all at once (a temporary file renamed over it)."""
    check_writable(path, what)
    parent = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".wasmtime-stackmaps-", dir=parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644 & ~_umask())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise StackMapsError(f"{safe(path)}: cannot write the {what}: {e.strerror or e}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
