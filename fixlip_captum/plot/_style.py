"""Colours of the figures: the diverging red/blue value scale shared by every plot."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, Normalize, to_rgb

# The same red/blue as shapiq's plots, so our figures and the wrapped shapiq plots agree.
POSITIVE = "#ff0d57"
NEGATIVE = "#1e88e5"
GREY = (0.55, 0.55, 0.55)
VALUE_CMAP = LinearSegmentedColormap.from_list("fixlip_diverging", [NEGATIVE, "#ffffff", POSITIVE])


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
