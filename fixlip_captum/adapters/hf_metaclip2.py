"""Adapter for transformers ``MetaClip2Model`` (MetaCLIP 2, the worldwide CLIP).

MetaCLIP 2 has CLIP's architecture (a ViT with a class token; a causal text tower pooled at
the first end-of-text token) under its own class names, so it is masked exactly as
:class:`~fixlip_captum.adapters.hf_clip.HFCLIPAdapter` masks ``CLIPModel``: images by mean
colour or class-token-preserving token drop, text by removing masked tokens as attention
keys.
"""

from __future__ import annotations

from typing import Any

from transformers import MetaClip2Model

from fixlip_captum.adapters.hf_clip import HFCLIPAdapter

__all__ = ["HFMetaClip2Adapter"]


class HFMetaClip2Adapter(HFCLIPAdapter):
    """Masked encoding for a transformers :class:`~transformers.MetaClip2Model`.

    Args:
        model: A ``MetaClip2Model``.
        tokenizer_or_processor: Its processor (a ``CLIPProcessor``-style image processor
            and tokenizer), its tokenizer, or ``None`` (token ids and tensors only).
    """

    model: Any
    _model_types: tuple[type, ...] = (MetaClip2Model,)  # type: ignore[assignment]

    def __init__(self, model: Any, tokenizer_or_processor: Any = None) -> None:
        super().__init__(model, tokenizer_or_processor)
