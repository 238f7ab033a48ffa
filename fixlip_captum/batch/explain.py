"""``explain_dataset``: FIxLIP explanations of every pair of a dataset, into Parquet parts."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixlip_captum._validation import check_p, check_positive_int
from fixlip_captum.batch.engines import EngineOptions
from fixlip_captum.batch.parts import JSON_DIR, write_atomic
from fixlip_captum.batch.records import (
    SCHEMA,
    error_record,
    explanation_record,
    pair_seed,
    record_to_values,
)
from fixlip_captum.batch.runner import RunSummary, run_to_store
from fixlip_captum.batch.sources import PairPayload, load_pair_image, read_source
from fixlip_captum.loading import DEFAULT_MODEL

__all__ = ["FIxLIPTask", "explain_dataset"]

PAIRS = ("all", "crossmodal")
MASKINGS = ("mean", "drop")
MODES = ("banzhaf", "shapley")


def _payload_fields(payload: PairPayload) -> dict[str, Any]:
    return {
        "id": payload.id,
        "position": payload.position,
        "image": payload.image_ref,
        "text": payload.text,
    }


@dataclass
class FIxLIPTask:
    """Explains one pair per call with FIxLIP (the :class:`~fixlip_captum.batch.engines.BatchTask`
    of :func:`explain_dataset`; picklable, the model is loaded by :meth:`setup`).

    Args:
        settings: ``model``, ``p``, ``budget``, ``pairs``, ``masking``, ``mode``, ``seed``.
        batch_size: Masked inputs per forward pass.
    """

    settings: dict[str, Any]
    batch_size: int = 64

    def setup(self, device: str) -> None:
        from fixlip_captum.attr import FIxLIP
        from fixlip_captum.loading import load_model

        model, tokenizer = load_model(self.settings["model"], device=device)
        self._explainer = FIxLIP(model, tokenizer, image_masking=self.settings["masking"])

    def run(self, payload: PairPayload) -> list[dict[str, Any]]:
        fields = _payload_fields(payload)
        start = time.perf_counter()
        try:
            if not payload.text.strip():
                raise ValueError("the caption is empty; give every row a text")
            image = load_pair_image(payload.image)
            iv = self._explainer.attribute_interactions(
                image,
                payload.text,
                p=self.settings["p"],
                budget=self.settings["budget"],
                mode=self.settings["mode"],
                pairs=self.settings["pairs"],
                seed=pair_seed(self.settings["seed"], payload.id),
                batch_size=self.batch_size,
            )
        except Exception as exc:  # any failure of one pair becomes its error row
            message = f"{type(exc).__name__}: {exc}"
            return [error_record(fields, self.settings, message, time.perf_counter() - start)]
        return [explanation_record(fields, self.settings, iv, time.perf_counter() - start)]

    def failed(self, payload: PairPayload, message: str) -> list[dict[str, Any]]:
        return [error_record(_payload_fields(payload), self.settings, message, 0.0)]


def json_path(out: Path | str, pair_id: str) -> Path:
    """Where ``--json`` writes the shapiq JSON of a pair: ``OUT/_json/<quoted id>.json``."""
    return Path(out) / JSON_DIR / f"{urllib.parse.quote(pair_id, safe='')}.json"


def explain_dataset(
    source: Any,
    out: Path | str,
    *,
    model: str = DEFAULT_MODEL,
    p: float = 0.5,
    budget: int | None = None,
    pairs: str = "all",
    masking: str = "mean",
    mode: str = "banzhaf",
    engine: str = "local",
    workers: int = 1,
    gpus_per_worker: float | None = None,
    cpus_per_worker: float | None = None,
    address: str | None = None,
    device: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    shard: str | tuple[int, int] | None = None,
    overwrite: bool = False,
    strict: bool = False,
    json: bool = False,
    image_column: str | None = None,
    text_column: str = "text",
    id_column: str | None = None,
    batch_size: int = 64,
    part_size: int = 32,
    max_retries: int = 3,
    show_progress: bool = True,
) -> RunSummary:
    """Explain every image-text pair of a dataset; results go to a Parquet dataset in ``out``.

    Resumable: a rerun with the same settings skips the ids already in ``out`` (a run
    stopped at any point is continued by running it again); each id ends up in exactly one
    row. Pair ``id`` is explained with sampler seed :func:`~fixlip_captum.batch.pair_seed`
    ``(seed, id)``, so the values do not depend on the engine, the number of workers or the
    shards. Rows that cannot be explained (missing or unreadable image, empty caption,
    caption longer than the model's context) become error rows and the run goes on.

    Args:
        source: A JSONL/CSV manifest (columns ``image`` — relative to the manifest —,
            ``text``, optional ``id``), an imagefolder (images plus ``metadata.jsonl`` /
            ``metadata.csv`` with ``file_name`` and a text column) or a ``datasets.Dataset``.
        out: Results folder (created; see :mod:`fixlip_captum.batch.parts` for its layout).
        model: Model spec: ``scenes-clip``, ``open_clip:ARCH:PRETRAINED`` or ``hf:MODEL_ID``.
        p: Keep-probability of the weighted Banzhaf index, in (0, 1).
        budget: Mask pairs per explanation (``None``: FIxLIP's default, 2^17 or more).
        pairs: Fitted pair terms, ``"all"`` or ``"crossmodal"``.
        masking: Image masking, ``"mean"`` or ``"drop"``.
        mode: ``"banzhaf"`` (FWBII(p)) or ``"shapley"`` (FSII).
        engine: ``"local"`` (this process) or ``"ray"`` (needs ``fixlip-captum[ray]``).
        workers: Ray actors, one model each.
        gpus_per_worker: GPUs per Ray actor (``None``: 1 if the cluster has GPUs, else 0).
        cpus_per_worker: CPUs (torch threads) per Ray actor (``None``: the local cluster's
            CPUs divided by ``workers``; 1 on a remote cluster).
        address: Ray cluster to join (``None``: start a local one, or use the Ray session
            already initialised in this process).
        device: Device of the local engine (default CUDA when available, else CPU).
        seed: The run's seed (pair seeds derive from it and the ids).
        limit: Only the first ``limit`` rows of the source.
        shard: ``"I/N"`` or ``(I, N)``: only rows whose position ``% N == I`` (one process
            per GPU or SLURM array task, all writing into the same ``out``).
        overwrite: Delete the previous results in ``out`` first (else a run with other
            settings is refused).
        strict: Raise :class:`RuntimeError` after the run when a row failed.
        json: Also write shapiq JSON per explained pair (``out/_json/<id>.json``).
        image_column: Image column (default ``image``; ``file_name`` in an imagefolder).
        text_column: Caption column.
        id_column: Id column (default ``id`` when present, else row numbers).
        batch_size: Masked images / captions per forward pass.
        part_size: Pairs per Parquet part (a part is also written at least every minute).
        max_retries: Retries of a pair whose Ray worker died.
        show_progress: Progress bar.

    Returns:
        A :class:`~fixlip_captum.batch.RunSummary` (done, skipped, failed, pairs/min).

    Raises:
        ValueError: Invalid settings, an unreadable source, ``out`` holding another run.
        RuntimeError: ``strict=True`` and a row failed.
    """
    p = check_p(p)
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    for name, value, allowed in (
        ("pairs", pairs, PAIRS),
        ("masking", masking, MASKINGS),
        ("mode", mode, MODES),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}.")
    batch_size = check_positive_int(batch_size, "batch_size")
    options = EngineOptions(
        engine=engine,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        address=address,
        device=device,
        max_retries=max_retries,
    )
    pair_source = read_source(
        source, image_column=image_column, text_column=text_column, id_column=id_column
    )
    settings = {
        "model": model,
        "p": p,
        "budget": budget,
        "pairs": pairs,
        "masking": masking,
        "mode": mode,
        "seed": seed,
    }
    on_flush = None
    if json:

        def on_flush(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                if not row.get("error"):
                    write_atomic(json_path(out, row["id"]), record_to_values(row).save)

    summary = run_to_store(
        pair_source.ids,
        pair_source.payload,
        FIxLIPTask(settings, batch_size=batch_size),
        out,
        settings,
        options,
        schema=SCHEMA,
        limit=limit,
        shard=shard,
        overwrite=overwrite,
        part_size=part_size,
        on_flush=on_flush,
        show_progress=show_progress,
    )
    if strict and summary.failed:
        raise RuntimeError(f"{summary.failed} pairs failed (strict=True).\n{summary.format()}")
    return summary
