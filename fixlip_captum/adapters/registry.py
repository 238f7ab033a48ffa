"""The model-family registry: which adapter serves which model type.

A family is one module under ``fixlip_captum/adapters/`` (its adapter class owns
everything family-specific) plus one :class:`Family` row here. :func:`get_adapter`
dispatches by the model's Python type: the family whose model class comes first in
``type(model).__mro__`` wins, so a subclass never needs its own row and row order does not
matter. A model type's package (``open_clip``, ``transformers``) and the family module are
imported only when the model is an instance of a class from that package.

Third-party families register with :func:`register_family`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from fixlip_captum.adapters.base import DualEncoderAdapter, UnsupportedModelError

__all__ = [
    "FAMILIES",
    "Family",
    "family_of",
    "get_adapter",
    "looks_like_dual_encoder",
    "register_family",
    "supported_models",
    "unsupported_model_error",
]


@dataclass(frozen=True)
class Family:
    """One registry row.

    Attributes:
        name: Short name (``"open_clip"``, ``"hf_clip"``, ...), used in messages, tests and
            ``estimation_info``.
        model_types: The model classes served, as ``"package.module:ClassName"`` (imported
            only for a model whose type comes from ``package``), e.g.
            ``"transformers:CLIPModel"``.
        adapter: The adapter class as ``"module:ClassName"``; it is called as
            ``Adapter(model, tokenizer_or_processor)``.
        description: One line for :func:`supported_models` and error messages.
    """

    name: str
    model_types: tuple[str, ...]
    adapter: str
    description: str

    def adapter_class(self) -> type[DualEncoderAdapter]:
        """The adapter class (its module is imported now)."""
        module, _, cls = self.adapter.partition(":")
        adapter: type[DualEncoderAdapter] = getattr(importlib.import_module(module), cls)
        return adapter


#: Every registered family (built-in rows first; :func:`register_family` appends).
FAMILIES: list[Family] = [
    Family(
        "open_clip",
        ("open_clip:CLIP", "open_clip:CustomTextCLIP", "open_clip:CoCa"),
        "fixlip_captum.adapters.open_clip:OpenCLIPAdapter",
        "open_clip.CLIP / CustomTextCLIP / CoCa: ViT, timm ViT (SigLIP), timm Eva (EVA02, "
        "PE-Core; rotary) or timm vit_relpos image towers with patch players, any other "
        "image tower "
        "(ModifiedResNet, ConvNeXt, FastViT/MobileCLIP, Swin, ViTamin) with pixel-grid "
        "players; open_clip or Hugging Face (XLM-R, RoBERTa, mT5, NLLB) text towers",
    ),
    Family(
        "hf_clip",
        ("transformers:CLIPModel",),
        "fixlip_captum.adapters.hf_clip:HFCLIPAdapter",
        "transformers.CLIPModel",
    ),
    Family(
        "hf_metaclip2",
        ("transformers:MetaClip2Model",),
        "fixlip_captum.adapters.hf_metaclip2:HFMetaClip2Adapter",
        "transformers.MetaClip2Model (MetaCLIP 2: CLIP's architecture)",
    ),
    Family(
        "hf_siglip",
        ("transformers:SiglipModel",),
        "fixlip_captum.adapters.hf_siglip:HFSiglipAdapter",
        "transformers.SiglipModel",
    ),
    Family(
        "hf_siglip2",
        ("transformers:Siglip2Model",),
        "fixlip_captum.adapters.hf_siglip2:HFSiglip2Adapter",
        "transformers.Siglip2Model",
    ),
    Family(
        "hf_chinese_clip",
        ("transformers:ChineseCLIPModel",),
        "fixlip_captum.adapters.hf_chinese_clip:HFChineseCLIPAdapter",
        "transformers.ChineseCLIPModel",
    ),
]


def register_family(family: Family) -> None:
    """Add a family (or replace the one with the same name)."""
    if not isinstance(family, Family):
        raise TypeError(f"register_family takes a Family, got {type(family).__name__}")
    FAMILIES[:] = [f for f in FAMILIES if f.name != family.name]
    FAMILIES.append(family)


def supported_models() -> tuple[str, ...]:
    """One line per registered family."""
    return tuple(f.description for f in FAMILIES)


def _resolve(spec: str) -> type | None:
    module, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        return None
    for part in name.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def family_of(model: Any) -> Family | None:
    """The family serving ``model``'s type, or ``None``."""
    mro = type(model).__mro__
    packages = {cls.__module__.partition(".")[0] for cls in mro}
    best: tuple[int, Family] | None = None
    for family in FAMILIES:
        for spec in family.model_types:
            package = spec.partition(":")[0].partition(".")[0]
            if package not in packages:  # the model's type cannot come from there
                continue
            cls = _resolve(spec)
            if cls is None or cls not in mro:
                continue
            rank = mro.index(cls)
            if best is None or rank < best[0]:
                best = (rank, family)
    return None if best is None else best[1]


def looks_like_dual_encoder(model: Any) -> bool:
    """Whether ``model`` looks like a dual encoder that no family serves (a transformers
    model with ``get_image_features`` and ``get_text_features``, or an open_clip model),
    so that the model-agnostic path cannot serve it either."""
    module = type(model).__module__.partition(".")[0]
    if module == "open_clip":
        return True
    return callable(getattr(model, "get_image_features", None)) and callable(
        getattr(model, "get_text_features", None)
    )


def unsupported_model_error(model: Any) -> UnsupportedModelError:
    """The refusal for a model no family serves, listing what is supported."""
    listing = "\n  - ".join(supported_models())
    what = f"{type(model).__module__}.{type(model).__qualname__}"
    if looks_like_dual_encoder(model):
        todo = (
            "It looks like a dual encoder, but no fixlip_captum model family serves it; "
            "convert it to a supported family, wrap it in an object implementing "
            "fixlip_captum.adapters.protocol.DualEncoder (image_size, image_grid, preprocess, "
            "tokenize, encode_image, encode_text, similarity), or add a family (see the docs "
            "page 'Add a model family')."
        )
    else:
        todo = (
            "For any other model, pass a forward function to fixlip_captum.FIxLIP and explain "
            "it with attribute(inputs, feature_mask=...) (the model-agnostic path)."
        )
    return UnsupportedModelError(
        f"No adapter for a model of type {what}. Supported models:\n  - {listing}\n{todo}"
    )


def get_adapter(model: Any, tokenizer_or_processor: Any = None) -> DualEncoderAdapter:
    """Return the adapter for ``model``, chosen by its Python type through the registry.

    Args:
        model: A model of a registered family (see :func:`supported_models`), e.g. an
            open_clip ``CLIP`` / ``CustomTextCLIP`` or a transformers ``CLIPModel``,
            ``SiglipModel`` or ``Siglip2Model``. An adapter is returned unchanged.
        tokenizer_or_processor: open_clip: the tokenizer (``open_clip.get_tokenizer(name)``;
            ``None`` = open_clip's BPE tokenizer for models with its vocabulary).
            transformers: the ``AutoProcessor`` or tokenizer of the checkpoint.

    Returns:
        A :class:`~fixlip_captum.adapters.base.DualEncoderAdapter`.

    Raises:
        UnsupportedModelError: (a ``TypeError``) no family serves the model type, or the
            family refuses one of its towers; the message names the classes and says what
            to do.
    """
    if isinstance(model, DualEncoderAdapter):
        return model
    family = family_of(model)
    if family is None:
        from fixlip_captum.adapters.protocol import ProtocolAdapter, is_dual_encoder

        if is_dual_encoder(model):  # any object implementing the DualEncoder protocol
            return ProtocolAdapter(model)
        raise unsupported_model_error(model)
    adapter_cls: Any = family.adapter_class()
    adapter: DualEncoderAdapter = adapter_cls(model, tokenizer_or_processor)
    return adapter
