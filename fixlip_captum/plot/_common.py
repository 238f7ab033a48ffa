"""Shared pieces of the figures: value extraction, colours, and the image-and-caption canvas.

Every figure in :mod:`fixlip_captum.plot` draws on one "canvas": an axes whose data
coordinates are the display image's pixels (``x`` to the right, ``y`` downwards), with the
caption laid out as token boxes below the image. Patches, tokens and the edges between them
then live in one coordinate system, so an edge from a patch to a word is a plain line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import BoxStyle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.textpath import TextToPath
from shapiq import InteractionValues

from fixlip_captum.interaction_values import (
    ExplanationContext,
    first_order_values,
    require_context,
)
from fixlip_captum.metrics._common import explanation_arrays

# The same red/blue as shapiq's plots, so our figures and the wrapped shapiq plots agree.
POSITIVE = "#ff0d57"
NEGATIVE = "#1e88e5"
GREY = (0.55, 0.55, 0.55)
VALUE_CMAP = LinearSegmentedColormap.from_list("fixlip_diverging", [NEGATIVE, "#ffffff", POSITIVE])

EDGE_KINDS = ("image-text", "image-image", "text-text")

# Display size used when the explanation carries no image (pixels along the longer side).
_BLANK_SIZE = 224

_TEXT_TO_PATH = TextToPath()


# --------------------------------------------------------------------------------------------
# values


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


def fmt(value: float | None) -> str:
    """Compact number format for labels and tables."""
    if value is None:
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.4g}"
    return f"{value:.2e}"


# --------------------------------------------------------------------------------------------
# image helpers


def display_image(ctx: ExplanationContext) -> np.ndarray | None:
    """The context image as ``[H, W, 3]`` float in ``[0, 1]`` (``None`` if absent)."""
    if ctx.image is None:
        return None
    img = np.asarray(ctx.image, dtype=float)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"context.image must be [H, W, 3] in [0, 1]; got shape {img.shape}.")
    if img.max() > 1.0 + 1e-6:
        raise ValueError("context.image must hold floats in [0, 1]; divide uint8 images by 255.")
    return np.clip(img[..., :3], 0.0, 1.0)


def image_extent(ctx: ExplanationContext) -> tuple[float, float]:
    """Width and height of the image area in canvas units (the image's pixels)."""
    img = display_image(ctx)
    if img is not None:
        return float(img.shape[1]), float(img.shape[0])
    rows, cols = ctx.patch_grid()
    scale = _BLANK_SIZE / max(rows, cols)
    return cols * scale, rows * scale


def patch_box(player: int, ctx: ExplanationContext) -> tuple[float, float, float, float]:
    """``(x0, y0, width, height)`` of an image player's cell in canvas units."""
    rows, cols = ctx.patch_grid()
    w, h = image_extent(ctx)
    pw, ph = w / cols, h / rows
    return (player % cols) * pw, (player // cols) * ph, pw, ph


def patch_thumbnails(ctx: ExplanationContext) -> list[np.ndarray]:
    """Every patch of the display image, ``[ph, pw, 3]`` each, in player order."""
    img = display_image(ctx)
    if img is None:
        raise ValueError("Patch thumbnails need context.image (the display image).")
    rows, cols = ctx.patch_grid()
    hs = np.linspace(0, img.shape[0], rows + 1).round().astype(int)
    ws = np.linspace(0, img.shape[1], cols + 1).round().astype(int)
    return [img[hs[r] : hs[r + 1], ws[c] : ws[c + 1]] for r in range(rows) for c in range(cols)]


def value_overlay(
    values: np.ndarray, grid: tuple[int, int], vmax: float, *, max_alpha: float = 0.85
) -> np.ndarray:
    """RGBA cells ``[rows, cols, 4]`` for a signed patch map.

    Positive cells are red, negative blue, with opacity ``max_alpha * |v| / vmax``, so a
    zero-valued patch leaves the image untouched and over white the cell shows exactly the
    colour the colour bar gives.
    """
    rows, cols = grid
    v = np.asarray(values, dtype=float).reshape(rows, cols)
    t = np.clip(np.abs(v) / vmax, 0.0, 1.0)
    rgba = np.zeros((rows, cols, 4))
    rgba[..., :3] = np.where(v[..., None] >= 0, to_rgb(POSITIVE), to_rgb(NEGATIVE))
    rgba[..., 3] = max_alpha * t
    return rgba


def value_colour(value: float, vmax: float) -> tuple[float, float, float, float]:
    return VALUE_CMAP(Normalize(-vmax, vmax)(value))


def text_colour_on(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on the given background."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


# --------------------------------------------------------------------------------------------
# canvas


@dataclass
class TokenBox:
    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass
class Canvas:
    """Geometry of one image-and-caption panel (canvas units = image pixels)."""

    ax: Axes
    ctx: ExplanationContext
    width: float
    height: float
    tokens: list[TokenBox]
    bottom: float
    fontsize: float

    def patch_centre(self, player: int) -> tuple[float, float]:
        x0, y0, pw, ph = patch_box(player, self.ctx)
        return x0 + pw / 2, y0 + ph / 2

    def anchor(self, player: int) -> tuple[float, float]:
        """Where an edge to ``player`` ends: the patch centre or the token box centre."""
        if player < self.ctx.n_image:
            return self.patch_centre(player)
        return self.tokens[player - self.ctx.n_image].centre


@lru_cache(maxsize=4096)
def _text_width_pt(label: str, fontsize: float) -> float:
    """Advance width of ``label`` in points (cached: layouts measure the same tokens often)."""
    if not label.strip():
        return fontsize * 0.6
    width, _, _ = _TEXT_TO_PATH.get_text_width_height_descent(
        label, FontProperties(size=fontsize), ismath=False
    )
    return float(width)


def _layout_tokens(
    labels: Sequence[str], width: float, top: float, pt_per_unit: float, fontsize: float
) -> tuple[list[TokenBox], float]:
    """Wrap token boxes into rows of at most ``width`` canvas units, starting at ``top``."""
    pad = 0.45 * fontsize / pt_per_unit
    gap = 0.35 * fontsize / pt_per_unit
    h = 1.7 * fontsize / pt_per_unit
    row_gap = 0.45 * fontsize / pt_per_unit
    boxes: list[TokenBox] = []
    x, y = 0.0, top
    for label in labels:
        w = _text_width_pt(label, fontsize) / pt_per_unit + 2 * pad
        if x > 0 and x + w > width:
            x, y = 0.0, y + h + row_gap
        boxes.append(TokenBox(x, y, w, h))
        x += w + gap
    bottom = (y + h) if labels else top
    # centre each row under the image
    rows: dict[float, list[TokenBox]] = {}
    for b in boxes:
        rows.setdefault(b.y, []).append(b)
    for row in rows.values():
        used = row[-1].x + row[-1].w
        shift = max(0.0, (width - used) / 2)
        for b in row:
            b.x += shift
    return boxes, bottom


def make_canvas(
    ax: Axes,
    ctx: ExplanationContext,
    *,
    fontsize: float = 10.0,
    show_caption: bool = True,
) -> Canvas:
    """Set up ``ax`` as an image-and-caption canvas and lay out the caption.

    Token boxes are measured in points and converted to canvas units with the axes' current
    size, so the caption wraps at the image width whatever the figure size.
    """
    width, height = image_extent(ctx)
    labels = token_labels(ctx) if show_caption else []
    fig = ax.figure
    if not isinstance(fig, Figure):
        raise TypeError(
            "Draw canvases into axes of a top-level matplotlib Figure; subfigures are not "
            "supported (the caption layout needs the axes' size in inches)."
        )
    fig_w, fig_h = fig.get_size_inches()
    pos = ax.get_position()
    box_w_pt, box_h_pt = pos.width * fig_w * 72, pos.height * fig_h * 72
    # equal aspect: the axes shrink to whichever of width/height binds; iterate since the
    # caption's height depends on the scale and the scale on the caption's height.
    pt_per_unit = box_w_pt / width
    tokens: list[TokenBox] = []
    bottom = height
    for _ in range(4):
        top = height + 0.6 * fontsize / pt_per_unit
        tokens, bottom = _layout_tokens(labels, width, top, pt_per_unit, fontsize)
        total_h = bottom + 0.3 * fontsize / pt_per_unit
        new = min(box_w_pt / width, box_h_pt / total_h)
        if abs(new - pt_per_unit) < 1e-3 * pt_per_unit:
            break
        pt_per_unit = new
    ax.set_xlim(0, width)
    ax.set_ylim(bottom + 0.3 * fontsize / pt_per_unit, 0)
    ax.set_aspect("equal", adjustable="box")
    ax.set_axis_off()
    return Canvas(ax, ctx, width, height, tokens, bottom, fontsize)


def canvas_height_ratio(ctx: ExplanationContext, width_in: float, fontsize: float = 10.0) -> float:
    """Height/width ratio a canvas needs at ``width_in`` inches wide (for sizing figures)."""
    width, height = image_extent(ctx)
    pt_per_unit = width_in * 72 / width
    top = height + 0.6 * fontsize / pt_per_unit
    _, bottom = _layout_tokens(token_labels(ctx), width, top, pt_per_unit, fontsize)
    return (bottom + 0.3 * fontsize / pt_per_unit) / width


def draw_image(canvas: Canvas, *, fade: float = 0.0) -> None:
    """Draw the display image (or a light grey field), optionally faded towards white."""
    img = display_image(canvas.ctx)
    extent = (0, canvas.width, canvas.height, 0)
    if img is None:
        canvas.ax.add_patch(
            Rectangle((0, 0), canvas.width, canvas.height, facecolor="0.93", edgecolor="none")
        )
        return
    if fade > 0:
        img = img * (1 - fade) + fade
    canvas.ax.imshow(img, extent=extent, interpolation="bilinear", zorder=0)


def draw_patch_values(canvas: Canvas, values: np.ndarray, vmax: float) -> None:
    """Signed heat map over the image: one uniform cell per patch."""
    rgba = value_overlay(values, canvas.ctx.patch_grid(), vmax)
    canvas.ax.imshow(
        rgba, extent=(0, canvas.width, canvas.height, 0), interpolation="nearest", zorder=1
    )


def draw_grid_lines(canvas: Canvas, *, alpha: float | None = None) -> None:
    """Faint patch borders (fainter the more patches there are)."""
    rows, cols = canvas.ctx.patch_grid()
    if alpha is None:
        alpha = 0.35 if rows * cols <= 100 else 0.15
    xs = np.linspace(0, canvas.width, cols + 1)
    ys = np.linspace(0, canvas.height, rows + 1)
    canvas.ax.vlines(xs[1:-1], 0, canvas.height, color="white", lw=0.5, alpha=alpha, zorder=2)
    canvas.ax.hlines(ys[1:-1], 0, canvas.width, color="white", lw=0.5, alpha=alpha, zorder=2)


def draw_tokens(
    canvas: Canvas,
    values: np.ndarray | None,
    vmax: float,
    *,
    active: np.ndarray | None = None,
) -> None:
    """Token boxes coloured by value; ``active=False`` tokens are drawn greyed out."""
    labels = token_labels(canvas.ctx)
    boxes, faces, edges = [], [], []
    for j, (box, label) in enumerate(zip(canvas.tokens, labels, strict=True)):
        if active is not None and not active[j]:
            face, colour, edge = (0.93, 0.93, 0.93, 1.0), "0.65", "0.85"
        elif values is None:
            face, colour, edge = (1, 1, 1, 1), "black", "0.3"
        else:
            face = value_colour(float(values[j]), vmax)
            colour, edge = text_colour_on(face), "0.6"
        boxes.append(
            BoxStyle.Round(pad=0, rounding_size=box.h * 0.2)(box.x, box.y, box.w, box.h, 1.0)
        )
        faces.append(face)
        edges.append(edge)
        canvas.ax.text(
            *box.centre,
            label,
            ha="center",
            va="center_baseline",
            fontsize=canvas.fontsize,
            color=colour,
            zorder=8,
        )
    # one collection of plain paths instead of one patch artist per token keeps 20-panel
    # grids fast
    canvas.ax.add_collection(
        PathCollection(
            boxes,
            facecolors=faces,
            edgecolors=edges,
            linewidths=0.6,
            zorder=7,
            transform=canvas.ax.transData,
        ),
        autolim=False,
    )


def outline_player(
    canvas: Canvas, player: int, *, colour: str = "#111111", lw: float = 2.2
) -> None:
    """Outline a patch cell or a token box."""
    ctx = canvas.ctx
    rect: Patch
    if player < ctx.n_image:
        x0, y0, pw, ph = patch_box(player, ctx)
        rect = Rectangle((x0, y0), pw, ph, fill=False, edgecolor=colour, lw=lw, zorder=9)
    else:
        b = canvas.tokens[player - ctx.n_image]
        rect = FancyBboxPatch(
            (b.x, b.y),
            b.w,
            b.h,
            boxstyle=f"round,pad={b.h * 0.08},rounding_size={b.h * 0.25}",
            fill=False,
            edgecolor=colour,
            lw=lw,
            zorder=9,
        )
    rect.set_path_effects([patheffects.withStroke(linewidth=lw + 2, foreground="white")])
    canvas.ax.add_patch(rect)


def grey_out(canvas: Canvas, keep: np.ndarray) -> None:
    """Cover the image players with ``keep[i] == False`` by an opaque grey."""
    rows, cols = canvas.ctx.patch_grid()
    rgba = np.zeros((rows, cols, 4))
    rgba[..., :3] = 0.82
    rgba[..., 3] = np.where(np.asarray(keep[: rows * cols]).reshape(rows, cols), 0.0, 0.92)
    canvas.ax.imshow(
        rgba, extent=(0, canvas.width, canvas.height, 0), interpolation="nearest", zorder=1
    )


def draw_edges(
    canvas: Canvas,
    pairs: Sequence[tuple[int, int, float]],
    vmax: float,
    *,
    max_width: float | None = None,
) -> None:
    """Draw pair terms as edges: width and opacity by ``|value| / vmax``, colour by sign.

    Patch-word edges are straight lines; patch-patch and word-word edges are arcs so that
    neighbours stay visible.
    """
    ctx = canvas.ctx
    if max_width is None:
        max_width = 4.0 if ctx.n_image <= 100 else 3.0
    # draw weak edges first so strong ones stay on top
    for i, j, v in sorted(pairs, key=lambda t: abs(t[2])):
        t = min(1.0, abs(v) / vmax)
        colour = POSITIVE if v > 0 else NEGATIVE
        kind = pair_kind(i, j, ctx.n_image)
        if kind == "image-text":
            a = canvas.patch_centre(min(i, j))
            b = canvas.anchor(max(i, j))
            style = "arc3,rad=0.0"
        elif kind == "image-image":
            a, b = canvas.patch_centre(i), canvas.patch_centre(j)
            style = "arc3,rad=0.35"
        else:
            bi, bj = canvas.tokens[i - ctx.n_image], canvas.tokens[j - ctx.n_image]
            a = (bi.x + bi.w / 2, bi.y + bi.h)
            b = (bj.x + bj.w / 2, bj.y + bj.h)
            style = "arc3,rad=0.45" if a[0] < b[0] else "arc3,rad=-0.45"
        lw = 0.6 + (max_width - 0.6) * t
        arrow = FancyArrowPatch(
            a,
            b,
            arrowstyle="-",
            connectionstyle=style,
            color=colour,
            lw=lw,
            alpha=0.35 + 0.6 * t,
            zorder=5,
            shrinkA=0,
            shrinkB=0,
        )
        arrow.set_path_effects(
            [patheffects.withStroke(linewidth=lw + 1.5, foreground="white", alpha=0.7)]
        )
        canvas.ax.add_patch(arrow)
        # dots mark patch ends; token ends tuck under the token boxes (drawn above edges)
        for player, end in ((i, a), (j, b)) if kind != "image-text" else ((min(i, j), a),):
            if player < ctx.n_image:
                canvas.ax.plot(
                    *end, "o", ms=2.5 + 2 * t, color=colour, mec="white", mew=0.6, zorder=5
                )


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


def describe(iv: InteractionValues) -> str:
    """Short name of the explanation, e.g. ``"FWBII p=0.5"``."""
    p = getattr(iv, "p", None)
    name = str(iv.index)
    return f"{name} p={p:g}" if p is not None else name


def edge_summary(pairs: Sequence[tuple[int, int, float]], kinds: Sequence[str]) -> str:
    """One line saying which edges are drawn and their extreme values."""
    if not pairs:
        return "no interactions drawn"
    pos = [v for _, _, v in pairs if v > 0]
    neg = [v for _, _, v in pairs if v < 0]
    kind = "all" if len(kinds) == len(EDGE_KINDS) else "/".join(kinds)
    parts = [f"edges: top {len(pairs)} {kind}"]
    if pos:
        parts.append(f"max +{fmt(max(pos))}")
    if neg:
        parts.append(f"min {fmt(min(neg))}")
    return ", ".join(parts)
