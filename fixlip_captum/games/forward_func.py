"""Joint games of a generic ``forward_func(*inputs)``, one per example (FIxLIP's generic path).

Players are the ids of a Captum-style ``feature_mask`` (one namespace across the input
tuple; default: every scalar of an example is its own player); an absent player's elements
take the baseline. :func:`forward_func_games` checks Captum's arguments and returns one
:class:`ForwardFuncGame` per example; ``game(coalitions [m, n] bool) -> values [m]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fixlip_captum._validation import check_positive_int

__all__ = ["ForwardFuncGame", "forward_func_games"]


class ForwardFuncGame:
    """Joint game of one example of a generic ``forward_func``.

    ``game(coalitions [m, n_players] bool) -> values [m]`` float32 on the CPU: row ``r``
    keeps the elements of the players in row ``r`` and sets the others to the baseline.

    Args:
        forward_func: ``forward_func(*perturbed, *extra) -> [m]`` or ``[m, K]``.
        inputs: The example's inputs, each without batch dimension.
        baselines: Per input, the values of absent elements (the input's shape).
        players: Per input, the player index (``0..n_players-1``) of each element.
        extra: Per extra argument, ``(value, batched)``; batched values have a leading
            dimension 1 and are expanded to each batch of coalitions.
        target: Output column when ``forward_func`` returns ``[m, K]``.
        n_players: Number of players.
        batch_size: Perturbed inputs per call of ``forward_func``.
        feature_ids: The ``feature_mask`` id of each player (sorted).

    Attributes:
        players: Per input, the player of each element (on the input's device).
        feature_ids: The ``feature_mask`` id of each player.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: list[torch.Tensor],
        baselines: list[torch.Tensor],
        players: list[torch.Tensor],
        extra: tuple[tuple[Any, bool], ...],
        target: int | None,
        n_players: int,
        batch_size: int,
        feature_ids: list[int],
    ) -> None:
        self.forward_func = forward_func
        self.inputs = inputs
        self.baselines = baselines
        self.players = [pl.to(x.device) for pl, x in zip(players, inputs, strict=True)]
        self.extra = extra
        self.target = target
        self.n_players = n_players
        self.batch_size = batch_size
        self.feature_ids = feature_ids

    def _expand_extra(self, m: int) -> tuple:
        return tuple(a.expand(m, *a.shape[1:]) if batched else a for a, batched in self.extra)

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        if coalitions.ndim != 2 or coalitions.shape[1] != self.n_players:
            raise ValueError(
                f"coalitions must be [m, {self.n_players}], got {tuple(coalitions.shape)}."
            )
        out = []
        for start in range(0, coalitions.shape[0], self.batch_size):
            chunk = coalitions[start : start + self.batch_size]
            m = chunk.shape[0]
            perturbed = []
            for x, base, pl in zip(self.inputs, self.baselines, self.players, strict=True):
                keep = chunk.to(x.device)[:, pl]  # [m, *x.shape]
                perturbed.append(torch.where(keep, x.unsqueeze(0), base))
            with torch.no_grad():
                y = self.forward_func(*perturbed, *self._expand_extra(m))
            y = torch.as_tensor(y)
            if y.ndim == 2 and self.target is not None:
                y = y[:, self.target]
            elif y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1 or y.shape[0] != m:
                raise ValueError(
                    f"forward_func returned shape {tuple(y.shape)} for {m} perturbed inputs; "
                    "it must return one score per input ([m]), or [m, K] with target set."
                )
            out.append(y.detach().float().cpu())
        return torch.cat(out)

    def spread(self, phi: torch.Tensor) -> list[torch.Tensor]:
        """Per input, ``phi[player of each element]``: the per-player values ``phi [n]``
        (CPU) laid out in the input's shape (on the CPU)."""
        return [phi[pl.cpu()] for pl in self.players]


def forward_func_games(
    forward_func: Callable[..., Any],
    inputs: Any,
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    feature_mask: Any = None,
    *,
    batch_size: int = 64,
) -> list[ForwardFuncGame]:
    """One :class:`ForwardFuncGame` per example of Captum-style arguments.

    Args:
        forward_func: ``forward_func(*inputs, *additional_forward_args)`` returning ``[B]``
            or ``[B, K]``.
        inputs: A tensor or a tuple of tensors, batch dimension ``B`` first.
        baselines: Per input (or one for all): value of absent elements, a scalar or a
            tensor broadcastable to the input (first dimension 1 or ``B``, or none);
            default 0.
        target: Output column: ``None``, an int, or one int per example.
        additional_forward_args: Extra arguments of ``forward_func`` (tensors with first
            dimension ``B`` are sliced per example).
        feature_mask: Per input, integer player ids broadcastable to it (first dimension 1
            or ``B``); default: every scalar of an example is its own player.
        batch_size: Perturbed inputs per call of ``forward_func``.

    Raises:
        TypeError: ``inputs`` is not a tensor or tuple of tensors; a float feature mask.
        ValueError: Shapes that do not match, or counts of masks/baselines/targets.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    xs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    if not xs or not all(isinstance(x, torch.Tensor) for x in xs):
        raise TypeError("inputs must be a tensor or a tuple of tensors (batch first).")
    n_batch = xs[0].shape[0]
    if any(x.shape[0] != n_batch for x in xs):
        raise ValueError("All inputs must share the batch dimension.")
    masks = _feature_masks(xs, feature_mask)
    bases = _baselines(xs, baselines)
    extra = additional_forward_args
    if extra is not None and not isinstance(extra, tuple):
        extra = (extra,)
    targets = _targets(target, n_batch)
    games = []
    for b in range(n_batch):
        mask_b = [m[b if m.shape[0] == n_batch else 0] for m in masks]
        ids = torch.unique(torch.cat([m.reshape(-1) for m in mask_b]))
        games.append(
            ForwardFuncGame(
                forward_func,
                [x[b] for x in xs],
                [base[b if base.shape[0] == n_batch else 0] for base in bases],
                [torch.searchsorted(ids, m.contiguous()) for m in mask_b],
                _slice_extra(extra, b, n_batch),
                targets[b],
                int(ids.numel()),
                batch_size,
                ids.tolist(),
            )
        )
    return games


def _feature_masks(xs: tuple[torch.Tensor, ...], feature_mask: Any) -> list[torch.Tensor]:
    if feature_mask is None:
        # Captum's default: every scalar of an example is its own feature.
        masks, offset = [], 0
        for x in xs:
            count = int(np.prod(x.shape[1:]))
            masks.append(torch.arange(offset, offset + count).reshape(1, *x.shape[1:]))
            offset += count
        return masks
    fm = tuple(feature_mask) if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
    if len(fm) != len(xs):
        raise ValueError(f"{len(fm)} feature masks given for {len(xs)} inputs.")
    out = []
    for t, (m, x) in enumerate(zip(fm, xs, strict=True)):
        m = torch.as_tensor(m)
        if m.dtype.is_floating_point or m.dtype == torch.bool:
            raise TypeError(f"feature_mask[{t}] must hold integer player ids.")
        if m.ndim != x.ndim or m.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"feature_mask[{t}] has shape {tuple(m.shape)}; it must have the input's "
                f"{x.ndim} dimensions with first dimension 1 or {x.shape[0]} and the rest "
                f"broadcastable to {tuple(x.shape[1:])}."
            )
        out.append(torch.broadcast_to(m.cpu(), (m.shape[0], *x.shape[1:])).long())
    return out


def _baselines(xs: tuple[torch.Tensor, ...], baselines: Any) -> list[torch.Tensor]:
    """Per input: ``[1 or B, *x.shape[1:]]`` baseline values."""
    bl = baselines if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
    if len(bl) != len(xs):
        raise ValueError(f"{len(bl)} baselines given for {len(xs)} inputs.")
    out = []
    for t, (base, x) in enumerate(zip(bl, xs, strict=True)):
        base = torch.as_tensor(0 if base is None else base).to(x.device, x.dtype)
        try:
            if base.ndim == x.ndim and base.shape[0] in (1, x.shape[0]):
                base = torch.broadcast_to(base, (base.shape[0], *x.shape[1:]))
            else:
                base = torch.broadcast_to(base, x.shape[1:]).unsqueeze(0)
        except RuntimeError as err:
            raise ValueError(
                f"baselines[{t}] of shape {tuple(base.shape)} does not broadcast to the "
                f"input shape {tuple(x.shape)}."
            ) from err
        out.append(base)
    return out


def _targets(target: Any, n_batch: int) -> list[int | None]:
    if target is None or isinstance(target, (int, np.integer)):
        return [None if target is None else int(target)] * n_batch
    t = torch.as_tensor(target).reshape(-1)
    if t.numel() == 1:
        return [int(t)] * n_batch
    if t.numel() != n_batch:
        raise ValueError(f"target has {t.numel()} entries for {n_batch} examples.")
    return [int(v) for v in t]


def _slice_extra(extra: tuple | None, b: int, n_batch: int) -> tuple[tuple[Any, bool], ...]:
    """Per extra argument: (value, batched). Batched tensors are cut to example ``b``."""
    if extra is None:
        return ()
    out = []
    for a in extra:
        batched = isinstance(a, torch.Tensor) and a.ndim > 0 and a.shape[0] == n_batch
        out.append((a[b : b + 1] if batched else a, batched))
    return tuple(out)
