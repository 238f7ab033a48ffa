"""A results folder written in atomic Parquet parts.

Layout of a results folder ``DIR``:

* ``DIR/part-<time>-<random>.parquet`` — the rows, a Parquet dataset that pyarrow, pandas
  (``pd.read_parquet(DIR)``), polars (``pl.read_parquet(f"{DIR}/*.parquet")``) and duckdb
  (``read_parquet('DIR/*.parquet')``) read directly;
* ``DIR/_run.json`` — the settings of the run (a rerun with other settings is refused);
* ``DIR/_tmp/`` — parts being written; ``DIR/_json/`` — optional shapiq JSON per row.

Names starting with ``_`` are skipped by pyarrow's dataset discovery, so readers only ever
see finished parts. A part is written to ``_tmp`` first, flushed to disk, then renamed into
place (``os.replace``, atomic on POSIX and Windows): a killed process leaves either the whole
part or none of it (at worst a stale file in ``_tmp``, which no reader looks at).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["PartStore", "PartWriter", "write_atomic"]

RUN_FILE = "_run.json"
TMP_DIR = "_tmp"
JSON_DIR = "_json"


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` through a temporary file renamed into place.

    Args:
        path: The final file.
        write: Writes the content to the temporary path it is given.
    """
    tmp_dir = path.parent / TMP_DIR if path.parent.name != TMP_DIR else path.parent
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # Hidden, in a folder readers skip, and with the final suffix (writers check it).
    tmp = tmp_dir / f".{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class PartStore:
    """The parts of one results folder.

    Args:
        root: The results folder (created when missing).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def part_files(self) -> list[Path]:
        """Finished parts, sorted by name (= by the time they were written)."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("part-*.parquet"))

    def done_ids(self) -> set[str]:
        """Ids of every row in a finished part."""
        ids: set[str] = set()
        for part in self.part_files():
            ids.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
        return ids

    def read(self) -> pa.Table:
        """All finished rows as one table (empty when there are none)."""
        parts = self.part_files()
        if not parts:
            raise FileNotFoundError(f"No results in {self.root} (no part-*.parquet files).")
        return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")

    def write_part(self, rows: list[dict[str, Any]], schema: pa.Schema | None) -> Path:
        """Write ``rows`` as one new part, atomically."""
        table = pa.Table.from_pylist(rows, schema=schema)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        path = self.root / name
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: pq.write_table(table, tmp))
        return path

    def check_settings(self, settings: Mapping[str, Any]) -> None:
        """Record the run's settings, or refuse when the folder holds another run's.

        Raises:
            ValueError: ``_run.json`` records different settings.
        """
        path = self.root / RUN_FILE
        wanted = json.loads(json.dumps(dict(settings), default=str))
        if path.is_file():
            stored = json.loads(path.read_text(encoding="utf-8"))
            diff = {
                k: (stored.get(k), wanted.get(k))
                for k in sorted(set(stored) | set(wanted))
                if stored.get(k) != wanted.get(k)
            }
            if diff:
                shown = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                raise ValueError(
                    f"{self.root} holds results of other settings ({shown}). Rerun with the "
                    "same settings to continue it, or pass overwrite=True (--overwrite) or "
                    "another output folder."
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        text = json.dumps(wanted, indent=1, sort_keys=True)
        write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def clear(self) -> None:
        """Delete this store's files (parts, settings, JSON, temporary files), nothing else."""
        for part in self.part_files():
            part.unlink()
        for name in (TMP_DIR, JSON_DIR):
            if (self.root / name).is_dir():
                shutil.rmtree(self.root / name)
        if (self.root / RUN_FILE).is_file():
            (self.root / RUN_FILE).unlink()

    def tidy(self) -> None:
        """Remove the temporary folders when they are empty (other runs may still write)."""
        for tmp in (self.root / TMP_DIR, self.root / JSON_DIR / TMP_DIR):
            with contextlib.suppress(OSError):
                tmp.rmdir()

    def stale_tmp_files(self) -> list[Path]:
        """Temporary files left by killed processes (or by runs still writing)."""
        tmp = self.root / TMP_DIR
        return sorted(tmp.iterdir()) if tmp.is_dir() else []


class PartWriter:
    """Buffers rows in the driver and writes them as parts of ``part_size`` rows.

    A part is also written when the oldest buffered row waited ``flush_seconds``, and by
    :meth:`flush` (called when a run ends, also on Ctrl-C), so a killed driver loses at most
    the rows of the last ``flush_seconds``, which a rerun computes again.

    Args:
        store: The results folder.
        schema: Arrow schema of the rows (``None``: inferred).
        part_size: Rows per part.
        flush_seconds: Longest time a finished row waits in memory.
        on_flush: Called with the rows of each part after it is written.
    """

    def __init__(
        self,
        store: PartStore,
        schema: pa.Schema | None,
        part_size: int,
        flush_seconds: float = 60.0,
        on_flush: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.store, self.schema, self.part_size = store, schema, part_size
        self.flush_seconds, self.on_flush = flush_seconds, on_flush
        self._rows: list[dict[str, Any]] = []
        self._since = time.monotonic()

    def add(self, rows: list[dict[str, Any]]) -> None:
        if not self._rows:
            self._since = time.monotonic()
        self._rows.extend(rows)
        if (
            len(self._rows) >= self.part_size
            or time.monotonic() - self._since >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        self.store.write_part(rows, self.schema)
        if self.on_flush is not None:
            self.on_flush(rows)
