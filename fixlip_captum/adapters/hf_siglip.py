"""Adapter for transformers ``SiglipModel`` (ViT without class token, MAP head, logit bias)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import SiglipModel

from fixlip_captum.adapters.hf_dual_encoder import HFDualEncoderAdapter
from fixlip_captum.adapters.masking import kept_count_groups, map_head_over_nothing

__all__ = ["HFSiglipAdapter"]


class HFSiglipAdapter(HFDualEncoderAdapter):
    """Masked encoding for a transformers :class:`~transformers.SiglipModel`.

    Players: the ``rows x cols`` image patches (row-major), then the caption's tokens
    (everything but end-of-text and padding; the last position, which SigLIP pools, is never
    a player).

    Image masking:

    * ``"mean"``: the masked patches' pixels are set to 0 in normalised pixel space (the
      dataset mean colour) and the whole image is encoded by ``get_image_features``.
    * ``"drop"``: SigLIP has no class token and pools with an attention-pooling (MAP) head
      that takes no mask, so a key mask inside the encoder would still leak the masked
      tokens through the head. The masked patch tokens are therefore removed after the
      embeddings; the kept ones run through the encoder, ``post_layernorm`` and the head.
      Coalitions are grouped by kept count. With no patch kept the head attends to nothing:
      its attention output is taken as zero (see ``map_head_over_nothing``).

    Text masking: a masked token gets ``attention_mask`` 0 in SigLIP's bidirectional mask,
    so no position attends to it. Captions are padded to the context (as SigLIP was
    trained); end-of-text, padding and the pooled last position keep the tokenizer's mask.

    Similarity: ``"logit"`` = ``exp(logit_scale) * cos + logit_bias`` (the model's
    ``logits_per_image``), or ``"cosine"``.

    Args:
        model: A ``SiglipModel`` (from ``from_pretrained`` or built from a ``SiglipConfig``)
            whose vision tower uses its head (``vision_use_head=True``).
        tokenizer_or_processor: The model's ``SiglipProcessor`` (needed for PIL images and
            caption strings), its tokenizer (caption strings), or ``None`` (token ids and
            preprocessed tensors only).
    """

    model: SiglipModel
    _model_types = (SiglipModel,)
    _pools_last = True

    def __init__(self, model: SiglipModel, tokenizer_or_processor: Any = None) -> None:
        super().__init__(model, tokenizer_or_processor)
        if not getattr(model.vision_model, "use_head", False):
            raise ValueError(
                "this SiglipModel's vision tower has no pooling head (vision_use_head=False), "
                "so it produces no image embedding"
            )

    def _encode_mean(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        masked = pixel_values * self._pixel_keep_mask(coalitions)
        return self.model.get_image_features(pixel_values=masked).pooler_output

    def _encode_drop(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        tokens = vision.embeddings(pixel_values)[0]  # [n_I, d], position embedding included
        out = None
        for rows, kept in kept_count_groups(coalitions):
            if kept.shape[1] == 0:
                emb = map_head_over_nothing(vision.head, len(rows))
            else:
                hidden = vision.encoder(inputs_embeds=tokens[kept]).last_hidden_state
                emb = vision.head(vision.post_layernorm(hidden))
            if out is None:
                out = emb.new_empty(coalitions.shape[0], emb.shape[-1])
            out[rows] = emb
        if out is None:
            raise ValueError("_encode_drop needs at least one coalition")
        return out
