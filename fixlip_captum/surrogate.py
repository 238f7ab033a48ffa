"""An explanation of order <= 2 as dense arrays, and the additive surrogate it defines.

Used by the metrics, the plots and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from shapiq import InteractionValues

__all__ = ["ExplanationArrays", "explanation_arrays", "surrogate_values"]


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
