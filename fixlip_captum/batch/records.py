"""One row of a dataset run: an explanation (or an error) as a Parquet record, and back.

Columns (:data:`SCHEMA`):

* ``id``, ``position`` (row number in the source), ``image`` (reference as in the source),
  ``text``;
* settings: ``model``, ``p``, ``budget`` (requested; null = the default), ``pairs``,
  ``masking``, ``mode``, ``seed`` (the run's), ``pair_seed`` (:func:`pair_seed` of it and the
  id: the sampler seed of this pair);
* the explanation: ``index``, ``index_p`` (the index's keep-probability; null for FSII),
  ``max_order``, ``budget_used``, ``v_empty``, ``v_full``,
  ``n_image``, ``n_text``, ``token_labels``, ``grid_rows``, ``grid_cols``, and the values
  with their index layout: ``terms[k]`` (a list of player ids, ``[]`` for the intercept)
  carries ``values[k]``; players are patches ``0..n_image-1`` row-major, then tokens;
  ``estimation_info`` (JSON text);
* ``seconds`` (wall time of the explanation) and ``error`` (null on success; otherwise the
  message, and the explanation columns are null).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from fixlip_captum.interaction_values import (
    ExplanationContext,
    FIxLIPInteractionValues,
    _jsonable,
    make_interaction_values,
    require_context,
)

__all__ = ["SCHEMA", "error_record", "explanation_record", "pair_seed", "record_to_values"]

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("position", pa.int64()),
        ("image", pa.string()),
        ("text", pa.string()),
        ("model", pa.string()),
        ("p", pa.float64()),
        ("budget", pa.int64()),
        ("pairs", pa.string()),
        ("masking", pa.string()),
        ("mode", pa.string()),
        ("seed", pa.int64()),
        ("pair_seed", pa.int64()),
        ("index", pa.string()),
        ("index_p", pa.float64()),
        ("max_order", pa.int8()),
        ("budget_used", pa.int64()),
        ("v_empty", pa.float64()),
        ("v_full", pa.float64()),
        ("n_image", pa.int32()),
        ("n_text", pa.int32()),
        ("token_labels", pa.list_(pa.string())),
        ("grid_rows", pa.int32()),
        ("grid_cols", pa.int32()),
        ("terms", pa.list_(pa.list_(pa.int32()))),
        ("values", pa.list_(pa.float64())),
        ("estimation_info", pa.string()),
        ("seconds", pa.float64()),
        ("error", pa.string()),
    ]
)


def pair_seed(seed: int, pair_id: str) -> int:
    """The sampler seed of one pair: a hash of the run's seed and the pair's id.

    It depends on nothing else, so every engine, worker count and shard layout gives a pair
    the same seed (and the same values); ``FIxLIP(...).attribute_interactions(image, text,
    seed=pair_seed(seed, id))`` reproduces a row in-process.

    Args:
        seed: The run's seed.
        pair_id: The pair's id.

    Returns:
        An int in ``[0, 2**31)``.
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % 2**31


def _base(payload_fields: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in SCHEMA.names}
    row.update(payload_fields)
    for key in ("model", "p", "budget", "pairs", "masking", "mode", "seed"):
        row[key] = settings[key]
    row["pair_seed"] = pair_seed(settings["seed"], row["id"])
    return row


def error_record(
    payload_fields: Mapping[str, Any], settings: Mapping[str, Any], message: str, seconds: float
) -> dict[str, Any]:
    """The row of a pair that could not be explained.

    Args:
        payload_fields: ``id``, ``position``, ``image``, ``text``.
        settings: The run's settings (``model``, ``p``, ``budget``, ``pairs``, ``masking``,
            ``mode``, ``seed``).
        message: What went wrong and what to do.
        seconds: Time spent on the pair.
    """
    row = _base(payload_fields, settings)
    row["error"] = message
    row["seconds"] = seconds
    return row


def explanation_record(
    payload_fields: Mapping[str, Any],
    settings: Mapping[str, Any],
    iv: FIxLIPInteractionValues,
    seconds: float,
) -> dict[str, Any]:
    """The row of an explained pair (see the module docstring for the columns)."""
    ctx = require_context(iv)
    row = _base(payload_fields, settings)
    values = iv.values
    lookup = sorted(iv.interaction_lookup.items(), key=lambda kv: (len(kv[0]), kv[0]))
    grid = ctx.grid
    row.update(
        index=iv.index,
        index_p=iv.p,
        max_order=iv.max_order,
        budget_used=iv.estimation_budget,
        v_empty=ctx.v_empty,
        v_full=ctx.v_full,
        n_image=ctx.n_image,
        n_text=ctx.n_text,
        token_labels=ctx.token_labels,
        grid_rows=None if grid is None else grid[0],
        grid_cols=None if grid is None else grid[1],
        terms=[list(term) for term, _ in lookup],
        values=[float(values[k]) for _, k in lookup],
        estimation_info=json.dumps(_jsonable(iv.estimation_info), sort_keys=True),
        seconds=seconds,
    )
    return row


def record_to_values(row: Mapping[str, Any]) -> FIxLIPInteractionValues:
    """The :class:`FIxLIPInteractionValues` of a successful row.

    Raises:
        ValueError: The row is an error row.
    """
    if row.get("error"):
        raise ValueError(f"Pair {row['id']!r} has no explanation: {row['error']}")
    grid = None
    if row["grid_rows"] is not None and row["grid_cols"] is not None:
        grid = (int(row["grid_rows"]), int(row["grid_cols"]))
    context = ExplanationContext(
        n_image=int(row["n_image"]),
        n_text=int(row["n_text"]),
        grid=grid,
        token_labels=list(row["token_labels"]) if row["token_labels"] is not None else None,
        v_empty=row["v_empty"],
        v_full=row["v_full"],
        caption=row["text"],
    )
    return make_interaction_values(
        row["values"],
        [tuple(t) for t in row["terms"]],
        n_players=context.n_players,
        index=row["index"],
        max_order=int(row["max_order"]),
        p=row["index_p"],
        estimated=True,
        estimation_budget=row["budget_used"],
        estimation_info=json.loads(row["estimation_info"] or "{}"),
        context=context,
    )
