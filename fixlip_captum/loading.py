"""Turn a model spec string into ``(model, tokenizer_or_processor)``.

Specs (the CLI's ``--model``):

* ``scenes-clip`` — the shipped offline model (:func:`fixlip_captum.models.load_default`);
* ``open_clip:ARCH:PRETRAINED`` — ``open_clip.create_model_and_transforms(ARCH,
  pretrained=PRETRAINED)``; PRETRAINED may be a tag or a local checkpoint path;
* ``hf:MODEL_ID`` — transformers ``AutoModel.from_pretrained(MODEL_ID)`` with its
  ``AutoProcessor``; MODEL_ID may be a hub id or a local folder.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DEFAULT_MODEL",
    "ModelSpecError",
    "WeightsUnavailableError",
    "load_model",
    "offline_unless_reachable",
]

DEFAULT_MODEL = "scenes-clip"


class ModelSpecError(ValueError):
    """The model spec string is not understood."""


class WeightsUnavailableError(RuntimeError):
    """The weights could not be loaded (typically: offline and not in the local cache)."""


_SPEC_HELP = (
    "Use 'scenes-clip' (the offline default), 'open_clip:ARCH:PRETRAINED' "
    "(e.g. open_clip:ViT-B-32:openai) or 'hf:MODEL_ID' (e.g. hf:openai/clip-vit-base-patch32)."
)


def _offline_message(what: str, exc: Exception, offline: bool) -> str:
    cause = (
        "There is no network connection to the Hugging Face hub, so only the local cache "
        "was searched. "
        if offline
        else ""
    )
    return (
        f"Could not load {what}: {type(exc).__name__}: {exc}. {cause}The weights are not available "
        "offline on this machine. Download them once where there is network access (they are "
        "then cached), point to a local checkpoint/folder, or use --model scenes-clip, which "
        "ships with fixlip-captum."
    )


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) answers a TCP connection quickly."""
    from urllib.parse import urlparse

    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True  # behind a proxy a direct probe says nothing; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _go_offline_if_unreachable(local: bool) -> bool:
    """Without a network route to the hub, switch the hub clients to their local cache
    (``HF_HUB_OFFLINE=1``) so that missing weights fail in seconds, not after a minute
    of retries. Returns whether offline mode is on. Takes effect for hub clients imported
    after this call (the CLI imports them only now)."""
    if local:
        return False
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return True
    if _hub_reachable():
        return False
    os.environ["HF_HUB_OFFLINE"] = "1"
    return True


def offline_unless_reachable(spec: str) -> bool:
    """For a hub-hosted ``spec``: switch the hub clients to their local cache when the hub
    cannot be reached (see :func:`_go_offline_if_unreachable`); call it before anything
    imports open_clip or transformers. Returns whether offline mode is on."""
    kind, _, rest = spec.partition(":")
    if kind == "open_clip":
        return _go_offline_if_unreachable(Path(rest.partition(":")[2]).exists())
    if kind == "hf" and rest:
        return _go_offline_if_unreachable(Path(rest).exists())
    return False


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
        offline = _go_offline_if_unreachable(Path(pretrained).exists())
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
                _offline_message(f"open_clip {arch}:{pretrained}", exc, offline)
            ) from exc
        return model.eval(), tokenizer
    if kind == "hf":
        if not rest:
            raise ModelSpecError(f"Model spec {spec!r} names no model id. {_SPEC_HELP}")
        offline = _go_offline_if_unreachable(Path(rest).exists())
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
                _offline_message(f"transformers model {rest}", exc, offline)
            ) from exc
        return model.eval(), processor
    raise ModelSpecError(f"Model spec {spec!r} is not understood. {_SPEC_HELP}")
