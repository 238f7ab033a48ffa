"""Pointing game: does the explanation of an object's token point at that object?

For a named object token ``t`` with ground-truth patch mask ``M_t`` and an image map
``a_p`` over patches:

* correct mass = ``sum_{p in M_t} max(a_p, 0) + sum_{p not in M_t} max(-a_p, 0)``
  (positive on the object, negative elsewhere);
* wrong mass = ``sum_{p in M_t} max(-a_p, 0) + sum_{p not in M_t} max(a_p, 0)``;
* ``PGR_t = correct / (correct + wrong)``; the instance's PGR is the mean over its tokens.

Which map ``a`` is used:

* second-order explanations: the (patch, token ``t``) interactions ``a_p = e_{p,t}``, a
  different map for every token;
* first-order explanations: the patch values ``a_p = e_p``, one map shared by all tokens
  (only patch values; the token's own value is not counted). A shared map cannot tell
  objects apart: a map that is positive on all ``k`` named objects scores about ``1/k``
  per token (its mass on the other ``k - 1`` objects counts as wrong), so first-order
  methods tend to ``~1/k`` as the number of objects grows.

Every value is counted once, in exactly one of the two masses. Ground truth is passed as
plain arrays (token indices and patch masks) so the metric does not depend on how the
scenes were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from shapiq import InteractionValues

from fixlip_captum.interaction_values import first_order_values
from fixlip_captum.surrogate import explanation_arrays

__all__ = ["PointingGameResult", "pointing_game", "pointing_game_ratio"]


@dataclass
class PointingGameResult:
    """Pointing-game scores of one explanation.

    Attributes:
        pgr: Mean of ``per_token`` over tokens with non-zero mass (NaN if none).
        per_token: ``[K]`` PGR of each named token (NaN where all values are 0).
        correct: ``[K]`` correct mass.
        wrong: ``[K]`` wrong mass.
        source: ``"interactions"`` or ``"first_order"``: which map was scored.
    """

    pgr: float
    per_token: np.ndarray
    correct: np.ndarray
    wrong: np.ndarray
    source: str


def pointing_game_ratio(maps: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct and wrong mass of image maps against patch masks.

    Args:
        maps: ``[K, n_image]`` signed values, one map per token.
        masks: ``[K, n_image]`` bool, ``True`` on the patches of the token's object.

    Returns:
        ``(correct [K], wrong [K])``.
    """
    maps = np.asarray(maps, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    pos = np.clip(maps, 0.0, None)
    neg = np.clip(-maps, 0.0, None)
    correct = np.where(masks, pos, neg).sum(axis=1)
    wrong = np.where(masks, neg, pos).sum(axis=1)
    return correct, wrong


def pointing_game(
    iv: InteractionValues,
    token_indices: Sequence[int],
    patch_masks: np.ndarray,
    *,
    use: Literal["auto", "interactions", "first_order"] = "auto",
) -> PointingGameResult:
    """Pointing-game ratio (PGR) of one explanation.

    Args:
        iv: Explanation over ``n_image + n_text`` players (patches first, then tokens).
        token_indices: ``[K]`` text-player index (``0 .. n_text-1``, i.e. the position among
            the text players, not the global player id) of each named object token.
        patch_masks: ``[K, n_image]`` bool; row ``k`` marks the patches (row-major) covered
            by the object named by ``token_indices[k]``. Its width defines ``n_image``.
        use: ``"interactions"`` scores the (patch, token) pair values; ``"first_order"``
            scores one shared patch map (``e_p`` for order-1 explanations, the first-order
            view ``e_p + p * sum_j e_pj`` for order-2 ones); ``"auto"`` picks interactions
            when the explanation has any pair term, else first order.

    Returns:
        :class:`PointingGameResult`.
    """
    masks = np.asarray(patch_masks, dtype=bool)
    tokens = np.asarray(token_indices, dtype=np.int64).reshape(-1)
    if masks.ndim != 2 or masks.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"patch_masks must be [K, n_image] with one row per token; got shape "
            f"{tuple(masks.shape)} for {tokens.shape[0]} tokens."
        )
    if tokens.shape[0] == 0:
        raise ValueError("Pass at least one named object token.")
    n_image = masks.shape[1]
    n = int(iv.n_players)
    if np.any(tokens < 0) or np.any(n_image + tokens >= n):
        raise ValueError(
            f"token_indices {tokens.tolist()} must lie in 0..{n - n_image - 1} (text-player "
            f"positions; the explanation has {n} players and the masks {n_image} patches)."
        )
    if use not in ("auto", "interactions", "first_order"):
        raise ValueError(f"use must be 'auto', 'interactions' or 'first_order', got {use!r}.")
    arrays = explanation_arrays(iv)
    if use == "auto":
        use = "interactions" if arrays.has_pairs else "first_order"
    if use == "interactions":
        if not arrays.has_pairs:
            raise ValueError(
                "use='interactions' needs pair terms but the explanation has none; use "
                "'first_order' or 'auto'."
            )
        maps = arrays.pairs[n_image + tokens, :n_image]
    else:
        phi = first_order_values(iv) if arrays.has_pairs else arrays.first
        maps = np.broadcast_to(phi[:n_image], masks.shape)
    correct, wrong = pointing_game_ratio(maps, masks)
    total = correct + wrong
    with np.errstate(invalid="ignore", divide="ignore"):
        per_token = np.where(total > 0, correct / np.where(total > 0, total, 1.0), np.nan)
    pgr = float(np.nanmean(per_token)) if np.any(np.isfinite(per_token)) else float("nan")
    return PointingGameResult(pgr, per_token, correct, wrong, use)
