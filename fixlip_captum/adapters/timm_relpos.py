"""Token drop for timm ``VisionTransformerRelPos`` trunks (``vit_relpos_*``).

A relative-position ViT has no position embedding on its tokens: every attention layer adds
a bias ``[heads, N, N]`` that depends on where the query and the key sit on the patch grid
(and whether either is the class token). The bias comes from the block's own ``rel_pos``
module (an MLP over log-spaced coordinates, or a learned table indexed by relative offset),
or from one module the trunk shares across blocks.

Dropping a patch token removes it from the sequence; each kept token keeps its own
position, so the bias of a kept (query, key) pair is the entry of the full bias at their
original positions: the full bias is gathered at ``prefix + kept`` rows and columns, per
coalition, and every block attends with that. With every patch kept this is the trunk's own
forward pass.

Pooling after the blocks: the class token (``"token"``) or the average of the kept patch
tokens (``"avg"``; with no patch kept the average is taken to be the empty sum, zero).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from fixlip_captum.adapters.base import Tower, UnsupportedModelError
from fixlip_captum.adapters.masking import empty_mean_pool

__all__ = ["TimmRelPosTower", "gather_bias", "is_timm_relpos"]


def is_timm_relpos(trunk: torch.nn.Module) -> bool:
    """True for a timm ``VisionTransformerRelPos`` trunk."""
    try:
        from timm.models.vision_transformer_relpos import VisionTransformerRelPos
    except ImportError:  # pragma: no cover - timm is optional for open_clip
        return False
    return isinstance(trunk, VisionTransformerRelPos)


def gather_bias(bias: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The attention bias of the kept tokens.

    Args:
        bias: ``[1, heads, N, N]``, the bias over the whole sequence (prefix tokens first).
        index: ``[g, n]`` long, each row the sequence positions kept (increasing).

    Returns:
        ``[g, heads, n, n]`` with ``out[b, h, i, j] = bias[0, h, index[b, i], index[b, j]]``.
    """
    full = bias[0]  # [heads, N, N]
    return full[:, index[:, :, None], index[:, None, :]].permute(1, 0, 2, 3)


class _GatheredRelPos(torch.nn.Module):
    """Stands in for a block's ``rel_pos`` module while kept tokens go through the block:
    the same bias, gathered at the kept positions (timm calls ``get_bias()`` on the fused
    attention path and ``rel_pos(attn)`` on the other)."""

    def __init__(self, bias: torch.Tensor) -> None:
        super().__init__()
        self.bias = bias

    def get_bias(self) -> torch.Tensor:
        return self.bias

    def forward(self, attn: torch.Tensor, shared_rel_pos: torch.Tensor | None = None) -> Any:
        return attn + self.bias


@contextlib.contextmanager
def _rel_pos_replaced(attn: torch.nn.Module, bias: torch.Tensor) -> Iterator[None]:
    original = attn.rel_pos
    attn.rel_pos = _GatheredRelPos(bias)
    try:
        yield
    finally:
        attn.rel_pos = original


class TimmRelPosTower:
    """open_clip ``TimmModel`` around a timm ``VisionTransformerRelPos``: embedding and
    token drop with the relative position bias gathered at the kept tokens.

    Args:
        visual: The ``TimmModel`` (``visual.trunk`` a ``VisionTransformerRelPos``,
            ``visual.head`` the projection open_clip adds).

    Raises:
        UnsupportedModelError: The trunk embeds patches without one patchifying ``Conv2d``,
            or returns the token sequence unpooled (``global_pool=""``).
    """

    def __init__(self, visual: Any) -> None:
        trunk: Any = visual.trunk
        proj = getattr(trunk.patch_embed, "proj", None)
        if not isinstance(proj, torch.nn.Conv2d):
            raise UnsupportedModelError(
                f"the timm {type(trunk).__name__} trunk embeds patches with "
                f"{type(trunk.patch_embed).__name__} (proj: {type(proj).__name__}), not one "
                "patchifying Conv2d, so its patches cannot be masked as tokens."
            )
        if trunk.global_pool not in ("token", "avg"):
            raise UnsupportedModelError(
                f"the timm {type(trunk).__name__} trunk pools with global_pool="
                f"{trunk.global_pool!r}; supported: 'token' (class token) and 'avg'."
            )
        self.visual = visual
        self.trunk = trunk
        self.pool = str(trunk.global_pool)
        self.grid = _int_pair(trunk.patch_embed.grid_size)
        self.patch = _int_pair(trunk.patch_embed.patch_size)
        self.size = _int_pair(trunk.patch_embed.img_size)
        self.channels = int(proj.in_channels)
        self.n_prefix = int(trunk.num_prefix_tokens)
        self.weight: torch.Tensor = proj.weight

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[1, C, H, W]`` -> tokens ``[1, prefix + n_patches, D]`` (class token first)."""
        t = self.trunk
        x = t.patch_embed(pixel_values)
        if t.cls_token is not None:
            x = torch.cat((t.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x

    def forward_kept(self, tokens: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        """Features ``[g, D_out]`` of the rows of ``kept [g, k]`` (kept patch indices, the
        same count per row), prefix tokens always kept, each at its own grid position."""
        t: Any = self.trunk
        g, prefix = kept.shape[0], self.n_prefix
        index = torch.cat(
            [torch.arange(prefix, device=kept.device).expand(g, prefix), kept + prefix], dim=1
        )
        x = tokens[0][index]  # [g, prefix + k, D]
        shared = None
        if t.shared_rel_pos is not None:
            shared = gather_bias(t.shared_rel_pos.get_bias(), index).to(x.dtype)
        for blk in t.blocks:
            rel_pos = blk.attn.rel_pos
            if rel_pos is None:
                x = blk(x, shared_rel_pos=shared)
                continue
            with _rel_pos_replaced(blk.attn, gather_bias(rel_pos.get_bias(), index).to(x.dtype)):
                x = blk(x, shared_rel_pos=shared)
        x = t.norm(x)
        if self.pool == "avg" and x.shape[1] == prefix:
            x = t.head(t.head_drop(t.fc_norm(empty_mean_pool(x[:, prefix:]))))
        else:
            x = t.forward_head(x)
        return self.visual.head(x)

    def tower(self) -> Tower:
        """The blocks for the hidden-state baselines (exCLIP); no recomputable attention:
        the relative position bias is added inside timm's attention module."""
        return Tower(
            blocks=tuple(self.trunk.blocks),
            attention=(),
            batch_first=True,
            n_prefix=self.n_prefix,
            pool_position=0 if self.pool == "token" else None,
            why=(
                f"the image tower is a timm VisionTransformerRelPos trunk (relative position "
                f"bias inside its attention, {self.pool!r} pooling): its attention maps are "
                "not recomputed from the block's weights, which Grad-ECLIP and GAME need."
            ),
        )


def _int_pair(values: object) -> tuple[int, int]:
    first, second = (int(v) for v in values)  # type: ignore[attr-defined]
    return first, second
