"""Evaluate a joint game on many coalitions in batches (metrics and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fixlip_captum._validation import as_values

__all__ = ["JointGameFn", "evaluate_game"]

#: ``game(coalitions [b, n] bool) -> [b]`` values, e.g. a :class:`~fixlip_captum.games.JointGame`.
JointGameFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


def evaluate_game(
    game: JointGameFn,
    coalitions: np.ndarray | torch.Tensor,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """Call a joint game on many coalitions in batches.

    Args:
        game: ``game(coalitions [b, n] bool) -> [b]`` values.
        coalitions: ``[m, n]`` bool, ``True`` = kept.
        batch_size: Coalitions per call (bounds memory of the model forward).

    Returns:
        ``[m]`` float64 values.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    coal = torch.as_tensor(coalitions).to(torch.bool)
    if coal.ndim != 2:
        raise ValueError(f"coalitions must be [m, n], got shape {tuple(coal.shape)}.")
    outs = []
    for start in range(0, coal.shape[0], batch_size):
        chunk = coal[start : start + batch_size]
        # as_values raises a clear error on a wrong shape or NaN/inf output.
        out = as_values(game(chunk), (chunk.shape[0],), torch.device("cpu"), what="joint game")
        outs.append(out.numpy())
    return np.concatenate(outs) if outs else np.zeros(0)
