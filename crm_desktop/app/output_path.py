"""The one check every export makes of the file it was told to write, before writing anything."""

from __future__ import annotations

import errno
from pathlib import Path


def output_file(path: Path) -> Path:
    """Where to write an export named ``path``: the file a link names (written through, the link stays), else
    ``path`` itself.

    Raises:
        IsADirectoryError: ``path`` is a folder.
        OSError: ``path`` is a pipe or a device (it would be replaced by a file, its reader getting nothing).
        FileNotFoundError: its folder does not exist (never created: a mistyped folder would otherwise get the
            export unnoticed).
    """
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file name", str(path))
    path = path.resolve() if path.is_symlink() else path
    if path.exists() and not path.is_file():
        raise OSError(errno.EINVAL, "not a regular file (a pipe or a device): give a file name", str(path))
    if not path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder to save in", str(path.parent))
    return path
