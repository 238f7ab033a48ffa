"""Conditional maps: what one player (a word or a patch) interacts with."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from shapiq import InteractionValues

from fixlip_captum.interaction_values import ExplanationContext
from fixlip_captum.plot._canvas import (
    draw_grid_lines,
    draw_image,
    draw_patch_values,
    draw_tokens,
    make_canvas,
    outline_player,
)
from fixlip_captum.plot._labels import fmt
from fixlip_captum.plot._panels import add_colourbar, panel_grid, panel_title
from fixlip_captum.plot._values import (
    first_order,
    get_context,
    interaction_row,
    pair_matrix,
    symmetric_limit,
)

__all__ = ["draw_conditional", "plot_conditional", "plot_conditional_grid"]


def _check_pairs(iv: InteractionValues) -> None:
    if iv.max_order < 2:
        raise ValueError(
            f"Conditional maps show pair interactions; this explanation ({iv.index}) has "
            "max_order=1. Use an order-2 explanation (FIxLIP, FSII) or plot_joint."
        )


def _resolve_player(iv: InteractionValues, player: int | str) -> int:
    """A player id from an id or a token label (first match)."""
    ctx = get_context(iv)
    if isinstance(player, str):
        labels = [str(t).strip().lower() for t in (ctx.token_labels or [])]
        key = player.strip().lower()
        if key not in labels:
            raise ValueError(
                f"No token {player!r} in the caption; tokens are {ctx.token_labels}. "
                "Pass a token label or a player id."
            )
        return ctx.n_image + labels.index(key)
    player = int(player)
    if not 0 <= player < iv.n_players:
        raise ValueError(f"player {player} is outside 0..{iv.n_players - 1}.")
    return player


def draw_conditional(
    ax: Axes,
    iv: InteractionValues,
    player: int | str,
    *,
    vmax: float | None = None,
    fontsize: float = 10.0,
    title: str | None = None,
) -> float:
    """Draw player ``player``'s interaction row ``e_{player, j}`` over image and caption.

    Args:
        ax: Axes to draw into.
        iv: Order-2 explanation with an :class:`~fixlip_captum.ExplanationContext`.
        player: Player id, or a token label such as ``"red"``.
        vmax: Colour scale ``[-vmax, vmax]`` (default: this row's largest ``|value|``).
        fontsize: Caption font size in points.
        title: Panel title (default names the player and its first-order value).

    Returns:
        The ``vmax`` used.
    """
    _check_pairs(iv)
    pid = _resolve_player(iv, player)
    row = interaction_row(iv, pid)
    return _draw_row(ax, get_context(iv), pid, row, first_order(iv)[pid], vmax, fontsize, title)


def _draw_row(
    ax: Axes,
    ctx: ExplanationContext,
    pid: int,
    row: np.ndarray,
    phi: float,
    vmax: float | None,
    fontsize: float,
    title: str | None,
) -> float:
    if vmax is None:
        vmax = symmetric_limit(row)
    canvas = make_canvas(ax, ctx, fontsize=fontsize)
    draw_image(canvas)
    draw_patch_values(canvas, row[: ctx.n_image], vmax)
    draw_grid_lines(canvas)
    draw_tokens(canvas, row[ctx.n_image :], vmax)
    outline_player(canvas, pid)
    if title is None:
        name = ctx.player_label(pid)
        if pid >= ctx.n_image:
            name = f"'{name}'"
        title = f"interactions with {name}  (φ = {fmt(phi)})"
    if title:
        panel_title(ax, title, fontsize=9)
    return vmax


def plot_conditional(
    iv: InteractionValues,
    player: int | str,
    *,
    fontsize: float = 10.0,
    width: float = 4.0,
) -> Figure:
    """Conditional map of one player as a new figure (see :func:`draw_conditional`).

    Args:
        iv: Order-2 explanation with a context.
        player: Player id or token label.
        fontsize: Caption font size in points.
        width: Panel width in inches.

    Returns:
        The figure.
    """
    _check_pairs(iv)
    ctx = get_context(iv)
    grid = panel_grid(ctx, 1, 1, panel_width=width, fontsize=fontsize)
    vmax = draw_conditional(grid.axes[0][0], iv, player, fontsize=fontsize)
    add_colourbar(grid.fig, grid.colourbars[0], vmax, "pair interaction")
    return grid.fig


def plot_conditional_grid(
    iv: InteractionValues,
    players: Sequence[int | str] | None = None,
    *,
    ncols: int = 4,
    shared_scale: bool = True,
    fontsize: float = 9.0,
    panel_width: float = 2.6,
) -> Figure:
    """A grid of conditional maps, by default one per caption token.

    Answers "what does each word bind to?": panel ``j`` shows token ``j``'s interactions with
    every patch and every other token, the token itself outlined.

    Args:
        iv: Order-2 explanation with a context.
        players: Player ids or token labels (default: every text player).
        ncols: Panels per row.
        shared_scale: One colour scale for all panels (comparable across words); otherwise
            each panel uses its own largest ``|value|``.
        fontsize: Caption font size in points.
        panel_width: Width of each panel in inches.

    Returns:
        The figure.
    """
    _check_pairs(iv)
    ctx = get_context(iv)
    if players is None:
        players = list(range(ctx.n_image, ctx.n_players))
    pids = [_resolve_player(iv, p) for p in players]
    if not pids:
        raise ValueError("No players to plot; pass at least one player id or token label.")
    if ncols < 1:
        raise ValueError("ncols must be at least 1.")
    ncols = min(ncols, len(pids))
    nrows = -(-len(pids) // ncols)
    mat = pair_matrix(iv)
    phi = first_order(iv)
    shared_vmax = symmetric_limit(mat[pids]) if shared_scale else None
    grid = panel_grid(
        ctx,
        nrows,
        ncols,
        panel_width=panel_width,
        fontsize=fontsize,
        colourbar="figure" if shared_scale else None,
        title_height=0.28,
    )
    for n, ax in enumerate(a for row in grid.axes for a in row):
        if n >= len(pids):
            ax.set_axis_off()
            continue
        pid = pids[n]
        _draw_row(ax, ctx, pid, mat[pid], phi[pid], shared_vmax, fontsize, None)
    if shared_vmax is not None:
        add_colourbar(grid.fig, grid.colourbars[0], shared_vmax, "pair interaction")
    return grid.fig
