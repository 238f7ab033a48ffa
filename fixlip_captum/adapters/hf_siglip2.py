"""Adapter for transformers ``Siglip2Model`` (NaFlex: patchified pixels, native patch mask)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import Siglip2Model

from fixlip_captum.adapters.hf_dual_encoder import HFDualEncoderAdapter, isqrt_grid, pooled_output
from fixlip_captum.adapters.masking import map_head_over_nothing

__all__ = ["HFSiglip2Adapter"]


class HFSiglip2Adapter(HFDualEncoderAdapter):
    """Masked encoding for a transformers :class:`~transformers.Siglip2Model`.

    SigLIP2 takes patchified pixels ``[B, P, C*p*p]`` with ``pixel_attention_mask [B, P]``
    and ``spatial_shapes [B, 2]``, and resizes its position embeddings to any grid. A PIL
    image follows the processor's own layout: the processor keeps the aspect ratio and picks
    a ``rows x cols`` grid of at most ``max_num_patches`` patches (``spatial_shapes``); the
    adapter's canonical image is then ``[1, C, rows*p, cols*p]`` (the processor's unpadded
    patches), so ``v_full`` is the model's logit on ``processor(images=image)`` for any
    aspect ratio, and the players are that grid (:meth:`patch_grid_of`). A tensor may have
    any whole number of patches per side; :attr:`patch_grid` is the square grid used when
    no image is given.

    Players: the image patches (row-major), then the caption's tokens (everything but
    start, end and padding; the last position, which SigLIP2 pools, is never a player).

    Image masking:

    * ``"mean"``: the masked patches' pixel rows are set to 0 (normalised pixel space, the
      dataset mean colour); every patch stays attended.
    * ``"drop"``: the masked patches get ``pixel_attention_mask`` 0, which SigLIP2 applies
      in every encoder layer and in its attention-pooling head, so their content has no
      effect (the same as removing the tokens). With no patch kept the head attends to
      nothing and its attention output is taken as zero (see ``map_head_over_nothing``).

    Text masking and similarity are as for SigLIP: ``attention_mask`` 0 on masked tokens;
    ``"logit"`` = ``exp(logit_scale) * cos + logit_bias``, or ``"cosine"``.

    Args:
        model: A ``Siglip2Model`` (from ``from_pretrained`` or built from a
            ``Siglip2Config``).
        tokenizer_or_processor: The model's ``Siglip2Processor`` (needed for PIL images and
            caption strings), its tokenizer (caption strings), or ``None`` (token ids and
            preprocessed tensors only).
        max_num_patches: Patch budget of the processor (and of the square default grid);
            default: the image processor's ``max_num_patches``, else
            ``config.vision_config.num_patches``.
    """

    model: Siglip2Model
    _model_types = (Siglip2Model,)
    _pools_last = True

    def __init__(
        self,
        model: Siglip2Model,
        tokenizer_or_processor: Any = None,
        *,
        max_num_patches: int | None = None,
    ) -> None:
        super().__init__(model, tokenizer_or_processor)
        if not getattr(model.vision_model, "use_head", False):
            raise ValueError(
                "this Siglip2Model's vision tower has no pooling head (vision_use_head=False), "
                "so it produces no image embedding"
            )
        if max_num_patches is None:
            max_num_patches = getattr(self.image_processor, "max_num_patches", None)
        if max_num_patches is None:
            max_num_patches = self.vision_config.num_patches
        if int(max_num_patches) < 1:
            raise ValueError(f"max_num_patches must be >= 1, got {max_num_patches}")
        self._max_num_patches = int(max_num_patches)
        side = isqrt_grid(max_num_patches)
        self._grid = (side, side)

    @property
    def patch_grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def image_size(self) -> tuple[int, int]:
        (rows, cols), (ph, pw) = self._grid, self.patch_size
        return rows * ph, cols * pw

    def patch_grid_of(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """The grid of one canonical image ``[1, C, rows*p, cols*p]``: ``(rows, cols)``."""
        (h, w), (ph, pw) = pixel_values.shape[-2:], self.patch_size
        return int(h) // ph, int(w) // pw

    def _check_size(self, h: int, w: int) -> None:
        ph, pw = self.patch_size
        if h % ph or w % pw or h < ph or w < pw:
            raise ValueError(
                f"a SigLIP2 image tensor must be [1, C, rows*{ph}, cols*{pw}] (whole patches), "
                f"got {h}x{w}; pass a PIL image together with the model's processor"
            )

    def _processor_pixels(self, image: Any) -> torch.Tensor:
        """The processor's own layout: it resizes keeping the aspect ratio to a
        ``rows x cols`` grid of at most ``max_num_patches`` patches (``spatial_shapes``) and
        pads; the unpadded patches become the canonical ``[1, C, rows*p, cols*p]``."""
        processor = self._require_image_processor()
        out = processor(
            images=image,
            patch_size=self.patch_size[0],
            max_num_patches=self._max_num_patches,
            return_tensors="pt",
        )
        rows, cols = (int(v) for v in out["spatial_shapes"][0].tolist())
        n = rows * cols
        kept = int(out["pixel_attention_mask"][0].sum())
        if kept != n:
            raise RuntimeError(
                f"the processor's pixel_attention_mask keeps {kept} patches for a "
                f"{rows} x {cols} grid"
            )
        return self.unpatchify(out["pixel_values"][:, :n], (rows, cols))

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, C, rows*p, cols*p]`` -> ``[B, rows*cols, p*p*C]`` in the processor's layout
        (patches row-major; inside a patch: pixel row, pixel column, channel)."""
        (rows, cols), (ph, pw) = self.patch_grid_of(pixel_values), self.patch_size
        b, c = pixel_values.shape[:2]
        x = pixel_values.reshape(b, c, rows, ph, cols, pw).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(b, rows * cols, ph * pw * c)

    def unpatchify(
        self, patches: torch.Tensor, grid: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``[B, rows*cols, p*p*C]`` -> ``[B, C, H, W]``
        (``grid`` = ``(rows, cols)``, default the square :attr:`patch_grid`)."""
        (rows, cols), (ph, pw) = grid or self._grid, self.patch_size
        b = patches.shape[0]
        x = patches.reshape(b, rows, cols, ph, pw, -1).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(b, -1, rows * ph, cols * pw)

    def _forward(
        self, patches: torch.Tensor, pixel_attention_mask: torch.Tensor, grid: tuple[int, int]
    ) -> torch.Tensor:
        spatial = torch.tensor([grid], dtype=torch.long, device=patches.device)
        out = self.model.get_image_features(
            pixel_values=patches,
            pixel_attention_mask=pixel_attention_mask,
            spatial_shapes=spatial.expand(patches.shape[0], 2),
        )
        return pooled_output(out)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # NaFlex: [B, P, p*p*C] patches, every patch attended.
        patches = self.patchify(pixel_values)
        ones = torch.ones(patches.shape[:2], dtype=torch.long, device=patches.device)
        return self._forward(patches, ones, self.patch_grid_of(pixel_values))

    def _encode_mean(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        patches = self.patchify(pixel_values) * coalitions.unsqueeze(-1)
        return self._forward(
            patches, torch.ones_like(coalitions, dtype=torch.long), self.patch_grid_of(pixel_values)
        )

    def _encode_drop(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        patches = self.patchify(pixel_values)
        nonempty = coalitions.any(dim=1)
        rows = torch.nonzero(nonempty).flatten()
        empty = torch.nonzero(~nonempty).flatten()
        out = None
        if rows.numel():
            grid = self.patch_grid_of(pixel_values)
            emb = self._forward(patches.expand(rows.numel(), -1, -1), coalitions[rows].long(), grid)
            out = emb.new_empty(coalitions.shape[0], emb.shape[-1])
            out[rows] = emb
        if empty.numel():
            emb = map_head_over_nothing(self.model.vision_model.head, empty.numel())
            if out is None:
                out = emb.new_empty(coalitions.shape[0], emb.shape[-1])
            out[empty] = emb
        if out is None:
            raise ValueError("_encode_drop needs at least one coalition")
        return out
