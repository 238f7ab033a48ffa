"""Comparison figure: several explanations of the same image-text pair, one row each."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
from fixlip_captum.plot._labels import edge_summary
from fixlip_captum.plot._panels import add_colourbar, panel_grid, panel_title
from fixlip_captum.plot._values import (
    check_kinds,
    first_order,
    same_pair,
    symmetric_limit,
    top_pairs,
)

__all__ = ["plot_comparison"]


def plot_comparison(
    explanations: Mapping[str, InteractionValues],
    *,
    k: int = 8,
    edge_kinds: str | Sequence[str] = "image-text",
    panel_width: float = 2.6,
    fontsize: float = 8.0,
) -> Figure:
    """One row per method on the same pair: first-order map, then the top interactions.

    Left panel of each row: first-order values (``phi`` for interaction methods) as patch
    heat map and token colours. Right panel: the ``k`` strongest pair terms as edges over the
    faded image (first-order methods have none). Each row has one symmetric colour scale
    (its own colour bar) covering its first-order values and edges, since methods differ in
    units and size; edge widths are relative to the row's strongest edge.

    Args:
        explanations: ``{method name: explanation}`` in display order, e.g.
            ``{"FIxLIP p=0.5": iv, "Grad-ECLIP": iv_g}``. All must explain the same pair;
            explanations without a context borrow the first one found.
        k: Pair interactions drawn per interaction method.
        edge_kinds: ``"all"`` or a subset of ``("image-text", "image-image", "text-text")``.
        panel_width: Panel width in inches.
        fontsize: Caption font size in points.

    Returns:
        The figure. :func:`~fixlip_captum.plot.write_viewer` takes the same mapping and
        writes it as one interactive page.
    """
    if not explanations:
        raise ValueError("Pass at least one explanation: {'method name': explanation}.")
    kinds = check_kinds(edge_kinds)
    ctx = same_pair(explanations)
    grid = panel_grid(
        ctx,
        len(explanations),
        2,
        panel_width=panel_width,
        fontsize=fontsize,
        colourbar="row",
        left=0.35,
        title_height=0.32,
        top=0.35,
    )
    for r, (name, iv) in enumerate(explanations.items()):
        phi = first_order(iv)
        pairs = top_pairs(iv, k, kinds, n_image=ctx.n_image) if iv.max_order >= 2 else []
        vmax = symmetric_limit(phi)
        ax_map, ax_edges = grid.axes[r]
        canvas = make_canvas(ax_map, ctx, fontsize=fontsize)
        draw_image(canvas)
        draw_patch_values(canvas, phi[: ctx.n_image], vmax)
        draw_grid_lines(canvas)
        draw_tokens(canvas, phi[ctx.n_image :], vmax)
        panel_title(ax_map, "first-order" if iv.max_order >= 2 else "attribution", fontsize=8)

        canvas = make_canvas(ax_edges, ctx, fontsize=fontsize)
        draw_image(canvas, fade=0.55)
        draw_grid_lines(canvas)
        draw_tokens(canvas, None, vmax)
        if pairs:
            # widths relative to the row's strongest edge: pair terms are often much smaller
            # than first-order values, and hairlines would hide them
            draw_edges(canvas, pairs, symmetric_limit([v for _, _, v in pairs]), max_width=3.0)
            panel_title(ax_edges, edge_summary(pairs, kinds), fontsize=7)
        else:
            panel_title(ax_edges, "no interactions (first-order method)", fontsize=7, color="0.4")
        add_colourbar(grid.fig, grid.colourbars[r], vmax, "value")
        ax_map.text(
            -0.04,
            0.5,
            name,
            rotation=90,
            ha="right",
            va="center",
            fontsize=10,
            fontweight="bold",
            transform=ax_map.transAxes,
        )
    grid.suptitle("Explanations of the same pair (one colour scale per row)")
    return grid.fig
