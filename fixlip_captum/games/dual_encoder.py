"""Value functions of an image-text pair under masking, on top of a model adapter.

:class:`CrossModalGame` is what the cross-modal estimator needs: ``m_I`` image coalitions and
``m_T`` text coalitions give all ``m_I * m_T`` values, with each masked image and each
masked text encoded once and the values obtained by one matrix product. :class:`JointGame`
evaluates one coalition over all ``n_I + n_T`` players per row (model-agnostic and Shapley
estimators) with the same encoders, so both games agree on the same coalitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fixlip_captum._validation import check_caption
from fixlip_captum.adapters.base import IMAGE_MASKINGS, VALUES, DualEncoderAdapter, TextInput
from fixlip_captum.images import as_model_image

__all__ = ["CrossModalGame", "JointGame"]

_AUTOCAST_DTYPES = (torch.float16, torch.bfloat16)
# Pairs per block when a joint game reads its values off the similarity of paired rows.
_PAIR_BLOCK = 256


def _as_bool_coalitions(coalitions: Any, n: int, what: str) -> torch.Tensor:
    if isinstance(coalitions, np.ndarray):
        coalitions = torch.from_numpy(coalitions)
    if not isinstance(coalitions, torch.Tensor):
        raise TypeError(
            f"{what} coalitions must be a torch.bool tensor [m, {n}], got "
            f"{type(coalitions).__name__}."
        )
    if coalitions.dtype != torch.bool:
        raise TypeError(
            f"{what} coalitions must have dtype torch.bool (True = player kept), got "
            f"{coalitions.dtype}."
        )
    if coalitions.ndim != 2 or coalitions.shape[1] != n:
        raise ValueError(
            f"{what} coalitions must have shape [m, {n}], got {tuple(coalitions.shape)}."
        )
    return coalitions


def _unique_rows(coalitions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of a bool matrix and, per row, the index of its distinct row."""
    unique, inverse = torch.unique(coalitions.to(torch.uint8), dim=0, return_inverse=True)
    return unique.bool(), inverse


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError)


class _PairGame:
    """One image-text pair, preprocessed once, and its masked encodings: what both games are.

    Each game adds only its ``__call__``. :meth:`CrossModalGame.joint` shares the current
    batch sizes (halved on CUDA out-of-memory) and the cached v(empty), v(full) with the
    joint game it returns, so the two evaluate the very same embeddings.
    """

    def __init__(
        self,
        adapter: DualEncoderAdapter,
        image: Any,
        text: Any,
        *,
        image_masking: str = "mean",
        value: str = "logit",
        batch_size: int = 64,
        autocast_dtype: torch.dtype | None = None,
        show_progress: bool = False,
    ) -> None:
        if not isinstance(adapter, DualEncoderAdapter):
            raise TypeError(
                "adapter must be a DualEncoderAdapter (use fixlip_captum.adapters.get_adapter"
                f"(model, tokenizer_or_processor)); got {type(adapter).__name__}."
            )
        if image_masking not in IMAGE_MASKINGS:
            raise ValueError(
                f"image_masking must be one of {IMAGE_MASKINGS}, got {image_masking!r}."
            )
        if value not in VALUES:
            raise ValueError(f"value must be one of {VALUES}, got {value!r}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        if autocast_dtype is not None and autocast_dtype not in _AUTOCAST_DTYPES:
            raise ValueError(
                f"autocast_dtype must be None, torch.float16 or torch.bfloat16; got "
                f"{autocast_dtype!r}."
            )
        self.adapter = adapter
        self.image_masking = image_masking
        self.value = value
        self.autocast_dtype = autocast_dtype
        self.show_progress = bool(show_progress)
        #: The preprocessed image ``[1, C, H, W]`` on the model's device; every masked copy
        #: is made on the device from this tensor.
        self.pixel_values = adapter.preprocess_image(as_model_image(image))
        self.text: TextInput = adapter.tokenize(check_caption(text))
        #: The patch grid of this image (SigLIP2 follows its aspect ratio).
        self.grid = adapter.patch_grid_of(self.pixel_values)
        #: Number of image players (patches).
        self.n_image = self.grid[0] * self.grid[1]
        #: Number of text players (caption tokens without special tokens).
        self.n_text = int(self.text.n_players)
        # Current batch sizes, halved on CUDA out-of-memory and kept halved afterwards.
        self._batch_sizes = {"image": batch_size, "text": batch_size}
        # v(empty) (key False) and v(full) (key True), computed on first use.
        self._corners: dict[bool, float] = {}

    @property
    def n_players(self) -> int:
        return self.n_image + self.n_text

    @property
    def device(self) -> torch.device:
        return self.adapter.device

    @property
    def batch_size(self) -> int:
        """Current batch size (the smaller of image and text after any OOM halving)."""
        return min(self._batch_sizes.values())

    @property
    def v_empty(self) -> float:
        """Value with every image and text player masked."""
        return self._corner(False)

    @property
    def v_full(self) -> float:
        """Value with every player kept: the model's own score for the pair."""
        return self._corner(True)

    def _corner(self, keep: bool) -> float:
        if keep not in self._corners:
            ic = torch.full((1, self.n_image), keep, dtype=torch.bool)
            tc = torch.full((1, self.n_text), keep, dtype=torch.bool)
            self._corners[keep] = float(self._similarity(self._images(ic), self._texts(tc))[0, 0])
        return self._corners[keep]

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _encode_unique(
        self,
        coalitions: torch.Tensor,
        kind: str,
        fn: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """Embeddings ``[m, D]`` (float32, on the device) of each row of ``coalitions``;
        identical rows are encoded once."""
        unique, inverse = _unique_rows(coalitions.to(self.device))
        # One output buffer, filled batch by batch: keeping each batch's output as its own
        # tensor until a final cat measured ~15% slower encoders on CPU (allocator).
        embeds: torch.Tensor | None = None
        start = 0
        total = unique.shape[0]
        with tqdm(
            total=total,
            desc=f"encoding masked {kind}s",
            unit=kind,
            # v(empty) and v(full) are one row each: no bar for those.
            disable=not self.show_progress or total <= 1,
            leave=False,
        ) as bar:
            while start < total:
                size = self._batch_sizes[kind]
                chunk = unique[start : start + size]
                try:
                    with torch.inference_mode(), self._autocast():
                        emb = fn(chunk)
                except Exception as err:
                    if not _is_oom(err):
                        raise
                    if size == 1:
                        raise torch.OutOfMemoryError(
                            f"Out of memory encoding a single masked {kind}; free GPU memory "
                            "or use autocast_dtype=torch.bfloat16."
                        ) from err
                    del err
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    self._batch_sizes[kind] = max(1, size // 2)
                    continue
                if embeds is None:
                    embeds = emb.new_empty((total, emb.shape[1]), dtype=torch.float32)
                embeds[start : start + chunk.shape[0]] = emb
                del emb
                start += chunk.shape[0]
                bar.update(chunk.shape[0])
        if embeds is None:
            embeds = fn(unique[:0]).float()
        return embeds[inverse]

    def _images(self, coalitions: torch.Tensor) -> torch.Tensor:
        return self._encode_unique(
            coalitions,
            "image",
            lambda c: self.adapter.encode_image(self.pixel_values, c, self.image_masking),
        )

    def _texts(self, coalitions: torch.Tensor) -> torch.Tensor:
        return self._encode_unique(
            coalitions, "text", lambda c: self.adapter.encode_text(self.text, c)
        )

    def _similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            values = self.adapter.similarity(image_embeds, text_embeds, self.value).float()
        # A normal tensor (not an inference tensor) so callers may use it freely.
        return values.clone()


class CrossModalGame(_PairGame):
    r"""Value of every (image coalition, text coalition) pair of one image-text pair.

    ``game(image_coalitions [m_I, n_I] bool, text_coalitions [m_T, n_T] bool) ->
    values [m_I, m_T]`` float32, where ``values[a, b]`` is the model's score (``"logit"``:
    scale * cos + bias; ``"cosine"``) of the image with only the patches in row ``a`` kept
    and the caption with only the tokens in row ``b`` kept. Each distinct masked image and
    each distinct masked caption is encoded once; the values are one matrix product.

    Args:
        adapter: A :class:`~fixlip_captum.adapters.base.DualEncoderAdapter`
            (see :func:`fixlip_captum.adapters.get_adapter`).
        image: PIL image, or a preprocessed tensor ``[C, H, W]`` / ``[1, C, H, W]``.
        text: Caption string, token ids ``[L]`` or a ``TextInput``.
        image_masking: ``"mean"`` (masked patch = 0 in normalised pixel space) or
            ``"drop"`` (masked patch tokens removed).
        value: ``"logit"`` or ``"cosine"``.
        batch_size: Masked images (and captions) per forward pass; halved automatically
            on CUDA out-of-memory.
        autocast_dtype: ``None`` (full precision), ``torch.bfloat16`` or ``torch.float16``
            for the encoders; the similarity is always computed in float32.
        show_progress: Show a tqdm progress bar while encoding.

    Values are returned on the device of ``image_coalitions``; the model runs on its own
    device under ``torch.inference_mode``.
    """

    def __call__(
        self, image_coalitions: torch.Tensor, text_coalitions: torch.Tensor
    ) -> torch.Tensor:
        """Values ``[m_I, m_T]`` float32 of all image x text coalition pairs."""
        ic = _as_bool_coalitions(image_coalitions, self.n_image, "image")
        tc = _as_bool_coalitions(text_coalitions, self.n_text, "text")
        values = self._similarity(self._images(ic), self._texts(tc))
        return values.to(ic.device)

    def joint(self) -> JointGame:
        """The :class:`JointGame` of the same pair and settings, sharing this game's batch
        sizes and cached v(empty), v(full)."""
        game = JointGame(
            self.adapter,
            self.pixel_values,
            self.text,
            image_masking=self.image_masking,
            value=self.value,
            batch_size=self.batch_size,
            autocast_dtype=self.autocast_dtype,
            show_progress=self.show_progress,
        )
        game._batch_sizes, game._corners = self._batch_sizes, self._corners
        return game


class JointGame(_PairGame):
    """Value of one coalition over all ``n_I + n_T`` players per row.

    ``game(coalitions [m, n_I + n_T] bool) -> values [m]`` float32; columns ``0..n_I-1``
    are the image patches (row-major), then the text tokens. Same arguments and the same
    encoders as :class:`CrossModalGame`, so the two agree on the same coalitions. Distinct
    image parts and distinct text parts are each encoded once.
    """

    def __call__(self, coalitions: torch.Tensor) -> torch.Tensor:
        """Values ``[m]`` float32, one per row of ``coalitions [m, n_I + n_T]``."""
        c = _as_bool_coalitions(coalitions, self.n_players, "joint")
        image_part, text_part = c[:, : self.n_image], c[:, self.n_image :]
        ui, inv_i = _unique_rows(image_part.to(self.device))
        ut, inv_t = _unique_rows(text_part.to(self.device))
        emb_i, emb_t = self._images(ui), self._texts(ut)
        values = torch.empty(c.shape[0], dtype=torch.float32, device=self.device)
        for start, stop in _blocks(c.shape[0], _PAIR_BLOCK):
            block = self._similarity(emb_i[inv_i[start:stop]], emb_t[inv_t[start:stop]])
            values[start:stop] = block.diagonal()
        return values.to(c.device)


def _blocks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(start + size, total)
