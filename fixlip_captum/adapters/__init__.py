"""Model families: preprocessing, players, tokenisation, masked encoding and tower internals.

One module per family (``open_clip``, ``hf_clip``, ``hf_siglip``, ``hf_siglip2``, ...), each
holding one :class:`~fixlip_captum.adapters.base.DualEncoderAdapter` subclass, and one row
per family in :mod:`fixlip_captum.adapters.registry`. :func:`get_adapter` picks the adapter
from the model's Python type through the registry; family modules (and transformers) are
imported only when a model of theirs is passed. See the docs page "Add a model family".
"""

from __future__ import annotations

from typing import Any

from fixlip_captum.adapters.base import (
    IMAGE_MASKINGS,
    VALUES,
    DualEncoderAdapter,
    TextInput,
    Tower,
    UnsupportedModelError,
)
from fixlip_captum.adapters.registry import (
    FAMILIES,
    Family,
    family_of,
    get_adapter,
    register_family,
    supported_models,
)

__all__ = [
    "FAMILIES",
    "IMAGE_MASKINGS",
    "SUPPORTED_MODELS",
    "VALUES",
    "DualEncoderAdapter",
    "Family",
    "OpenCLIPAdapter",
    "TextInput",
    "Tower",
    "UnsupportedModelError",
    "family_of",
    "get_adapter",
    "register_family",
    "supported_models",
]


def __getattr__(name: str) -> Any:
    # open_clip is imported on first use, so `import fixlip_captum.adapters` stays light.
    if name == "OpenCLIPAdapter":
        from fixlip_captum.adapters.open_clip import OpenCLIPAdapter

        return OpenCLIPAdapter
    if name == "SUPPORTED_MODELS":
        return supported_models()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
