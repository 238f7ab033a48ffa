"""Speed of one explanation on the device, split into masking, forwards and solving.

Each run is one :func:`fixlip_captum.approximate_crossmodal` call on a
:class:`~fixlip_captum.games.CrossModalGame`. A :class:`Probe` on the adapter instance
times (with a device synchronisation around each call) the pixel keep-masks built for mean
masking, and every ``encode_image`` / ``encode_text`` batch, recording the batches; right
after the explanation the recorded batches are pushed through the bare encoders again, in
the same process, so ``ratio = explanation seconds / bare forward seconds`` compares like
with like. ``solve`` is everything outside the game call (mask sampling, design, least
squares).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from benchmarks.gpu.checks import sync
from benchmarks.gpu.models import SPECS, build
from fixlip_captum import approximate_crossmodal
from fixlip_captum.adapters import get_adapter
from fixlip_captum.games import CrossModalGame
from fixlip_captum.solvers import NotIdentifiableError

#: Batch size of the fixed-size runs.
FIXED_BATCH = 256


@dataclass
class Timing:
    """One timed explanation."""

    model: str
    variant: str
    masking: str
    dtype: str
    batch_start: int
    batch_end: int
    m_image: int
    m_text: int
    pairs: int
    terms: int
    solver: str
    seconds: float
    masking_s: float
    forward_s: float
    other_game_s: float
    solve_s: float
    bare_s: float
    ratio: float
    images_per_s: float
    status: str


class Probe:
    """Times and records an adapter's masked encodings (wrapped on the instance)."""

    def __init__(self, adapter: Any, device: torch.device) -> None:
        self.device = device
        self.batches: list[tuple[str, torch.Tensor, str]] = []
        self.encoder_s = 0.0
        self.masking_s = 0.0
        self._bare = adapter.encode_image, adapter.encode_text
        enc_i, enc_t = self._bare
        keep_mask = adapter._pixel_keep_mask

        def encode_image(pixel_values, coalitions=None, masking="mean"):
            if coalitions is not None:
                self.batches.append(("image", coalitions.clone(), masking))
            return self._timed("encoder_s", lambda: enc_i(pixel_values, coalitions, masking))

        def encode_text(text, coalitions=None):
            if coalitions is not None:
                self.batches.append(("text", coalitions.clone(), ""))
            return self._timed("encoder_s", lambda: enc_t(text, coalitions))

        def pixel_keep_mask(coalitions, pixel_values=None):
            return self._timed("masking_s", lambda: keep_mask(coalitions, pixel_values))

        adapter.encode_image, adapter.encode_text = encode_image, encode_text
        adapter._pixel_keep_mask = pixel_keep_mask
        self.adapter = adapter

    def _timed(self, field: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        sync(self.device)
        start = time.perf_counter()
        out = fn()
        sync(self.device)
        setattr(self, field, getattr(self, field) + time.perf_counter() - start)
        return out

    def replay_bare(self, pixel_values: torch.Tensor, text: Any, autocast: Any) -> float:
        """Seconds to push the recorded batches through the bare encoders once more."""
        enc_i, enc_t = self._bare
        sync(self.device)
        start = time.perf_counter()
        with torch.inference_mode(), autocast():
            for kind, coalitions, masking in self.batches:
                if kind == "image":
                    enc_i(pixel_values, coalitions, masking)
                else:
                    enc_t(text, coalitions)
        sync(self.device)
        return time.perf_counter() - start


@dataclass(frozen=True)
class Run:
    """One planned explanation."""

    model: str
    variant: str
    budget: int | None = None
    order2_margin: float | None = None  # m = margin x the identifiable minimum per modality
    masking: str = "mean"
    dtype: torch.dtype | None = None
    batch: int = FIXED_BATCH


def plan(smoke: bool) -> list[Run]:
    """The runs, most important first (the time budget drops the tail, reported)."""
    budget = 2**11 if smoke else 2**21
    b16 = "open_clip ViT-B-16"
    runs = [Run(s.name, f"2^{budget.bit_length() - 1} pairs", budget) for s in SPECS if s.speed]
    runs.insert(2, Run(b16, "full order 2 at 2x minimum", order2_margin=2.0))
    runs += [
        Run(b16, "autocast bf16", budget, dtype=torch.bfloat16),
        Run(b16, "drop masking", budget, masking="drop"),
        Run(b16, "batch from OOM halving", budget, batch=-1),
        Run(b16, "fixed batch 1024", budget, batch=1024),
    ]
    return runs


def _minimum_masks(n: int) -> int:
    """Distinct masks that identify all terms of order <= 2 over ``n`` players."""
    return min(2**n if n < 62 else math.inf, 1 + n + n * (n - 1) // 2)  # type: ignore[return-value]


def image_masks(budget: int, n_image: int, n_text: int) -> int:
    """Image masks the estimator's default split gives ``budget`` pairs (all pairs fitted)."""
    from fixlip_captum.estimators import crossmodal_split

    f_i, f_t = _minimum_masks(n_image), _minimum_masks(n_text)
    return crossmodal_split(budget, n_image, n_text, f_i, f_t)[0]


def planned_images(run: Run, smoke: bool) -> int:
    """Masked images ``run`` will encode (for the time-budget estimate; ViT-B/16 grid and
    the caption's 10 players, or the smoke sizes)."""
    n_i, n_t = (16, 3) if smoke else (196, 10)
    if run.order2_margin is not None:
        return int(run.order2_margin * _minimum_masks(n_i))
    return image_masks(run.budget or 0, n_i, n_t)


def _dtype_name(dtype: torch.dtype | None) -> str:
    return "fp32" if dtype is None else str(dtype).replace("torch.", "")


def time_run(
    run: Run, adapter: Any, pixels: torch.Tensor, text: str, device: torch.device
) -> Timing:
    """One explanation of ``run`` on ``adapter`` (already on ``device``), timed."""

    def make_game(batch: int) -> CrossModalGame:
        return CrossModalGame(
            adapter,
            pixels,
            text,
            image_masking=run.masking,
            batch_size=batch,
            autocast_dtype=run.dtype,
        )

    game = make_game(max(run.batch, 1))
    n_i, n_t = game.n_image, game.n_text
    kwargs: dict[str, Any] = {}
    if run.order2_margin is not None:
        kwargs["m_image"] = int(run.order2_margin * _minimum_masks(n_i))
        kwargs["m_text"] = min(2**n_t, int(run.order2_margin * _minimum_masks(n_t)))
    else:
        kwargs["budget"] = run.budget
    batch = run.batch
    if batch < 0:  # no automatic choice in the package: all masks at once, OOM halves it
        batch = int(kwargs.get("m_image") or image_masks(run.budget or 0, n_i, n_t))
        game = make_game(batch)
    _ = game.v_full, game.v_empty  # corners and lazy initialisation outside the timing
    probe = Probe(adapter, device)
    game_s = 0.0

    def timed_game(ic: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
        nonlocal game_s
        sync(device)
        start = time.perf_counter()
        out = game(ic, tc)
        sync(device)
        game_s += time.perf_counter() - start
        return out

    base: dict[str, Any] = dict(
        model=run.model,
        variant=run.variant,
        masking=run.masking,
        dtype=_dtype_name(run.dtype),
        batch_start=batch,
    )
    sync(device)
    start = time.perf_counter()
    try:
        iv = approximate_crossmodal(timed_game, n_i, n_t, seed=0, device=device, **kwargs)
    except NotIdentifiableError as err:
        return _failed(base, f"not identifiable: {err}"[:200])
    finally:
        adapter.encode_image, adapter.encode_text = probe._bare
        del adapter._pixel_keep_mask  # the instance attribute; the method shows again
    sync(device)
    seconds = time.perf_counter() - start
    info = iv.estimation_info
    bare = probe.replay_bare(game.pixel_values, game.text, game._autocast)
    m_i, m_t = int(info["m_image"]), int(info["m_text"])
    forward_s = probe.encoder_s - probe.masking_s
    return Timing(
        **base,
        batch_end=game.batch_size,
        m_image=m_i,
        m_text=m_t,
        pairs=m_i * m_t,
        terms=len(iv.interaction_lookup),
        solver=str(info.get("solver", "direct")),
        seconds=seconds,
        masking_s=probe.masking_s,
        forward_s=forward_s,
        other_game_s=game_s - probe.encoder_s,
        solve_s=seconds - game_s,
        bare_s=bare,
        ratio=seconds / bare,
        images_per_s=m_i / seconds,
        status="ok",
    )


def _failed(base: dict[str, Any], status: str) -> Timing:
    nan = math.nan
    return Timing(
        **base,
        batch_end=0,
        m_image=0,
        m_text=0,
        pairs=0,
        terms=0,
        solver="",
        seconds=nan,
        masking_s=nan,
        forward_s=nan,
        other_game_s=nan,
        solve_s=nan,
        bare_s=nan,
        ratio=nan,
        images_per_s=nan,
        status=status,
    )


def all_timings(device: torch.device, smoke: bool, deadline: float) -> Iterator[Timing]:
    """Every planned run in order; runs that would pass ``deadline`` (a ``perf_counter``
    time) are reported as skipped. Seconds per masked image of each model, measured on its
    first run (explanation + replay), predict the cost of the next (the slowest model so
    far stands in for one not yet timed)."""
    specs = {s.name: s for s in SPECS}
    loaded: dict[str, tuple[Any, torch.Tensor, str]] = {}
    per_image: dict[str, float] = {}
    for run in plan(smoke):
        base: dict[str, Any] = dict(
            model=run.model,
            variant=run.variant,
            masking=run.masking,
            dtype=_dtype_name(run.dtype),
            batch_start=run.batch,
        )
        rate = per_image.get(run.model, max(per_image.values(), default=0.0))
        estimate = rate * planned_images(run, smoke)
        if time.perf_counter() + estimate > deadline:
            yield _failed(base, f"skipped: time budget (needs ~{estimate:.0f} s)")
            continue
        try:
            if run.model not in loaded:
                loaded.clear()
                model, tok, pixels, text = build(specs[run.model], smoke)
                adapter = get_adapter(model.to(device), tok)
                loaded[run.model] = (adapter, pixels.to(device), text)
            row = time_run(run, *loaded[run.model], device)
        except Exception as err:  # reported in the table, the run goes on
            yield _failed(base, f"error: {type(err).__name__}: {err}"[:200])
            continue
        if row.status == "ok" and run.model not in per_image:
            per_image[run.model] = (row.seconds + row.bare_s) / max(row.m_image, 1)
        yield row
