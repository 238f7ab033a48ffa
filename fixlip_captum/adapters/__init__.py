"""Model adapters: preprocessing, tokenisation and masked encoding per model family.

:func:`get_adapter` picks the adapter from the model's Python type:

=====================================================  ==========================
model type                                             adapter
=====================================================  ==========================
``open_clip.CLIP``, ``open_clip.CustomTextCLIP``       :class:`OpenCLIPAdapter`
``transformers.CLIPModel``                             ``HFCLIPAdapter``
``transformers.SiglipModel``                           ``HFSiglipAdapter``
``transformers.Siglip2Model``                          ``HFSiglip2Adapter``
=====================================================  ==========================

The transformers adapters are imported only when a transformers model is passed.
"""

from __future__ import annotations

import importlib
from typing import Any

from fixlip_captum.adapters.base import (
    IMAGE_MASKINGS,
    VALUES,
    DualEncoderAdapter,
    TextInput,
)

__all__ = [
    "IMAGE_MASKINGS",
    "SUPPORTED_MODELS",
    "VALUES",
    "DualEncoderAdapter",
    "OpenCLIPAdapter",
    "TextInput",
    "UnsupportedModelError",
    "get_adapter",
]

SUPPORTED_MODELS = (
    "open_clip.CLIP (ViT image tower)",
    "open_clip.CustomTextCLIP (ViT or timm ViT image tower, e.g. SigLIP)",
    "transformers.CLIPModel",
    "transformers.SiglipModel",
    "transformers.Siglip2Model",
)

# (transformers class name, adapter module, adapter class), most specific first.
_TRANSFORMERS_ADAPTERS = (
    ("Siglip2Model", "fixlip_captum.adapters.hf_siglip2", "HFSiglip2Adapter"),
    ("SiglipModel", "fixlip_captum.adapters.hf_siglip", "HFSiglipAdapter"),
    ("CLIPModel", "fixlip_captum.adapters.hf_clip", "HFCLIPAdapter"),
)


def __getattr__(name: str) -> Any:
    # open_clip is imported on first use, so `import fixlip_captum.adapters` stays light.
    if name == "OpenCLIPAdapter":
        from fixlip_captum.adapters.open_clip import OpenCLIPAdapter

        return OpenCLIPAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class UnsupportedModelError(TypeError):
    """The model is of no supported dual-encoder type (see :data:`SUPPORTED_MODELS`)."""


def _unsupported(model: Any) -> UnsupportedModelError:
    listing = "\n  - ".join(SUPPORTED_MODELS)
    return UnsupportedModelError(
        f"No adapter for a model of type {type(model).__module__}.{type(model).__qualname__}. "
        f"Supported models:\n  - {listing}\n"
        "For any other model, pass a forward function to fixlip_captum.FIxLIP and explain "
        "it with attribute(inputs, feature_mask=...) (the model-agnostic path)."
    )


def get_adapter(model: Any, tokenizer_or_processor: Any = None) -> DualEncoderAdapter:
    """Return the adapter for ``model``, chosen by its Python type.

    Args:
        model: An open_clip ``CLIP`` / ``CustomTextCLIP`` or a transformers ``CLIPModel``,
            ``SiglipModel`` or ``Siglip2Model``. An adapter is returned unchanged.
        tokenizer_or_processor: open_clip: the tokenizer (``open_clip.get_tokenizer(name)``;
            ``None`` = open_clip's BPE tokenizer for models with its vocabulary).
            transformers: the ``AutoProcessor`` or tokenizer of the checkpoint.

    Returns:
        A :class:`DualEncoderAdapter`.

    Raises:
        UnsupportedModelError: (a ``TypeError``) the model type is not supported; the
            message lists what is.
    """
    if isinstance(model, DualEncoderAdapter):
        return model
    try:
        import open_clip
    except ImportError:  # pragma: no cover - open_clip is a dependency
        open_clip = None
    if open_clip is not None and isinstance(model, (open_clip.CLIP, open_clip.CustomTextCLIP)):
        from fixlip_captum.adapters.open_clip import OpenCLIPAdapter

        return OpenCLIPAdapter(model, tokenizer_or_processor)
    try:
        import transformers
    except ImportError:
        pass  # without transformers the model cannot be a transformers model
    else:
        for cls_name, module_name, adapter_name in _TRANSFORMERS_ADAPTERS:
            cls = getattr(transformers, cls_name, None)
            if cls is not None and isinstance(model, cls):
                adapter_cls = getattr(importlib.import_module(module_name), adapter_name)
                return adapter_cls(model, tokenizer_or_processor)
    raise _unsupported(model)
