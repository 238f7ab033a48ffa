"""Which image player owns which pixel (shared by adapters and attribution maps)."""

from __future__ import annotations

import torch

__all__ = ["pixel_player_map"]


def pixel_player_map(grid: tuple[int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """``[H, W]`` long: the image player (row-major patch id) owning each pixel.

    Patches are ``H // rows`` x ``W // cols`` pixels from the top-left corner; pixels beyond
    the last full patch (which a patchifying convolution ignores) get ``-1``.

    Args:
        grid: Patch grid ``(rows, cols)``.
        image_size: Model input ``(H, W)`` in pixels.
    """
    (rows, cols), (h, w) = grid, image_size
    ph, pw = h // rows, w // cols
    r = torch.arange(h) // ph
    c = torch.arange(w) // pw
    ids = r[:, None] * cols + c[None, :]
    outside = (r >= rows)[:, None] | (c >= cols)[None, :]
    return ids.masked_fill(outside, -1)
