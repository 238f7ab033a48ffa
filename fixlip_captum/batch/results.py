"""Read a results folder of :func:`~fixlip_captum.explain_dataset` back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from fixlip_captum.batch.parts import PartStore
from fixlip_captum.batch.records import record_to_values
from fixlip_captum.interaction_values import FIxLIPInteractionValues

__all__ = ["DatasetResults", "load_results"]


class DatasetResults(Mapping[str, FIxLIPInteractionValues]):
    """The explanations of a results folder, by id (a read-only mapping).

    ``results[id]`` is the :class:`~fixlip_captum.FIxLIPInteractionValues` of that pair
    (built on first access); only successful pairs are keys. ``table`` holds every row
    (errors included) as a ``pyarrow.Table`` sorted by source position; ``errors`` maps
    the failed ids to their messages.

    Args:
        table: The rows.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table.sort_by([("position", "ascending"), ("id", "ascending")])
        ids = self.table.column("id").to_pylist()
        errors = self.table.column("error").to_pylist()
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise ValueError(
                f"Ids {repeated[:5]} appear more than once: two runs without --shard wrote "
                "into the same folder at the same time. Delete the later parts "
                "(part-*.parquet, named by time) holding them, or rerun with --overwrite."
            )
        self._rows = {i: k for k, (i, e) in enumerate(zip(ids, errors, strict=True)) if not e}
        self.errors: dict[str, str] = {i: e for i, e in zip(ids, errors, strict=True) if e}
        self._cache: dict[str, FIxLIPInteractionValues] = {}

    def __getitem__(self, pair_id: str) -> FIxLIPInteractionValues:
        if pair_id not in self._rows:
            if pair_id in self.errors:
                raise KeyError(f"Pair {pair_id!r} failed: {self.errors[pair_id]}")
            raise KeyError(f"No pair {pair_id!r} in these results.")
        if pair_id not in self._cache:
            row = self.table.slice(self._rows[pair_id], 1).to_pylist()[0]
            self._cache[pair_id] = record_to_values(row)
        return self._cache[pair_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def row(self, pair_id: str) -> dict[str, Any]:
        """The table row of a pair (successful or not) as a dict."""
        ids = self.table.column("id").to_pylist()
        if pair_id not in ids:
            raise KeyError(f"No pair {pair_id!r} in these results.")
        return self.table.slice(ids.index(pair_id), 1).to_pylist()[0]


def load_results(out: Path | str) -> DatasetResults:
    """Load a results folder written by :func:`~fixlip_captum.explain_dataset`.

    Args:
        out: The folder.

    Returns:
        :class:`DatasetResults`: ``results[id]`` -> ``FIxLIPInteractionValues``,
        ``results.table`` -> every row as a ``pyarrow.Table``, ``results.errors``.

    Raises:
        FileNotFoundError: No finished part in ``out``.
    """
    return DatasetResults(PartStore(out).read())
