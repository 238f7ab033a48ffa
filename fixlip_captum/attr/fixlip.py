"""``FIxLIP``: faithful interaction explanations in Captum's attribution API.

Two paths:

* **Dual encoder** (open_clip ``CLIP``/``CustomTextCLIP``, transformers ``CLIPModel``,
  ``SiglipModel``, ``Siglip2Model``): players are image patches and caption tokens;
  ``mode="banzhaf"`` runs the cross-modal estimator
  (:func:`fixlip_captum.approximate_crossmodal`) on a :class:`~fixlip_captum.games.CrossModalGame`,
  ``mode="shapley"`` runs the model-agnostic estimator with
  ``index="FSII"`` on the :class:`~fixlip_captum.games.JointGame`.
* **Generic** (any other ``forward_func(*inputs)``): players are the ids of ``feature_mask``
  (one namespace across the input tuple, as in Captum); an absent player's elements take the
  baseline. Runs the model-agnostic estimator
  (:func:`fixlip_captum.estimators.estimate_joint`) on the
  :class:`~fixlip_captum.games.ForwardFuncGame` of each example.

One pair is explained by :func:`fixlip_captum.attr.pair.explain_pair` (shared with the
registry's :class:`~fixlip_captum.methods.FIxLIPMethod`).

:meth:`FIxLIP.attribute` returns Captum-shaped first-order attributions: every element of a
player (each pixel and channel of a patch, each token position) carries that player's
first-order value ``phi_i = e_i + p * sum_j e_ij`` (FSII: ``p = 1/2``, the Shapley value of
the fitted surrogate), as Captum's perturbation methods do for feature groups.
:meth:`FIxLIP.attribute_interactions` returns the full
:class:`~fixlip_captum.interaction_values.FIxLIPInteractionValues`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, overload

import torch
from captum.attr import PerturbationAttribution
from PIL import Image

from fixlip_captum._validation import check_not_image_transform
from fixlip_captum.adapters import DualEncoderAdapter, UnsupportedModelError, get_adapter
from fixlip_captum.adapters.base import IMAGE_MASKINGS, VALUES
from fixlip_captum.adapters.registry import looks_like_dual_encoder
from fixlip_captum.attr.pair import MODES, explain_pair, split_pairs
from fixlip_captum.estimators import estimate_joint
from fixlip_captum.games import CrossModalGame, forward_func_games
from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.settings import Settings, plan_joint

__all__ = ["MODES", "FIxLIP"]


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
        check_not_image_transform(model, "model")
        check_not_image_transform(tokenizer_or_processor, "tokenizer_or_processor")
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

    def _settings(
        self,
        mode: str,
        p: float | None,
        max_order: int,
        pairs: str | Sequence[int],
        seed: int | None,
        budget: int | None,
    ) -> Settings:
        """The call's settings, validated once (with this explainer's masking and value)."""
        dual = self.adapter is not None
        return Settings.create(
            mode=mode,
            p=p,
            max_order=max_order,
            pairs=pairs,
            seed=seed,
            budget=budget,
            image_masking=self.image_masking if dual else None,
            value=self.value if dual else None,
        )

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
        p: float | None = ...,
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
        p: float | None = ...,
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
        p: float | None = ...,
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
        p: float | None = None,
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
                :func:`fixlip_captum.settings.default_budget` (2^17, more when that cannot
                identify the terms; a short caption gets no more image masks than a
                10-token one).
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
        self._require_adapter()
        settings = self._settings(mode, p, max_order, pairs, seed, budget)
        jobs = split_pairs(image, text)
        results = [
            explain_pair(
                self.make_game(
                    img,
                    txt,
                    batch_size=batch_size,
                    autocast_dtype=autocast_dtype,
                    show_progress=show_progress,
                ),
                settings,
                m_image=m_image,
                m_text=m_text,
            )
            for img, txt in (jobs if jobs is not None else [(image, text)])
        ]
        return results if jobs is not None else results[0]

    # ------------------------------------------------------------------ captum API
    def attribute(
        self,
        inputs: torch.Tensor | tuple[torch.Tensor, ...],
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
        *,
        p: float | None = None,
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
                with a dual encoder) per example; ``None``: the default rule of
                :func:`fixlip_captum.settings.default_budget` (both paths).
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
        settings = self._settings(mode, p, max_order, pairs, seed, budget)
        if self.adapter is None:
            attrs, ivs = self._attribute_generic(
                inputs,
                baselines,
                target,
                additional_forward_args,
                feature_mask,
                settings,
                batch_size=batch_size,
            )
        else:
            attrs, ivs = self._attribute_dual(
                inputs,
                baselines,
                target,
                additional_forward_args,
                feature_mask,
                settings,
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
        settings: Settings,
        *,
        batch_size: int,
        autocast_dtype: torch.dtype | None,
        show_progress: bool,
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
            game = self.make_game(
                pixel_values[b],
                input_ids[b],
                batch_size=batch_size,
                autocast_dtype=autocast_dtype,
                show_progress=show_progress,
            )
            iv = explain_pair(game, settings)
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
        settings: Settings,
        *,
        batch_size: int,
    ) -> tuple[Any, list[FIxLIPInteractionValues]]:
        games = forward_func_games(
            self.forward_func,
            inputs,
            baselines,
            target,
            additional_forward_args,
            feature_mask,
            batch_size=batch_size,
        )
        xs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        attributions = [torch.zeros(x.shape, dtype=torch.float32) for x in xs]
        ivs = []
        for b, game in enumerate(games):
            iv = estimate_joint(
                game,
                plan_joint(settings, game.n_players),
                device=torch.device("cpu"),
                batch_size=batch_size,
            )
            iv.estimation_info.update(
                mode="banzhaf" if settings.index == "FWBII" else "shapley",
                feature_ids=game.feature_ids,
            )
            ivs.append(iv)
            phi = torch.as_tensor(iv.first_order(), dtype=torch.float32)
            for t, values in enumerate(game.spread(phi)):
                attributions[t][b] = values
        out = tuple(a.to(x.device) for a, x in zip(attributions, xs, strict=True))
        return (out if isinstance(inputs, (tuple, list)) else out[0]), ivs
