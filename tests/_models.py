"""Tiny random-init models and tokenizers shared by the tests (nothing is downloaded).

Builders are cached per process: the models are deterministic (seeded) and the tests never
change their weights. Developers append their own family's builders below; keep each model
small enough that a forward pass of a few hundred masked copies takes well under a second.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import torch

# ---------------------------------------------------------------------------------------
# open_clip
# ---------------------------------------------------------------------------------------

TINY_TIMM_SIGLIP = "fixlip_test_vit_siglip_tiny"


def _register_tiny_timm_siglip() -> None:
    """Register a 2-block SigLIP-style timm ViT (no class token, MAP head) under
    :data:`TINY_TIMM_SIGLIP`, so open_clip's ``timm_model_name`` can build it offline."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer import VisionTransformer

    if TINY_TIMM_SIGLIP in timm.list_models(TINY_TIMM_SIGLIP):
        return

    def fixlip_test_vit_siglip_tiny(pretrained: bool = False, **kwargs) -> VisionTransformer:
        args = dict(
            img_size=32,
            patch_size=8,
            embed_dim=32,
            depth=2,
            num_heads=2,
            class_token=False,
            global_pool="map",
        )
        # timm's factory adds bookkeeping kwargs that only its own builders consume.
        for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
            kwargs.pop(key, None)
        args.update(kwargs)
        return VisionTransformer(**args)

    fixlip_test_vit_siglip_tiny.__name__ = TINY_TIMM_SIGLIP
    register_model(fixlip_test_vit_siglip_tiny)


@functools.cache
def tiny_open_clip_clip():
    """open_clip ``CLIP``: ViT with class token (32 px, 8 px patches -> 4 x 4 grid), causal
    text tower with the BPE vocabulary, context 16, pooled at end-of-text (argmax)."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
    )
    # A non-trivial scale so "logit" and "cosine" differ by more than a factor of 1.
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
    return model.eval()


@functools.cache
def open_clip_bpe_tokenizer(context_length: int = 16):
    """open_clip's own BPE tokenizer (ships with the package) at a short context."""
    import open_clip

    return open_clip.SimpleTokenizer(context_length=context_length)


class WordTokenizer:
    """SigLIP-layout word-level tokenizer with open_clip's call interface.

    ``[w_1, ..., w_k, EOS, PAD, ...]`` with ``EOS == PAD == 1`` and no start token, as
    SigLIP's sentencepiece tokenizer pads. Unknown words map to id 2.
    """

    eot_token_id = 1
    pad_token_id = 1

    def __init__(self, words: Sequence[str], context_length: int = 12) -> None:
        self.vocab = {w: i + 3 for i, w in enumerate(words)}
        self.inverse = {i: w for w, i in self.vocab.items()}
        self.inverse.update({0: "<unused>", 1: "</s>", 2: "<unk>"})
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        return [self.vocab.get(w, 2) for w in re.findall(r"[a-z]+", text.lower())]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.inverse.get(int(i), "<unk>") for i in ids)

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        n = context_length or self.context_length
        out = torch.full((len(texts), n), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [*self.encode(text), self.eot_token_id][:n]
            ids[-1] = self.eot_token_id
            out[row, : len(ids)] = torch.tensor(ids)
        return out


SIGLIP_WORDS = ("a", "photo", "of", "cat", "dog", "red", "blue", "on", "the", "grass", "big")


@functools.cache
def tiny_open_clip_siglip():
    """open_clip ``CustomTextCLIP`` with a timm SigLIP-style trunk (no class token, MAP
    head, 4 x 4 grid of 8 px patches), bidirectional text tower pooled at the last position
    (context 12), logit bias -10, as open_clip's ViT-B-16-SigLIP config but tiny."""
    import open_clip

    _register_tiny_timm_siglip()
    torch.manual_seed(1)
    model = open_clip.CustomTextCLIP(
        embed_dim=32,
        vision_cfg=dict(
            image_size=32,
            timm_model_name=TINY_TIMM_SIGLIP,
            timm_model_pretrained=False,
            timm_pool="map",
            timm_proj="none",
        ),
        text_cfg=dict(
            context_length=12,
            vocab_size=len(SIGLIP_WORDS) + 3,
            width=32,
            heads=2,
            layers=2,
            no_causal_mask=True,
            proj_bias=True,
            pool_type="last",
            norm_kwargs={"eps": 1e-6},
        ),
        init_logit_scale=1.5,
        init_logit_bias=-10.0,
    )
    return model.eval()


@functools.cache
def siglip_word_tokenizer() -> WordTokenizer:
    return WordTokenizer(SIGLIP_WORDS, context_length=12)


def random_pixels(seed: int, size: int = 32, channels: int = 3) -> torch.Tensor:
    """A normalised-looking image ``[1, C, size, size]`` (standard normal, seeded)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, channels, size, size, generator=g)
