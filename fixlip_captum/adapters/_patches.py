"""Which image player owns which pixel (shared by adapters and attribution maps)."""

from __future__ import annotations

import torch

__all__ = ["pixel_player_map"]


def pixel_player_map(
    grid: tuple[int, int],
    image_size: tuple[int, int],
    patch_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """``[H, W]`` long: the image player (row-major patch id) owning each pixel.

    Patches tile the image from the top-left corner; pixels beyond the last full patch
    (which a patchifying convolution ignores) get ``-1``.

    Args:
        grid: Patch grid ``(rows, cols)``.
        image_size: Model input ``(H, W)`` in pixels.
        patch_size: ``(height, width)`` of one patch, the patchifying stride. ``None`` takes
            ``(H // rows, W // cols)``, which is the stride whenever the pixels left over
            are fewer than the patches in that direction (true of the published models);
            an adapter's own ``pixel_player_map()`` always passes its stride.
    """
    (rows, cols), (h, w) = grid, image_size
    ph, pw = (h // rows, w // cols) if patch_size is None else patch_size
    r = torch.arange(h) // ph
    c = torch.arange(w) // pw
    ids = r[:, None] * cols + c[None, :]
    outside = (r >= rows)[:, None] | (c >= cols)[None, :]
    return ids.masked_fill(outside, -1)
