"""Atomic file and directory writes.

A preset or a cached checkpoint that is half written (disk full, Ctrl-C,
a crash, two processes racing) must never be mistaken for a complete one.
Both helpers build the result under a temporary name in the *same directory*
as the target (so the final ``os.replace``/``os.rename`` is a same-filesystem,
atomic rename) and only give it the real name once everything is written and
flushed to disk. On any exception, ``KeyboardInterrupt`` included, the
temporary file or directory is removed and the target is left as it was.

Example:
>>> import os, tempfile
>>> from keraspose.utils.atomic import atomic_write, atomic_directory
>>> root = tempfile.mkdtemp()
>>> with atomic_write(os.path.join(root, "a.json"), "w") as f:
...     _ = f.write("{}")
>>> with atomic_directory(os.path.join(root, "preset")) as tmp:
...     with open(os.path.join(tmp, "config.json"), "w") as f:
...         _ = f.write("{}")
>>> sorted(os.listdir(root))
['a.json', 'preset']
"""

import contextlib
import os
import shutil
import tempfile
import uuid

__all__ = ["atomic_write", "atomic_directory"]


def _default_file_mode():
    # tempfile creates files 0600; a finished file should get the permissions
    # an ordinary open() would have given it (0666 minus the umask), so that a
    # shared cache stays readable by the other users it is shared with.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _default_dir_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o777 & ~umask


def _fsync_path(path):
    # Best effort: not every platform can open a directory (Windows), and an
    # unreadable file is not worth failing a save over.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(path):
    # Makes the rename itself durable.
    _fsync_path(path)


@contextlib.contextmanager
def atomic_write(path, mode="w", encoding=None):
    """Write ``path`` atomically: readers see the old file or the whole new one.

    Yields an open file object on a temporary file in the same directory;
    on a clean exit it is flushed, fsynced and renamed over ``path``. On an
    exception the temporary file is removed and the exception propagates.

    Args:
        path: destination file. Its directory must exist.
        mode: ``"w"`` (text, UTF-8 unless ``encoding`` says otherwise) or
            ``"wb"``; ``"x"``/``"xb"`` additionally refuse an existing target.
        encoding: text encoding for text modes.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.bin")
    >>> with atomic_write(path, "wb") as f:
    ...     _ = f.write(b"\\x00" * 8)
    >>> os.path.getsize(path)
    8
    """
    if mode not in ("w", "wb", "x", "xb"):
        raise ValueError(f"atomic_write: mode must be 'w', 'wb', 'x' or 'xb', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"atomic_write: directory {directory} does not exist (writing {path})")
    exclusive = mode.startswith("x")
    if exclusive and os.path.exists(path):
        raise FileExistsError(f"{path} already exists")
    binary = mode.endswith("b")
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        if binary:
            f = os.fdopen(fd, "wb")
        else:
            f = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_path, _default_file_mode())
        if exclusive:
            # os.link fails if the target exists, which keeps "x" semantics
            # without a window where another writer could slip in.
            os.link(tmp_path, path)
            os.unlink(tmp_path)
        else:
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    _fsync_dir(directory)


def _fsync_tree(root):
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                _fsync_path(full)
        _fsync_dir(dirpath)


@contextlib.contextmanager
def atomic_directory(path, overwrite=False):
    """Build a directory under a temporary name and move it into place at the end.

    Yields the path of an empty temporary directory next to ``path``. When
    the block finishes, every file in it is fsynced and the directory is
    renamed to ``path``. On an exception (``KeyboardInterrupt`` included) the
    temporary directory is deleted and ``path`` is untouched.

    Args:
        path: the directory to create. Its parent is created if needed.
        overwrite: replace an existing non-empty ``path``. The old directory
            is first renamed aside and deleted only once the new one is in
            place, so a failure never leaves neither. An existing *empty*
            directory is always replaced.

    Raises:
        FileExistsError: ``path`` exists, is not empty, and ``overwrite`` is False
            (checked both before and after the block, as another process may
            have created it meanwhile).

    Example:
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out")
    >>> try:
    ...     with atomic_directory(target) as tmp:
    ...         open(os.path.join(tmp, "partial.bin"), "wb").close()
    ...         raise RuntimeError("interrupted")
    ... except RuntimeError:
    ...     pass
    >>> os.path.exists(target)
    False
    """
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    base = os.path.basename(path)
    if not base:
        raise ValueError(f"atomic_directory: invalid directory path {path!r}")

    def _blocked():
        if os.path.isdir(path) and not os.path.islink(path):
            return bool(os.listdir(path)) and not overwrite
        return os.path.lexists(path) and not overwrite

    if _blocked():
        raise FileExistsError(
            f"{path} already exists and is not empty; pass overwrite=True to replace it or choose another directory"
        )
    if os.path.lexists(path) and not os.path.isdir(path):
        raise FileExistsError(f"{path} exists and is not a directory")
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, _default_dir_mode())
        if _blocked():
            raise FileExistsError(
                f"{path} was created by someone else while this one was being written; "
                "pass overwrite=True to replace it"
            )
        backup = None
        if os.path.isdir(path):
            if os.listdir(path):
                backup = os.path.join(parent, f".{base}.old-{uuid.uuid4().hex[:8]}")
                os.rename(path, backup)
            else:
                os.rmdir(path)
        try:
            os.rename(tmp, path)
        except BaseException:
            if backup is not None:
                with contextlib.suppress(OSError):
                    os.rename(backup, path)
            raise
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
