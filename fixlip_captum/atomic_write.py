"""Write files so that an interruption leaves no half-written file.

* :func:`atomic_file`: one file, written under a temporary name in the same folder and
  renamed over the target (``os.replace``) only when complete; on any error or interruption
  (``KeyboardInterrupt`` included) the temporary file is removed and the old file is kept.
* :class:`OutputSet`: several files that belong together (one run's outputs). Each is
  written in full into a hidden staging folder inside the output folder; :meth:`commit`
  marks the staging folder complete and moves every file into place. A run interrupted
  before the mark leaves none of its files (the staging folder is removed, or, after a
  SIGKILL, removed by the next :class:`OutputSet` on that folder); one interrupted after
  the mark is completed by the next :class:`OutputSet` on that folder. Either way a run's
  outputs are all new or all absent once the folder is used again.

Example::

    with OutputSet(out) as outputs:
        iv.save(outputs.path("interactions.json"))
        fig.savefig(outputs.path("explanation.png"))
    # here both files are in ``out``; on an exception neither was written
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["OutputSet", "atomic_file", "atomic_path", "check_writable_dir"]

_STAGING_PREFIX = ".fixlip-staging-"
_COMPLETE = ".complete"


def check_writable_dir(folder: Path | str, what: str = "output folder") -> Path:
    """``folder`` as a Path if it is (or can be created as) a writable directory.

    Creates nothing (a probe file is written and removed). Raises:
        NotADirectoryError: ``folder`` or one of its parents is a file.
        PermissionError: ``folder`` (or its nearest existing parent) is not writable.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise NotADirectoryError(
            f"The {what} {folder} cannot be used: {probe} is a file, not a folder. Pass "
            "another folder with --out."
        )
    try:  # os.access says yes to root on a read-only file system: try it
        fd, tmp = tempfile.mkstemp(prefix=".fixlip-write-test-", dir=probe)
    except OSError as exc:
        raise PermissionError(
            f"The {what} {folder} is not writable ({probe}: {exc.strerror or exc}). Pass a "
            "writable folder with --out."
        ) from None
    os.close(fd)
    os.unlink(tmp)
    return folder


@contextlib.contextmanager
def atomic_file(path: Path | str, mode: str = "wb", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on success.

    Args:
        path: The target file (its folder must exist).
        mode: ``"wb"`` or ``"w"`` (text; pass ``encoding=...`` in ``open_kwargs``).
        **open_kwargs: Passed to :func:`open`.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that read the format from
    the name still work) that is renamed to ``path`` when the block ends without an
    exception, and removed otherwise. For writers that take a path (``savefig``, shapiq's
    ``to_json_file``)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _finish_or_discard(folder: Path) -> None:
    """Complete the marked staging folders of earlier runs in ``folder``; remove the others."""
    if not folder.is_dir():
        return
    for staging in sorted(folder.glob(f"{_STAGING_PREFIX}*")):
        if not staging.is_dir():
            continue
        if (staging / _COMPLETE).exists():
            _move_all(staging, folder)
        shutil.rmtree(staging, ignore_errors=True)


def _move_all(staging: Path, folder: Path) -> None:
    for file in sorted(staging.iterdir()):
        if file.name != _COMPLETE:
            os.replace(file, folder / file.name)


class OutputSet:
    """The files of one run, written into ``folder`` all together or not at all.

    Args:
        folder: The output folder (created on entry if missing).

    Use as a context manager; :meth:`path` gives the staging path of an output by file
    name. Leaving the block without an exception commits; with one (``KeyboardInterrupt``
    included) discards. :attr:`written` lists the final paths after the commit.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.written: list[Path] = []
        self._staging: Path | None = None
        self._created: list[Path] = []

    def __enter__(self) -> OutputSet:
        missing = [self.folder, *self.folder.parents]
        self._created = [f for f in missing if not f.exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        _finish_or_discard(self.folder)
        self._staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.folder))
        return self

    def path(self, name: str) -> Path:
        """Where to write the output called ``name`` (a file name, no folders)."""
        if self._staging is None:
            raise RuntimeError("OutputSet.path is only valid inside the `with` block.")
        if Path(name).name != name or name == _COMPLETE:
            raise ValueError(f"Output name must be a plain file name, got {name!r}.")
        return self._staging / name

    def commit(self) -> list[Path]:
        """Move every staged file into the folder (called on a clean exit of the block)."""
        staging = self._require_staging()
        names = sorted(f.name for f in staging.iterdir())
        for name in names:
            with (staging / name).open("rb") as fh:
                os.fsync(fh.fileno())
        (staging / _COMPLETE).touch()
        try:
            _move_all(staging, self.folder)
        finally:  # interrupted half-way (Ctrl-C): the set is marked complete, finish it
            _move_all(staging, self.folder)
            shutil.rmtree(staging, ignore_errors=True)
        self._staging = None
        self.written = [self.folder / n for n in names]
        return self.written

    def discard(self) -> None:
        """Remove the staged files; the folder keeps what it held before (and is removed
        again, with the parents created for it, if it did not exist)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
        for folder in self._created:  # innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _require_staging(self) -> Path:
        if self._staging is None:
            raise RuntimeError("This OutputSet was already committed or discarded.")
        return self._staging

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()
