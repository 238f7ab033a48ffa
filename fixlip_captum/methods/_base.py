"""Shared plumbing of the baseline methods: inputs, context, first-order results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from fixlip_captum._validation import check_caption
from fixlip_captum.adapters.base import IMAGE_MASKINGS, VALUES
from fixlip_captum.images import as_model_image
from fixlip_captum.interaction_values import (
    ExplanationContext,
    FIxLIPInteractionValues,
    first_order_values,
    make_interaction_values,
    require_context,
)

__all__ = ["PairMethod", "check_choice", "first_order_maps", "resolve_adapter"]


def check_choice(value: Any, choices: tuple, name: str) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}.")
    return value


def resolve_adapter(model: torch.nn.Module, tokenizer_or_processor: Any, adapter: Any) -> Any:
    """The adapter to use: ``adapter`` if given, else ``get_adapter(model, tokenizer)``."""
    if adapter is not None:
        return adapter
    from fixlip_captum.adapters import get_adapter

    return get_adapter(model, tokenizer_or_processor)


def first_order_maps(iv: FIxLIPInteractionValues) -> tuple[torch.Tensor, torch.Tensor]:
    """First-order view of ``iv`` split into ``(image [rows, cols], text [n_T])`` float32.

    ``phi_i = e_i + p * sum_j e_ij`` (the values themselves for order-1 results); see
    :func:`fixlip_captum.interaction_values.first_order_values`.

    Raises:
        ValueError: ``iv`` has no context, or its context has no patch grid.
    """
    ctx = require_context(iv)
    rows, cols = ctx.patch_grid()
    phi = first_order_values(iv)
    img = torch.as_tensor(phi[: ctx.n_image], dtype=torch.float32).reshape(rows, cols)
    return img, torch.as_tensor(phi[ctx.n_image :], dtype=torch.float32)


class PairMethod:
    """Base class: one explanation of one image-text pair over FIxLIP's players.

    Players are the image patches ``0 .. n_I-1`` (row-major over the patch grid), then the
    caption's non-special tokens ``n_I .. n_I+n_T-1``, exactly as the adapter defines them.

    Args:
        model: The dual encoder (open_clip or transformers).
        tokenizer_or_processor: Its tokenizer/processor, as for
            :func:`fixlip_captum.adapters.get_adapter`.
        adapter: A ready :class:`~fixlip_captum.adapters.base.DualEncoderAdapter` (then
            ``tokenizer_or_processor`` is ignored).
        value: ``"logit"`` (the model's score, default) or ``"cosine"``: the value whose
            v(empty) / v(full) the context records (and, for perturbation methods, the game).
        image_masking: Image masking used for v(empty) and by the games (``"mean"`` = mean
            colour, ``"drop"`` = token removal).
    """

    #: Registry name and shapiq index name (no '-').
    name: ClassVar[str] = ""
    index: ClassVar[str] = ""
    max_order: ClassVar[int] = 1

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        self.model = model
        self.adapter = resolve_adapter(model, tokenizer_or_processor, adapter)
        self.value = check_choice(value, VALUES, "value")
        self.image_masking = check_choice(image_masking, IMAGE_MASKINGS, "image_masking")

    # ------------------------------------------------------------------ inputs
    def prepare(self, image: Any, text: Any) -> tuple[torch.Tensor, Any]:
        """``(pixel_values [1, C, H, W], TextInput)`` through the adapter (PIL images via
        :func:`fixlip_captum.images.to_rgb`; a caption as bytes is refused)."""
        pixel_values = self.adapter.preprocess_image(as_model_image(image))
        # the grid of this image (SigLIP2 follows its aspect ratio)
        self._grid = self.adapter.patch_grid_of(pixel_values)
        self._pixel_values = pixel_values
        return pixel_values, self.adapter.tokenize(check_caption(text))

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid of the image last prepared (the model's grid before any)."""
        return getattr(self, "_grid", tuple(self.adapter.patch_grid))

    @property
    def n_image(self) -> int:
        rows, cols = self.grid
        return int(rows * cols)

    def patch_of_pixel(self) -> torch.Tensor:
        """``[H, W]`` long: the image player owning each pixel (-1 outside the grid)."""
        return self.adapter.pixel_player_map(getattr(self, "_pixel_values", None))

    def make_game(self, pixel_values: torch.Tensor, text: Any, batch_size: int = 64) -> Any:
        """The :class:`~fixlip_captum.games.JointGame` of the pair with this method's
        ``value`` and ``image_masking`` (the game every perturbation method evaluates)."""
        from fixlip_captum.games import JointGame

        return JointGame(
            self.adapter,
            pixel_values,
            text,
            image_masking=self.image_masking,
            value=self.value,
            batch_size=batch_size,
        )

    def pair_values(self, pixel_values: torch.Tensor, text: Any) -> tuple[float, float]:
        """``(v_full, v_empty)`` of the pair's game: every player kept / every player masked.

        Cost: 2 image and 2 text encodings.
        """
        game = self.make_game(pixel_values, text)
        return game.v_full, game.v_empty

    def context(
        self,
        pixel_values: torch.Tensor,
        text: Any,
        v_full: float | None = None,
        v_empty: float | None = None,
    ) -> ExplanationContext:
        if v_full is None or v_empty is None:
            v_full, v_empty = self.pair_values(pixel_values, text)
        return ExplanationContext(
            n_image=self.n_image,
            n_text=text.n_players,
            grid=self.adapter.patch_grid_of(pixel_values),
            token_labels=list(text.labels),
            v_empty=v_empty,
            v_full=v_full,
            caption=text.text,
            image=self.adapter.display_image(pixel_values),
        )

    # ------------------------------------------------------------------ results
    def first_order_result(
        self,
        image_scores: torch.Tensor | np.ndarray,
        text_scores: torch.Tensor | np.ndarray,
        context: ExplanationContext,
        info: Mapping[str, Any],
        *,
        intercept: float = 0.0,
        estimated: bool = True,
        budget: int | None = None,
    ) -> FIxLIPInteractionValues:
        """Order-1 :class:`FIxLIPInteractionValues` from per-patch and per-token scores."""
        img = np.asarray(torch.as_tensor(image_scores).detach().double().cpu()).reshape(-1)
        txt = np.asarray(torch.as_tensor(text_scores).detach().double().cpu()).reshape(-1)
        if img.shape[0] != context.n_image or txt.shape[0] != context.n_text:
            raise RuntimeError(
                f"{self.name}: got {img.shape[0]} image / {txt.shape[0]} text scores for "
                f"{context.n_image} / {context.n_text} players."
            )
        n = context.n_players
        values = np.concatenate([[intercept], img, txt])
        terms = [(), *[(i,) for i in range(n)]]
        return make_interaction_values(
            values,
            terms,
            n_players=n,
            index=self.index,
            max_order=1,
            estimated=estimated,
            estimation_budget=budget,
            estimation_info={"method": self.name, **info},
            context=context,
        )

    def attribute(self, image: Any, text: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Captum-style attributions: ``(image [rows, cols], text [n_T])`` float tensors.

        For order-1 methods these are the values themselves; for order-2 results the
        first-order view ``phi_i = e_i + p * sum_j e_ij`` (p = 0.5 for Shapley indices:
        the Shapley value of the fitted surrogate), see
        :func:`fixlip_captum.interaction_values.first_order_values`.
        """
        # kwargs are the subclass's keyword-only options of attribute_interactions.
        return first_order_maps(self.attribute_interactions(image, text, **kwargs))

    def attribute_interactions(
        self, image: Any, text: Any
    ) -> FIxLIPInteractionValues:  # pragma: no cover - abstract
        """Explain one pair; subclasses may add keyword-only options with defaults."""
        raise NotImplementedError
