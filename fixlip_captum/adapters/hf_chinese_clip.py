"""Adapter for transformers ``ChineseCLIPModel`` (CLIP ViT image tower, BERT text tower)."""

from __future__ import annotations

import torch
from transformers import ChineseCLIPModel

from fixlip_captum.adapters.base import Tower
from fixlip_captum.adapters.hf_clip import HFCLIPAdapter

__all__ = ["HFChineseCLIPAdapter"]


class HFChineseCLIPAdapter(HFCLIPAdapter):
    """Masked encoding for a transformers :class:`~transformers.ChineseCLIPModel`.

    The image tower is CLIP's (class token, ``pre_layrnorm``, ``post_layernorm``), so image
    players and both maskings are those of :class:`~fixlip_captum.adapters.hf_clip.HFCLIPAdapter`.
    The text tower is a bidirectional BERT that pools its first position (``[CLS]``).

    Players: the image patches (row-major), then the caption's tokens (everything but
    ``[CLS]``, ``[SEP]`` and padding, as the tokenizer declares its special tokens).

    Text masking: a masked token gets ``attention_mask`` 0 in BERT's bidirectional mask, so
    no position attends to it; ``[CLS]`` (where the embedding is read) is never masked.

    Similarity: ``"logit"`` = ``exp(logit_scale) * cos`` (the model's ``logits_per_image``),
    or ``"cosine"``.

    Tower internals: Grad-ECLIP and GAME need the text attention, which BERT's
    ``query/key/value`` modules do not expose as this package recomputes it; exCLIP (hidden
    states) and IntegratedGradients work.

    Args:
        model: A ``ChineseCLIPModel``.
        tokenizer_or_processor: Its ``ChineseCLIPProcessor`` (PIL images and caption
            strings), its BERT tokenizer (caption strings), or ``None`` (token ids and
            preprocessed tensors only).
    """

    model: ChineseCLIPModel  # type: ignore[assignment]
    _model_types = (ChineseCLIPModel,)  # type: ignore[assignment]
    _causal_text = False

    def _pooled_position(self, input_ids: torch.Tensor) -> int:
        return 0  # get_text_features reads last_hidden_state[:, 0] ([CLS])

    def text_tower(self) -> Tower:
        text_model = self.model.get_submodule("text_model")
        blocks = text_model.get_submodule("encoder.layer")
        if not isinstance(blocks, torch.nn.ModuleList):
            raise self._no_internals()
        return Tower(
            blocks=tuple(blocks),
            attention=(),
            why=(
                "the ChineseCLIP text tower is a BERT whose self-attention (query/key/value "
                "modules) the gradient baselines do not recompute"
            ),
            token_embedding=text_model.get_submodule("embeddings.word_embeddings"),
        )
