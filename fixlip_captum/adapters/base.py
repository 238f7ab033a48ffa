"""The interface every model family implements.

A family adapter turns "keep these players" into embeddings (preprocessing, players and
labels, tokenisation, masked encoding, the similarity) and exposes the tower internals the
gradient baselines (Grad-ECLIP, GAME, exCLIP) need. It knows nothing about sampling or
solving; games (``fixlip_captum.games``) and methods (``fixlip_captum.methods``) call it.
Families are registered in :mod:`fixlip_captum.adapters.registry`.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from fixlip_captum.adapters.masking import pixel_player_map

__all__ = [
    "IMAGE_MASKINGS",
    "VALUES",
    "AttentionCall",
    "DualEncoderAdapter",
    "TextInput",
    "Tower",
    "UnsupportedModelError",
    "check_image_masking",
    "check_value",
]

#: Image masking kinds: ``"mean"`` (masked patch = 0 in normalised pixel space) and
#: ``"drop"`` (masked patch tokens removed).
IMAGE_MASKINGS = ("mean", "drop")
#: What is explained: the model's ``"logit"`` (scale * cos + bias) or the ``"cosine"``.
VALUES = ("logit", "cosine")


class UnsupportedModelError(TypeError):
    """The model (or one of its towers) is not supported by any registered family.

    The message names the model's actual classes and says what to do instead.
    """


def check_image_masking(masking: str) -> str:
    """``masking`` if it is one of :data:`IMAGE_MASKINGS`, else a ``ValueError``."""
    if masking not in IMAGE_MASKINGS:
        raise ValueError(f"image masking must be one of {IMAGE_MASKINGS}, got {masking!r}.")
    return masking


def check_value(value: str) -> str:
    """``value`` if it is one of :data:`VALUES`, else a ``ValueError``."""
    if value not in VALUES:
        raise ValueError(f"value must be one of {VALUES}, got {value!r}.")
    return value


@dataclass
class TextInput:
    """A tokenised caption and where its players sit.

    Attributes:
        input_ids: ``[L]`` long token ids as the model expects them (padded to the context
            length where the family requires it).
        attention_mask: ``[L]`` long, 1 where the position takes part in attention.
        player_positions: ``[n_T]`` long, positions in ``input_ids`` of the text players
            (every non-special token, in order).
        labels: ``n_T`` readable token strings for plots.
        pool_position: Position in ``input_ids`` whose final hidden state the text tower
            pools (end-of-text, the last position, ...); never a player.
        text: The caption as a string, when known.
        extra: Family-specific fields (e.g. the end-of-text position).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    player_positions: torch.Tensor
    labels: list[str]
    pool_position: int
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_players(self) -> int:
        return int(self.player_positions.numel())


@dataclass(frozen=True)
class Tower:
    """What the gradient baselines need of one tower.

    Attributes:
        blocks: The transformer blocks in order (empty when not reachable; see ``why``).
        attention: The attention module of each block, for
            :meth:`DualEncoderAdapter.attention_call` (empty when it cannot be recomputed).
        batch_first: Whether a block receives ``[B, L, H]`` (else ``[L, B, H]``).
        n_prefix: Positions before the patch tokens (image: 1 with a class token, else 0).
        pool_position: Image tower: the sequence position it pools (0 = class token), or
            ``None`` when it pools by attention or averaging. Unused for text (the position
            is per caption: :attr:`TextInput.pool_position`).
        why: Why blocks, attention or the pooled position are missing, for error messages.
        token_embedding: Text tower: the token-embedding module (its output is replaced by
            Integrated Gradients); ``None`` for the image tower.
    """

    blocks: tuple[nn.Module, ...] = ()
    attention: tuple[nn.Module, ...] = ()
    batch_first: bool = True
    n_prefix: int = 0
    pool_position: int | None = None
    why: str = ""
    token_embedding: nn.Module | None = None


@dataclass
class AttentionCall:
    """One self-attention call decoded from its module and arguments.

    Attributes:
        x: ``[B, L, D]`` input (batch-first), with gradients.
        weights: ``(w_q, b_q, w_k, b_k, w_v, b_v)``, each ``[D', D]`` / ``[D']`` or ``None``.
        out_proj: The output projection.
        heads: Number of heads.
        scale: Factor on ``q . k`` (``1 / sqrt(d_head)`` unless the module says otherwise).
        mask: Additive mask broadcastable to ``[B, heads, L, L]``, or ``None``.
        batch_first: Layout the module returns (``False``: ``[L, B, D]``).
    """

    x: torch.Tensor
    weights: tuple[
        torch.Tensor,
        torch.Tensor | None,
        torch.Tensor,
        torch.Tensor | None,
        torch.Tensor,
        torch.Tensor | None,
    ]
    out_proj: nn.Linear
    heads: int
    scale: float
    mask: torch.Tensor | None
    batch_first: bool = True


class DualEncoderAdapter(abc.ABC):
    """Masked encoding and tower internals of one dual-encoder family.

    Subclasses set ``self.model`` and implement the abstract methods; the gradient-baseline
    hooks (:meth:`image_tower` ... :meth:`attention_call`) are optional and refuse by
    default. Embeddings are L2-normalised; :meth:`similarity` applies the model's own scale
    (and bias). Every encoding runs the model in eval mode and restores each module's
    ``training`` flag afterwards (:meth:`eval_mode`).
    """

    model: nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ geometry
    @property
    @abc.abstractmethod
    def patch_grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid for the model's input size."""

    @property
    @abc.abstractmethod
    def patch_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of one patch (the patchifying stride)."""

    @property
    @abc.abstractmethod
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels of the model input."""

    @property
    def n_image_players(self) -> int:
        rows, cols = self.patch_grid
        return rows * cols

    def patch_grid_of(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """``(rows, cols)`` of the players of one preprocessed image ``[1, C, H, W]``.

        The model's fixed :attr:`patch_grid`, except for families whose grid follows the
        image (SigLIP2 keeps the aspect ratio).
        """
        return self.patch_grid

    def pixel_player_map(self, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """``[H, W]`` long: the image player owning each pixel, ``-1`` for pixels outside
        the patch grid (which the patchifying convolution ignores).

        Args:
            pixel_values: The preprocessed image ``[1, C, H, W]`` when the grid follows the
                image (see :meth:`patch_grid_of`); ``None`` = the model's fixed grid.
        """
        if pixel_values is None:
            return pixel_player_map(self.patch_grid, self.image_size, self.patch_size)
        h, w = (int(s) for s in pixel_values.shape[-2:])
        return pixel_player_map(self.patch_grid_of(pixel_values), (h, w), self.patch_size)

    def _pixel_keep_mask(
        self, coalitions: torch.Tensor, pixel_values: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[m, n_I]`` bool -> ``[m, 1, H, W]`` float, 0 on the pixels of masked patches
        (pixels outside the patch grid are never seen and keep 1)."""
        owner = self.pixel_player_map(pixel_values).to(coalitions.device)
        keep = torch.ones(coalitions.shape[0], *owner.shape, device=coalitions.device)
        inside = owner >= 0
        keep[:, inside] = coalitions[:, owner[inside]].float()
        return keep.unsqueeze(1)

    # ------------------------------------------------------------------ inputs
    @abc.abstractmethod
    def preprocess_image(self, image: Any) -> torch.Tensor:
        """PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` -> ``[1, C, H, W]`` normalised,
        on :attr:`device`. Tensors are taken as already preprocessed and only checked."""

    @abc.abstractmethod
    def tokenize(self, text: Any) -> TextInput:
        """Caption string, or token ids ``[L]`` -> :class:`TextInput`."""

    @abc.abstractmethod
    def display_image(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Undo normalisation: ``[1, C, H, W]`` -> ``[H, W, 3]`` float in ``[0, 1]``."""

    # ------------------------------------------------------------------ masked encoding
    @abc.abstractmethod
    def encode_image(
        self,
        pixel_values: torch.Tensor,
        coalitions: torch.Tensor | None = None,
        masking: str = "mean",
    ) -> torch.Tensor:
        """Embeddings ``[m, D]`` of ``pixel_values [1, C, H, W]`` under each of the
        ``coalitions [m, n_I]`` (bool, True = patch kept); ``None`` = unmasked, m = 1."""

    @abc.abstractmethod
    def encode_text(self, text: TextInput, coalitions: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``[m, D]`` of ``text`` under ``coalitions [m, n_T]``; ``None`` = unmasked."""

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """The model in eval mode inside the block; every module's ``training`` flag is
        restored on exit (a model in ``train()`` gives the same values as in ``eval()``)."""
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        try:
            yield
        finally:
            for module, training in modes:
                module.training = training

    # ------------------------------------------------------------------ similarity
    def logit_scale_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(exp(logit_scale), logit_bias or None)`` as float32 0-d tensors (detached)."""
        scale = self.model.get_parameter("logit_scale").detach().float().exp().reshape(())
        bias = getattr(self.model, "logit_bias", None)
        return scale, (None if bias is None else bias.detach().float().reshape(()))

    def similarity(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, value: str = "logit"
    ) -> torch.Tensor:
        """``[a, D] x [b, D] -> [a, b]`` float32: ``exp(logit_scale) * cos (+ logit_bias)``
        (the model's own logit) for ``value="logit"``, the cosine for ``"cosine"``.

        Args:
            image_embeds: ``[a, D]`` from :meth:`encode_image` (unit rows).
            text_embeds: ``[b, D]`` from :meth:`encode_text` (unit rows).
            value: ``"logit"`` or ``"cosine"``.
        """
        check_value(value)
        cos = image_embeds.float() @ text_embeds.float().to(image_embeds.device).T
        if value == "cosine":
            return cos
        scale, bias = self.logit_scale_bias()
        out = scale.to(cos.device) * cos
        if bias is not None:
            out = out + bias.to(cos.device)
        return out

    # ------------------------------------------------------------------ tower internals
    def _no_internals(self) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"{type(self).__name__} (model {type(self.model).__name__}) exposes no tower "
            "internals for the gradient baselines (Grad-ECLIP, GAME, exCLIP); use a "
            "perturbation method (FIxLIP, Shapley, LIME, ...) instead."
        )

    def image_tower(self) -> Tower:
        """The image tower's blocks, attention modules and pooled position."""
        raise self._no_internals()

    def text_tower(self) -> Tower:
        """The text tower's blocks and attention modules."""
        raise self._no_internals()

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings ``[B, D]`` of ``pixel_values [B, C, H, W]``, with
        gradients (the model's own unmasked forward pass)."""
        raise self._no_internals()

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised text embeddings ``[B, D]`` of ``input_ids [B, L]`` with
        ``attention_mask [B, L]``, with gradients (the model's own forward pass)."""
        raise self._no_internals()

    def attention_call(self, module: nn.Module, args: tuple, kwargs: dict) -> AttentionCall:
        """Decode one call of an attention module of :meth:`image_tower` /
        :meth:`text_tower` (forward-hook ``args`` / ``kwargs``) into an
        :class:`AttentionCall`."""
        raise self._no_internals()

    @contextlib.contextmanager
    def internals(self) -> Iterator[None]:
        """Context for the gradient baselines' forward passes: eval mode (restored on exit)
        and whatever the family needs for its attention to be recomputable (e.g.
        transformers' eager attention)."""
        with self.eval_mode():
            yield
