"""One image-text pair through FIxLIP: the budget rule, list inputs split into pairs, and
:func:`explain_pair`, the one orchestration used by :class:`~fixlip_captum.FIxLIP` and by the
registry's :class:`~fixlip_captum.methods.FIxLIPMethod`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fixlip_captum._validation import check_p, check_positive_int
from fixlip_captum.adapters.base import TextInput
from fixlip_captum.estimators import (
    approximate_crossmodal,
    approximate_interactions,
    minimum_budget,
)
from fixlip_captum.games import CrossModalGame
from fixlip_captum.interaction_values import ExplanationContext, FIxLIPInteractionValues

__all__ = [
    "DEFAULT_BUDGET",
    "MODES",
    "check_settings",
    "default_budget",
    "explain_pair",
    "split_pairs",
]

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


def check_settings(mode: str, p: float, budget: int | None) -> tuple[str, float, int | None]:
    """``(mode, p, budget)`` checked where they enter (``FIxLIP``'s calls, ``FIxLIPMethod``).

    Raises:
        ValueError: ``mode`` is not one of :data:`MODES`; ``p`` outside (0, 1); ``budget < 1``.
        TypeError: ``p`` is not a number, ``budget`` not an int.
    """
    if mode not in MODES:
        raise ValueError(
            f"mode must be 'banzhaf' (faithful weighted Banzhaf, cross-modal estimator) or "
            f"'shapley' (faithful Shapley, model-agnostic estimator); got {mode!r}."
        )
    p = check_p(p)
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    return mode, p, budget


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


def split_pairs(image: Any, text: Any) -> list[tuple[Any, Any]] | None:
    """The image-text pairs of list inputs, or ``None`` for one image and one caption.

    A single image or caption is paired with every entry of the other list.

    Raises:
        ValueError: Lists of different lengths, or empty lists.
        TypeError: ``text`` is neither a caption nor a list of captions.
    """
    images, texts = _split_images(image), _split_texts(text)
    if images is None and texts is None:
        return None
    images = images if images is not None else [image] * len(texts or [])
    texts = texts if texts is not None else [text] * len(images)
    if len(images) != len(texts):
        raise ValueError(
            f"{len(images)} images and {len(texts)} captions given; pass equally many, "
            "or one of either to pair it with every entry of the other."
        )
    if not images:
        raise ValueError("No image-text pairs given.")
    return list(zip(images, texts, strict=True))


def explain_pair(
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
    """FIxLIP explanation of the pair of ``game`` (settings as checked by
    :func:`check_settings`; see :meth:`fixlip_captum.FIxLIP.attribute_interactions`).

    ``mode="banzhaf"`` runs :func:`~fixlip_captum.approximate_crossmodal` on ``game``,
    ``mode="shapley"`` :func:`~fixlip_captum.approximate_interactions` (FSII) on
    ``game.joint()``. The result carries the pair's :class:`ExplanationContext` and, in
    ``estimation_info``, the masking, value, model, adapter and mode.

    Raises:
        ValueError: ``m_image``/``m_text`` with ``mode="shapley"``.
        NotIdentifiableError: The budget cannot determine the requested terms.
    """
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
        grid=game.grid,
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
