"""Masked encoding for open_clip's Hugging Face text towers (``HFTextEncoder``).

The multilingual and RoBERTa CLIPs (``xlm-roberta-*-ViT-*``, ``roberta-ViT-B-32``,
``mt5-*-ViT-*``, ``nllb-clip-*``) wrap a transformers encoder (BERT/RoBERTa/XLM-R, the T5
encoder, the M2M100/NLLB encoder) and pool its last hidden state with one of open_clip's
poolers, then project. A masked token is removed by setting its ``attention_mask`` entry to
0 on top of the padding mask: the encoder then ignores it as an attention key, and every
pooler open_clip has skips it (``mean_pooler`` and ``max_pooler`` weight by the attention
mask; ``cls_pooler`` reads the first token, which is a special token and never a player).
Position ids do not move, so with every token kept this is the tower's own forward pass,
and a masked token's id has no effect (as long as it is not replaced by the padding id,
from which RoBERTa-style encoders derive their position ids).
"""

from __future__ import annotations

import torch

__all__ = ["HFTextTower", "is_hf_text_encoder"]


def is_hf_text_encoder(text: torch.nn.Module) -> bool:
    """True for open_clip's ``HFTextEncoder``."""
    try:
        from open_clip.hf_model import HFTextEncoder
    except ImportError:  # pragma: no cover - transformers missing
        return False
    return isinstance(text, HFTextEncoder)


class HFTextTower:
    """``CustomTextCLIP.text`` as an ``HFTextEncoder``: attention-mask token masking.

    Args:
        text: The ``HFTextEncoder``.
        context_length: Positions the captions are padded to (the tokenizer's context).

    Attributes:
        pool_type: ``None``: pooling is by attention mask or at the first position, never
            at a caption token, so no pooling position is checked.
        pad_id: The padding id of the encoder's config.
    """

    def __init__(self, text: torch.nn.Module, context_length: int) -> None:
        self.text = text
        self.context_length = int(context_length)
        self.pool_type: str | None = None
        self.eos_id: int | None = None
        pad = getattr(text.config, "pad_token_id", None)
        self.pad_id: int | None = None if pad is None else int(pad)
        self.has_cls = False

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, pool_position: int) -> torch.Tensor:
        """``ids [m, L]`` under ``keep [m, L]`` (bool) -> projected features ``[m, D]``.

        ``pool_position`` is unused (the pooler decides)."""
        t = self.text
        attention = keep.long()
        if self.pad_id is not None:
            attention = attention * (ids != self.pad_id).long()
        out = t.transformer(input_ids=ids, attention_mask=attention)
        return t.proj(t.pooler(out, attention))
