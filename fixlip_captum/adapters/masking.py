"""Masking helpers every model family uses: coalition checks, token-drop grouping, pixel
ownership, and the pooled output of a tower that keeps no patch token.

Only torch is imported here, so the open_clip family does not pull in transformers and
vice versa.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_coalitions",
    "empty_mean_pool",
    "kept_count_groups",
    "map_head_over_nothing",
    "pixel_player_map",
]


def check_coalitions(
    coalitions: Any, n_players: int, what: str, device: torch.device | str
) -> torch.Tensor:
    """Validate ``coalitions [m, n_players]`` (bool) and move them to ``device``.

    Args:
        coalitions: ``[m, n_players]`` bool tensor (or array-like of bools), True = player
            kept, or ``None`` for one coalition that keeps everyone.
        n_players: Number of players of this modality.
        what: ``"image"`` or ``"text"``, for the error message.
        device: Where the result lives.

    Returns:
        ``[m, n_players]`` bool on ``device``.

    Raises:
        TypeError: The coalitions are not boolean.
        ValueError: The shape is not ``[m, n_players]``.
    """
    if coalitions is None:
        return torch.ones(1, n_players, dtype=torch.bool, device=device)
    if not isinstance(coalitions, torch.Tensor):
        coalitions = torch.as_tensor(np.asarray(coalitions))
    if coalitions.dtype != torch.bool:
        raise TypeError(
            f"{what} coalitions must be a torch.bool tensor [m, {n_players}] (True = player "
            f"kept), got dtype {coalitions.dtype}; use coalitions.bool()"
        )
    if coalitions.ndim != 2 or coalitions.shape[1] != n_players:
        raise ValueError(
            f"{what} coalitions must have shape [m, {n_players}] (one column per {what} "
            f"player), got {tuple(coalitions.shape)}"
        )
    return coalitions.to(device)


def kept_count_groups(coalitions: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Group coalitions by how many players they keep (token drop needs equal lengths).

    Grouping depends only on each row itself, so the embedding of a coalition does not
    depend on which other coalitions share its call.

    Args:
        coalitions: ``[m, n]`` bool.

    Yields:
        ``(rows [g], kept [g, k])``: row indices into ``coalitions`` and, per row, the kept
        player indices in increasing order (row-major patch order is preserved).
    """
    counts = coalitions.sum(dim=1)
    for k in torch.unique(counts).tolist():
        rows = torch.nonzero(counts == k).flatten()
        # Stable sort of ~mask puts the kept indices first, in increasing order.
        order = torch.argsort((~coalitions[rows]).to(torch.int8), dim=1, stable=True)
        yield rows, order[:, :k]


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


def empty_mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    """Average pooling over the patch tokens of ``tokens [B, k, D]`` that is defined for
    ``k = 0``: the mean of no token is taken to be the empty sum, zero (the same rule as
    :func:`map_head_over_nothing` for attention pooling), so token drop of every patch gives
    a finite embedding instead of NaN.

    Returns:
        ``[B, D]``.
    """
    if tokens.shape[1] == 0:
        return tokens.new_zeros(tokens.shape[0], tokens.shape[2])
    return tokens.mean(dim=1)


def map_head_over_nothing(head: torch.nn.Module, batch: int) -> torch.Tensor:
    """Output of a SigLIP attention-pooling (MAP) head when no patch token is left.

    Attention over an empty key set has no defined weights; we take the attended value to be
    the empty sum (zero), so the attention block returns only its output-projection bias and
    the head's residual MLP runs on that. This defines v(empty) for token drop; it is
    batch-independent and finite (a softmax over no keys would give NaN).

    Args:
        head: A transformers ``SiglipMultiheadAttentionPoolingHead`` /
            ``Siglip2MultiheadAttentionPoolingHead`` (``attention`` an
            ``nn.MultiheadAttention``, ``layernorm``, ``mlp``) or a timm
            ``AttentionPoolLatent`` (``proj``, ``norm``, ``mlp`` or ``None``).
        batch: Number of rows to return.

    Returns:
        ``[batch, hidden]`` pooled features (before any projection).
    """
    attention = getattr(head, "attention", None)
    out_proj: torch.nn.Linear
    if isinstance(attention, torch.nn.MultiheadAttention):
        out_proj, norm, mlp = attention.out_proj, head.layernorm, head.mlp
    elif isinstance(head.proj, torch.nn.Linear):
        out_proj, norm, mlp = head.proj, head.norm, head.mlp
    else:
        raise TypeError(
            f"cannot evaluate the attention-pooling head {type(head).__name__} with no token "
            "left: expected an nn.MultiheadAttention `attention` or an nn.Linear `proj`"
        )
    hidden = out_proj.weight.shape[0]
    if out_proj.bias is None:
        x = out_proj.weight.new_zeros(batch, 1, hidden)
    else:
        x = out_proj.bias.expand(batch, 1, hidden)
    if mlp is not None:
        x = x + mlp(norm(x))
    # Every latent query of a multi-latent head gets this same row, so token and mean
    # pooling over latents agree.
    return x[:, 0]
