"""Adapter for transformers ``CLIPModel`` (ViT with a class token, causal text tower)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import CLIPModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from fixlip_captum.adapters.hf_dual_encoder import HFDualEncoderAdapter
from fixlip_captum.adapters.masking import kept_count_groups

__all__ = ["HFCLIPAdapter"]


class HFCLIPAdapter(HFDualEncoderAdapter):
    """Masked encoding for a transformers :class:`~transformers.CLIPModel`.

    Players: the ``rows x cols`` image patches (row-major), then the caption's tokens between
    the start-of-text and the end-of-text token.

    Image masking:

    * ``"mean"``: the masked patches' pixels are set to 0 in normalised pixel space (the
      dataset mean colour) and the whole image is encoded by ``get_image_features``.
    * ``"drop"``: the masked patch tokens are removed after the embeddings (patch
      projection + position embedding) and ``pre_layrnorm``; the class token and the kept
      patch tokens run through the encoder, ``post_layernorm`` of the class token and
      ``visual_projection``. Because only the class token is pooled, this equals an
      additive ``-inf`` key mask on the masked patches. Coalitions are grouped by kept
      count, so an embedding does not depend on the other coalitions in the call.

    Text masking: a masked token gets ``attention_mask`` 0, which transformers merges with
    the causal mask, so no position attends to it. The start and end-of-text tokens (where
    CLIP reads its embedding) are never masked.

    Similarity: ``"logit"`` = ``exp(logit_scale) * cos`` (the model's
    ``logits_per_image``), or ``"cosine"``.

    Args:
        model: A ``CLIPModel`` (from ``from_pretrained`` or built from a ``CLIPConfig``).
        tokenizer_or_processor: The model's ``CLIPProcessor`` (needed for PIL images and
            caption strings), its tokenizer (caption strings), or ``None`` (token ids and
            preprocessed tensors only).
    """

    model: CLIPModel
    _model_types = (CLIPModel,)
    _default_mean_std = (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    _pools_last = False
    _causal_text = True
    _class_token = True

    def __init__(self, model: CLIPModel, tokenizer_or_processor: Any = None) -> None:
        super().__init__(model, tokenizer_or_processor)

    def _encode_mean(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        masked = pixel_values * self._pixel_keep_mask(coalitions)
        return self.model.get_image_features(pixel_values=masked).pooler_output

    def _encode_drop(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        vision = self.model.vision_model
        # [1 + n_I, d]: the class token, then the patches in row-major order.
        tokens = vision.pre_layrnorm(vision.embeddings(pixel_values))[0]
        out = None
        for rows, kept in kept_count_groups(coalitions):
            cls = torch.zeros(len(rows), 1, dtype=torch.long, device=kept.device)
            hidden = tokens[torch.cat([cls, kept + 1], dim=1)]
            hidden = vision.encoder(inputs_embeds=hidden).last_hidden_state
            emb = self.model.visual_projection(vision.post_layernorm(hidden[:, 0]))
            if out is None:
                out = emb.new_empty(coalitions.shape[0], emb.shape[-1])
            out[rows] = emb
        if out is None:
            raise ValueError("_encode_drop needs at least one coalition")
        return out
