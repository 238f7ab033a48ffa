"""The interface every model family implements: preprocessing, tokenisation, masked encoding.

An adapter turns "keep these players" into embeddings. It knows nothing about sampling or
solving; games (``fixlip_captum.games``) call it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fixlip_captum.adapters._patches import pixel_player_map

__all__ = ["IMAGE_MASKINGS", "VALUES", "DualEncoderAdapter", "TextInput"]

IMAGE_MASKINGS = ("mean", "drop")
VALUES = ("logit", "cosine")


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
        text: The caption as a string, when known.
        extra: Family-specific fields (e.g. the end-of-text position).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    player_positions: torch.Tensor
    labels: list[str]
    text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_players(self) -> int:
        return int(self.player_positions.numel())


class DualEncoderAdapter(abc.ABC):
    """Masked encoding for one dual-encoder family.

    Subclasses set ``self.model`` and implement the abstract methods. Embeddings are
    L2-normalised; :meth:`similarity` applies the model's own scale (and bias).
    """

    model: torch.nn.Module

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    @abc.abstractmethod
    def patch_grid(self) -> tuple[int, int]:
        """``(rows, cols)`` of the patch grid for the model's input size."""

    @property
    @abc.abstractmethod
    def patch_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of one patch (the patchifying stride)."""

    @property
    def n_image_players(self) -> int:
        rows, cols = self.patch_grid
        return rows * cols

    def pixel_player_map(self) -> torch.Tensor:
        """``[H, W]`` long: the image player owning each pixel, ``-1`` for pixels outside
        the patch grid (which the patchifying convolution ignores)."""
        return pixel_player_map(self.patch_grid, self.image_size, self.patch_size)

    def _pixel_keep_mask(self, coalitions: torch.Tensor) -> torch.Tensor:
        """``[m, n_I]`` bool -> ``[m, 1, H, W]`` float, 0 on the pixels of masked patches
        (pixels outside the patch grid are never seen and keep 1)."""
        owner = self.pixel_player_map().to(coalitions.device)
        keep = torch.ones(coalitions.shape[0], *owner.shape, device=coalitions.device)
        inside = owner >= 0
        keep[:, inside] = coalitions[:, owner[inside]].float()
        return keep.unsqueeze(1)

    @property
    @abc.abstractmethod
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` in pixels of the model input."""

    @abc.abstractmethod
    def preprocess_image(self, image: Any) -> torch.Tensor:
        """PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` -> ``[1, C, H, W]`` normalised,
        on :attr:`device`. Tensors are taken as already preprocessed and only checked."""

    @abc.abstractmethod
    def tokenize(self, text: Any) -> TextInput:
        """Caption string, or token ids ``[L]`` -> :class:`TextInput`."""

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

    @abc.abstractmethod
    def similarity(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, value: str = "logit"
    ) -> torch.Tensor:
        """``[a, D] x [b, D] -> [a, b]`` float32: the model's logit or the cosine."""

    @abc.abstractmethod
    def display_image(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Undo normalisation: ``[1, C, H, W]`` -> ``[H, W, 3]`` float in ``[0, 1]``."""
