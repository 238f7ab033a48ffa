"""Clique view: the greedy most and least similar player subsets of one size."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from shapiq import InteractionValues

from fixlip_captum.metrics import greedy_order
from fixlip_captum.plot._canvas import (
    draw_grid_lines,
    draw_image,
    draw_tokens,
    grey_out,
    make_canvas,
    outline_player,
)
from fixlip_captum.plot._labels import describe, fmt
from fixlip_captum.plot._panels import panel_grid, panel_title
from fixlip_captum.plot._values import get_context
from fixlip_captum.surrogate import explanation_arrays, surrogate_values

__all__ = ["clique_members", "plot_cliques"]


def clique_members(iv: InteractionValues, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``[n_players]`` of the greedy most and least similar cliques.

    Uses :func:`fixlip_captum.metrics.greedy_order` (the ordering insertion/deletion use):
    the first ``size`` players of the insertion sequence, and of the deletion sequence.

    Args:
        iv: Explanation of order 1 or 2.
        size: Number of players in each clique, ``1 <= size <= n_players``.

    Returns:
        ``(most, least)`` boolean masks.
    """
    if not 1 <= size <= iv.n_players:
        raise ValueError(f"size must be between 1 and {iv.n_players}, got {size}.")
    masks = []
    for mode in ("insertion", "deletion"):
        keep = np.zeros(iv.n_players, dtype=bool)
        keep[greedy_order(iv, mode=mode)[:size]] = True
        masks.append(keep)
    return masks[0], masks[1]


def plot_cliques(
    iv: InteractionValues,
    size: int | None = None,
    *,
    panel_width: float = 3.2,
    fontsize: float = 9.0,
    outline: bool = True,
) -> Figure:
    """Greedy most and least similar subsets of ``size`` players; the rest greyed out.

    Each panel keeps the selected patches and tokens and greys out everything else; the
    title gives the surrogate's value of the subset (intercept plus all terms inside it).

    Args:
        iv: Explanation of order 1 or 2 with a context.
        size: Players per subset (default: 10% of the players, at least 1).
        panel_width: Panel width in inches.
        fontsize: Caption font size in points.
        outline: Outline the selected patches.

    Returns:
        The figure.
    """
    ctx = get_context(iv)
    if size is None:
        size = max(1, round(0.1 * iv.n_players))
    most, least = clique_members(iv, size)
    arrays = explanation_arrays(iv)
    values = surrogate_values(arrays, np.stack([most, least]))
    grid = panel_grid(
        ctx, 1, 2, panel_width=panel_width, fontsize=fontsize, colourbar=None, top=0.35
    )
    titles = ("most similar", "least similar")
    for ax, keep, value, title in zip(grid.axes[0], (most, least), values, titles, strict=True):
        canvas = make_canvas(ax, ctx, fontsize=fontsize)
        draw_image(canvas)
        grey_out(canvas, keep[: ctx.n_image])
        draw_grid_lines(canvas)
        draw_tokens(canvas, None, 1.0, active=keep[ctx.n_image :])
        if outline:
            for p in np.flatnonzero(keep[: ctx.n_image]):
                outline_player(canvas, int(p), colour="#ffb000", lw=1.2)
        n_img, n_txt = int(keep[: ctx.n_image].sum()), int(keep[ctx.n_image :].sum())
        panel_title(
            ax,
            f"{title}: {n_img} patches + {n_txt} tokens\nsurrogate value {fmt(float(value))}",
            fontsize=9,
        )
    grid.suptitle(
        f"{describe(iv)} · greedy cliques of {size} players "
        f"(v(full) = {fmt(ctx.v_full)}, v(empty) = {fmt(ctx.v_empty)})",
        fontsize=9,
    )
    return grid.fig
