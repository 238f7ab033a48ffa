"""Figures of several canvas panels: hand-placed panel grids, titles and colour bars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from fixlip_captum.interaction_values import (
    ExplanationContext,
)
from fixlip_captum.plot._canvas import canvas_height_ratio
from fixlip_captum.plot._style import VALUE_CMAP


def panel_title(ax: Axes, text: str, *, fontsize: float = 9.0, **kwargs: Any) -> None:
    """Title just above a canvas panel.

    The fixed ``y`` matters for speed: with an automatic title position matplotlib measures
    every axis' bounding box at each draw (about a second for a 20-panel grid), although the
    canvas axes are switched off and there is nothing to avoid.
    """
    ax.set_title(text, fontsize=fontsize, y=1.0, pad=3.0, **kwargs)


def add_colourbar(fig: Figure, cax: Axes, vmax: float, label: str) -> None:
    """Symmetric diverging colour bar ``[-vmax, vmax]`` drawn into ``cax``."""
    sm = plt.cm.ScalarMappable(norm=Normalize(-vmax, vmax), cmap=VALUE_CMAP)
    cb = fig.colorbar(sm, cax=cax)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)


@dataclass
class PanelGrid:
    """A figure of ``nrows x ncols`` canvas panels placed by hand (no layout engine).

    Canvas layout measures text in points, so panel sizes must be final when the caption is
    laid out; hence explicit placement instead of constrained layout.
    """

    fig: Figure
    axes: list[list[Axes]]
    colourbars: list[Axes]

    def suptitle(self, text: str, fontsize: float = 10.0) -> None:
        """Figure title inside the ``top`` margin (0.06 inch below the upper edge)."""
        height = self.fig.get_size_inches()[1]
        self.fig.suptitle(text, fontsize=fontsize, y=1 - 0.06 / height, va="top")


def panel_grid(
    ctx: ExplanationContext,
    nrows: int,
    ncols: int,
    *,
    panel_width: float = 3.0,
    fontsize: float = 10.0,
    title_height: float = 0.3,
    left: float = 0.1,
    colourbar: str | None = "figure",
    top: float = 0.0,
    hgap: float = 0.2,
    vgap: float = 0.15,
) -> PanelGrid:
    """Create a figure with a grid of equally sized canvas panels.

    Args:
        ctx: Explanation context (decides each panel's height from the caption layout).
        nrows: Panel rows.
        ncols: Panel columns.
        panel_width: Width of each panel in inches.
        fontsize: Caption font size in points.
        title_height: Space above each panel for its title (inches).
        left: Left margin (inches), e.g. room for row labels.
        colourbar: ``"figure"`` (one bar right of the grid), ``"row"`` (one per row) or None.
        top: Extra space at the top for a figure title (inches).
        hgap: Horizontal gap between panels (inches).
        vgap: Vertical gap between panel rows (inches), added to ``title_height``.
    """
    if colourbar not in (None, "figure", "row"):
        raise ValueError("colourbar must be 'figure', 'row' or None.")
    panel_h = canvas_height_ratio(ctx, panel_width, fontsize) * panel_width
    cbar_w = 0.95 if colourbar else 0.15
    fig_w = left + ncols * panel_width + (ncols - 1) * hgap + cbar_w
    row_h = title_height + panel_h
    fig_h = top + nrows * row_h + (nrows - 1) * vgap + 0.12
    fig = plt.figure(figsize=(fig_w, fig_h))
    axes: list[list[Axes]] = []
    cbars: list[Axes] = []
    for r in range(nrows):
        y_top = fig_h - top - r * (row_h + vgap) - title_height
        row = []
        for c in range(ncols):
            x = left + c * (panel_width + hgap)
            rect = (x / fig_w, (y_top - panel_h) / fig_h, panel_width / fig_w, panel_h / fig_h)
            row.append(fig.add_axes(rect))
        axes.append(row)
        if colourbar == "row":
            x = left + ncols * panel_width + (ncols - 1) * hgap + 0.12
            h = min(panel_h * 0.8, 2.5)
            y0 = y_top - panel_h / 2 - h / 2
            cbars.append(fig.add_axes((x / fig_w, y0 / fig_h, 0.12 / fig_w, h / fig_h)))
    if colourbar == "figure":
        x = left + ncols * panel_width + (ncols - 1) * hgap + 0.12
        grid_h = fig_h - top - 0.12
        h = min(grid_h * 0.7, 3.0)
        y0 = 0.12 + grid_h / 2 - h / 2
        cbars.append(fig.add_axes((x / fig_w, y0 / fig_h, 0.12 / fig_w, h / fig_h)))
    return PanelGrid(fig, axes, cbars)
