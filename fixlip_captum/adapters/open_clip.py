"""Adapter for open_clip dual encoders: ``CLIP``, ``CustomTextCLIP`` and ``CoCa``'s
contrastive path.

Supported towers (detected by Python type; docs/model-coverage.md lists every config):

* vision, patch tokens as players: open_clip's ``VisionTransformer`` (class token, OpenAI
  CLIP style); a ``TimmModel`` whose trunk is a timm ``VisionTransformer`` (e.g. SigLIP: no
  class token, attention-pool "MAP" head), a timm ``Eva`` (EVA01/EVA02, PE-Core: rotary
  position embeddings, :mod:`~fixlip_captum.adapters.timm_eva`) or a timm relative-position
  ViT (``vit_relpos``, :mod:`~fixlip_captum.adapters.timm_relpos`);
* vision, pixel-grid cells as players (any other tower: ModifiedResNet, ConvNeXt,
  FastViT/MobileCLIP, Swin, hybrids; :mod:`~fixlip_captum.adapters.pixel_grid`), masked
  to the mean colour in normalised pixel space; ``"drop"`` is refused there;
* text: the causal text tower that ``CLIP`` flattens into the model, the
  ``TextTransformer`` in ``CustomTextCLIP.text`` (causal or bidirectional, pooled at
  end-of-text / argmax, first, last or eos), or a Hugging Face text tower
  (:mod:`~fixlip_captum.adapters.open_clip_hf_text`: attention-mask masking, the tower's
  own pooling).

Value functions (what is being explained):

* Image ``"mean"``: a masked patch is set to 0 in normalised pixel space (the dataset mean
  colour) and the model's own ``encode_image`` runs on the masked image.
* Image ``"drop"``: masked patch tokens are removed from the sequence after the patch and
  position embeddings (prefix tokens such as the class token are always kept). Exact token
  removal for class-token and MAP pooling. When a model without prefix tokens keeps no patch,
  the MAP head attends over an empty set, which contributes zero.
* Text: a masked token is removed as an attention key by an additive ``-inf`` key mask on
  top of the model's own mask (causal and/or padding). Start, end and padding tokens are
  never players and are always kept. The masked token's id then has no effect.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg
from open_clip.timm_model import TimmModel
from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict
from open_clip.transformer import TextTransformer, VisionTransformer

from fixlip_captum.adapters.attention import multihead_attention_call
from fixlip_captum.adapters.base import (
    AttentionCall,
    DualEncoderAdapter,
    TextInput,
    Tower,
    UnsupportedModelError,
    check_image_masking,
)
from fixlip_captum.adapters.masking import (
    check_coalitions,
    empty_mean_pool,
    kept_count_groups,
    map_head_over_nothing,
)
from fixlip_captum.adapters.open_clip_hf_text import HFTextTower, is_hf_text_encoder
from fixlip_captum.adapters.pixel_grid import PlayerGrid, check_image_grid, default_pixel_grid
from fixlip_captum.adapters.timm_eva import TimmEvaTower, is_timm_eva
from fixlip_captum.adapters.timm_relpos import TimmRelPosTower, is_timm_relpos
from fixlip_captum.adapters.tokens import check_token_ids, warn_unknown_words

__all__ = ["OpenCLIPAdapter"]

_BPE_VOCAB_SIZE = 49408


def _key_mask(keep: torch.Tensor, heads: int, dtype: torch.dtype) -> torch.Tensor:
    """``keep [m, L]`` bool -> additive mask ``[m * heads, L, L]`` removing dropped keys.

    Each query may always attend to itself: a dropped position's own row then never becomes
    all ``-inf`` (NaN after softmax), and no kept position reads that row anyway.
    """
    m, length = keep.shape
    add = torch.zeros(m, length, length, dtype=dtype, device=keep.device)
    add.masked_fill_(~keep[:, None, :], float("-inf"))
    add.diagonal(dim1=1, dim2=2).zero_()
    return add.repeat_interleave(heads, dim=0)


def _int_pair(values: Any) -> tuple[int, int]:
    """``(rows, cols)``-like pair of a tower (grid, patch or image size) as ints."""
    first, second = (int(v) for v in values)
    return first, second


def _is_attention_block(block: torch.nn.Module) -> bool:
    from open_clip.transformer import ResidualAttentionBlock

    return isinstance(block, ResidualAttentionBlock) and isinstance(
        block.attn, torch.nn.MultiheadAttention
    )


def _attention_of(blocks: tuple[torch.nn.Module, ...]) -> tuple[torch.nn.Module, ...]:
    """Each block's ``nn.MultiheadAttention``, or ``()`` when some block has another kind."""
    if not all(_is_attention_block(b) for b in blocks):
        return ()
    return tuple(b.get_submodule("attn") for b in blocks)


def _blocks(owner: torch.nn.Module, path: str) -> tuple[torch.nn.Module, ...]:
    blocks = owner.get_submodule(path)
    if not isinstance(blocks, (torch.nn.ModuleList, torch.nn.Sequential)):
        raise UnsupportedModelError(
            f"{type(owner).__name__}.{path} is a {type(blocks).__name__}, not a list of "
            "transformer blocks; the gradient baselines cannot walk this tower."
        )
    return tuple(blocks)


class _OpenCLIPViT:
    """open_clip ``VisionTransformer``: class token first, then the patch tokens."""

    def __init__(self, visual: VisionTransformer) -> None:
        self.visual = visual
        if not isinstance(visual.conv1, torch.nn.Conv2d):
            raise UnsupportedModelError(
                f"the open_clip VisionTransformer's patch embedding is a "
                f"{type(visual.conv1).__name__}, not a Conv2d: its patches cannot be masked. "
                "Explain it through the model-agnostic path (FIxLIP(forward_func))."
            )
        self.grid = _int_pair(visual.grid_size)
        self.patch = _int_pair(visual.patch_size)
        self.size = _int_pair(visual.image_size)
        self.channels = int(visual.conv1.in_channels)
        self.n_prefix = 1
        self.weight = visual.conv1.weight
        # "avg" pools the mean of the patch tokens: defined for no patch by the empty-sum rule
        self.averages = visual.attn_pool is None and visual.pool_type == "avg"

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual._embeds(pixel_values)

    def forward_kept(self, tokens: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(_gather_kept(tokens, kept, self.n_prefix))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        v = self.visual
        x = v.transformer(tokens)
        if self.averages and tokens.shape[1] == self.n_prefix:
            # No patch kept: the mean over no token is zero (empty_mean_pool).
            pooled = empty_mean_pool(x[:, self.n_prefix :])
            if v.final_ln_after_pool:
                pooled = v.ln_post(pooled)
        else:
            pooled, _ = v._pool(x)
        if v.proj is not None:
            pooled = pooled @ v.proj
        return pooled

    def tower(self) -> Tower:
        v = self.visual
        blocks = _blocks(v, "transformer.resblocks")
        why = ""
        if v.attn_pool is not None:
            why = "the open_clip image tower pools with an attention pooler (no class-token query)."
        elif self.averages:
            why = "the open_clip image tower averages its patch tokens (no class-token query)."
        return Tower(
            blocks=blocks,
            attention=_attention_of(blocks),
            batch_first=bool(getattr(v.transformer, "batch_first", True)),
            n_prefix=self.n_prefix,
            pool_position=None if why else 0,
            why=why,
        )


class _TimmViT:
    """open_clip ``TimmModel`` around a timm ``VisionTransformer`` (SigLIP and friends)."""

    def __init__(self, visual: TimmModel) -> None:
        self.visual = visual
        trunk = visual.trunk
        self.trunk = trunk
        proj = getattr(trunk.patch_embed, "proj", None)
        if not isinstance(proj, torch.nn.Conv2d):
            raise UnsupportedModelError(
                f"the image tower's timm {type(trunk).__name__} trunk embeds patches with "
                f"{type(trunk.patch_embed).__name__} (proj: {type(proj).__name__}), a "
                "convolutional stem rather than one patchifying Conv2d (as MobileCLIP-B and "
                "ViTamin do), so its patches cannot be masked as players. Explain it through "
                "the model-agnostic path (FIxLIP(forward_func)) or use a ViT model."
            )
        self.grid = _int_pair(trunk.patch_embed.grid_size)
        self.patch = _int_pair(trunk.patch_embed.patch_size)
        self.size = _int_pair(trunk.patch_embed.img_size)
        self.channels = int(proj.in_channels)
        self.n_prefix = int(trunk.num_prefix_tokens)
        self.weight = proj.weight
        self.pool = str(getattr(trunk, "global_pool", ""))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.patch_embed(pixel_values)
        x = t._pos_embed(x)
        x = t.patch_drop(x)
        return t.norm_pre(x)

    def forward_kept(self, tokens: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        return self.forward_tokens(_gather_kept(tokens, kept, self.n_prefix))

    def forward_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        pool = getattr(t, "attn_pool", None)
        no_patch = tokens.shape[1] == self.n_prefix
        if no_patch and pool is not None:
            # No token left: attention over zero keys is backend-dependent (zeros or NaN),
            # so the MAP head's output is the shared empty-sum rule; the rest of timm's
            # forward_head (fc_norm, head_drop, head) follows as usual.
            x = map_head_over_nothing(pool, tokens.shape[0]).to(tokens.dtype)
            x = t.head(t.head_drop(t.fc_norm(x)))
        elif no_patch and self.pool == "avg":
            # The mean of no patch token is zero (empty_mean_pool), then fc_norm and head.
            x = empty_mean_pool(tokens[:, self.n_prefix :])
            x = t.head(t.head_drop(t.fc_norm(x)))
        elif no_patch and self.pool != "token":
            raise ValueError(
                f"image_masking='drop' keeping no patch is undefined for the timm "
                f"{type(t).__name__}'s {self.pool!r} pooling; use image_masking='mean'."
            )
        else:
            x = t.forward_head(t.norm(t.blocks(tokens)))
        return self.visual.head(x)

    def tower(self) -> Tower:
        t = self.trunk
        blocks = _blocks(t, "blocks")
        return Tower(
            blocks=blocks,
            attention=(),
            batch_first=True,
            n_prefix=self.n_prefix,
            pool_position=None,
            why=(
                f"the image tower is a timm {type(t).__name__} trunk ({self.pool!r} pooling, "
                "timm attention modules), not an open_clip VisionTransformer with a class "
                "token."
            ),
        )


class _PixelTower:
    """Any other image tower (convolutional or hybrid: ModifiedResNet, ConvNeXt, FastViT,
    Swin, ViTamin, MobileCLIP-B, ...): no maskable patch tokens, so the players are
    pixel-grid cells (``"mean"`` only)."""

    def __init__(self, visual: torch.nn.Module) -> None:
        self.visual = visual
        size = getattr(visual, "image_size", None)
        if size is None:
            raise _unsupported(f"The image tower {type(visual).__name__} (no image_size)")
        self.size = _int_pair((size, size) if isinstance(size, int) else size)
        self.weight: torch.Tensor = next(visual.parameters())
        self.channels = 3
        self.name = type(getattr(visual, "trunk", visual)).__name__

    def tower(self) -> Tower:
        raise UnsupportedModelError(
            f"the image tower {self.name} is convolutional or hybrid: it has no class token "
            "and no attention maps over patches, which Grad-ECLIP, GAME and exCLIP need. Use "
            "a perturbation method (FIxLIP, Shapley values, captum's methods)."
        )


def _gather_kept(tokens: torch.Tensor, kept: torch.Tensor, prefix: int) -> torch.Tensor:
    """``tokens [1, prefix + n, D]``, ``kept [g, k]`` -> ``[g, prefix + k, D]``: the prefix
    tokens, then the kept patch tokens in increasing order."""
    index = torch.cat(
        [torch.arange(prefix, device=kept.device).expand(kept.shape[0], prefix), kept + prefix],
        dim=1,
    )
    return tokens[0][index]


class _FlatCLIPText:
    """The text tower that open_clip's ``CLIP`` stores directly on the model."""

    def __init__(self, model: open_clip.CLIP) -> None:
        self.model = model
        self.owner: torch.nn.Module = model
        self.context_length = int(model.context_length)
        self.heads = int(model.transformer.resblocks[0].attn.num_heads)
        self.pool_type = model.text_pool_type
        self.eos_id = _first_int(getattr(model, "text_eos_id", None))
        self.pad_id: int | None = None
        self.has_cls = False
        self.vocab_size = int(model.token_embedding.num_embeddings)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, pool_position: int) -> torch.Tensor:
        m = self.model
        cast = m.transformer.get_cast_dtype()
        x = m.token_embedding(ids).to(cast) + m.positional_embedding.to(cast)
        mask = _key_mask(keep, self.heads, x.dtype)
        if m.attn_mask is not None:
            mask = mask + m.attn_mask.to(mask.dtype)
        x = m.transformer(x, attn_mask=mask)
        x = m.ln_final(x)
        return _project(x[:, pool_position], m.text_projection)


class _TextTransformer:
    """``CustomTextCLIP.text``: open_clip's ``TextTransformer``."""

    def __init__(self, text: TextTransformer) -> None:
        self.text = text
        self.owner: torch.nn.Module = text
        self.context_length = int(text.context_length)
        self.heads = int(text.heads)
        self.pool_type = text.pool_type
        self.eos_id = _first_int(getattr(text, "eos_id", None))
        self.pad_id = int(text.pad_id) if getattr(text, "use_pad_mask", False) else None
        self.has_cls = text.cls_emb is not None
        self.vocab_size = int(text.token_embedding.num_embeddings)

    def forward(self, ids: torch.Tensor, keep: torch.Tensor, pool_position: int) -> torch.Tensor:
        t = self.text
        x, base = t._embeds(ids)
        if self.has_cls:
            # CoCa-style class embedding appended at the end: never masked.
            keep = torch.cat([keep, keep.new_ones(keep.shape[0], 1)], dim=1)
        mask = _key_mask(keep, self.heads, x.dtype)
        if base is not None:
            length = x.shape[1]
            base = base.to(mask.dtype)
            mask = mask + (base[:length, :length] if base.ndim == 2 else base)
        x = t.transformer(x, attn_mask=mask)
        if self.has_cls:
            pooled = t.ln_final(x[:, -1])
        else:
            pooled = t.ln_final(x)[:, pool_position]
        return _project(pooled, t.text_projection)


def _text_tower(text: _FlatCLIPText | _TextTransformer | HFTextTower) -> Tower:
    if isinstance(text, HFTextTower):
        raise UnsupportedModelError(
            "the gradient baselines do not support open_clip's Hugging Face text towers "
            f"({text.text.config.model_type}); use a perturbation method."
        )
    if text.has_cls:
        raise UnsupportedModelError(
            "the gradient baselines do not support open_clip text towers with an appended "
            "class token (CoCa); use a perturbation method."
        )
    blocks = _blocks(text.owner, "transformer.resblocks")
    transformer = text.owner.get_submodule("transformer")
    return Tower(
        blocks=blocks,
        attention=_attention_of(blocks),
        batch_first=bool(getattr(transformer, "batch_first", True)),
        token_embedding=text.owner.get_submodule("token_embedding"),
    )


def _project(x: torch.Tensor, projection: torch.nn.Module | torch.Tensor | None) -> torch.Tensor:
    """Apply open_clip's text projection: a ``Linear``, a ``[width, D]`` matrix or none."""
    if projection is None:
        return x
    if isinstance(projection, torch.nn.Linear):
        return projection(x)
    return x @ projection


_SUPPORTED = (
    "Supported: open_clip CLIP or CustomTextCLIP with an open_clip VisionTransformer or a "
    "timm VisionTransformer trunk (with a patchifying Conv2d) as image tower, and an "
    "open_clip text transformer."
)


def _unsupported(what: str, todo: str = "") -> UnsupportedModelError:
    todo = todo or (
        "Explain this model through the model-agnostic path (FIxLIP(forward_func) with "
        "attribute(inputs, feature_mask=...)), or add a model family (docs: 'Add a model "
        "family')."
    )
    return UnsupportedModelError(
        f"{what} is not supported by the open_clip family. {_SUPPORTED} {todo}"
    )


_VisionTower = _OpenCLIPViT | _TimmViT | TimmEvaTower | TimmRelPosTower | _PixelTower


def _vision_tower(visual: torch.nn.Module) -> _VisionTower:
    """The token tower of a ViT-like image tower, a pixel-grid tower for any other (a ViT
    whose patches are not one patchifying Conv2d, e.g. MobileCLIP-B, ViTamin, is one)."""
    try:
        if isinstance(visual, VisionTransformer):
            return _OpenCLIPViT(visual)
        if isinstance(visual, TimmModel) and _is_timm_vit(visual.trunk):
            return _TimmViT(visual)
        if isinstance(visual, TimmModel) and is_timm_relpos(visual.trunk):
            return TimmRelPosTower(visual)
    except UnsupportedModelError:
        return _PixelTower(visual)
    if isinstance(visual, TimmModel) and is_timm_eva(visual.trunk):
        return TimmEvaTower(visual)
    return _PixelTower(visual)


class OpenCLIPAdapter(DualEncoderAdapter):
    """Masked encoding for open_clip ``CLIP`` and ``CustomTextCLIP`` models.

    Args:
        model: An ``open_clip.CLIP`` or ``open_clip.CustomTextCLIP``. Every encoding runs it
            in eval mode; its ``training`` flags are restored afterwards.
        tokenizer: open_clip-style tokenizer: ``tokenizer(texts, context_length=None) ->
            LongTensor [B, L]``. Special tokens are read from the tokenizer: start from
            ``sot_token_id`` (or the wrapped Hugging Face tokenizer's ``bos_token_id`` /
            ``cls_token_id``), end from ``eot_token_id`` (or ``eos_token_id`` /
            ``sep_token_id``), padding from ``pad_token_id`` (default 0), and every id in
            ``all_special_ids`` (but the unknown-word id) is never a player. ``None`` uses
            open_clip's BPE tokenizer when the model has its vocabulary size (49408), and is
            an error otherwise.

    Text players are the non-special positions strictly between the start token (when
    present) and the first end token; positions from the end token on (end, padding) are
    never players.

    Raises:
        UnsupportedModelError: A tower of the model is not supported (the message names its
            class and says what to do).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        image_grid: tuple[int, int] | None = None,
    ) -> None:
        if not isinstance(model, (open_clip.CLIP, open_clip.CustomTextCLIP, open_clip.CoCa)):
            raise _unsupported(f"The model {type(model).__name__}")
        self.model = model
        self._vision = _vision_tower(model.visual)
        self._players = self._player_grid(image_grid)

        self._text: _FlatCLIPText | _TextTransformer | HFTextTower
        if isinstance(model, open_clip.CLIP):
            self._text = _FlatCLIPText(model)
        elif isinstance(model.text, TextTransformer):
            self._text = _TextTransformer(model.text)
        elif is_hf_text_encoder(model.text):
            if tokenizer is None:
                raise ValueError(
                    "This open_clip model has a Hugging Face text tower; pass its tokenizer "
                    "(open_clip.get_tokenizer(model_name)) as tokenizer_or_processor."
                )
            context = getattr(tokenizer, "context_length", None) or model.text.context_length
            self._text = HFTextTower(model.text, int(context))
        else:
            raise _unsupported(
                f"The text tower {type(model.text).__name__} ({type(model.text).__module__})"
            )
        if self._text.pool_type not in ("first", "last", "argmax", "eos", None):
            raise _unsupported(f"Text pooling {self._text.pool_type!r}")

        if tokenizer is None:
            if getattr(model, "vocab_size", None) != _BPE_VOCAB_SIZE:
                raise ValueError(
                    "This open_clip model does not use the BPE vocabulary; pass its tokenizer "
                    "(open_clip.get_tokenizer(model_name)) as tokenizer_or_processor."
                )
            tokenizer = open_clip.SimpleTokenizer(context_length=self._text.context_length)
        if not callable(tokenizer):
            raise TypeError(
                "tokenizer must be callable as tokenizer(texts, context_length=...) like "
                f"open_clip's tokenizers; got {type(tokenizer).__name__}."
            )
        self.tokenizer = tokenizer
        inner = getattr(tokenizer, "tokenizer", None)
        self.sot_id = _first_int(
            getattr(tokenizer, "sot_token_id", None),
            getattr(inner, "bos_token_id", None),
            getattr(inner, "cls_token_id", None),
        )
        # open_clip's HFTokenizer(strip_sep_token=True) turns [SEP] into padding (CLIPA).
        sep = None if getattr(tokenizer, "strip_sep_token", False) else "sep_token_id"
        self.eot_id = _first_int(
            getattr(tokenizer, "eot_token_id", None),
            getattr(inner, "eos_token_id", None),
            getattr(inner, sep, None) if sep else None,
            self._text.eos_id if self._text.pool_type == "eos" else None,
        )
        pad_id = _first_int(
            getattr(tokenizer, "pad_token_id", None), getattr(inner, "pad_token_id", None)
        )
        self.pad_id = 0 if pad_id is None else pad_id
        self.unk_id = _first_int(
            getattr(tokenizer, "unk_token_id", None), getattr(inner, "unk_token_id", None)
        )
        declared = getattr(tokenizer, "all_special_ids", None)
        if declared is None:
            declared = getattr(inner, "all_special_ids", None) or ()
        special = {int(i) for i in declared} | {
            i for i in (self.sot_id, self.eot_id) if i is not None
        }
        special.discard(self.unk_id)  # unknown words are players (and warned about)
        self.special_ids = torch.tensor(sorted(special), dtype=torch.long)

        cfg = merge_preprocess_dict(asdict(PreprocessCfg()), dict(get_model_preprocess_cfg(model)))
        cfg["size"] = self._vision.size
        self._preprocess_cfg = PreprocessCfg(**cfg)
        self._transform = image_transform_v2(self._preprocess_cfg, is_train=False)

    def _player_grid(self, image_grid: Any) -> PlayerGrid:
        """Image players: the patch grid of a token tower (or ``image_grid`` cells of whole
        patches), the output-stride grid (or ``image_grid``) of pixel cells otherwise."""
        v = self._vision
        if isinstance(v, _PixelTower):
            grid = (
                default_pixel_grid(v.size)
                if image_grid is None
                else check_image_grid(image_grid, v.size, "pixels")
            )
            return PlayerGrid.over_pixels(grid, v.size)
        grid = v.grid if image_grid is None else check_image_grid(image_grid, v.grid, "patches")
        return PlayerGrid.over_patches(grid, v.grid, v.size, v.patch)

    # ------------------------------------------------------------------ geometry
    @property
    def patch_grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of image players (patches, cells of patches or pixel cells)."""
        return self._players.grid

    @property
    def image_size(self) -> tuple[int, int]:
        return self._vision.size

    @property
    def patch_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of one image player (rounded down for pixel cells
        that do not divide the image evenly)."""
        v = self._vision
        if isinstance(v, _PixelTower) or self._players.grid != v.grid:
            (rows, cols), (h, w) = self._players.grid, self.image_size
            return h // rows, w // cols
        return v.patch

    @property
    def image_maskings(self) -> tuple[str, ...]:
        """Image maskings this tower supports: ``("mean",)`` for a tower without maskable
        patch tokens, ``("mean", "drop")`` otherwise."""
        return ("mean",) if isinstance(self._vision, _PixelTower) else ("mean", "drop")

    def pixel_player_map(self, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        return self._players.pixel_owner.clone()

    def _pixel_keep_mask(
        self, coalitions: torch.Tensor, pixel_values: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._players.pixel_keep(coalitions)

    @property
    def context_length(self) -> int:
        """Number of token positions the text tower takes."""
        return self._text.context_length

    # ------------------------------------------------------------------ images
    def preprocess_image(self, image: Any) -> torch.Tensor:
        """PIL image -> resized, cropped, normalised ``[1, C, H, W]`` with the model's own
        preprocessing; a tensor ``[C, H, W]`` or ``[1, C, H, W]`` is taken as already
        preprocessed and only checked. The result is on :attr:`device`.

        Raises:
            ValueError: A tensor whose channels or size differ from the model input.
            TypeError: Neither a PIL image nor a tensor.
        """
        if isinstance(image, torch.Tensor):
            x = image
            if x.ndim == 3:
                x = x.unsqueeze(0)
            expected = (1, self._vision.channels, *self.image_size)
            if x.ndim != 4 or tuple(x.shape) != expected:
                raise ValueError(
                    f"image tensor has shape {tuple(image.shape)} but the model takes "
                    f"{list(expected)} (or [C, H, W]); resize and normalise it first, or pass "
                    "a PIL image to use the model's own preprocessing."
                )
            if not torch.is_floating_point(x):
                raise ValueError(
                    f"image tensor has dtype {x.dtype}; pass normalised float pixels "
                    "(or a PIL image)."
                )
            return x.to(self.device, dtype=torch.float32)
        try:
            from PIL import Image
        except ImportError as err:  # pragma: no cover - pillow is a dependency
            raise TypeError("image must be a torch.Tensor (Pillow is not installed).") from err
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"image must be a PIL.Image or a tensor [C, H, W]; got {type(image).__name__}."
            )
        return self._transform(image).unsqueeze(0).to(self.device)

    def display_image(self, pixel_values: torch.Tensor) -> np.ndarray:
        x = pixel_values.detach().float().cpu().reshape(-1, *pixel_values.shape[-3:])[0]
        mean = torch.tensor(self._preprocess_cfg.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self._preprocess_cfg.std, dtype=torch.float32).view(-1, 1, 1)
        img = (x * std + mean).clamp(0.0, 1.0).permute(1, 2, 0).numpy()
        if img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        return img[:, :, :3].astype(np.float64)

    def encode_image(
        self,
        pixel_values: torch.Tensor,
        coalitions: torch.Tensor | None = None,
        masking: str = "mean",
    ) -> torch.Tensor:
        """L2-normalised embeddings ``[m, D]`` of ``pixel_values [1, C, H, W]`` under
        ``coalitions [m, n_I]`` (bool, True = patch kept; ``None`` = unmasked, m = 1).

        ``masking="mean"`` zeroes masked patches in normalised pixel space; ``"drop"``
        removes their tokens. ``"drop"`` groups coalitions by kept count, so each row's
        embedding does not depend on which other rows share the call.
        """
        check_image_masking(masking)
        # Pixels in the weights' dtype, so half-precision models take float32 inputs.
        pixel_values = self.preprocess_image(pixel_values).to(self._vision.weight.dtype)
        if coalitions is None:
            with self.eval_mode():
                return F.normalize(self.model.encode_image(pixel_values).float(), dim=-1)
        coalitions = check_coalitions(coalitions, self.n_image_players, "image", self.device)
        if coalitions.shape[0] == 0:
            return self.encode_image(pixel_values, None)[:0]
        with self.eval_mode():
            return self._encode_masked_image(pixel_values, coalitions, masking)

    def _encode_masked_image(
        self, pixel_values: torch.Tensor, coalitions: torch.Tensor, masking: str
    ) -> torch.Tensor:
        m = coalitions.shape[0]
        if masking == "mean":
            x = pixel_values * self._pixel_keep_mask(coalitions).to(pixel_values.dtype)
            return F.normalize(self.model.encode_image(x).float(), dim=-1)
        vision = self._vision
        if isinstance(vision, _PixelTower):
            raise ValueError(
                f"image masking 'drop' has no meaning for the image tower {vision.name}: it "
                "has no patch tokens to drop (its players are pixel-grid cells); use "
                "masking='mean'."
            )
        embedded = vision.embed(pixel_values)
        out: torch.Tensor | None = None
        for rows, kept in kept_count_groups(self._players.patch_coalitions(coalitions)):
            feats = vision.forward_kept(embedded, kept).float()  # type: ignore[arg-type]
            if out is None:
                out = torch.empty(m, feats.shape[1], device=self.device)
            out[rows] = feats
        assert out is not None
        return F.normalize(out, dim=-1)

    # ------------------------------------------------------------------ text
    def tokenize(self, text: Any) -> TextInput:
        """Caption string, token ids (``Sequence[int]``, ``[L]`` or ``[1, L]`` tensor) or a
        :class:`TextInput` -> :class:`TextInput` padded to the context length.

        Raises:
            ValueError: Empty caption, a caption longer than the context, ids without the end
                token, or a pooling position that falls on a player.
        """
        if isinstance(text, TextInput):
            return text
        ctx = self.context_length
        caption: str | None = None
        if isinstance(text, str):
            if not text.strip():
                raise ValueError("The caption is empty; pass at least one word to explain.")
            caption = text
            # One position more than the context tells "fits" from "was truncated".
            ids = torch.as_tensor(self.tokenizer([text], context_length=ctx + 1))[0].long()
            end = self._end_position(ids)
            if end is None or end >= ctx or (self.eot_id is None and ids[ctx] != self.pad_id):
                raise ValueError(
                    f"The caption is longer than the model's context of {ctx} tokens "
                    "(including start/end tokens); shorten it."
                )
            ids = ids[:ctx]
        else:
            ids = check_token_ids(text, None)
            if ids.ndim == 2 and ids.shape[0] == 1:
                ids = ids[0]
            if ids.ndim != 1:
                raise ValueError(
                    f"token ids must have shape [L] or [1, L], got {tuple(ids.shape)}."
                )
            if ids.numel() > ctx:
                raise ValueError(
                    f"{ids.numel()} token ids given but the model's context is {ctx}; "
                    "shorten the caption."
                )
            if ids.numel() < ctx:
                pad = torch.full((ctx - ids.numel(),), self.pad_id, dtype=torch.long)
                ids = torch.cat([ids, pad])
            check_token_ids(ids, self._text.vocab_size)
        start = 1 if self.sot_id is not None and int(ids[0]) == self.sot_id else 0
        end = self._end_position(ids)
        if end is None:
            raise ValueError(
                f"token ids contain no end-of-text token (id {self.eot_id}); tokenize the "
                "caption with the model's tokenizer."
            )
        positions = torch.arange(start, end, dtype=torch.long)
        positions = positions[~torch.isin(ids[positions], self.special_ids)]
        if positions.numel() == 0:
            raise ValueError(
                "The caption has no tokens besides special tokens (start/end/padding); "
                "nothing to explain: pass at least one word."
            )
        pool_position = self._pool_position(ids)
        if self._text.pool_type is not None and start <= pool_position < end:
            raise ValueError(
                f"The model pools the text at position {pool_position}, which holds a caption "
                f"token (id {int(ids[pool_position])}), not the end token: the tokenizer does "
                f"not match the model's pooling ({self._text.pool_type!r})."
            )
        attention = torch.ones(ctx, dtype=torch.long)
        if self._text.pad_id is not None:
            attention[end + 1 :] = (ids[end + 1 :] != self._text.pad_id).long()
        labels = [self._label(int(ids[p])) for p in positions]
        if caption is not None:
            warn_unknown_words(ids[positions], self.unk_id, caption)
        return TextInput(
            input_ids=ids,
            attention_mask=attention,
            player_positions=positions,
            labels=labels,
            pool_position=pool_position,
            text=caption,
            extra={"end_position": end},
        )

    def encode_text(self, text: TextInput, coalitions: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised embeddings ``[m, D]`` of ``text`` under ``coalitions [m, n_T]``
        (bool, True = token kept; ``None`` = unmasked, m = 1). Masked tokens are removed as
        attention keys; their ids have no effect."""
        text = self.tokenize(text)
        ids = text.input_ids.to(self.device)
        if ids.shape != (self.context_length,):
            raise ValueError(
                f"input_ids must have shape [{self.context_length}], got {tuple(ids.shape)}."
            )
        coalitions = check_coalitions(coalitions, text.n_players, "text", self.device)
        m = coalitions.shape[0]
        if m == 0:
            return self.encode_text(text, None)[:0]
        keep = torch.ones(m, ids.shape[0], dtype=torch.bool, device=self.device)
        keep[:, text.player_positions.to(self.device)] = coalitions
        with self.eval_mode():
            feats = self._text.forward(ids.expand(m, -1), keep, text.pool_position)
        return F.normalize(feats.float(), dim=-1)

    # ------------------------------------------------------------------ tower internals
    def image_tower(self) -> Tower:
        return self._vision.tower()

    def text_tower(self) -> Tower:
        return _text_tower(self._text)

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixel_values)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # open_clip applies its own masks (causal, and padding where configured).
        return self.model.encode_text(input_ids)

    def attention_call(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> AttentionCall:
        return multihead_attention_call(module, args, kwargs)

    # ------------------------------------------------------------------ helpers
    def _end_position(self, ids: torch.Tensor) -> int | None:
        start = 1 if self.sot_id is not None and int(ids[0]) == self.sot_id else 0
        if self.eot_id is not None:
            hits = torch.nonzero(ids[start:] == self.eot_id).flatten()
            return int(hits[0]) + start if hits.numel() else None
        # No end token known: content runs up to the first padding id.
        hits = torch.nonzero(ids[start:] == self.pad_id).flatten()
        return int(hits[0]) + start if hits.numel() else int(ids.numel())

    def _pool_position(self, ids: torch.Tensor) -> int:
        pool = self._text.pool_type
        if pool is None:  # HF towers pool by attention mask or at position 0
            return 0
        if pool == "first":
            return 0
        if pool == "last":
            return int(ids.numel()) - 1
        if pool == "argmax":
            return int(ids.argmax())
        eos = self._text.eos_id
        if eos is None:
            raise ValueError(
                "the text tower pools at the end-of-text token but has no eos id; set "
                "text_cfg eos_id in the model config"
            )
        hits = torch.nonzero(ids == eos).flatten()
        return int(hits[0]) if hits.numel() else 0

    def _label(self, token_id: int) -> str:
        decode = getattr(self.tokenizer, "decode", None)
        if callable(decode):
            try:
                label = str(decode([token_id])).strip()
                if label:
                    return label
            except Exception:
                pass
        inner = getattr(self.tokenizer, "tokenizer", None)
        convert = getattr(inner, "convert_ids_to_tokens", None)
        if callable(convert):
            return str(convert(token_id))
        return str(token_id)


def _is_timm_vit(trunk: torch.nn.Module) -> bool:
    try:
        from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer
    except ImportError:  # pragma: no cover - timm is optional for open_clip
        return False
    return isinstance(trunk, TimmVisionTransformer)


def _first_int(*candidates: Any) -> int | None:
    for c in candidates:
        if c is not None:
            return int(c)
    return None
