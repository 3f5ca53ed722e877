"""Writing files so that a reader sees a complete file or none: the one implementation keras-din uses.

Everything keras-din writes (images, presets, checkpoints, exports, plots, benchmark results)
is written under a temporary name in the target's folder and then given its name in one step
(`os.replace`, or a hard link when an existing file must not be replaced), so a crash, a full
disk or a concurrent writer never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from keras_din.errors import StorageError


def require_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Raises `StorageError` before a write of about `needed` bytes into `folder` that cannot fit.

    Checked before writing, because a weights file that runs out of space midway can crash the
    HDF5 library instead of raising. `folder` (or its nearest existing parent) is measured.

    Example:
    >>> require_free_space("/tmp", 1, "a note")
    >>> require_free_space("/tmp", 2**62, "a huge file")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    keras_din.errors.StorageError: Not enough free space in '/tmp' to write a huge file: ...
    """
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise StorageError(
            f"Not enough free space in {str(existing)!r} to write {what}: it needs about "
            f"{_mib(needed)} and {_mib(free)} is free. Free some space or choose another folder."
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _usual_permissions(path: str | os.PathLike) -> None:
    """`mkstemp` makes files 0600; give the permissions a plain `open()` would (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def publish(temporary: str | os.PathLike, path: str | os.PathLike, overwrite: bool) -> None:
    """Gives the finished `temporary` the name `path` at once; without `overwrite`, only if `path` is still free.

    The check and the naming are one step (a hard link fails on an existing name), so two writers
    racing for one name cannot replace each other's file. Raises `FileExistsError` naming `path`.
    """
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links
            if os.name == "nt":
                os.rename(temporary, path)  # refuses an existing name on Windows
                return
            # Claim the name exclusively (an empty file, briefly), then put the finished file in its place.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.replace(temporary, path)
            return
    except FileExistsError:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.") from None
    os.unlink(temporary)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """A temporary file beside `path` (same suffix) to write; it becomes `path` when the block ends without error.

    On an error the temporary file is removed and `path` is left as it was. Without
    `overwrite`, an existing `path` (also one created meanwhile) raises `FileExistsError`.

    Example:
    >>> with atomic_path("/tmp/keras_din_atomic_example.txt") as temporary:
    ...     _ = temporary.write_text("complete")
    >>> Path("/tmp/keras_din_atomic_example.txt").read_text()
    'complete'
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (CLI: --overwrite) to replace it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.incomplete-", suffix=path.suffix)
    os.close(handle)
    try:
        yield Path(temporary)
        _usual_permissions(temporary)
        publish(temporary, path, overwrite)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to `path` (replacing it) so that `path` is never half-written.

    Example:
    >>> write_text_atomic("/tmp/keras_din_atomic_example.json", "{}").read_text()
    '{}'
    """
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)


@contextlib.contextmanager
def staging_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """A temporary folder inside `parent` (`.NAME.incomplete-*`), removed with what is left in it on the way out.

    For writes of several files or of a folder: stage them here, then move each into place
    with `os.replace` (same file system, so each move is atomic).
    """
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}.incomplete-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
