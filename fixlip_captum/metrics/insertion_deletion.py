"""Insertion and deletion curves over the joint players (patches and tokens), and AID.

A player ordering is read off the explanation, then the game is evaluated on the nested
coalitions it defines:

* **insertion**: start from the empty coalition and add players in the insertion order;
* **deletion**: start from the full coalition and remove players in the deletion order.

Curves are scored as ``(v(S) - v(empty)) / (v(full) - v(empty))`` on a fixed grid of
fractions of players (51 points by default: 0, 0.02, ..., 1; after a fraction ``f`` the
first ``floor(f * n + 1/2)`` players are added/removed). Areas use the trapezoidal rule on
that grid; ``AID = area(insertion) - area(deletion)`` (higher is better).

Orderings (:func:`greedy_order`):

* first-order explanations: by signed value, ties broken by player index (lower first),
  one player at a time (never in blocks);
* second-order explanations: greedy nested cliques. Insertion picks next the player ``v``
  maximising ``e_v + sum_{u in S} e_uv`` over the players ``S`` picked so far; the
  deletion sequence picks the player minimising the same gain, i.e. it grows the
  least valuable clique, and the deletion curve removes players in the reverse of that
  sequence (so the kept set is always the least valuable clique found). With no pair terms
  both reduce to the first-order rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from shapiq import InteractionValues

from fixlip_captum.games.evaluate import JointGameFn, evaluate_game
from fixlip_captum.surrogate import ExplanationArrays, explanation_arrays

__all__ = ["InsertionDeletionResult", "greedy_order", "insertion_deletion"]

Mode = Literal["insertion", "deletion"]


def _order_from_arrays(arrays: ExplanationArrays, mode: str) -> np.ndarray:
    if mode not in ("insertion", "deletion"):
        raise ValueError(f"mode must be 'insertion' or 'deletion', got {mode!r}.")
    n = arrays.n_players
    sign = 1.0 if mode == "insertion" else -1.0
    if not arrays.has_pairs:
        # Stable sort == greedy with argmax taking the first (lowest-index) maximum.
        return np.argsort(-sign * arrays.first, kind="stable")
    gain = sign * arrays.first.copy()
    pairs = sign * arrays.pairs
    picked = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for step in range(n):
        # One vectorised argmax per step over all candidates; argmax breaks ties by index.
        v = int(np.argmax(np.where(picked, -np.inf, gain)))
        order[step] = v
        picked[v] = True
        gain += pairs[v]
    return order


def greedy_order(iv: InteractionValues, mode: Mode = "insertion") -> np.ndarray:
    """Greedy nested player sequence of an explanation (the "clique" ordering).

    ``order[:k]`` is the clique of size ``k``. For ``mode="insertion"`` each next player
    maximises ``e_v + sum_{u in S} e_uv`` (``S`` = players already in the sequence), so the
    prefixes are the most valuable cliques found greedily; for ``mode="deletion"`` it
    minimises the same gain (least valuable, e.g. most negative, cliques). Explanations
    without pair terms are ordered by their signed first-order values (descending for
    insertion, ascending for deletion); ties always go to the lower player index.

    Args:
        iv: Explanation of order 1 or 2 over ``n`` joint players.
        mode: ``"insertion"`` or ``"deletion"``.

    Returns:
        ``[n]`` int64 permutation of the players, in selection order. The deletion curve of
        :func:`insertion_deletion` removes players in ``order[::-1]``.
    """
    return _order_from_arrays(explanation_arrays(iv), mode)


@dataclass
class InsertionDeletionResult:
    """Insertion and deletion curves of one explanation.

    Attributes:
        fractions: ``[g]`` fraction of players inserted / removed.
        insertion: ``[g]`` normalised insertion curve.
        deletion: ``[g]`` normalised deletion curve.
        insertion_raw: ``[g]`` raw game values of the insertion coalitions.
        deletion_raw: ``[g]`` raw game values of the deletion coalitions.
        insertion_area: Trapezoidal area under ``insertion``.
        deletion_area: Trapezoidal area under ``deletion``.
        aid: ``insertion_area - deletion_area``.
        aid_raw: The same on the raw curves, in the game's units
            (``aid * (v_full - v_empty)``). Unlike ``aid`` its sign does not flip when
            ``v(full) < v(empty)`` (a pair the model scores below the empty pair), so it is
            the one to average over instances of mixed sign.
        insertion_order: ``[n]`` order in which players are inserted.
        deletion_order: ``[n]`` order in which players are removed.
        v_empty: Game value of the empty coalition.
        v_full: Game value of the full coalition.
    """

    fractions: np.ndarray
    insertion: np.ndarray
    deletion: np.ndarray
    insertion_raw: np.ndarray
    deletion_raw: np.ndarray
    insertion_area: float
    deletion_area: float
    aid: float
    aid_raw: float
    insertion_order: np.ndarray
    deletion_order: np.ndarray
    v_empty: float
    v_full: float


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)))


def insertion_deletion(
    iv: InteractionValues,
    game: JointGameFn,
    *,
    n_grid: int = 51,
    batch_size: int = 128,
) -> InsertionDeletionResult:
    """Insertion/deletion curves and AID of an explanation on a joint game.

    Args:
        iv: Explanation of order 1 or 2 over the game's ``n`` players.
        game: Joint game ``game(coalitions [m, n] bool) -> [m]``, ``True`` = kept. Use the
            same game (same masking) for every method being compared.
        n_grid: Number of grid points of the fraction of players (>= 2); 51 gives steps of
            2% as in the published evaluation.
        batch_size: Coalitions per game call.

    Returns:
        :class:`InsertionDeletionResult`. The game is called on at most ``2 * n_grid``
        distinct coalitions (duplicates, e.g. empty and full, are evaluated once).

    Raises:
        ValueError: If ``v(full) == v(empty)`` (the normalisation is undefined).
    """
    if n_grid < 2:
        raise ValueError(f"n_grid must be >= 2, got {n_grid}.")
    arrays = explanation_arrays(iv)
    n = arrays.n_players
    ins_order = _order_from_arrays(arrays, "insertion")
    del_order = _order_from_arrays(arrays, "deletion")[::-1].copy()

    fractions = np.linspace(0.0, 1.0, n_grid)
    counts = np.floor(fractions * n + 0.5).astype(np.int64)
    # rank[p] = position of player p in the order; prefix of length k = rank < k.
    ins_rank = np.empty(n, dtype=np.int64)
    ins_rank[ins_order] = np.arange(n)
    del_rank = np.empty(n, dtype=np.int64)
    del_rank[del_order] = np.arange(n)
    ins_coal = ins_rank[None, :] < counts[:, None]
    del_coal = del_rank[None, :] >= counts[:, None]
    all_coal = np.concatenate([ins_coal, del_coal, np.zeros((1, n), bool), np.ones((1, n), bool)])
    unique, inverse = np.unique(all_coal, axis=0, return_inverse=True)
    values = evaluate_game(game, unique, batch_size=batch_size)[inverse.reshape(-1)]
    ins_raw = values[:n_grid]
    del_raw = values[n_grid : 2 * n_grid]
    v_empty, v_full = float(values[-2]), float(values[-1])
    span = v_full - v_empty
    if abs(span) <= 1e-12 * max(1.0, abs(v_full), abs(v_empty)):
        raise ValueError(
            f"v(full) = v(empty) = {v_full:.6g}: the normalised curves are undefined for this "
            "instance; skip it or use a different value function."
        )
    ins = (ins_raw - v_empty) / span
    dele = (del_raw - v_empty) / span
    ins_area = _trapezoid(ins, fractions)
    del_area = _trapezoid(dele, fractions)
    return InsertionDeletionResult(
        fractions=fractions,
        insertion=ins,
        deletion=dele,
        insertion_raw=ins_raw,
        deletion_raw=del_raw,
        insertion_area=ins_area,
        deletion_area=del_area,
        aid=ins_area - del_area,
        aid_raw=_trapezoid(ins_raw - del_raw, fractions),
        insertion_order=ins_order,
        deletion_order=del_order,
        v_empty=v_empty,
        v_full=v_full,
    )
