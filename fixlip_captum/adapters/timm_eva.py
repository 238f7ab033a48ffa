"""Token drop for timm ``Eva`` trunks: EVA01/EVA02-CLIP and PE-Core (rotary positions).

An ``Eva`` trunk adds rotary position embeddings (RoPE) inside every attention layer, to the
queries and keys of the patch tokens only (prefix tokens such as the class token are not
rotated). Dropping a patch token must therefore keep each kept patch's own rotary angles:
the trunk's rotary table ``[n_patches, d]`` (or ``[depth, heads, n_patches, d]`` for mixed
RoPE) is gathered at the kept patches, per coalition, and passed to every block. With every
patch kept this is the trunk's own forward pass.

Pooling after the blocks: the class token (``"token"``), the attention-pool head (PE-Core's
``"map"``, over the class token and the kept patches) or the average of the kept patch
tokens (``"avg"``; with no patch kept the average is taken to be the empty sum, zero).
"""

from __future__ import annotations

from typing import Any

import torch

from fixlip_captum.adapters.base import Tower
from fixlip_captum.adapters.masking import map_head_over_nothing

__all__ = ["TimmEvaTower", "is_timm_eva"]


def is_timm_eva(trunk: torch.nn.Module) -> bool:
    """True for a timm ``Eva`` trunk (EVA01, EVA02, PE-Core, ...)."""
    try:
        from timm.models.eva import Eva
    except ImportError:  # pragma: no cover - timm is optional for open_clip
        return False
    return isinstance(trunk, Eva)


def _int_pair(values: object) -> tuple[int, int]:
    first, second = (int(v) for v in values)  # type: ignore[attr-defined]
    return first, second


class TimmEvaTower:
    """open_clip ``TimmModel`` around a timm ``Eva`` trunk: embedding and token drop.

    Args:
        visual: The ``TimmModel`` (``visual.trunk`` an ``Eva``, ``visual.head`` the
            projection open_clip adds).

    Raises:
        TypeError: The trunk resizes its input dynamically or pools in a way not handled
            here (the message names the setting).
    """

    def __init__(self, visual: Any) -> None:
        trunk: Any = visual.trunk
        if getattr(trunk, "dynamic_img_size", False):
            raise TypeError(
                "Eva trunks with dynamic_img_size=True are not supported; build the model "
                "at a fixed image size."
            )
        pool = trunk.global_pool if trunk.attn_pool is None else "map"
        if pool not in ("token", "avg", "map"):
            raise TypeError(
                f"Eva trunk pooling {pool!r} is not supported; supported: 'token', 'avg', "
                "'map' (attention pool)."
            )
        if pool == "token" and int(trunk.num_prefix_tokens) == 0:
            raise TypeError("Eva trunk pools the class token but has none (class_token=False).")
        self.visual = visual
        self.trunk = trunk
        self.pool = pool
        self.grid = _int_pair(trunk.patch_embed.grid_size)
        self.patch = _int_pair(trunk.patch_embed.patch_size)
        self.size = _int_pair(trunk.patch_embed.img_size)
        self.channels = int(trunk.patch_embed.proj.in_channels)
        self.n_prefix = int(trunk.num_prefix_tokens)
        self.weight: torch.Tensor = trunk.patch_embed.proj.weight

    def embed(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[1, C, H, W]`` -> (tokens ``[1, prefix + n_patches, D]``, rotary table or None)."""
        t = self.trunk
        x = t.patch_embed(pixel_values)
        x, rope = t._pos_embed(x)  # eval mode: no patch dropout, rope not yet gathered
        return t.norm_pre(x), rope

    def forward_kept(
        self, embedded: tuple[torch.Tensor, torch.Tensor | None], kept: torch.Tensor
    ) -> torch.Tensor:
        """Features ``[g, D_out]`` of the rows of ``kept [g, k]`` (kept patch indices, the
        same count per row), prefix tokens always kept, each patch at its own position."""
        t: Any = self.trunk
        tokens, rope = embedded
        g, prefix = kept.shape[0], self.n_prefix
        index = torch.cat(
            [torch.arange(prefix, device=kept.device).expand(g, prefix), kept + prefix], dim=1
        )
        x = tokens[0][index]  # [g, prefix + k, D]
        mixed = bool(getattr(t, "rope_mixed", False)) and rope is not None
        if rope is None:
            ropes: list[torch.Tensor | None] = [None] * len(t.blocks)
        elif mixed:
            # [depth, heads, N, d] -> per block [g, heads, k, d]
            ropes = [r[:, kept].permute(1, 0, 2, 3) for r in rope]
        elif rope.ndim == 2:
            ropes = [rope[kept].unsqueeze(1)] * len(t.blocks)  # [g, 1, k, d]
        else:
            ropes = [rope[:, kept].permute(1, 0, 2, 3)] * len(t.blocks)  # [g, heads, k, d]
        for blk, r in zip(t.blocks, ropes, strict=True):
            x = blk(x, rope=r)
        x = t.norm(x)
        if self.pool == "map" and x.shape[1] == 0:
            x = map_head_over_nothing(t.attn_pool, g).to(x.dtype)
        elif self.pool == "map":
            x = t.attn_pool(x)
        elif self.pool == "token":
            x = x[:, 0]
        else:
            patches = x[:, prefix:]
            x = patches.sum(dim=1) / max(patches.shape[1], 1)
        x = t.head(t.head_drop(t.fc_norm(x)))
        return self.visual.head(x)

    def tower(self) -> Tower:
        """The blocks for the hidden-state baselines (exCLIP); no recomputable attention:
        an Eva block rotates queries and keys inside its own attention module."""
        return Tower(
            blocks=tuple(self.trunk.blocks),
            attention=(),
            batch_first=True,
            n_prefix=self.n_prefix,
            pool_position=0 if self.pool == "token" else None,
            why=(
                f"the image tower is a timm Eva trunk (rotary position embeddings inside "
                f"its attention, {self.pool!r} pooling): its attention maps are not "
                "recomputed from the block's weights, which Grad-ECLIP and GAME need."
            ),
        )
