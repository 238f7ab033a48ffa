"""Token-id checks every family applies where a caption enters (ids or string)."""

from __future__ import annotations

import warnings
from typing import Any

import torch

__all__ = ["check_token_ids", "warn_unknown_words"]


def check_token_ids(text: Any, vocab_size: int | None) -> torch.Tensor:
    """Token ids as a long CPU tensor, checked against the vocabulary.

    Args:
        text: ``Sequence[int]``, an integer tensor or array of ids (any shape).
        vocab_size: Number of rows of the model's token embedding (``None``: check the
            dtype only).

    Returns:
        The ids, ``torch.long`` on the CPU, same shape.

    Raises:
        TypeError: The ids are not integers (e.g. captum's float perturbations of ids).
        ValueError: An id lies outside ``[0, vocab_size)``.
    """
    ids = torch.as_tensor(text).detach().cpu()
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(
            f"token ids must be integers, got dtype {ids.dtype}; pass the tokenizer's ids "
            "or the caption string."
        )
    ids = ids.long()
    if (
        vocab_size is not None
        and ids.numel()
        and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size)
    ):
        raise ValueError(
            f"token ids must lie in [0, {vocab_size}) for this model (its vocabulary), got "
            f"ids from {int(ids.min())} to {int(ids.max())}; tokenize with the model's "
            "tokenizer."
        )
    return ids


def warn_unknown_words(player_ids: torch.Tensor, unk_id: int | None, caption: str) -> None:
    """Warn when the tokenizer turned words of ``caption`` into its unknown token.

    Args:
        player_ids: ``[n_T]`` ids of the caption's players.
        unk_id: The tokenizer's unknown-token id (``None``: it has none, nothing to warn).
        caption: The caption as given.
    """
    if unk_id is None:
        return
    n_unknown = int((player_ids == unk_id).sum())
    if n_unknown:
        warnings.warn(
            f"{n_unknown} token(s) of the caption {caption!r} are unknown to the tokenizer "
            "and became its unknown token (<unk>): their values explain <unk>, not the "
            "words; use words from the model's vocabulary.",
            UserWarning,
            stacklevel=3,
        )
