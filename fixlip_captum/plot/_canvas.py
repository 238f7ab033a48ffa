"""The image-and-caption canvas every figure in :mod:`fixlip_captum.plot` draws on.

A canvas is an axes whose data coordinates are the display image's pixels (``x`` to the
right, ``y`` downwards), with the caption laid out as token boxes below the image. Patches,
tokens and the edges between them then live in one coordinate system, so an edge from a
patch to a word is a plain line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import BoxStyle, FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.textpath import TextToPath

from fixlip_captum.interaction_values import (
    ExplanationContext,
)
from fixlip_captum.plot._style import (
    NEGATIVE,
    POSITIVE,
    text_colour_on,
    value_colour,
    value_overlay,
)
from fixlip_captum.plot._values import pair_kind, token_labels

# Display size used when the explanation carries no image (pixels along the longer side).
_BLANK_SIZE = 224

_TEXT_TO_PATH = TextToPath()


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
