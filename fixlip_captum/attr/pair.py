"""One image-text pair through FIxLIP: list inputs split into pairs, and
:func:`explain_pair`, the one orchestration used by :class:`~fixlip_captum.FIxLIP` and by the
registry's :class:`~fixlip_captum.methods.FIxLIPMethod`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fixlip_captum.adapters.base import TextInput
from fixlip_captum.estimators import estimate_crossmodal, estimate_joint
from fixlip_captum.games import CrossModalGame
from fixlip_captum.interaction_values import ExplanationContext, FIxLIPInteractionValues
from fixlip_captum.settings import MODES, Settings, plan_crossmodal, plan_joint

__all__ = [
    "MODES",
    "explain_pair",
    "split_pairs",
]


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
    settings: Settings,
    *,
    m_image: int | None = None,
    m_text: int | None = None,
) -> FIxLIPInteractionValues:
    """FIxLIP explanation of the pair of ``game`` with validated
    :class:`~fixlip_captum.settings.Settings` (see
    :meth:`fixlip_captum.FIxLIP.attribute_interactions`).

    FWBII (``mode="banzhaf"``) runs the cross-modal estimator on ``game``, FSII
    (``mode="shapley"``) the model-agnostic one on ``game.joint()``, each following the plan
    of :mod:`fixlip_captum.settings` (recorded in ``estimation_info``). The result carries
    the pair's :class:`ExplanationContext` and, in ``estimation_info``, the model, adapter
    and mode.

    Raises:
        ValueError: ``m_image``/``m_text`` with ``mode="shapley"``.
        NotIdentifiableError: The budget cannot determine the requested terms.
    """
    adapter = game.adapter
    device = adapter.device
    if settings.index == "FWBII":
        plan = plan_crossmodal(settings, game.n_image, game.n_text, m_image=m_image, m_text=m_text)
        iv = estimate_crossmodal(game, plan, device=device)
    else:
        if m_image is not None or m_text is not None:
            raise ValueError("m_image/m_text apply to mode='banzhaf' only.")
        plan = plan_joint(settings, game.n_players, n_image=game.n_image)
        iv = estimate_joint(game.joint(), plan, device=device)
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
        mode="banzhaf" if settings.index == "FWBII" else "shapley",
    )
    return iv
