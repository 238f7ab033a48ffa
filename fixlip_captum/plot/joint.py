"""Joint view: patch heat map, coloured caption, and the top interactions as edges."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from shapiq import InteractionValues

from fixlip_captum.plot._canvas import (
    draw_edges,
    draw_grid_lines,
    draw_image,
    draw_patch_values,
    draw_tokens,
    make_canvas,
)
from fixlip_captum.plot._labels import describe, edge_summary, fmt
from fixlip_captum.plot._panels import add_colourbar, panel_grid, panel_title
from fixlip_captum.plot._values import (
    check_kinds,
    first_order,
    get_context,
    main_effects,
    symmetric_limit,
    top_pairs,
)

__all__ = ["draw_joint", "plot_joint"]


def _main_values(iv: InteractionValues, values: str) -> np.ndarray:
    if values == "first_order":
        return first_order(iv)
    if values == "main":
        return main_effects(iv)
    raise ValueError(f"values must be 'first_order' or 'main', not {values!r}.")


def draw_joint(
    ax: Axes,
    iv: InteractionValues,
    *,
    k: int = 10,
    edge_kinds: str | Sequence[str] = "image-text",
    sign: str = "both",
    values: str = "first_order",
    joint_scale: bool = False,
    vmax: float | None = None,
    fontsize: float = 10.0,
    grid_lines: bool | None = None,
    title: str | None = None,
) -> float:
    """Draw the joint view of ``iv`` into an existing axes.

    Args:
        ax: Axes to draw into; its current size decides how the caption wraps.
        iv: Explanation with an :class:`~fixlip_captum.ExplanationContext`.
        k: Number of pair interactions drawn as edges (0 for none).
        edge_kinds: ``"all"`` or a subset of ``("image-text", "image-image", "text-text")``.
        sign: Edges to draw: ``"both"``, ``"positive"`` or ``"negative"``.
        values: Heat map values: ``"first_order"`` (``phi_i = e_i + p sum_j e_ij``) or
            ``"main"`` (the order-1 terms ``e_i`` alone).
        joint_scale: Put heat map and edges on one scale (``max`` over both). Otherwise
            edges are scaled by their own largest ``|value|``.
        vmax: Fix the heat map scale ``[-vmax, vmax]`` (e.g. to compare panels).
        fontsize: Caption font size in points.
        grid_lines: Draw faint patch borders (default: yes).
        title: Panel title; ``None`` for a default naming the index and values.

    Returns:
        The heat map's ``vmax``.
    """
    ctx = get_context(iv)
    kinds = check_kinds(edge_kinds)
    main = _main_values(iv, values)
    pairs = top_pairs(iv, k, kinds, n_image=ctx.n_image, sign=sign)
    pair_vals = [v for _, _, v in pairs]
    if vmax is None:
        vmax = symmetric_limit(main, pair_vals) if joint_scale else symmetric_limit(main)
    edge_vmax = vmax if joint_scale else symmetric_limit(pair_vals)
    canvas = make_canvas(ax, ctx, fontsize=fontsize)
    draw_image(canvas)
    draw_patch_values(canvas, main[: ctx.n_image], vmax)
    if grid_lines is None or grid_lines:
        draw_grid_lines(canvas)
    draw_tokens(canvas, main[ctx.n_image :], vmax)
    draw_edges(canvas, pairs, edge_vmax)
    if title is None:
        what = "first-order" if values == "first_order" else "main effects"
        title = f"{describe(iv)} · {what}"
        if pairs:
            title += f"\n{edge_summary(pairs, kinds)}"
    if title:
        panel_title(ax, title, fontsize=9)
    return vmax


def plot_joint(
    iv: InteractionValues,
    *,
    k: int = 10,
    edge_kinds: str | Sequence[str] = "image-text",
    sign: str = "both",
    values: str = "first_order",
    joint_scale: bool = False,
    fontsize: float = 10.0,
    width: float = 4.5,
    grid_lines: bool | None = None,
    title: str | None = None,
) -> Figure:
    """Joint view of an image-text explanation as a new figure.

    The image carries a signed heat map of the first-order values (red positive, blue
    negative, symmetric scale), the caption below it has each token coloured on the same
    scale, and the ``k`` strongest pair interactions are drawn as edges (width and opacity by
    ``|value|``, colour by sign). Reads at 49 and at 196+ patches.

    Args:
        iv: Explanation with an :class:`~fixlip_captum.ExplanationContext`.
        k: Number of pair interactions drawn as edges (0 for none).
        edge_kinds: ``"all"`` or a subset of ``("image-text", "image-image", "text-text")``.
        sign: ``"both"``, ``"positive"`` or ``"negative"`` edges.
        values: ``"first_order"`` or ``"main"``; see :func:`draw_joint`.
        joint_scale: One scale for heat map and edges.
        fontsize: Caption font size in points.
        width: Width of the image panel in inches.
        grid_lines: Draw faint patch borders.
        title: Panel title (``None``: default; ``""``: none).

    Returns:
        The figure (not shown; call ``plt.show()`` or ``fig.savefig``).
    """
    ctx = get_context(iv)
    grid = panel_grid(ctx, 1, 1, panel_width=width, fontsize=fontsize, title_height=0.45)
    ax = grid.axes[0][0]
    vmax = draw_joint(
        ax,
        iv,
        k=k,
        edge_kinds=edge_kinds,
        sign=sign,
        values=values,
        joint_scale=joint_scale,
        fontsize=fontsize,
        grid_lines=grid_lines,
        title=title,
    )
    label = "value (heat map and edges)" if joint_scale else "first-order value"
    if values == "main":
        label = label.replace("first-order value", "main effect")
    add_colourbar(grid.fig, grid.colourbars[0], vmax, label)
    if ctx.v_full is not None or ctx.v_empty is not None:
        grid.fig.text(
            0.01,
            0.005,
            f"v(full) = {fmt(ctx.v_full)}   v(empty) = {fmt(ctx.v_empty)}",
            fontsize=7,
            color="0.35",
            va="bottom",
        )
    return grid.fig
