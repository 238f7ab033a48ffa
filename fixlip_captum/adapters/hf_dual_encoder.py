"""The transformers dual-encoder base class every transformers family module builds on.

The text side of the transformers families is the same recipe: the caption is tokenised
once, and a masked token is removed as an attention *key* by zeroing its entry of the 2-D
``attention_mask`` handed to the model's own ``get_text_features`` (CLIP merges it with
the causal mask, SigLIP builds a bidirectional mask from it). Positions that are not players
(start, end, padding, and the position the model pools) keep the mask the tokenizer gave
them, so with every player kept the adapter reproduces ``model(**inputs)`` exactly.

Image preprocessing, the patch-mask helpers, the similarity and the tower internals of the
gradient baselines (``vision_model.encoder.layers`` / ``text_model.encoder.layers`` with
``self_attn`` modules) are shared as well; each family module says how a masked image is
encoded, where its text tower pools, and its default normalisation.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase, ProcessorMixin
from transformers.image_processing_utils import BaseImageProcessor
from transformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD

from fixlip_captum.adapters.attention import projection_attention_call
from fixlip_captum.adapters.base import (
    AttentionCall,
    DualEncoderAdapter,
    TextInput,
    Tower,
    UnsupportedModelError,
    check_image_masking,
)
from fixlip_captum.adapters.masking import check_coalitions
from fixlip_captum.adapters.tokens import check_token_ids, warn_unknown_words

__all__ = [
    "HFDualEncoderAdapter",
    "isqrt_grid",
    "l2_normalize",
    "pooled_output",
    "split_tokenizer_or_processor",
]


def split_tokenizer_or_processor(
    obj: Any,
) -> tuple[PreTrainedTokenizerBase | None, BaseImageProcessor | None]:
    """Split what the user passed into ``(tokenizer, image_processor)``.

    Args:
        obj: A transformers processor (``ProcessorMixin`` with ``tokenizer`` and
            ``image_processor``), a tokenizer (``PreTrainedTokenizerBase``), an image
            processor (``BaseImageProcessor``) or ``None``.

    Returns:
        ``(tokenizer or None, image_processor or None)``.
    """
    if obj is None:
        return None, None
    if isinstance(obj, ProcessorMixin):
        tokenizer = getattr(obj, "tokenizer", None)
        image_processor = getattr(obj, "image_processor", None)
        if tokenizer is not None and not isinstance(tokenizer, PreTrainedTokenizerBase):
            raise TypeError(
                f"the processor's tokenizer is a {type(tokenizer).__name__}, "
                "not a transformers tokenizer"
            )
        return tokenizer, image_processor
    if isinstance(obj, PreTrainedTokenizerBase):
        return obj, None
    if isinstance(obj, BaseImageProcessor):
        return None, obj
    raise TypeError(
        "tokenizer_or_processor must be a transformers processor (e.g. "
        "AutoProcessor.from_pretrained(name)), a tokenizer, an image processor or None; "
        f"got {type(obj).__name__}"
    )


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """``[m, D]`` -> float32 rows of unit length."""
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True)


def pooled_output(output: Any) -> torch.Tensor:
    """``get_*_features`` output as a tensor (transformers 5 returns
    ``BaseModelOutputWithPooling``, 4.x a tensor)."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


def _as_pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


class HFDualEncoderAdapter(DualEncoderAdapter):
    """Shared part of the transformers family adapters; not used directly.

    Subclasses set ``_model_types`` (accepted model classes), ``_default_mean_std`` (used
    only when no image processor is given), ``_pools_last`` (SigLIP: text pooled at the
    last position; CLIP: at end-of-text; override ``_pooled_position`` for another rule),
    ``_causal_text`` (the text tower is causal: tokens after the pooled one are not players),
    ``_class_token`` (the image tower pools a class
    token at position 0; else an attention head) and implement ``_encode_mean`` /
    ``_encode_drop``.
    """

    _model_types: tuple[type, ...] = ()
    _default_mean_std: tuple[Sequence[float], Sequence[float]] = (
        IMAGENET_STANDARD_MEAN,
        IMAGENET_STANDARD_STD,
    )
    _pools_last: bool = True
    _causal_text: bool = False
    _class_token: bool = False

    def __init__(self, model: torch.nn.Module, tokenizer_or_processor: Any = None) -> None:
        if not isinstance(model, self._model_types):
            names = " / ".join(t.__name__ for t in self._model_types)
            raise UnsupportedModelError(
                f"{type(self).__name__} needs a transformers {names}, got "
                f"{type(model).__name__}; use fixlip_captum.adapters.get_adapter(model, ...) "
                "to pick the right adapter"
            )
        self.model = model
        self.tokenizer, self.image_processor = split_tokenizer_or_processor(tokenizer_or_processor)

    # ---- geometry ------------------------------------------------------------------------

    @property
    def vision_config(self) -> Any:
        return self.model.config.vision_config

    @property
    def text_config(self) -> Any:
        return self.model.config.text_config

    @property
    def patch_size(self) -> tuple[int, int]:
        return _as_pair(self.vision_config.patch_size)

    @property
    def num_channels(self) -> int:
        return int(getattr(self.vision_config, "num_channels", 3))

    @property
    def image_size(self) -> tuple[int, int]:
        return _as_pair(self.vision_config.image_size)

    @property
    def patch_grid(self) -> tuple[int, int]:
        (h, w), (ph, pw) = self.image_size, self.patch_size
        return h // ph, w // pw

    @property
    def context_length(self) -> int:
        """Longest token sequence the text tower accepts."""
        return int(self.text_config.max_position_embeddings)

    # ---- images --------------------------------------------------------------------------

    def _mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        ip = self.image_processor
        # The concrete processors (CLIPImageProcessor, ...) define these, BaseImageProcessor
        # does not; a float applies to every channel.
        ip_mean: float | Sequence[float] | None = getattr(ip, "image_mean", None)
        ip_std: float | Sequence[float] | None = getattr(ip, "image_std", None)
        mean: float | Sequence[float]
        std: float | Sequence[float]
        if ip is not None and getattr(ip, "do_normalize", True) is False:
            mean, std = (0.0,) * 3, (1.0,) * 3
        elif ip_mean is not None and ip_std is not None:
            mean, std = ip_mean, ip_std
        elif ip_mean is not None or ip_std is not None:
            # half a normalisation: guessing the other half would silently shift every pixel
            raise ValueError(
                f"The image processor {type(ip).__name__} defines only one of image_mean / "
                "image_std; set both (or do_normalize=False) so masked pixels match the model."
            )
        else:
            mean, std = self._default_mean_std
        return (
            torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1),
            torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1),
        )

    def _check_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Validate ``[1, C, H, W]`` (or ``[C, H, W]``) against the model and move it."""
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values must be a tensor [1, C, H, W], got {type(pixel_values).__name__}"
            )
        if pixel_values.ndim == 3:
            pixel_values = pixel_values.unsqueeze(0)
        if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
            raise ValueError(
                "pass one image as a tensor [C, H, W] or [1, C, H, W]; got shape "
                f"{tuple(pixel_values.shape)} (explain several images one at a time)"
            )
        c, h, w = pixel_values.shape[1:]
        if c != self.num_channels:
            raise ValueError(
                f"the model expects {self.num_channels} channels, the image has {c}; "
                "convert it (e.g. PIL image.convert('RGB')) and preprocess it with the processor"
            )
        self._check_size(int(h), int(w))
        if not pixel_values.is_floating_point():
            raise TypeError("pixel_values must be a float tensor in the model's normalised space")
        return pixel_values.to(self.device, torch.float32)

    def _check_size(self, h: int, w: int) -> None:
        """Refuse a tensor whose size the model does not take."""
        if (h, w) != self.image_size:
            raise ValueError(
                f"the model expects {self.image_size[0]}x{self.image_size[1]} pixels, the "
                f"image is {h}x{w}; pass a PIL image together with the model's processor, or "
                "resize the tensor first"
            )

    def _require_image_processor(self) -> BaseImageProcessor:
        """The image processor, which a PIL image needs."""
        if self.image_processor is None:
            raise ValueError(
                "a PIL image needs the model's processor: pass "
                "AutoProcessor.from_pretrained(name) as tokenizer_or_processor, or give "
                "a preprocessed tensor [1, C, H, W]"
            )
        return self.image_processor

    def _processor_pixels(self, image: Any) -> torch.Tensor:
        """Run the image processor on a PIL image -> ``[1, C, H, W]`` (CLIP, SigLIP)."""
        out = self._require_image_processor()(images=image, return_tensors="pt")
        return out["pixel_values"]

    def preprocess_image(self, image: Any) -> torch.Tensor:
        """Normalised ``[1, C, H, W]`` on :attr:`device`.

        Args:
            image: A PIL image (needs the model's processor, which resizes, crops and
                normalises it exactly as for ``model(**processor(...))``), or a tensor
                ``[C, H, W]`` / ``[1, C, H, W]`` already preprocessed (only checked).

        Returns:
            ``[1, C, H, W]`` float32 on the model's device.
        """
        if isinstance(image, torch.Tensor):
            return self._check_pixels(image)
        from PIL import Image  # pillow is a dependency

        if isinstance(image, Image.Image):
            return self._check_pixels(self._processor_pixels(image.convert("RGB")))
        raise TypeError(
            f"image must be a PIL image or a tensor [1, C, H, W], got {type(image).__name__}"
        )

    def display_image(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Undo normalisation: ``[1, C, H, W]`` -> ``[H, W, 3]`` float in ``[0, 1]``.

        Args:
            pixel_values: ``[1, C, H, W]`` or ``[C, H, W]`` as returned by
                :meth:`preprocess_image`.
        """
        x = pixel_values.detach().float().cpu()
        if x.ndim == 4:
            x = x[0]
        mean, std = self._mean_std()
        x = (x * std + mean).clamp(0.0, 1.0)
        if x.shape[0] == 1:
            x = x.expand(3, -1, -1)
        return x.permute(1, 2, 0).numpy()

    def encode_image(
        self,
        pixel_values: torch.Tensor,
        coalitions: torch.Tensor | None = None,
        masking: str = "mean",
    ) -> torch.Tensor:
        """L2-normalised image embeddings ``[m, D]`` (float32) under each coalition.

        Args:
            pixel_values: ``[1, C, H, W]`` from :meth:`preprocess_image`.
            coalitions: ``[m, n_I]`` bool, True = patch kept; ``None`` = every patch kept.
            masking: ``"mean"`` (a masked patch is 0 in normalised pixel space, the
                dataset mean colour) or ``"drop"`` (the patch token is removed; see the
                family's class docstring for how).
        """
        check_image_masking(masking)
        pixel_values = self._check_pixels(pixel_values)
        n_image = math.prod(self.patch_grid_of(pixel_values))
        coalitions = check_coalitions(coalitions, n_image, "image", self.device)
        if coalitions.shape[0] == 0:
            return self.encode_image(pixel_values, None, masking)[:0]
        with self.eval_mode():
            if masking == "mean":
                return l2_normalize(self._encode_mean(pixel_values, coalitions))
            return l2_normalize(self._encode_drop(pixel_values, coalitions))

    def _encode_mean(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_drop(self, pixel_values: torch.Tensor, coalitions: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ---- text ----------------------------------------------------------------------------

    def _tokenize_string(self, text: str) -> tuple[list[int], list[int] | None]:
        """Tokenise as the family's processor does; no truncation (too long is an error)."""
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise ValueError(
                "a caption string needs the model's tokenizer or processor "
                "(tokenizer_or_processor=...); without one, pass token ids"
            )
        if self._pools_last:
            # SigLIP was trained on captions padded to the full context; the processors do so.
            enc = tokenizer(
                text, padding="max_length", max_length=self.context_length, truncation=False
            )
        else:
            enc = tokenizer(text, truncation=False)
        return list(enc["input_ids"]), enc.get("attention_mask")

    def _pooled_position(self, input_ids: torch.Tensor) -> int:
        """Where the text tower reads its output, by the model's own rule."""
        if self._pools_last:
            return int(input_ids.numel()) - 1
        eos = self.text_config.eos_token_id
        if eos == 2:
            # transformers' legacy rule for old CLIP configs: end-of-text has the largest id.
            return int(input_ids.argmax())
        hits = torch.nonzero(input_ids == eos).flatten()
        if hits.numel() == 0:
            raise ValueError(
                f"the caption has no end-of-text token (id {eos}), where CLIP reads its "
                "text embedding; tokenise with the model's tokenizer"
            )
        return int(hits[0])

    def _player_mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pooled: int
    ) -> torch.Tensor:
        """``[L]`` bool: which positions are text players."""
        length = input_ids.numel()
        positions = torch.arange(length)
        if self.tokenizer is not None:
            special = torch.tensor(sorted(set(self.tokenizer.all_special_ids)), dtype=torch.long)
            is_player = attention_mask.bool() & ~torch.isin(input_ids, special)
        elif self._pools_last:
            # Without a tokenizer: the caption runs up to the first end/padding id of the
            # config; a leading start id is not a player.
            cfg = self.text_config
            ends = {i for i in (cfg.eos_token_id, cfg.pad_token_id) if isinstance(i, int)}
            hits = torch.nonzero(torch.isin(input_ids, torch.tensor(sorted(ends)))).flatten()
            if hits.numel() == 0:
                raise ValueError(
                    f"cannot find where the caption ends: no end/padding id {sorted(ends)} "
                    "(from the model's text config) in the token ids; pass the model's "
                    "tokenizer or processor"
                )
            is_player = positions < int(hits[0])
            bos = cfg.bos_token_id
            if isinstance(bos, int) and int(input_ids[0]) == bos:
                is_player[0] = False
        else:
            # CLIP always starts with the start-of-text token.
            is_player = (positions > 0) & attention_mask.bool()
        if self._causal_text:
            # Causal tower: tokens after the pooled end-of-text cannot reach it.
            is_player &= positions < pooled
        if bool(is_player[pooled]):
            # Masking the pooled position as a key would not remove its id from the output,
            # so it cannot be a player: it is always kept.
            warnings.warn(
                f"the model reads its text embedding at position {pooled}, which holds a "
                f"caption token (id {int(input_ids[pooled])}, e.g. the tokenizer adds no "
                "end token); that token is always kept and is not a player",
                stacklevel=3,
            )
            is_player[pooled] = False
        return is_player

    def _padding_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """``[L]`` long: the attention mask the tokenizer returns along with these ids.

        A tokenizer that returns a mask gives 0 exactly on the padding it added: the run of
        padding ids after the end-of-text token (right padding; where end and padding share
        an id, the first one is the end token) or before the first token (left padding).
        Without a tokenizer, or one that returns no mask, every position is attended, as
        the model does when called on ids alone.
        """
        mask = torch.ones_like(input_ids)
        tok = self.tokenizer
        if (
            tok is None
            or tok.pad_token_id is None
            or "attention_mask" not in getattr(tok, "model_input_names", ())
        ):
            return mask
        is_pad = (input_ids == int(tok.pad_token_id)).long()
        if tok.padding_side == "left":
            mask[: int(is_pad.cumprod(0).sum())] = 0
            return mask
        first_pad = input_ids.numel() - int(is_pad.flip(0).cumprod(0).sum())
        eos = tok.eos_token_id
        # Only an end token that the tokenizer itself appends bounds the caption (this tells
        # "end, then padding" from "padding only" where the two share an id).
        if eos is not None and int(eos) in tok("")["input_ids"]:
            ends = torch.nonzero(input_ids == int(eos)).flatten()
            if ends.numel():
                first_pad = max(first_pad, int(ends[0]) + 1)
        mask[first_pad:] = 0
        return mask

    def _decode(self, token_ids: list[int]) -> str:
        """The tokenizer's text for one id sequence."""
        if self.tokenizer is None:
            raise ValueError("decoding token ids needs the model's tokenizer or processor")
        text = self.tokenizer.decode(token_ids)
        # transformers annotates decode() as `str | list[str]`; the list is for a batch of id
        # lists, which is never passed here.
        if not isinstance(text, str):
            raise TypeError(f"the tokenizer decoded one id sequence to a {type(text).__name__}")
        return text

    def _label(self, token_id: int) -> str:
        if self.tokenizer is None:
            return f"<{token_id}>"
        label = self._decode([token_id]).strip()
        if not label:
            label = str(self.tokenizer.convert_ids_to_tokens(token_id))
        return label

    def tokenize(self, text: Any) -> TextInput:
        """Tokenise a caption once and find its players.

        Args:
            text: A caption string (needs a tokenizer or processor; tokenised as the
                family's processor does: CLIP unpadded, SigLIP padded to the context), token
                ids ``Sequence[int]`` / ``Tensor[L]`` / ``Tensor[1, L]`` used verbatim, a
                mapping with ``input_ids`` and optionally ``attention_mask`` (e.g. the
                tokenizer's output for one caption), or a :class:`TextInput` (returned
                unchanged). Ids without a mask get the mask the tokenizer would return with
                them (0 on its padding; see ``_padding_mask``), so a caption and its ids give
                the same :class:`TextInput`; without a tokenizer every position is attended.

        Returns:
            :class:`TextInput` with ``input_ids [L]``, ``attention_mask [L]``,
            ``player_positions [n_T]`` (every non-special attended token except the pooled
            position), ``labels`` and ``pool_position``.
        """
        if isinstance(text, TextInput):
            return text
        caption = None
        mask_list = None
        if isinstance(text, str):
            if not text.strip():
                raise ValueError("the caption is empty; give at least one word")
            caption = text
            ids_list, mask_list = self._tokenize_string(text)
            input_ids = torch.tensor(ids_list, dtype=torch.long)
        elif isinstance(text, Mapping):
            if "input_ids" not in text:
                raise ValueError("a mapping caption needs an 'input_ids' entry")
            input_ids = check_token_ids(text["input_ids"], int(self.text_config.vocab_size))
            if text.get("attention_mask") is not None:
                mask_list = torch.as_tensor(text["attention_mask"]).long().reshape(-1).tolist()
        elif isinstance(text, (torch.Tensor, np.ndarray, Sequence)):
            input_ids = check_token_ids(text, int(self.text_config.vocab_size))
        else:
            raise TypeError(
                f"text must be a string, token ids or a TextInput, got {type(text).__name__}"
            )
        if input_ids.ndim == 2 and input_ids.shape[0] == 1:
            input_ids = input_ids[0]
        if input_ids.ndim != 1 or input_ids.numel() == 0:
            raise ValueError(
                f"pass one caption: token ids of shape [L], got {tuple(input_ids.shape)}"
            )
        input_ids = input_ids.cpu()
        if mask_list is None:
            attention_mask = self._padding_mask(input_ids)
        else:
            attention_mask = torch.tensor(mask_list, dtype=torch.long).reshape(-1)
            if attention_mask.numel() != input_ids.numel():
                raise ValueError("attention_mask and input_ids must have the same length")
        length = input_ids.numel()
        if length > self.context_length:
            raise ValueError(
                f"the caption has {length} tokens but the model's text context is "
                f"{self.context_length}; shorten the caption"
            )
        if caption is not None:
            # A string's ids come from the tokenizer; checked like ids given directly.
            check_token_ids(input_ids, int(self.text_config.vocab_size))

        pooled = self._pooled_position(input_ids)
        is_player = self._player_mask(input_ids, attention_mask, pooled)
        player_positions = torch.nonzero(is_player).flatten()
        if player_positions.numel() == 0:
            raise ValueError("the caption has no tokens to explain (only start/end/padding tokens)")
        labels = [self._label(int(input_ids[i])) for i in player_positions]
        if caption is not None and self.tokenizer is not None:
            warn_unknown_words(input_ids[player_positions], self.tokenizer.unk_token_id, caption)
        if caption is None and self.tokenizer is not None:
            caption = self._decode(input_ids[player_positions].tolist())
        dev = self.device
        return TextInput(
            input_ids=input_ids.to(dev),
            attention_mask=attention_mask.to(dev),
            player_positions=player_positions.to(dev),
            labels=labels,
            pool_position=pooled,
            text=caption,
        )

    def encode_text(self, text: TextInput, coalitions: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised text embeddings ``[m, D]`` (float32) under each coalition.

        A masked token is removed as an attention key (its ``attention_mask`` entry is 0);
        its own id then has no effect on the pooled output. Start, end and padding tokens
        and the pooled position keep the tokenizer's mask, so with every token kept this is
        exactly ``model.get_text_features(**tokenizer_output)``.

        Args:
            text: A :class:`TextInput` from :meth:`tokenize`.
            coalitions: ``[m, n_T]`` bool, True = token kept; ``None`` = every token kept.
        """
        if not isinstance(text, TextInput):
            raise TypeError("encode_text takes the TextInput returned by tokenize()")
        dev = self.device
        coalitions = check_coalitions(coalitions, text.n_players, "text", dev)
        m = coalitions.shape[0]
        if m == 0:
            return self.encode_text(text, None)[:0]
        input_ids = text.input_ids.to(dev).unsqueeze(0).expand(m, -1)
        attention_mask = text.attention_mask.to(dev).unsqueeze(0).repeat(m, 1)
        attention_mask[:, text.player_positions.to(dev)] = coalitions.long()
        # A tokenizer may leave every non-player position unattended (no start/end token,
        # padding masked); the empty coalition would then have no key at all (NaN). Let
        # the pooled position attend to itself there; other coalitions are unaffected.
        no_key = attention_mask.sum(dim=1) == 0
        if bool(no_key.any()):
            attention_mask[no_key, text.pool_position] = 1
        with self.eval_mode():
            out = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        return l2_normalize(pooled_output(out))

    # ---- similarity ----------------------------------------------------------------------

    def similarity(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, value: str = "logit"
    ) -> torch.Tensor:
        """``[a, D] x [b, D] -> [a, b]`` float32: the model's own ``logits_per_image``
        (``exp(logit_scale) * cos``, plus ``logit_bias`` for SigLIP/SigLIP2) for
        ``value="logit"``, or the cosine; the embeddings are normalised again first.

        Args:
            image_embeds: ``[a, D]`` from :meth:`encode_image`.
            text_embeds: ``[b, D]`` from :meth:`encode_text`.
            value: ``"logit"`` or ``"cosine"``.
        """
        return super().similarity(l2_normalize(image_embeds), l2_normalize(text_embeds), value)

    # ---- tower internals (gradient baselines) ---------------------------------------------

    def _tower(
        self, tower: nn.Module, what: str
    ) -> tuple[tuple[nn.Module, ...], tuple[nn.Module, ...]]:
        blocks = tower.get_submodule("encoder.layers")
        if not isinstance(blocks, nn.ModuleList):
            raise UnsupportedModelError(
                f"{type(tower).__name__}.encoder.layers is a {type(blocks).__name__}, not a "
                f"list of transformer blocks; the gradient baselines cannot walk the {what} "
                "tower."
            )
        return tuple(blocks), tuple(b.get_submodule("self_attn") for b in blocks)

    def image_tower(self) -> Tower:
        blocks, attention = self._tower(self.model.get_submodule("vision_model"), "image")
        if self._class_token:
            return Tower(blocks=blocks, attention=attention, n_prefix=1, pool_position=0)
        return Tower(
            blocks=blocks,
            attention=attention,
            n_prefix=0,
            pool_position=None,
            why=(
                f"the {type(self.model).__name__} image tower has no class token: it pools "
                "the patch tokens with an attention head (MAP) outside the transformer, so "
                "there is no class-token query to explain."
            ),
        )

    def text_tower(self) -> Tower:
        text_model = self.model.get_submodule("text_model")
        blocks, attention = self._tower(text_model, "text")
        return Tower(
            blocks=blocks,
            attention=attention,
            token_embedding=text_model.get_submodule("embeddings.token_embedding"),
        )

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return pooled_output(self.model.get_image_features(pixel_values=pixel_values))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return pooled_output(
            self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        )

    def attention_call(self, module: nn.Module, args: tuple, kwargs: dict) -> AttentionCall:
        return projection_attention_call(module, args, kwargs)

    @contextlib.contextmanager
    def internals(self) -> Iterator[None]:
        """Eval mode and eager attention (so the mask reaching an attention module is the
        additive float mask), both restored on exit."""
        config = self.model.config
        previous = config._attn_implementation
        with self.eval_mode():
            if previous != "eager":
                self.model.set_attn_implementation("eager")
            try:
                yield
            finally:
                if previous != "eager":
                    self.model.set_attn_implementation(previous)


def isqrt_grid(n_patches: int) -> int:
    """Side of the largest square grid with at most ``n_patches`` patches."""
    return max(1, math.isqrt(int(n_patches)))
