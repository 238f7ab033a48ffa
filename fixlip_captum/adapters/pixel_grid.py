"""Image players as the cells of a grid over the pixels.

A convolutional or hybrid image tower (ResNet, ConvNeXt, FastViT / MobileCLIP, Swin,
EfficientNet, ViTamin) has no token per patch, so its image players are the cells of a grid
laid over the input pixels, and a masked cell is set to the dataset's mean colour, i.e. to 0
in normalised pixel space (the FIxLIP paper's masking, in pixels). The model's own
``encode_image`` runs on the masked image, so this value function is exact for any tower.

Default grid: the tower's output-stride grid, ``round(H / 32) x round(W / 32)``, which is
the final feature map of every stride-32 network (7 x 7 at 224 px, 8 x 8 at 256 px,
10 x 10 at 320 px). A ViT keeps its patch grid by default. Any tower takes
``image_grid=(rows, cols)``; on a ViT each cell is then a union of whole patches, so token
drop stays available.

Cells split the pixels (or the patches) as evenly as integers allow: cell row ``r`` covers
pixel rows ``y`` with ``y * rows // H == r``, so every pixel belongs to exactly one cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "OUTPUT_STRIDE",
    "PlayerGrid",
    "check_image_grid",
    "default_pixel_grid",
    "even_split",
]

OUTPUT_STRIDE = 32


def default_pixel_grid(image_size: tuple[int, int]) -> tuple[int, int]:
    """The output-stride grid ``(round(H / 32), round(W / 32))`` (at least 1 x 1)."""
    h, w = image_size
    return max(1, round(h / OUTPUT_STRIDE)), max(1, round(w / OUTPUT_STRIDE))


def check_image_grid(image_grid: object, limit: tuple[int, int], unit: str) -> tuple[int, int]:
    """Validate a user's ``image_grid=(rows, cols)`` against the finest grid allowed.

    Args:
        image_grid: What the user passed: a pair of positive ints.
        limit: ``(rows, cols)`` upper bound (the patch grid of a ViT, the pixel size of a
            convolutional tower).
        unit: What one step of ``limit`` is (``"patches"``, ``"pixels"``), for the message.

    Returns:
        ``(rows, cols)`` as ints.

    Raises:
        ValueError: Not a pair of positive ints, or finer than ``limit``.
    """
    if not isinstance(image_grid, Sequence) or isinstance(image_grid, str) or len(image_grid) != 2:
        raise ValueError(f"image_grid must be a pair (rows, cols) of ints, got {image_grid!r}.")
    try:
        rows, cols = (int(v) for v in image_grid)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"image_grid must be a pair (rows, cols) of ints, got {image_grid!r}."
        ) from err
    if (rows, cols) != tuple(image_grid) or rows < 1 or cols < 1:
        raise ValueError(f"image_grid must be a pair of positive ints, got {image_grid!r}.")
    if rows > limit[0] or cols > limit[1]:
        raise ValueError(
            f"image_grid {rows} x {cols} is finer than the tower allows ({limit[0]} x "
            f"{limit[1]} {unit}); choose at most that many rows and columns."
        )
    return rows, cols


def even_split(n: int, parts: int) -> torch.Tensor:
    """``[n]`` long: which of ``parts`` contiguous, near-equal runs each of ``n`` items is in."""
    return torch.arange(n) * parts // n


@dataclass(frozen=True)
class PlayerGrid:
    """Which image player owns which pixel and (for token towers) which patch.

    Attributes:
        grid: ``(rows, cols)`` of image players, row-major.
        pixel_owner: ``[H, W]`` long, the player owning each pixel; ``-1`` for pixels no
            player covers (those beyond the last full patch of a ViT, which its patchifying
            convolution ignores).
        patch_owner: ``[n_patches]`` long, the player owning each patch of a token tower
            (row-major patches); ``None`` for a tower without patch tokens.
    """

    grid: tuple[int, int]
    pixel_owner: torch.Tensor
    patch_owner: torch.Tensor | None

    @property
    def n_players(self) -> int:
        return self.grid[0] * self.grid[1]

    @classmethod
    def over_pixels(cls, grid: tuple[int, int], image_size: tuple[int, int]) -> PlayerGrid:
        """Cells of an even ``grid`` over all pixels (a tower without patch tokens)."""
        (rows, cols), (h, w) = grid, image_size
        owner = even_split(h, rows)[:, None] * cols + even_split(w, cols)[None, :]
        return cls(grid, owner, None)

    @classmethod
    def over_patches(
        cls,
        grid: tuple[int, int],
        patch_grid: tuple[int, int],
        image_size: tuple[int, int],
        patch_size: tuple[int, int],
    ) -> PlayerGrid:
        """Cells of an even ``grid`` over a ViT's ``patch_grid`` (a cell = whole patches).

        Patches tile the image from the top-left corner with stride ``patch_size``; pixels
        beyond the last full patch belong to no player (``-1``).
        """
        (rows, cols), (pr, pc), (h, w) = grid, patch_grid, image_size
        patch_owner = (
            even_split(pr, rows)[:, None] * cols + even_split(pc, cols)[None, :]
        ).flatten()
        r = torch.arange(h) // patch_size[0]
        c = torch.arange(w) // patch_size[1]
        outside = (r >= pr)[:, None] | (c >= pc)[None, :]
        patch_id = r.clamp(max=pr - 1)[:, None] * pc + c.clamp(max=pc - 1)[None, :]
        pixel_owner = patch_owner[patch_id].masked_fill(outside, -1)
        return cls(grid, pixel_owner, patch_owner)

    def pixel_keep(self, coalitions: torch.Tensor) -> torch.Tensor:
        """``[m, n_players]`` bool -> ``[m, 1, H, W]`` float: 0 on the pixels of masked
        players, 1 elsewhere (pixels no player covers keep 1)."""
        owner = self.pixel_owner.to(coalitions.device)
        keep = torch.ones(coalitions.shape[0], *owner.shape, device=coalitions.device)
        inside = owner >= 0
        keep[:, inside] = coalitions[:, owner[inside]].float()
        return keep.unsqueeze(1)

    def patch_coalitions(self, coalitions: torch.Tensor) -> torch.Tensor:
        """``[m, n_players]`` bool -> ``[m, n_patches]`` bool: a patch is kept with its cell.

        Raises:
            ValueError: The tower has no patch tokens.
        """
        if self.patch_owner is None:
            raise ValueError("this image tower has no patch tokens to keep or drop.")
        return coalitions[:, self.patch_owner.to(coalitions.device)]
