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


# ---------------------------------------------------------------------------------------
# transformers: CLIPModel, SiglipModel, Siglip2Model (tiny, random init) and their
# processors built offline from a small vocabulary.
# ---------------------------------------------------------------------------------------

HF_WORDS = ("a", "photo", "of", "cat", "dog", "red", "blue", "on", "the", "grass", "big")
_HF_LAYERS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def _clip_bpe_vocab(words: Sequence[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP-style BPE vocabulary in which every word of ``words`` is one token ``w</w>``:
    start 0, end 1, then characters, partial merges and whole words."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    merges: list[tuple[str, str]] = []

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for word in words:
        symbols = [*word[:-1], word[-1] + "</w>"]
        for s in symbols:
            add(s)
        left = symbols[0]
        for right in symbols[1:]:
            if (left, right) not in merges:
                merges.append((left, right))
            left = left + right
            add(left)
    return vocab, merges


@functools.cache
def hf_clip_processor():
    """``CLIPProcessor``: BPE ``CLIPTokenizer`` over :data:`HF_WORDS` (start 0, end = pad
    = 1) and a ``CLIPImageProcessor`` resizing/cropping to 32 px."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    vocab, merges = _clip_bpe_vocab(HF_WORDS)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    for w in HF_WORDS:  # each word must be a single token, or the tests' positions break
        assert tokenizer(w)["input_ids"] == [0, vocab[w + "</w>"], 1], w
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


@functools.cache
def tiny_hf_clip():
    """transformers ``CLIPModel``: 32 px images, 8 px patches (4 x 4 grid), causal text
    tower pooled at the first end-of-text id (1), context 12, logit scale exp(2)."""
    from transformers import CLIPConfig, CLIPModel

    vocab_size = len(hf_clip_processor().tokenizer)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=vocab_size,
            max_position_embeddings=12,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            **_HF_LAYERS,
        ),
        vision_config=dict(image_size=32, patch_size=8, **_HF_LAYERS),
        projection_dim=16,
        logit_scale_init_value=2.0,
    )
    torch.manual_seed(10)
    return CLIPModel(config).eval()


def _word_tokenizer(specials: dict[str, int], template: str, pad: str):
    """A transformers fast tokenizer over :data:`HF_WORDS` (word level, lowercased),
    built offline with ``tokenizers``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import TokenizersBackend

    vocab = dict(specials)
    for w in HF_WORDS:
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    used = [s for s in specials if s in template.split()]
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, specials[s]) for s in used]
    )
    kwargs = {"unk_token": "<unk>", "pad_token": pad}
    if "</s>" in specials:
        kwargs["eos_token"] = "</s>"
    if "<eos>" in specials:
        kwargs.update(eos_token="<eos>", bos_token="<bos>")
    return TokenizersBackend(tokenizer_object=tok, **kwargs)


@functools.cache
def hf_siglip_processor():
    """``SiglipProcessor``: SigLIP-layout word tokenizer (``w_1 .. w_k </s>``, end = pad =
    1, no start token; the tokenizer's attention mask is 0 on padding) and a
    ``SiglipImageProcessor`` resizing to 32 x 32."""
    from transformers import SiglipImageProcessor, SiglipProcessor

    tokenizer = _word_tokenizer({"<s>": 0, "</s>": 1, "<unk>": 2}, "$A </s>", pad="</s>")
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    return SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _siglip_text_config(vocab_size: int, pad: int, eos: int, bos: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        max_position_embeddings=12,
        pad_token_id=pad,
        eos_token_id=eos,
        bos_token_id=bos,
        **_HF_LAYERS,
    )


@functools.cache
def tiny_hf_siglip():
    """transformers ``SiglipModel``: 32 px images, 8 px patches (4 x 4 grid, no class
    token, MAP head), bidirectional text tower pooled at the last position (context 12),
    logit scale exp(1.5) and bias -2 (random init would zero both)."""
    from transformers import SiglipConfig, SiglipModel

    vocab_size = len(hf_siglip_processor().tokenizer)
    config = SiglipConfig(
        text_config=_siglip_text_config(vocab_size, pad=1, eos=1, bos=0),
        vision_config=dict(image_size=32, patch_size=8, **_HF_LAYERS),
    )
    torch.manual_seed(11)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        model.logit_scale.fill_(1.5)
        model.logit_bias.fill_(-2.0)
    return model


@functools.cache
def hf_siglip2_processor(max_num_patches: int = 16):
    """``Siglip2Processor``: Gemma-layout word tokenizer (``<bos> w_1 .. w_k <eos>``, pad
    0, end 1, start 2; attention mask 0 on padding) and a NaFlex ``Siglip2ImageProcessor``
    with 8 px patches and ``max_num_patches`` patches."""
    from transformers import Siglip2ImageProcessor, Siglip2Processor

    tokenizer = _word_tokenizer(
        {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}, "<bos> $A <eos>", pad="<pad>"
    )
    image_processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=max_num_patches)
    return Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer)


@functools.cache
def tiny_hf_siglip2():
    """transformers ``Siglip2Model``: 8 px patches, 4 x 4 position-embedding grid
    (``num_patches=16``, resized by the model to other grids), MAP head, SigLIP text tower
    (context 12), logit scale exp(1.5) and bias -2."""
    from transformers import Siglip2Config, Siglip2Model

    vocab_size = len(hf_siglip2_processor().tokenizer)
    config = Siglip2Config(
        text_config=_siglip_text_config(vocab_size, pad=0, eos=1, bos=2),
        vision_config=dict(num_patches=16, patch_size=8, **_HF_LAYERS),
    )
    torch.manual_seed(12)
    model = Siglip2Model(config).eval()
    with torch.no_grad():
        model.logit_scale.fill_(1.5)
        model.logit_bias.fill_(-2.0)
    return model


def random_pil_image(seed: int, width: int = 40, height: int = 48):
    """A seeded RGB PIL image of uniform noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------
# Small games for exact enumeration (methods tests)
# ---------------------------------------------------------------------------------------


@functools.cache
def tiny_open_clip_clip_2x2():
    """open_clip ``CLIP`` with a 2 x 2 patch grid (32 px, 16 px patches): with a caption of
    2-3 words the game has 6-7 players, few enough for shapiq's ``ExactComputer``."""
    import open_clip

    torch.manual_seed(3)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=dict(image_size=32, patch_size=16, width=32, layers=2, head_width=16),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
    )
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
    return model.eval()


# ---------------------------------------------------------------------------------------
# open_clip towers beyond the ViT: Eva (rotary), convolutional, HF text towers, CoCa
# ---------------------------------------------------------------------------------------

TINY_TIMM_EVA = "fixlip_test_eva_tiny"
TINY_TIMM_PE = "fixlip_test_pe_tiny"


def _register_tiny_evas() -> None:
    """Register two 2-block timm ``Eva`` trunks with rotary position embeddings (32 px,
    8 px patches -> 4 x 4 grid, class token): EVA02-style ``"token"`` pooling under
    :data:`TINY_TIMM_EVA` and PE-Core-style attention pooling under :data:`TINY_TIMM_PE`."""
    import timm
    from timm.models import register_model
    from timm.models.eva import Eva

    if TINY_TIMM_EVA in timm.list_models(TINY_TIMM_EVA):
        return
    common = dict(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, use_rot_pos_emb=True
    )

    def build(name: str, **own):
        def builder(pretrained: bool = False, **kwargs) -> Eva:
            for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
                kwargs.pop(key, None)
            return Eva(**{**common, **own, **kwargs})

        builder.__name__ = name
        register_model(builder)

    build(TINY_TIMM_EVA, global_pool="token", ref_feat_shape=(4, 4), swiglu_mlp=True)
    build(TINY_TIMM_PE, global_pool="map", attn_pool_num_heads=2, use_abs_pos_emb=False)


def _tiny_custom_text_clip(seed: int, vision_cfg: dict):
    """``CustomTextCLIP`` with the given image tower and a causal BPE text tower (context 16)."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CustomTextCLIP(
        embed_dim=16,
        vision_cfg=vision_cfg,
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
        init_logit_scale=1.5,
    )
    return model.eval()


@functools.cache
def tiny_open_clip_eva():
    """EVA02-CLIP layout: timm ``Eva`` trunk, rotary positions, class-token pooling."""
    _register_tiny_evas()
    return _tiny_custom_text_clip(
        20, dict(image_size=32, timm_model_name=TINY_TIMM_EVA, timm_pool="token", timm_proj=None)
    )


@functools.cache
def tiny_open_clip_pe():
    """PE-Core layout: timm ``Eva`` trunk, rotary positions only, attention-pool head."""
    _register_tiny_evas()
    return _tiny_custom_text_clip(
        21, dict(image_size=32, timm_model_name=TINY_TIMM_PE, timm_pool="map", timm_proj=None)
    )


TINY_TIMM_RELPOS = "fixlip_test_relpos_tiny"
TINY_TIMM_RELPOS_SHARED = "fixlip_test_relpos_shared_tiny"


def _register_tiny_relpos() -> None:
    """Register two 2-block timm ``VisionTransformerRelPos`` trunks (32 px, 8 px patches ->
    4 x 4 grid): a class token, class-token pooling and a learned relative-offset bias table
    per block under :data:`TINY_TIMM_RELPOS`; no class token, average pooling and one
    log-coordinate MLP bias shared by the blocks under :data:`TINY_TIMM_RELPOS_SHARED`."""
    import timm
    from timm.models import register_model
    from timm.models.vision_transformer_relpos import VisionTransformerRelPos

    if TINY_TIMM_RELPOS in timm.list_models(TINY_TIMM_RELPOS):
        return
    common = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, init_values=None)

    def build(name: str, **own):
        def builder(pretrained: bool = False, **kwargs) -> VisionTransformerRelPos:
            for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
                kwargs.pop(key, None)
            trunk = VisionTransformerRelPos(**{**common, **own, **kwargs})
            trunk.default_cfg = {}  # what timm's own builders attach (open_clip reads it)
            return trunk

        builder.__name__ = name
        register_model(builder)

    build(TINY_TIMM_RELPOS, class_token=True, global_pool="token", rel_pos_type="bias")
    build(TINY_TIMM_RELPOS_SHARED, global_pool="avg", rel_pos_type="mlp", shared_rel_pos=True)


def _randomize_relpos_biases(model) -> None:
    """timm initialises bias tables at zero (and the bias MLP's output near zero): fill
    them with noise so that token drop with the wrong bias entries shows."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.visual.trunk.named_parameters():
            if "rel_pos" in name:
                p.copy_(torch.randn(p.shape, generator=g))


@functools.cache
def tiny_open_clip_relpos():
    """``vit_relpos_*_cls`` layout: timm ``VisionTransformerRelPos`` trunk, a relative
    position bias table per block, class-token pooling, linear projection."""
    _register_tiny_relpos()
    model = _tiny_custom_text_clip(
        28, dict(image_size=32, timm_model_name=TINY_TIMM_RELPOS, timm_pool="", timm_proj="linear")
    )
    _randomize_relpos_biases(model)
    return model


@functools.cache
def tiny_open_clip_relpos_shared():
    """timm ``VisionTransformerRelPos`` without a class token: one log-coordinate MLP bias
    shared by every block, average pooling."""
    _register_tiny_relpos()
    model = _tiny_custom_text_clip(
        29,
        dict(
            image_size=32,
            timm_model_name=TINY_TIMM_RELPOS_SHARED,
            timm_pool="avg",
            timm_proj=None,
        ),
    )
    _randomize_relpos_biases(model)
    return model


@functools.cache
def tiny_open_clip_resnet():
    """OpenAI RN50 layout (``ModifiedResNet``, attention-pool head) at 64 px: 2 x 2 default
    output-stride grid."""
    import open_clip

    torch.manual_seed(22)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=dict(image_size=64, layers=[1, 1, 1, 1], width=8, head_width=8),
        text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
    )
    return model.eval()


@functools.cache
def tiny_open_clip_convnext():
    """LAION ConvNeXt layout: timm ``convnext_atto`` trunk at 64 px, linear projection."""
    return _tiny_custom_text_clip(
        23,
        dict(image_size=64, timm_model_name="convnext_atto", timm_pool="", timm_proj="linear"),
    )


@functools.cache
def tiny_open_clip_fastvit():
    """MobileCLIP layout: timm FastViT trunk (``fastvit_t8``, a conv / attention hybrid) at
    64 px, average pooling, linear projection: pixel-grid players."""
    return _tiny_custom_text_clip(
        31, dict(image_size=64, timm_model_name="fastvit_t8", timm_pool="avg", timm_proj="linear")
    )


@functools.cache
def tiny_open_clip_swin():
    """LAION Swin layout: timm ``swin_tiny_patch4_window7_224`` trunk (224 px: timm builds
    Swin for one input size), average pooling, linear projection: pixel-grid players."""
    return _tiny_custom_text_clip(
        32,
        dict(
            image_size=224,
            timm_model_name="swin_tiny_patch4_window7_224",
            timm_pool="avg",
            timm_proj="linear",
        ),
    )


class HFWordTokenizer:
    """open_clip's call interface around a transformers tokenizer (as ``HFTokenizer`` wraps
    the hub tokenizer), padding to ``context_length``."""

    def __init__(self, tokenizer, context_length: int = 12) -> None:
        self.tokenizer = tokenizer
        self.context_length = context_length

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        n = context_length or self.context_length
        out = self.tokenizer(
            texts, return_tensors="pt", max_length=n, padding="max_length", truncation=True
        )
        return out["input_ids"]


@functools.cache
def xlm_roberta_word_tokenizer() -> HFWordTokenizer:
    """XLM-R layout (``<s> w_1 .. w_k </s> <pad> ..``: start 0, pad 1, end 2), offline."""
    specials = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    tok = _word_tokenizer(specials, "<s> $A </s>", "<pad>")
    tok.bos_token = "<s>"
    return HFWordTokenizer(tok)


@functools.cache
def mt5_word_tokenizer() -> HFWordTokenizer:
    """mT5 layout (``w_1 .. w_k </s> <pad> ..``: pad 0, end 1, no start token), offline."""
    specials = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    return HFWordTokenizer(_word_tokenizer(specials, "$A </s>", "<pad>"))


def _tiny_hf_text_clip(seed: int, config, pooler: str, encoder_only: bool = False):
    """open_clip ``CustomTextCLIP`` (tiny ViT) whose text tower is an ``HFTextEncoder`` built
    from ``config`` offline, as ``create_model`` builds the multilingual CLIPs."""
    from open_clip.hf_model import HFTextEncoder

    model = _tiny_custom_text_clip(
        seed, dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16)
    )
    torch.manual_seed(seed)
    model.text = HFTextEncoder(
        config.model_type, output_dim=16, config=config, pooler_type=pooler, proj_type="linear"
    )
    if encoder_only:  # create_model keeps only the encoder of an encoder-decoder model
        model.text.transformer = model.text.transformer.encoder
    return model.eval()


@functools.cache
def tiny_open_clip_xlm_roberta():
    """xlm-roberta-base-ViT-B-32 layout: XLM-R text tower, mean pooling."""
    from transformers import XLMRobertaConfig

    config = XLMRobertaConfig(
        vocab_size=len(HF_WORDS) + 4,
        max_position_embeddings=20,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        **_HF_LAYERS,
    )
    return _tiny_hf_text_clip(24, config, "mean_pooler")


@functools.cache
def tiny_open_clip_mt5():
    """mt5-base-ViT-B-32 layout: mT5 encoder text tower, mean pooling."""
    from transformers import MT5Config

    config = MT5Config(
        vocab_size=len(HF_WORDS) + 3,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return _tiny_hf_text_clip(25, config, "mean_pooler", encoder_only=True)


@functools.cache
def tiny_open_clip_coca():
    """CoCa layout: ViT with attention pooler, text tower with an appended class token;
    the contrastive path (the captioning decoder is not used)."""
    import open_clip

    torch.manual_seed(26)
    model = open_clip.CoCa(
        embed_dim=16,
        vision_cfg=dict(
            image_size=32,
            patch_size=8,
            width=32,
            layers=2,
            head_width=16,
            attentional_pool=True,
            attn_pooler_heads=2,
            output_tokens=True,
        ),
        text_cfg=dict(
            context_length=15,
            vocab_size=49408,
            width=32,
            heads=2,
            layers=2,
            embed_cls=True,
            output_tokens=True,
        ),
        multimodal_cfg=dict(context_length=15, vocab_size=49408, width=32, heads=2, layers=1),
    )
    return model.eval()


@functools.cache
def tiny_hf_metaclip2():
    """transformers ``MetaClip2Model`` with :func:`tiny_hf_clip`'s layout (CLIP architecture)."""
    from transformers import MetaClip2Config, MetaClip2Model

    config = MetaClip2Config(
        text_config=dict(
            vocab_size=len(hf_clip_processor().tokenizer),
            max_position_embeddings=12,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
            **_HF_LAYERS,
        ),
        vision_config=dict(image_size=32, patch_size=8, **_HF_LAYERS),
        projection_dim=16,
        logit_scale_init_value=2.0,
    )
    torch.manual_seed(27)
    return MetaClip2Model(config).eval()


# the families this section adds: (model builder, tokenizer builder)
TOWER_FAMILIES = {
    "open_clip_eva": (tiny_open_clip_eva, open_clip_bpe_tokenizer),
    "open_clip_pe": (tiny_open_clip_pe, open_clip_bpe_tokenizer),
    "open_clip_relpos": (tiny_open_clip_relpos, open_clip_bpe_tokenizer),
    "open_clip_relpos_shared": (tiny_open_clip_relpos_shared, open_clip_bpe_tokenizer),
    "open_clip_resnet": (tiny_open_clip_resnet, open_clip_bpe_tokenizer),
    "open_clip_convnext": (tiny_open_clip_convnext, open_clip_bpe_tokenizer),
    "open_clip_fastvit": (tiny_open_clip_fastvit, open_clip_bpe_tokenizer),
    "open_clip_swin": (tiny_open_clip_swin, open_clip_bpe_tokenizer),
    "open_clip_xlm_roberta": (tiny_open_clip_xlm_roberta, xlm_roberta_word_tokenizer),
    "open_clip_mt5": (tiny_open_clip_mt5, mt5_word_tokenizer),
    "open_clip_coca": (tiny_open_clip_coca, open_clip_bpe_tokenizer),
}


# ---------------------------------------------------------------------------------------
# (model builder, tokenizer/processor builder) of every supported family, for the tests that
# run over several of them
# ---------------------------------------------------------------------------------------

MODEL_FAMILIES = {
    "open_clip": (tiny_open_clip_clip, open_clip_bpe_tokenizer),
    "open_clip_siglip": (tiny_open_clip_siglip, siglip_word_tokenizer),
    "hf_clip": (tiny_hf_clip, hf_clip_processor),
    "hf_siglip": (tiny_hf_siglip, hf_siglip_processor),
    "hf_siglip2": (tiny_hf_siglip2, hf_siglip2_processor),
    "hf_metaclip2": (tiny_hf_metaclip2, hf_clip_processor),
    **TOWER_FAMILIES,
}
# the two open_clip families under the short names the open_clip-only tests use
OPEN_CLIP_FAMILIES = {
    "clip": MODEL_FAMILIES["open_clip"],
    "siglip": MODEL_FAMILIES["open_clip_siglip"],
}


# ---------------------------------------------------------------------------------------
# transformers ChineseCLIPModel: CLIP image tower, BERT text tower pooled at [CLS]
# ---------------------------------------------------------------------------------------


@functools.cache
def hf_chinese_clip_processor():
    """``ChineseCLIPProcessor``: a WordPiece ``BertTokenizerFast`` over :data:`HF_WORDS`
    (``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4) and a
    ``ChineseCLIPImageProcessor`` resizing/cropping to 32 px."""
    from transformers import BertTokenizerFast, ChineseCLIPImageProcessor, ChineseCLIPProcessor

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *HF_WORDS]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    image_processor = ChineseCLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    return ChineseCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


@functools.cache
def tiny_hf_chinese_clip():
    """transformers ``ChineseCLIPModel``: 32 px images, 8 px patches (4 x 4 grid, class
    token), bidirectional BERT text tower pooled at [CLS] (context 12), logit scale exp(2)."""
    from transformers import ChineseCLIPConfig, ChineseCLIPModel

    config = ChineseCLIPConfig(
        text_config=dict(
            vocab_size=len(hf_chinese_clip_processor().tokenizer),
            max_position_embeddings=12,
            pad_token_id=0,
            **_HF_LAYERS,
        ),
        vision_config=dict(image_size=32, patch_size=8, **_HF_LAYERS),
        projection_dim=16,
        logit_scale_init_value=2.0,
    )
    torch.manual_seed(13)
    return ChineseCLIPModel(config).eval()


MODEL_FAMILIES["hf_chinese_clip"] = (tiny_hf_chinese_clip, hf_chinese_clip_processor)
