"""``FIxLIP``: faithful interaction explanations in Captum's attribution API.

Two paths:

* **Dual encoder** (open_clip ``CLIP``/``CustomTextCLIP``, transformers ``CLIPModel``,
  ``SiglipModel``, ``Siglip2Model``): players are image patches and caption tokens;
  ``mode="banzhaf"`` runs the cross-modal estimator
  (:func:`fixlip_captum.approximate_crossmodal`) on a :class:`~fixlip_captum.games.CrossModalGame`,
  ``mode="shapley"`` runs :func:`fixlip_captum.approximate_interactions` with
  ``index="FSII"`` on the :class:`~fixlip_captum.games.JointGame`.
* **Generic** (any other ``forward_func(*inputs)``): players are the ids of ``feature_mask``
  (one namespace across the input tuple, as in Captum); an absent player's elements take the
  baseline. Runs :func:`fixlip_captum.approximate_interactions`.

:meth:`FIxLIP.attribute` returns Captum-shaped first-order attributions: every element of a
player (each pixel and channel of a patch, each token position) carries that player's
first-order value ``phi_i = e_i + p * sum_j e_ij`` (FSII: ``p = 1/2``, the Shapley value of
the fitted surrogate), as Captum's perturbation methods do for feature groups.
:meth:`FIxLIP.attribute_interactions` returns the full
:class:`~fixlip_captum.interaction_values.FIxLIPInteractionValues`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, overload

import numpy as np
import torch
from captum.attr import PerturbationAttribution
from PIL import Image

from fixlip_captum._validation import check_p, check_positive_int
from fixlip_captum.adapters import DualEncoderAdapter, UnsupportedModelError, get_adapter
from fixlip_captum.adapters.base import IMAGE_MASKINGS, VALUES, TextInput
from fixlip_captum.adapters.registry import looks_like_dual_encoder
from fixlip_captum.estimators import (
    approximate_crossmodal,
    approximate_interactions,
    minimum_budget,
)
from fixlip_captum.games import CrossModalGame
from fixlip_captum.interaction_values import ExplanationContext, FIxLIPInteractionValues

__all__ = ["MODES", "FIxLIP"]

MODES = ("banzhaf", "shapley")
DEFAULT_BUDGET = 2**17


def default_budget(
    n_image: int, n_text: int, mode: str, max_order: int, pairs: str | Sequence[int]
) -> int:
    """``budget=None``: 2^17, or the next power of two above twice the identifiable minimum
    (:func:`fixlip_captum.estimators.minimum_budget`) when that is larger, e.g. for long
    captions with all pairs fitted."""
    crossmodal = mode == "banzhaf"
    minimum = minimum_budget(
        n_image, n_text, max_order=max_order, pairs=pairs, crossmodal=crossmodal
    )
    return max(DEFAULT_BUDGET, 2 ** math.ceil(math.log2(2 * minimum)))


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'banzhaf' (faithful weighted Banzhaf, cross-modal estimator) or "
            f"'shapley' (faithful Shapley, model-agnostic estimator); got {mode!r}."
        )
    return mode


def _is_single_caption(text: Any) -> bool:
    """A caption is a str, a TextInput, a 1-D (or [1, L]) id tensor or a list of ints."""
    if isinstance(text, (str, TextInput)):
        return True
    if isinstance(text, torch.Tensor):
        return text.ndim == 1 or (text.ndim == 2 and text.shape[0] == 1)
    if isinstance(text, np.ndarray):
        return text.ndim == 1
    if isinstance(text, Sequence):
        return len(text) > 0 and all(isinstance(t, (int, np.integer)) for t in text)
    return False


def _split_images(image: Any) -> list[Any] | None:
    """A list of images, or ``None`` when ``image`` is a single image."""
    if isinstance(image, (list, tuple)):
        return list(image)
    if isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[0] > 1:
        return list(image.unbind(0))
    return None


def _split_texts(text: Any) -> list[Any] | None:
    if _is_single_caption(text):
        return None
    if isinstance(text, torch.Tensor) and text.ndim == 2:
        return list(text.unbind(0))
    if isinstance(text, Sequence) and not isinstance(text, str):
        return list(text)
    raise TypeError(
        "text must be a caption (str), token ids (list of ints or a [L] tensor), or a list "
        f"of those; got {type(text).__name__}."
    )


class FIxLIP(PerturbationAttribution):
    r"""Faithful interaction explanations (FIxLIP) of image-text similarity.

    Args:
        model: A supported dual encoder (see :func:`fixlip_captum.adapters.get_adapter`), a
            :class:`~fixlip_captum.adapters.base.DualEncoderAdapter`, or any callable
            ``forward_func(*inputs)`` returning one score per example (the generic path).
        tokenizer_or_processor: open_clip tokenizer or transformers processor/tokenizer of
            the dual encoder (ignored on the generic path).
        image_masking: ``"mean"`` (default; masked patch = 0 in normalised pixel space, i.e.
            the dataset mean colour) or ``"drop"`` (masked patch tokens removed).
        value: ``"logit"`` (default; the model's logit, scale * cos + bias) or ``"cosine"``.

    Attributes:
        adapter: The dual-encoder adapter, or ``None`` on the generic path.

    Example::

        model, _, preprocess = open_clip.create_model_and_transforms(
            "ViT-B-32", pretrained="openai")  # needs the weights
        explainer = fixlip_captum.FIxLIP(model, open_clip.get_tokenizer("ViT-B-32"))
        iv = explainer.attribute_interactions(pil_image, "a photo of a cat", budget=2**14)
    """

    def __init__(
        self,
        model: Callable[..., Any],
        tokenizer_or_processor: Any = None,
        *,
        image_masking: str = "mean",
        value: str = "logit",
    ) -> None:
        if image_masking not in IMAGE_MASKINGS:
            raise ValueError(
                f"image_masking must be one of {IMAGE_MASKINGS}, got {image_masking!r}."
            )
        if value not in VALUES:
            raise ValueError(f"value must be one of {VALUES}, got {value!r}.")
        self.image_masking = image_masking
        self.value = value
        self._unsupported: UnsupportedModelError | None = None
        try:
            self.adapter: DualEncoderAdapter | None = get_adapter(model, tokenizer_or_processor)
        except UnsupportedModelError as err:
            # A dual encoder no family serves cannot run the generic path either: refuse now.
            if not callable(model) or looks_like_dual_encoder(model):
                raise
            self.adapter = None
            self._unsupported = err
        forward = model.model if isinstance(model, DualEncoderAdapter) else model
        PerturbationAttribution.__init__(self, forward)

    @property
    def multiplies_by_inputs(self) -> bool:
        # Values of players, not gradients times inputs.
        return False

    # ------------------------------------------------------------------ dual encoder
    def _require_adapter(self) -> DualEncoderAdapter:
        if self.adapter is None:
            raise TypeError(
                "attribute_interactions needs a supported dual encoder; this FIxLIP wraps a "
                "generic forward function (use attribute(inputs, feature_mask=..., "
                "return_interactions=True) instead).\n" + str(self._unsupported)
            )
        return self.adapter

    def make_game(
        self,
        image: Any,
        text: Any,
        *,
        batch_size: int = 64,
        autocast_dtype: torch.dtype | None = None,
        show_progress: bool = False,
    ) -> CrossModalGame:
        """The :class:`~fixlip_captum.games.CrossModalGame` of one pair with this
        explainer's masking and value (``game.joint()`` gives the joint game)."""
        return CrossModalGame(
            self._require_adapter(),
            image,
            text,
            image_masking=self.image_masking,
            value=self.value,
            batch_size=batch_size,
            autocast_dtype=autocast_dtype,
            show_progress=show_progress,
        )

    # Typed callers get one result for one (PIL image, caption string) pair and a list for a
    # list of images; other inputs (tensors, whose batch size is only known at run time) get
    # the union.
    @overload
    def attribute_interactions(
        self,
        image: Image.Image,
        text: str,
        *,
        p: float = ...,
        budget: int | None = ...,
        mode: str = ...,
        max_order: int = ...,
        pairs: str | Sequence[int] = ...,
        m_image: int | None = ...,
        m_text: int | None = ...,
        seed: int | None = ...,
        batch_size: int = ...,
        autocast_dtype: torch.dtype | None = ...,
        show_progress: bool = ...,
    ) -> FIxLIPInteractionValues: ...

    @overload
    def attribute_interactions(
        self,
        image: list[Any],
        text: Any,
        *,
        p: float = ...,
        budget: int | None = ...,
        mode: str = ...,
        max_order: int = ...,
        pairs: str | Sequence[int] = ...,
        m_image: int | None = ...,
        m_text: int | None = ...,
        seed: int | None = ...,
        batch_size: int = ...,
        autocast_dtype: torch.dtype | None = ...,
        show_progress: bool = ...,
    ) -> list[FIxLIPInteractionValues]: ...

    @overload
    def attribute_interactions(
        self,
        image: Any,
        text: Any,
        *,
        p: float = ...,
        budget: int | None = ...,
        mode: str = ...,
        max_order: int = ...,
        pairs: str | Sequence[int] = ...,
        m_image: int | None = ...,
        m_text: int | None = ...,
        seed: int | None = ...,
        batch_size: int = ...,
        autocast_dtype: torch.dtype | None = ...,
        show_progress: bool = ...,
    ) -> FIxLIPInteractionValues | list[FIxLIPInteractionValues]: ...

    def attribute_interactions(
        self,
        image: Any,
        text: Any,
        *,
        p: float = 0.5,
        budget: int | None = None,
        mode: str = "banzhaf",
        max_order: int = 2,
        pairs: str | Sequence[int] = "all",
        m_image: int | None = None,
        m_text: int | None = None,
        seed: int | None = None,
        batch_size: int = 64,
        autocast_dtype: torch.dtype | None = None,
        show_progress: bool = False,
    ) -> FIxLIPInteractionValues | list[FIxLIPInteractionValues]:
        r"""Explain image-text pairs with faithful interactions.

        Args:
            image: PIL image, preprocessed tensor ``[C, H, W]`` / ``[1, C, H, W]``, or a list
                of those (or a ``[B, C, H, W]`` tensor) for several pairs.
            text: Caption string or token ids (``[L]`` tensor, list of ints), or a list of
                those (or a ``[B, L]`` tensor). A single image or caption is paired with
                every entry of the other list.
            p: Keep-probability of the weighted Banzhaf index (``mode="banzhaf"``), in (0, 1).
            budget: ``"banzhaf"``: number of image-text mask pairs ``m_I * m_T``;
                ``"shapley"``: number of joint coalitions (model evaluations). ``None``:
                :func:`default_budget` (2^17, more when that cannot identify the terms).
            mode: ``"banzhaf"`` (FWBII(p), cross-modal estimator) or ``"shapley"`` (FSII,
                model-agnostic estimator on the joint game).
            max_order: Highest interaction order (1, 2 or 3).
            pairs: Which pair terms are fitted: ``"all"``, ``"crossmodal"`` (image-text
                pairs only) or a list of player ids.
            m_image: ``"banzhaf"`` only: number of image masks (overrides the split).
            m_text: ``"banzhaf"`` only: number of text masks (overrides the split).
            seed: Seed of the mask sampler; every pair of a list uses the same seed, so a
                list gives the same values as one call per pair.
            batch_size: Masked images / captions per forward pass (halved on CUDA OOM).
            autocast_dtype: ``None``, ``torch.bfloat16`` or ``torch.float16`` for the
                encoders (the similarity stays float32).
            show_progress: Progress bar while encoding.

        Returns:
            :class:`FIxLIPInteractionValues` with players ``0..n_I-1`` (patches, row-major)
            then ``n_I..n_I+n_T-1`` (tokens); ``context`` holds the patch grid, token
            labels, v(empty), v(full), caption and display image. A list for list inputs.

        Raises:
            ValueError: Invalid ``p``, ``budget``, ``mode``, an image of the wrong size or
                channels, an empty caption or one longer than the model's context.
            NotIdentifiableError: The budget cannot determine the requested terms.
        """
        adapter = self._require_adapter()
        mode = _check_mode(mode)
        p = check_p(p)
        if budget is not None:
            budget = check_positive_int(budget, "budget")
        images, texts = _split_images(image), _split_texts(text)
        if images is None and texts is None:
            jobs = [(image, text)]
        else:
            images = images if images is not None else [image] * len(texts or [])
            texts = texts if texts is not None else [text] * len(images)
            if len(images) != len(texts):
                raise ValueError(
                    f"{len(images)} images and {len(texts)} captions given; pass equally many, "
                    "or one of either to pair it with every entry of the other."
                )
            if not images:
                raise ValueError("No image-text pairs given.")
            jobs = list(zip(images, texts, strict=True))
        results = []
        for img, txt in jobs:
            game = CrossModalGame(
                adapter,
                img,
                txt,
                image_masking=self.image_masking,
                value=self.value,
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
                show_progress=show_progress,
            )
            results.append(
                self._explain_game(
                    game,
                    p=p,
                    budget=budget,
                    mode=mode,
                    max_order=max_order,
                    pairs=pairs,
                    m_image=m_image,
                    m_text=m_text,
                    seed=seed,
                )
            )
        if images is None and texts is None:
            return results[0]
        return results

    def _explain_game(
        self,
        game: CrossModalGame,
        *,
        p: float,
        budget: int | None,
        mode: str,
        max_order: int,
        pairs: str | Sequence[int],
        m_image: int | None,
        m_text: int | None,
        seed: int | None,
    ) -> FIxLIPInteractionValues:
        adapter = game.adapter
        device = adapter.device
        if budget is None:
            budget = default_budget(game.n_image, game.n_text, mode, max_order, pairs)
        if mode == "banzhaf":
            iv = approximate_crossmodal(
                game,
                game.n_image,
                game.n_text,
                budget if (m_image is None or m_text is None) else None,
                m_image=m_image,
                m_text=m_text,
                p=p,
                max_order=max_order,
                seed=seed,
                device=device,
                pairs=pairs,
            )
        else:
            if m_image is not None or m_text is not None:
                raise ValueError("m_image/m_text apply to mode='banzhaf' only.")
            iv = approximate_interactions(
                game.joint(),
                game.n_players,
                budget,
                index="FSII",
                max_order=max_order,
                seed=seed,
                device=device,
                pairs=pairs,
                n_image=game.n_image,
            )
        iv.context = ExplanationContext(
            n_image=game.n_image,
            n_text=game.n_text,
            grid=adapter.patch_grid_of(game.pixel_values),
            token_labels=list(game.text.labels),
            v_empty=game.v_empty,
            v_full=game.v_full,
            caption=game.text.text,
            image=adapter.display_image(game.pixel_values),
        )
        iv.estimation_info.update(
            image_masking=game.image_masking,
            value=game.value,
            model=f"{type(adapter.model).__module__}.{type(adapter.model).__qualname__}",
            adapter=type(adapter).__name__,
            mode=mode,
        )
        return iv

    # ------------------------------------------------------------------ captum API
    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
        *,
        p: float = 0.5,
        budget: int | None = None,
        mode: str = "banzhaf",
        max_order: int = 2,
        pairs: str | Sequence[int] = "all",
        seed: int | None = None,
        batch_size: int = 64,
        autocast_dtype: torch.dtype | None = None,
        show_progress: bool = False,
        return_interactions: bool = False,
    ) -> Any:
        r"""First-order FIxLIP attributions in Captum's input shapes.

        Dual encoder: ``inputs = (pixel_values [B, C, H, W], input_ids [B, L])``, the
        model's preprocessed images and tokenised captions; pair ``b`` is
        ``(pixel_values[b], input_ids[b])``. ``baselines``, ``target``,
        ``additional_forward_args`` and ``feature_mask`` must be ``None`` (players and
        masking are the patches and tokens of the adapter).

        Generic path (``FIxLIP(forward_func)``): ``inputs`` is a tensor or tuple of tensors
        with batch dimension first; players are the ids in ``feature_mask`` (one namespace
        across the tuple; default: every scalar of an example is its own player); an absent
        player's elements take ``baselines`` (scalar, or a tensor broadcastable to the
        input; default 0). ``forward_func(*perturbed, *additional_forward_args)`` must
        return ``[m]`` or ``[m, K]`` (then ``target`` selects the column).

        Args:
            inputs: See above.
            baselines: Generic path: value of absent players per input.
            target: Generic path: output column (int, or one int per example).
            additional_forward_args: Generic path: extra arguments of ``forward_func``
                (tensors with batch dimension ``B`` are sliced per example).
            feature_mask: Generic path: player ids, broadcastable to each input (first
                dimension 1 or ``B``).
            p: Keep-probability in (0, 1) for ``mode="banzhaf"``.
            budget: Evaluations (``"shapley"``, generic) or image-text pairs (``"banzhaf"``
                with a dual encoder) per example; ``None``: :func:`default_budget` for a dual
                encoder, 2^17 on the generic path.
            mode: ``"banzhaf"`` (FWBII(p)) or ``"shapley"`` (FSII).
            max_order: Highest interaction order fitted (the map shows first-order values).
            pairs: Fitted pair terms: ``"all"``, ``"crossmodal"`` or a list of player ids.
            seed: Seed of the mask sampler (the same for every example).
            batch_size: Forward-pass batch size.
            autocast_dtype: Dual encoder only: autocast dtype of the encoders.
            show_progress: Progress bar while encoding.
            return_interactions: Also return the list of
                :class:`FIxLIPInteractionValues`, one per example.

        Returns:
            Dual encoder: ``(pixel_attr [B, C, H, W], token_attr [B, L])`` float32 on the
            inputs' device; every pixel (all channels) of patch ``j`` holds ``phi_j``, token
            position ``L_i`` of text player ``i`` holds its ``phi``, special tokens 0.
            Generic: attributions shaped like ``inputs`` (a tensor for a tensor input).
            With ``return_interactions=True``: ``(attributions, [iv_0, ..., iv_{B-1}])``.
        """
        mode = _check_mode(mode)
        p = check_p(p)
        if budget is not None:
            budget = check_positive_int(budget, "budget")
        if self.adapter is None:
            attrs, ivs = self._attribute_generic(
                inputs,
                baselines,
                target,
                additional_forward_args,
                feature_mask,
                p=p,
                budget=budget if budget is not None else DEFAULT_BUDGET,
                mode=mode,
                max_order=max_order,
                pairs=pairs,
                seed=seed,
                batch_size=batch_size,
            )
        else:
            attrs, ivs = self._attribute_dual(
                inputs,
                baselines,
                target,
                additional_forward_args,
                feature_mask,
                p=p,
                budget=budget,
                mode=mode,
                max_order=max_order,
                pairs=pairs,
                seed=seed,
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
                show_progress=show_progress,
            )
        return (attrs, ivs) if return_interactions else attrs

    def _attribute_dual(
        self,
        inputs: Any,
        baselines: Any,
        target: Any,
        additional_forward_args: Any,
        feature_mask: Any,
        *,
        batch_size: int,
        autocast_dtype: torch.dtype | None,
        show_progress: bool,
        **kwargs: Any,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], list[FIxLIPInteractionValues]]:
        adapter = self._require_adapter()
        for name, arg in (
            ("baselines", baselines),
            ("target", target),
            ("additional_forward_args", additional_forward_args),
            ("feature_mask", feature_mask),
        ):
            if arg is not None:
                raise ValueError(
                    f"{name} is not used for a dual encoder: the players are its image "
                    "patches and caption tokens, masked as chosen by image_masking. Leave "
                    f"{name}=None."
                )
        if not (isinstance(inputs, (tuple, list)) and len(inputs) == 2):
            raise ValueError(
                "For a dual encoder, inputs must be (pixel_values [B, C, H, W], input_ids "
                "[B, L]): the preprocessed images and the tokenised captions."
            )
        pixel_values, input_ids = inputs
        if not isinstance(pixel_values, torch.Tensor) or pixel_values.ndim != 4:
            raise ValueError(
                "pixel_values must be a tensor [B, C, H, W] of preprocessed images; got "
                f"{getattr(pixel_values, 'shape', type(pixel_values).__name__)}."
            )
        input_ids = torch.as_tensor(input_ids)
        if input_ids.ndim != 2 or input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"input_ids must have shape [B, L] with B = {pixel_values.shape[0]} (one "
                f"caption per image); got {tuple(input_ids.shape)}."
            )
        owner = adapter.pixel_player_map(pixel_values[:1])
        pixel_attr = torch.zeros(pixel_values.shape, dtype=torch.float32)
        token_attr = torch.zeros(input_ids.shape, dtype=torch.float32)
        ivs = []
        for b in range(pixel_values.shape[0]):
            game = CrossModalGame(
                adapter,
                pixel_values[b],
                input_ids[b],
                image_masking=self.image_masking,
                value=self.value,
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
                show_progress=show_progress,
            )
            iv = self._explain_game(game, m_image=None, m_text=None, **kwargs)
            ivs.append(iv)
            phi = torch.as_tensor(iv.first_order(), dtype=torch.float32)
            n_i = game.n_image
            if owner.shape != pixel_values.shape[-2:]:
                raise ValueError(
                    f"pixel_values are {tuple(pixel_values.shape[-2:])} pixels but the model "
                    f"takes {tuple(owner.shape)}."
                )
            patch_map = torch.where(owner >= 0, phi[:n_i][owner.clamp(min=0)], 0.0)
            pixel_attr[b] = patch_map.expand(pixel_values.shape[1], -1, -1)
            positions = game.text.player_positions
            token_attr[b, positions] = phi[n_i:]
        return (
            pixel_attr.to(pixel_values.device),
            token_attr.to(input_ids.device),
        ), ivs

    def _attribute_generic(
        self,
        inputs: Any,
        baselines: Any,
        target: Any,
        additional_forward_args: Any,
        feature_mask: Any,
        *,
        p: float,
        budget: int,
        mode: str,
        max_order: int,
        pairs: str | Sequence[int],
        seed: int | None,
        batch_size: int,
    ) -> tuple[Any, list[FIxLIPInteractionValues]]:
        batch_size = check_positive_int(batch_size, "batch_size")
        is_tuple = isinstance(inputs, (tuple, list))
        xs = tuple(inputs) if is_tuple else (inputs,)
        if not xs or not all(isinstance(x, torch.Tensor) for x in xs):
            raise TypeError("inputs must be a tensor or a tuple of tensors (batch first).")
        n_batch = xs[0].shape[0]
        if any(x.shape[0] != n_batch for x in xs):
            raise ValueError("All inputs must share the batch dimension.")
        masks = self._generic_masks(xs, feature_mask)
        bases = self._generic_baselines(xs, baselines)
        extra = additional_forward_args
        if extra is not None and not isinstance(extra, tuple):
            extra = (extra,)
        targets = self._generic_targets(target, n_batch)
        index = "FWBII" if mode == "banzhaf" else "FSII"
        attributions = [torch.zeros(x.shape, dtype=torch.float32) for x in xs]
        ivs = []
        for b in range(n_batch):
            mask_b = [m[b if m.shape[0] == n_batch else 0] for m in masks]
            ids = torch.unique(torch.cat([m.reshape(-1) for m in mask_b]))
            players = [torch.searchsorted(ids, m.contiguous()) for m in mask_b]
            n = int(ids.numel())
            game = _GenericGame(
                self.forward_func,
                [x[b] for x in xs],
                [base[b if base.shape[0] == n_batch else 0] for base in bases],
                players,
                _slice_extra(extra, b, n_batch),
                targets[b],
                n,
                batch_size,
            )
            iv = approximate_interactions(
                game,
                n,
                budget,
                index=index,
                p=p,
                max_order=max_order,
                seed=seed,
                pairs=pairs,
            )
            iv.estimation_info.update(mode=mode, feature_ids=ids.tolist())
            ivs.append(iv)
            phi = torch.as_tensor(iv.first_order(), dtype=torch.float32)
            for t, pl in enumerate(players):
                attributions[t][b] = phi[pl.cpu()]
        out = tuple(a.to(x.device) for a, x in zip(attributions, xs, strict=True))
        return (out if is_tuple else out[0]), ivs

    @staticmethod
    def _generic_masks(xs: tuple[torch.Tensor, ...], feature_mask: Any) -> list[torch.Tensor]:
        if feature_mask is None:
            # Captum's default: every scalar of an example is its own feature.
            masks, offset = [], 0
            for x in xs:
                count = int(np.prod(x.shape[1:]))
                masks.append(torch.arange(offset, offset + count).reshape(1, *x.shape[1:]))
                offset += count
            return masks
        fm = tuple(feature_mask) if isinstance(feature_mask, (tuple, list)) else (feature_mask,)
        if len(fm) != len(xs):
            raise ValueError(f"{len(fm)} feature masks given for {len(xs)} inputs.")
        out = []
        for t, (m, x) in enumerate(zip(fm, xs, strict=True)):
            m = torch.as_tensor(m)
            if m.dtype.is_floating_point or m.dtype == torch.bool:
                raise TypeError(f"feature_mask[{t}] must hold integer player ids.")
            if m.ndim != x.ndim or m.shape[0] not in (1, x.shape[0]):
                raise ValueError(
                    f"feature_mask[{t}] has shape {tuple(m.shape)}; it must have the input's "
                    f"{x.ndim} dimensions with first dimension 1 or {x.shape[0]} and the rest "
                    f"broadcastable to {tuple(x.shape[1:])}."
                )
            out.append(torch.broadcast_to(m.cpu(), (m.shape[0], *x.shape[1:])).long())
        return out

    @staticmethod
    def _generic_baselines(xs: tuple[torch.Tensor, ...], baselines: Any) -> list[torch.Tensor]:
        """Per input: ``[1 or B, *x.shape[1:]]`` baseline values."""
        bl = baselines if isinstance(baselines, (tuple, list)) else (baselines,) * len(xs)
        if len(bl) != len(xs):
            raise ValueError(f"{len(bl)} baselines given for {len(xs)} inputs.")
        out = []
        for t, (base, x) in enumerate(zip(bl, xs, strict=True)):
            base = torch.as_tensor(0 if base is None else base).to(x.device, x.dtype)
            try:
                if base.ndim == x.ndim and base.shape[0] in (1, x.shape[0]):
                    base = torch.broadcast_to(base, (base.shape[0], *x.shape[1:]))
                else:
                    base = torch.broadcast_to(base, x.shape[1:]).unsqueeze(0)
            except RuntimeError as err:
                raise ValueError(
                    f"baselines[{t}] of shape {tuple(base.shape)} does not broadcast to the "
                    f"input shape {tuple(x.shape)}."
                ) from err
            out.append(base)
        return out

    @staticmethod
    def _generic_targets(target: Any, n_batch: int) -> list[int | None]:
        if target is None or isinstance(target, (int, np.integer)):
            return [None if target is None else int(target)] * n_batch
        t = torch.as_tensor(target).reshape(-1)
        if t.numel() == 1:
            return [int(t)] * n_batch
        if t.numel() != n_batch:
            raise ValueError(f"target has {t.numel()} entries for {n_batch} examples.")
        return [int(v) for v in t]


def _slice_extra(extra: tuple | None, b: int, n_batch: int) -> tuple[tuple[Any, bool], ...]:
    """Per extra argument: (value, batched). Batched tensors are cut to example ``b``."""
    if extra is None:
        return ()
    out = []
    for a in extra:
        batched = isinstance(a, torch.Tensor) and a.ndim > 0 and a.shape[0] == n_batch
        out.append((a[b : b + 1] if batched else a, batched))
    return tuple(out)


class _GenericGame:
    """Joint game of one example for a generic ``forward_func``: absent players' elements
    take the baseline."""

    def __init__(
        self,
        forward_func: Callable[..., Any],
        inputs: list[torch.Tensor],
        baselines: list[torch.Tensor],
        players: list[torch.Tensor],
        extra: tuple[tuple[Any, bool], ...],
        target: int | None,
        n_players: int,
        batch_size: int,
    ) -> None:
        self.forward_func = forward_func
        self.inputs = inputs
        self.baselines = baselines
        self.players = [pl.to(x.device) for pl, x in zip(players, inputs, strict=True)]
        self.extra = extra
        self.target = target
        self.n_players = n_players
        self.batch_size = batch_size

    def _expand_extra(self, m: int) -> tuple:
        return tuple(a.expand(m, *a.shape[1:]) if batched else a for a, batched in self.extra)

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        if coalitions.ndim != 2 or coalitions.shape[1] != self.n_players:
            raise ValueError(
                f"coalitions must be [m, {self.n_players}], got {tuple(coalitions.shape)}."
            )
        out = []
        for start in range(0, coalitions.shape[0], self.batch_size):
            chunk = coalitions[start : start + self.batch_size]
            m = chunk.shape[0]
            perturbed = []
            for x, base, pl in zip(self.inputs, self.baselines, self.players, strict=True):
                keep = chunk.to(x.device)[:, pl]  # [m, *x.shape]
                perturbed.append(torch.where(keep, x.unsqueeze(0), base))
            with torch.no_grad():
                y = self.forward_func(*perturbed, *self._expand_extra(m))
            y = torch.as_tensor(y)
            if y.ndim == 2 and self.target is not None:
                y = y[:, self.target]
            elif y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.ndim != 1 or y.shape[0] != m:
                raise ValueError(
                    f"forward_func returned shape {tuple(y.shape)} for {m} perturbed inputs; "
                    "it must return one score per input ([m]), or [m, K] with target set."
                )
            out.append(y.detach().float().cpu())
        return torch.cat(out)
