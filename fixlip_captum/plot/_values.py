"""What the figures show, read from an explanation: first-order values, pair terms,
the strongest pairs, and the symmetric colour limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from shapiq import InteractionValues

from fixlip_captum.interaction_values import (
    ExplanationContext,
    first_order_values,
    require_context,
)
from fixlip_captum.surrogate import explanation_arrays

EDGE_KINDS = ("image-text", "image-image", "text-text")


def get_context(iv: InteractionValues) -> ExplanationContext:
    """The explanation's context, checked to have the patch grid that plots need."""
    ctx = require_context(iv)
    ctx.patch_grid()
    return ctx


def token_labels(ctx: ExplanationContext) -> list[str]:
    """Readable labels of the text players (``"token j"`` where none are stored)."""
    if ctx.token_labels is not None:
        return [str(t) for t in ctx.token_labels]
    return [f"token {j}" for j in range(ctx.n_text)]


def first_order(iv: InteractionValues) -> np.ndarray:
    """First-order view ``[n_players]`` of an explanation of order 1 or 2.

    For order-2 explanations ``phi_i = e_i + p * sum_j e_ij`` (see
    :func:`fixlip_captum.first_order_values`); for order-1 explanations the values themselves.
    """
    return first_order_values(iv)


def pair_matrix(iv: InteractionValues) -> np.ndarray:
    """Symmetric matrix ``[n_players, n_players]`` of the pair terms (zero diagonal)."""
    return explanation_arrays(iv).pairs


def main_effects(iv: InteractionValues) -> np.ndarray:
    """The order-1 terms ``e_i`` as ``[n_players]`` (0 where absent)."""
    return explanation_arrays(iv).first


def interaction_row(iv: InteractionValues, player: int) -> np.ndarray:
    """Pair values ``e_{player, j}`` for every ``j`` as ``[n_players]`` (0 at ``player``)."""
    if not 0 <= player < iv.n_players:
        raise ValueError(f"player {player} is outside 0..{iv.n_players - 1}.")
    return pair_matrix(iv)[player]


def pair_kind(i: int, j: int, n_image: int) -> str:
    """``"image-image"``, ``"image-text"`` or ``"text-text"`` for the pair ``(i, j)``."""
    a, b = i < n_image, j < n_image
    if a and b:
        return "image-image"
    if a or b:
        return "image-text"
    return "text-text"


def check_kinds(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Validate an edge-kind selection; ``"all"`` means every kind."""
    if isinstance(kinds, str):
        kinds = EDGE_KINDS if kinds == "all" else (kinds,)
    kinds = tuple(kinds)
    bad = [k for k in kinds if k not in EDGE_KINDS]
    if bad:
        raise ValueError(f"Unknown edge kind(s) {bad}; choose from {EDGE_KINDS} or 'all'.")
    return kinds


def top_pairs(
    iv: InteractionValues,
    k: int,
    kinds: str | Sequence[str] = "all",
    *,
    n_image: int,
    sign: str = "both",
) -> list[tuple[int, int, float]]:
    """The ``k`` pair terms of largest ``|value|`` among the selected kinds.

    Args:
        iv: Explanation of order <= 2.
        k: How many pairs (0 gives none).
        kinds: ``"all"`` or a subset of ``("image-text", "image-image", "text-text")``.
        n_image: Number of image players (players ``< n_image`` are patches).
        sign: ``"both"``, ``"positive"`` or ``"negative"``.

    Returns:
        ``[(i, j, value), ...]`` sorted by decreasing ``|value|``.
    """
    kinds = check_kinds(kinds)
    if sign not in ("both", "positive", "negative"):
        raise ValueError(f"sign must be 'both', 'positive' or 'negative', not {sign!r}.")
    if k <= 0:
        return []
    ii, jj = np.triu_indices(iv.n_players, k=1)
    vv = pair_matrix(iv)[ii, jj]
    img_i, img_j = ii < n_image, jj < n_image
    keep = np.zeros(vv.shape, dtype=bool)
    if "image-image" in kinds:
        keep |= img_i & img_j
    if "image-text" in kinds:
        keep |= img_i ^ img_j
    if "text-text" in kinds:
        keep |= ~img_i & ~img_j
    if sign == "positive":
        keep &= vv > 0
    elif sign == "negative":
        keep &= vv < 0
    keep &= vv != 0
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(-np.abs(vv[idx]), kind="stable")][:k]
    return [(int(ii[o]), int(jj[o]), float(vv[o])) for o in order]


def symmetric_limit(*arrays: np.ndarray | Sequence[float]) -> float:
    """``max |x|`` over all arrays (1.0 when everything is zero, so norms stay valid)."""
    m = 0.0
    for a in arrays:
        a = np.asarray(a, dtype=float)
        if a.size:
            m = max(m, float(np.max(np.abs(a))))
    return m if m > 0 else 1.0


def same_pair(explanations: Mapping[str, InteractionValues]) -> ExplanationContext:
    """The context of explanations of one pair (a clear error if they explain different pairs).

    Explanations without a context borrow the first one found; at least one needs a context.
    """
    ctx0: ExplanationContext | None = None
    name0 = ""
    for name, iv in explanations.items():
        if not isinstance(iv, InteractionValues):
            raise TypeError(f"{name!r} is a {type(iv).__name__}, not an InteractionValues.")
        if getattr(iv, "context", None) is None:
            continue
        ctx = get_context(iv)
        if ctx0 is None:
            ctx0, name0 = ctx, name
            continue
        if (ctx.n_image, ctx.n_text, ctx.grid) != (ctx0.n_image, ctx0.n_text, ctx0.grid):
            raise ValueError(
                f"{name!r} explains {ctx.n_image} patches in grid {ctx.grid} and {ctx.n_text} "
                f"tokens, but {name0!r} explains {ctx0.n_image} in {ctx0.grid} and "
                f"{ctx0.n_text}: a comparison needs explanations of the same pair."
            )
    if ctx0 is None:
        raise ValueError(
            "None of the explanations carries an ExplanationContext; attach one to at least "
            "one of them (they must explain the same pair)."
        )
    for name, iv in explanations.items():
        if iv.n_players != ctx0.n_players:
            raise ValueError(f"{name!r} has {iv.n_players} players, the pair has {ctx0.n_players}.")
    return ctx0
