"""Turn a model spec string into ``(model, tokenizer_or_processor)``.

Specs (the CLI's ``--model``):

* ``scenes-clip`` — the shipped offline model (:func:`fixlip_captum.models.load_default`);
* ``open_clip:ARCH:PRETRAINED`` — ``open_clip.create_model_and_transforms(ARCH,
  pretrained=PRETRAINED)``; PRETRAINED may be a tag or a local checkpoint path;
* ``hf:MODEL_ID`` — transformers ``AutoModel.from_pretrained(MODEL_ID)`` with its
  ``AutoProcessor``; MODEL_ID may be a hub id or a local folder.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["DEFAULT_MODEL", "ModelSpecError", "WeightsUnavailableError", "load_model"]

DEFAULT_MODEL = "scenes-clip"


class ModelSpecError(ValueError):
    """The model spec string is not understood."""


class WeightsUnavailableError(RuntimeError):
    """The weights could not be loaded (typically: offline and not in the local cache)."""


_SPEC_HELP = (
    "Use 'scenes-clip' (the offline default), 'open_clip:ARCH:PRETRAINED' "
    "(e.g. open_clip:ViT-B-32:openai) or 'hf:MODEL_ID' (e.g. hf:openai/clip-vit-base-patch32)."
)


def _offline_message(what: str, exc: Exception) -> str:
    return (
        f"Could not load {what}: {type(exc).__name__}: {exc}. The weights are not available "
        "offline on this machine. Download them once where there is network access (they are "
        "then cached), point to a local checkpoint/folder, or use --model scenes-clip, which "
        "ships with fixlip-captum."
    )


def load_model(
    spec: str = DEFAULT_MODEL, device: str | torch.device | None = None
) -> tuple[Any, Any]:
    """Load a dual encoder and what tokenises for it.

    Args:
        spec: Model spec (see module docstring).
        device: Where to put the model (default CPU).

    Returns:
        ``(model, tokenizer_or_processor)`` in eval mode, ready for
        :class:`fixlip_captum.FIxLIP`.

    Raises:
        ModelSpecError: the spec is malformed.
        WeightsUnavailableError: the weights cannot be loaded (offline, missing file).
    """
    device = torch.device(device or "cpu")
    if spec == DEFAULT_MODEL:
        from fixlip_captum.models import load_default

        model, _, tokenizer = load_default(device=device)
        return model, tokenizer
    kind, _, rest = spec.partition(":")
    if kind == "open_clip":
        arch, sep, pretrained = rest.partition(":")
        if not arch or not sep or not pretrained:
            raise ModelSpecError(
                f"Model spec {spec!r} needs an architecture and weights. {_SPEC_HELP}"
            )
        import open_clip

        if arch not in open_clip.list_models():
            raise ModelSpecError(
                f"open_clip does not know the architecture {arch!r}; see open_clip.list_models()."
            )
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained, device=device
            )
            tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # hub and network errors come in many types
            raise WeightsUnavailableError(
                _offline_message(f"open_clip {arch}:{pretrained}", exc)
            ) from exc
        return model.eval(), tokenizer
    if kind == "hf":
        if not rest:
            raise ModelSpecError(f"Model spec {spec!r} names no model id. {_SPEC_HELP}")
        try:
            from transformers import AutoModel, AutoProcessor
        except ImportError as exc:
            raise ModelSpecError(
                "hf: models need transformers: pip install 'fixlip-captum[transformers]'."
            ) from exc
        try:
            model = AutoModel.from_pretrained(rest).to(device)
            processor = AutoProcessor.from_pretrained(rest)
        except Exception as exc:  # hub and network errors come in many types
            raise WeightsUnavailableError(
                _offline_message(f"transformers model {rest}", exc)
            ) from exc
        return model.eval(), processor
    raise ModelSpecError(f"Model spec {spec!r} is not understood. {_SPEC_HELP}")
