"""Helpers shared by the metrics: explanation terms as arrays, surrogate, batched game calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from shapiq import InteractionValues

from fixlip_captum._validation import as_values

__all__ = ["ExplanationArrays", "evaluate_game", "explanation_arrays", "surrogate_values"]

JointGameFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]


@dataclass
class ExplanationArrays:
    """Dense view of an explanation of order <= 2.

    Attributes:
        intercept: ``e_()`` (0 if the explanation has no intercept).
        first: ``[n]`` first-order values ``e_i`` (0 where absent).
        pairs: ``[n, n]`` symmetric pair values ``e_ij`` with a zero diagonal.
        has_pairs: Whether any pair term is present (even with value 0).
    """

    intercept: float
    first: np.ndarray
    pairs: np.ndarray
    has_pairs: bool

    @property
    def n_players(self) -> int:
        return self.first.shape[0]


def explanation_arrays(iv: InteractionValues) -> ExplanationArrays:
    """Read an order-1 or order-2 explanation into dense arrays.

    Args:
        iv: shapiq ``InteractionValues`` (or :class:`FIxLIPInteractionValues`) over the
            joint players. Terms of order > 2 are rejected because none of the metrics
            is defined for them here.

    Returns:
        :class:`ExplanationArrays`.
    """
    if not isinstance(iv, InteractionValues):
        raise TypeError(
            f"Expected a shapiq InteractionValues (e.g. FIxLIPInteractionValues), got "
            f"{type(iv).__name__}."
        )
    n = int(iv.n_players)
    first = np.zeros(n)
    pairs = np.zeros((n, n))
    intercept = 0.0
    has_pairs = False
    values = np.asarray(iv.values, dtype=float)
    for term, k in iv.interaction_lookup.items():
        v = float(values[k])
        if len(term) == 0:
            intercept = v
        elif len(term) == 1:
            first[term[0]] = v
        elif len(term) == 2:
            i, j = term
            if i == j:
                raise ValueError(f"Pair term {term} repeats a player.")
            pairs[i, j] = v
            pairs[j, i] = v
            has_pairs = True
        elif v != 0.0:
            raise ValueError(
                f"The metrics handle explanations of order <= 2; term {term} has order "
                f"{len(term)}. Pass an order-1 or order-2 explanation."
            )
    return ExplanationArrays(intercept, first, pairs, has_pairs)


def surrogate_values(
    arrays: ExplanationArrays, coalitions: np.ndarray, *, include_intercept: bool = True
) -> np.ndarray:
    """The explanation's additive surrogate ``sum_{T subset S} e_T`` for many coalitions.

    Args:
        arrays: Output of :func:`explanation_arrays`.
        coalitions: ``[m, n]`` bool, ``True`` = kept.
        include_intercept: Add ``e_()`` (the term of the empty set).

    Returns:
        ``[m]`` float64.
    """
    x = np.asarray(coalitions, dtype=float)
    if x.ndim != 2 or x.shape[1] != arrays.n_players:
        raise ValueError(
            f"coalitions must have shape [m, {arrays.n_players}], got {tuple(x.shape)}."
        )
    out = x @ arrays.first
    if arrays.has_pairs:
        # x^T E x counts every unordered pair twice (E is symmetric, zero diagonal).
        out = out + 0.5 * np.einsum("mi,ij,mj->m", x, arrays.pairs, x, optimize=True)
    if include_intercept:
        out = out + arrays.intercept
    return out


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
