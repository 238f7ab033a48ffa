"""A resumable run: pick the items still to do, run them, write parts, summarise.

Used by :func:`fixlip_captum.explain_dataset` and by ``benchmarks/faithfulness.py``.
An item is done once its rows are in a finished part of the results folder; a rerun skips
done items, so a run interrupted at any point (Ctrl-C, a killed process, a dead worker)
is continued by running the same command again, and each item ends up in exactly one part.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fixlip_captum.batch.engines import BatchTask, EngineOptions, run_items
from fixlip_captum.batch.parts import PartStore, PartWriter

__all__ = ["RunSummary", "parse_shard", "run_to_store"]


@dataclass
class RunSummary:
    """What a run did.

    Attributes:
        out: The results folder.
        selected: Items of the source this run is responsible for (after limit and shard).
        skipped: Of those, items already done in ``out`` before this run.
        done: Items this run explained successfully.
        failed: Items this run turned into error rows.
        seconds: Wall time of the run.
        errors: ``(id, message)`` of this run's error rows.
    """

    out: Path
    selected: int
    skipped: int
    done: int
    failed: int
    seconds: float
    errors: list[tuple[str, str]] | None = None

    @property
    def pairs_per_minute(self) -> float:
        """Items finished (done or failed) per minute of wall time."""
        return 60.0 * (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    def format(self) -> str:
        """A short human-readable report."""
        lines = [
            f"{self.done} done, {self.skipped} skipped (already in {self.out}), "
            f"{self.failed} failed, of {self.selected}; {self.pairs_per_minute:.2f} pairs/min "
            f"({self.seconds:.1f} s)"
        ]
        for pair_id, message in (self.errors or [])[:10]:
            lines.append(f"  failed {pair_id}: {message}")
        if self.errors and len(self.errors) > 10:
            lines.append(f"  ... and {len(self.errors) - 10} more (column 'error' of the table)")
        return "\n".join(lines)


_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(shard: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"I/N"`` or ``(I, N)`` -> ``(I, N)`` with ``0 <= I < N``; ``None`` stays ``None``."""
    if shard is None:
        return None
    if isinstance(shard, str):
        match = _SHARD.match(shard)
        if not match:
            raise ValueError(f"shard must look like I/N (e.g. 0/4), got {shard!r}.")
        shard = (int(match.group(1)), int(match.group(2)))
    index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(
            f"shard {index}/{count}: need 0 <= I < N (shards are numbered 0..N-1, e.g. "
            "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)."
        )
    return index, count


def run_to_store(
    ids: Sequence[str],
    get_payload: Callable[[int], Any],
    task: BatchTask,
    out: Path | str,
    settings: Mapping[str, Any],
    options: EngineOptions,
    *,
    schema: pa.Schema | None,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
    overwrite: bool = False,
    part_size: int = 32,
    on_flush: Callable[[list[dict[str, Any]]], None] | None = None,
    desc: str = "pairs",
    show_progress: bool = True,
) -> RunSummary:
    """Run ``task`` on the items of ``ids`` not yet in ``out``; see the module docstring.

    Args:
        ids: Item ids in source order (unique).
        get_payload: ``get_payload(position)`` -> the payload of the item at that position.
        task: The :class:`~fixlip_captum.batch.engines.BatchTask`.
        out: The results folder.
        settings: Settings that must match for a rerun to continue the folder.
        options: Engine and workers.
        schema: Arrow schema of the rows (``None``: inferred).
        limit: Only the first ``limit`` items of the source.
        shard: ``"I/N"``: only items at positions ``p`` with ``p % N == I``.
        overwrite: Delete this folder's previous results first.
        part_size: Rows per Parquet part.
        on_flush: Called with the rows of each written part (e.g. to write JSON files).
        desc: Progress-bar label.
        show_progress: Show a progress bar.

    Returns:
        The :class:`RunSummary`.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int, got {limit!r}.")
    if isinstance(part_size, bool) or not isinstance(part_size, int) or part_size < 1:
        raise ValueError(f"part_size must be a positive int, got {part_size!r}.")
    shard_ = parse_shard(shard)
    store = PartStore(out)
    if overwrite:
        store.clear()
    store.check_settings(settings)
    positions = list(range(len(ids) if limit is None else min(limit, len(ids))))
    if shard_ is not None:
        positions = [p for p in positions if p % shard_[1] == shard_[0]]
    done_before = store.done_ids()
    todo = [p for p in positions if ids[p] not in done_before]
    counts = {"done": 0, "failed": 0}
    errors: list[tuple[str, str]] = []

    def count(rows: list[dict[str, Any]]) -> None:
        bad = [r for r in rows if r.get("error")]
        if bad:
            counts["failed"] += 1
            errors.extend((str(r["id"]), str(r["error"])) for r in bad[:1])
        else:
            counts["done"] += 1
        writer.add(rows)

    writer = PartWriter(store, schema, part_size, on_flush=on_flush)
    start = time.perf_counter()
    try:
        run_items(
            len(todo),
            lambda k: get_payload(todo[k]),
            task,
            count,
            options,
            desc=desc,
            show_progress=show_progress,
        )
    finally:
        # Also on Ctrl-C (KeyboardInterrupt propagates after this): keep what is finished.
        writer.flush()
        store.tidy()
    return RunSummary(
        out=Path(out),
        selected=len(positions),
        skipped=len(positions) - len(todo),
        done=counts["done"],
        failed=counts["failed"],
        seconds=time.perf_counter() - start,
        errors=errors,
    )
