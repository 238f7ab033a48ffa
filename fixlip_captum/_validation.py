"""Argument checks shared by every public entry point, with messages that say what to do."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

INDICES = ("FWBII", "FSII")


def check_p(p: float) -> float:
    """Keep-probability of the weighted Banzhaf index: a number strictly inside (0, 1)."""
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"p must be a float in (0, 1), got {type(p).__name__}.")
    p = float(p)
    if not (0.0 < p < 1.0) or math.isnan(p):
        raise ValueError(
            f"p must lie strictly between 0 and 1 (it is the probability that a player is "
            f"kept); got p={p}. Use p=0.5 for the (faithful) Banzhaf index."
        )
    return p


def check_index(index: str) -> str:
    if index not in INDICES:
        raise ValueError(
            f"index must be one of {INDICES} ('FWBII' = faithful weighted Banzhaf "
            f"interactions, 'FSII' = faithful Shapley interactions); got {index!r}."
        )
    return index


def check_max_order(max_order: int, n_players: int) -> int:
    if isinstance(max_order, bool) or not isinstance(max_order, int):
        raise TypeError(f"max_order must be an int (1, 2 or 3), got {type(max_order).__name__}.")
    if max_order not in (1, 2, 3):
        raise ValueError(f"max_order must be 1, 2 or 3; got {max_order}.")
    if max_order > n_players:
        raise ValueError(f"max_order={max_order} exceeds the number of players ({n_players}).")
    return max_order


def check_n_players(n_players: int, name: str = "n_players") -> int:
    if isinstance(n_players, bool) or not isinstance(n_players, int):
        raise TypeError(f"{name} must be an int, got {type(n_players).__name__}.")
    if n_players < 1:
        raise ValueError(f"{name} must be at least 1; got {n_players}.")
    return n_players


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}.")
    return value


def as_values(
    values: object, expected_shape: Sequence[int], device: torch.device, what: str = "game"
) -> torch.Tensor:
    """Turn a game's output into a float64 tensor of the expected shape, or explain why not."""
    if not isinstance(values, torch.Tensor):
        try:
            values = torch.as_tensor(values)
        except Exception as exc:
            raise TypeError(
                f"The {what} must return a float tensor of shape {tuple(expected_shape)}; "
                f"got {type(values).__name__}."
            ) from exc
    if values.is_complex() or values.dtype == torch.bool:
        raise TypeError(f"The {what} must return real floats; got dtype {values.dtype}.")
    if tuple(values.shape) != tuple(expected_shape):
        raise ValueError(
            f"The {what} returned shape {tuple(values.shape)}; expected {tuple(expected_shape)} "
            "(one value per coalition)."
        )
    values = values.detach().to(device=device, dtype=torch.float64)
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(
            f"The {what} returned {bad} NaN or infinite values; the explanation would be "
            "meaningless. Check the model's output for these coalitions."
        )
    return values


def resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    return torch.device(device)


def check_caption(text: object) -> object:
    """Refuse a caption given as bytes (which would otherwise read as token ids)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise TypeError(
            "The caption is bytes; pass it as str (e.g. caption.decode('utf-8')) or as token "
            "ids (a list of ints or a [L] tensor)."
        )
    return text


def check_not_image_transform(obj: object, role: str) -> None:
    """Refuse an image preprocessing transform passed where a model or tokenizer belongs
    (``FIxLIP(model, preprocess)`` instead of ``FIxLIP(model, tokenizer)``)."""
    name = type(obj).__name__
    transforms = getattr(obj, "transforms", None)
    is_transform = type(obj).__module__.startswith("torchvision.transforms") or (
        name == "Compose" and isinstance(transforms, (list, tuple))
    )
    if is_transform:
        raise TypeError(
            f"The {role} is an image transform ({name}), probably the `preprocess` returned "
            "by open_clip.create_model_and_transforms. Pass FIxLIP(model, tokenizer) with "
            "tokenizer = open_clip.get_tokenizer(name) (or the transformers processor); "
            "FIxLIP preprocesses images itself."
        )
