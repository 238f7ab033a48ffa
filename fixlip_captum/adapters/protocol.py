"""A public protocol for any other dual encoder: five methods and two sizes.

A model no built-in family covers is explained by writing a small object with
:class:`DualEncoder`'s members and passing it where a model goes
(``FIxLIP(my_encoder)``): :func:`fixlip_captum.adapters.get_adapter` wraps it in a
:class:`ProtocolAdapter`. The object does its own masking: ``encode_image`` gets the
pixels and which image players are kept, ``encode_text`` the token ids and which text
players are kept. :meth:`PlayerGrid.pixel_keep
<fixlip_captum.adapters.pixel_grid.PlayerGrid.pixel_keep>` gives the pixel mask of the
paper's mean-colour masking.

For a model that is not a dual encoder at all (one joint forward pass), use the generic
path instead: ``FIxLIP(forward_func).attribute(inputs, feature_mask=...)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from fixlip_captum.adapters.base import DualEncoderAdapter, TextInput
from fixlip_captum.adapters.masking import check_coalitions
from fixlip_captum.adapters.pixel_grid import PlayerGrid

__all__ = ["DualEncoder", "ProtocolAdapter", "is_dual_encoder"]

_MEMBERS = ("image_size", "image_grid", "preprocess", "tokenize", "encode_image", "encode_text")


@runtime_checkable
class DualEncoder(Protocol):
    """What fixlip-captum needs of a dual encoder.

    Attributes:
        image_size: ``(H, W)`` in pixels of the preprocessed image.
        image_grid: ``(rows, cols)`` of image players; players are numbered row-major and
            player ``r * cols + c`` covers the pixels of cell ``(r, c)`` of an even split.
    """

    image_size: tuple[int, int]
    image_grid: tuple[int, int]

    def preprocess(self, image: Any) -> torch.Tensor:
        """A PIL image (or whatever your model takes) -> ``[1, C, H, W]`` float pixels."""
        ...

    def tokenize(self, text: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Caption -> (token ids ``[L]`` long, player positions ``[n_T]`` long (indices
        into the ids of the tokens that are players, e.g. all but special tokens), one
        readable label per player)."""
        ...

    def encode_image(self, pixels: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``pixels [1, C, H, W]``, ``keep [m, n_I]`` bool (True = image player kept) ->
        embeddings ``[m, D]`` of the masked images. Each row must not depend on the
        others (batching invariance)."""
        ...

    def encode_text(self, ids: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``ids [L]``, ``keep [m, n_T]`` bool (True = text player kept) -> embeddings
        ``[m, D]`` of the masked captions."""
        ...

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """``[a, D] x [b, D] -> [a, b]``: the score being explained (e.g. the logit)."""
        ...


def is_dual_encoder(obj: Any) -> bool:
    """True when ``obj`` has every member of :class:`DualEncoder` (and is not an
    ``nn.Module`` forward function only)."""
    return all(hasattr(obj, name) for name in (*_MEMBERS, "similarity"))


def _pair(values: Any, what: str) -> tuple[int, int]:
    try:
        first, second = (int(v) for v in values)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what} must be a pair of ints (rows/height, cols/width).") from err
    if first < 1 or second < 1:
        raise ValueError(f"{what} must be positive, got {(first, second)}.")
    return first, second


class ProtocolAdapter(DualEncoderAdapter):
    """Wrap any :class:`DualEncoder` as an adapter.

    Args:
        encoder: The object implementing :class:`DualEncoder`.

    Only ``masking="mean"`` is accepted by :meth:`encode_image`: the encoder does its own
    masking, whatever it is, and ``"mean"`` names it.

    Raises:
        TypeError: ``encoder`` lacks a member (the message lists them).
    """

    def __init__(self, encoder: Any) -> None:
        missing = [n for n in (*_MEMBERS, "similarity") if not hasattr(encoder, n)]
        if missing:
            raise TypeError(
                f"{type(encoder).__name__} is not a DualEncoder: it lacks {missing}. "
                "Implement image_size, image_grid, preprocess, tokenize, encode_image, "
                "encode_text and similarity (see fixlip_captum.adapters.protocol)."
            )
        self.encoder = encoder
        self._size = _pair(encoder.image_size, "image_size")
        self._grid = _pair(encoder.image_grid, "image_grid")
        if self._grid[0] > self._size[0] or self._grid[1] > self._size[1]:
            raise ValueError(f"image_grid {self._grid} is finer than image_size {self._size}.")
        self._players = PlayerGrid.over_pixels(self._grid, self._size)
        params = getattr(encoder, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self._device = first.device if first is not None else torch.device("cpu")
        self.model = encoder if isinstance(encoder, torch.nn.Module) else torch.nn.Module()

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def patch_grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def patch_size(self) -> tuple[int, int]:
        return self._size[0] // self._grid[0], self._size[1] // self._grid[1]

    @property
    def image_size(self) -> tuple[int, int]:
        return self._size

    @property
    def image_maskings(self) -> tuple[str, ...]:
        return ("mean",)

    def pixel_player_map(self, pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        return self._players.pixel_owner.clone()

    def preprocess_image(self, image: Any) -> torch.Tensor:
        """Tensors ``[C, H, W]`` / ``[1, C, H, W]`` are checked, anything else goes to the
        encoder's ``preprocess``."""
        x = image if isinstance(image, torch.Tensor) else self.encoder.preprocess(image)
        x = x.unsqueeze(0) if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[0] != 1 or tuple(x.shape[-2:]) != self._size:
            raise ValueError(
                f"image has shape {tuple(x.shape)}; the encoder takes [1, C, {self._size[0]}, "
                f"{self._size[1]}] (its image_size)."
            )
        return x.float().to(self.device)

    def display_image(self, pixel_values: torch.Tensor) -> np.ndarray:
        show = getattr(self.encoder, "display", None)
        if callable(show):
            return np.asarray(show(pixel_values), dtype=np.float64)
        x = pixel_values.detach().float().cpu().reshape(-1, *pixel_values.shape[-3:])[0]
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
        img = x.permute(1, 2, 0).numpy()
        return np.repeat(img, 3, axis=2)[:, :, :3] if img.shape[2] == 1 else img[:, :, :3]

    def tokenize(self, text: Any) -> TextInput:
        if isinstance(text, TextInput):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ValueError("pass the caption as a non-empty string.")
        ids, positions, labels = self.encoder.tokenize(text)
        ids, positions = torch.as_tensor(ids).long(), torch.as_tensor(positions).long()
        if ids.ndim != 1 or positions.ndim != 1 or len(labels) != positions.numel():
            raise ValueError(
                "tokenize must return (ids [L], player positions [n_T], n_T labels); got "
                f"shapes {tuple(ids.shape)}, {tuple(positions.shape)} and {len(labels)} labels."
            )
        if positions.numel() == 0 or positions.min() < 0 or positions.max() >= ids.numel():
            raise ValueError("player positions must be non-empty indices into the token ids.")
        return TextInput(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            player_positions=positions,
            labels=[str(s) for s in labels],
            pool_position=0,
            text=text,
        )

    def encode_image(
        self,
        pixel_values: torch.Tensor,
        coalitions: torch.Tensor | None = None,
        masking: str = "mean",
    ) -> torch.Tensor:
        if masking != "mean":
            raise ValueError(
                f"image masking {masking!r}: a protocol encoder does its own masking; use "
                "masking='mean'."
            )
        x = self.preprocess_image(pixel_values)
        keep = check_coalitions(coalitions, self.n_image_players, "image", self.device)
        return self._checked(self.encoder.encode_image(x, keep), keep, "encode_image")

    def encode_text(self, text: TextInput, coalitions: torch.Tensor | None = None) -> torch.Tensor:
        text = self.tokenize(text)
        keep = check_coalitions(coalitions, text.n_players, "text", self.device)
        out = self.encoder.encode_text(text.input_ids.to(self.device), keep)
        return self._checked(out, keep, "encode_text")

    @staticmethod
    def _checked(out: Any, keep: torch.Tensor, what: str) -> torch.Tensor:
        out = torch.as_tensor(out)
        if out.ndim != 2 or out.shape[0] != keep.shape[0]:
            raise ValueError(
                f"{what} returned shape {tuple(out.shape)} for {keep.shape[0]} coalitions; "
                f"return [{keep.shape[0]}, D] embeddings."
            )
        return out.float()

    def similarity(
        self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, value: str = "logit"
    ) -> torch.Tensor:
        """``"logit"``: the encoder's ``similarity``; ``"cosine"``: cosine of the embeddings."""
        if value == "cosine":
            return (
                F.normalize(image_embeds.float(), dim=-1)
                @ F.normalize(text_embeds.float(), dim=-1).T
            )
        if value != "logit":
            raise ValueError(f"value must be 'logit' or 'cosine', got {value!r}.")
        return torch.as_tensor(self.encoder.similarity(image_embeds, text_embeds)).float()
