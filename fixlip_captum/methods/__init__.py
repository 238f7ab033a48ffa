"""Baselines side by side with FIxLIP, all over the same players, and their registry.

Every method is a class ``Method(model, tokenizer_or_processor=None, **settings)`` with

* ``attribute_interactions(image, text) -> FIxLIPInteractionValues`` over FIxLIP's players
  (patches row-major, then the caption's non-special tokens), with an ``ExplanationContext``;
* ``attribute(image, text)``: captum-style tensors (``(image [rows, cols], text [n_T])`` for
  first-order methods, ``[n_T, rows, cols]`` for exCLIP).

:data:`METHODS` maps a name to a :class:`MethodSpec` (class, default settings, order, cost);
:func:`get_method` builds one, so a benchmark or the CLI can run every method alike::

    for name in METHODS:
        iv = get_method(name, model, tokenizer).attribute_interactions(image, caption)

Classes are imported on first use (``METHODS[name].cls``), so importing this package does
not import captum, shapiq's approximators, or the FIxLIP class.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "FSII",
    "GAME",
    "METHODS",
    "ExCLIP",
    "FIxLIPMethod",
    "FeatureAblationMethod",
    "GradECLIP",
    "IntegratedGradientsMethod",
    "KernelShapMethod",
    "LimeMethod",
    "MethodSpec",
    "ShapleyValueSamplingMethod",
    "ShapleyValues",
    "get_method",
    "method_names",
]


@dataclass(frozen=True)
class MethodSpec:
    """Registry entry of one method.

    Attributes:
        name: Registry name.
        module: Module of the class (relative to ``fixlip_captum``).
        class_name: Class name.
        order: Highest interaction order of the result (1 or 2).
        kind: ``"gradient"`` (needs the model's internals) or ``"perturbation"`` (runs on
            the joint game, any supported model).
        cost: Forward/backward passes per explanation, in words.
        defaults: Default settings passed to the constructor.
        models: Model families supported.
    """

    name: str
    module: str
    class_name: str
    order: int
    kind: str
    cost: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    models: str = "all adapters"

    @property
    def cls(self) -> type:
        """The method's class (imported now)."""
        return getattr(importlib.import_module(f"fixlip_captum.{self.module}"), self.class_name)


_GRADIENT_MODELS = "open_clip CLIP, transformers CLIPModel (no SigLIP: no class token)"
_HIDDEN_MODELS = "open_clip CLIP/CustomTextCLIP, transformers CLIPModel/SiglipModel/Siglip2Model"

_SPECS = (
    MethodSpec(
        "fixlip",
        "methods.fixlip_method",
        "FIxLIPMethod",
        order=2,
        kind="perturbation",
        cost="budget image-text mask pairs (cross-modal: m_I image + m_T text encodings)",
        defaults={"p": 0.5, "budget": None, "seed": 0},
    ),
    MethodSpec(
        "grad_eclip",
        "methods.grad_eclip",
        "GradECLIP",
        order=1,
        kind="gradient",
        cost="1 forward per tower + 1 backward",
        defaults={"heads": "model", "image_layers": 1, "text_layers": 8},
        models=_GRADIENT_MODELS,
    ),
    MethodSpec(
        "game",
        "methods.game",
        "GAME",
        order=1,
        kind="gradient",
        cost="1 forward per tower + 1 backward",
        defaults={"start_layer": -1},
        models=_GRADIENT_MODELS,
    ),
    MethodSpec(
        "exclip",
        "methods.exclip",
        "ExCLIP",
        order=2,
        kind="gradient",
        cost="per tower: 1 forward (batch 2) + 1 forward of batch N+1 + D backwards",
        defaults={"layer": -1, "n_steps": 20},
        models=_HIDDEN_MODELS,
    ),
    MethodSpec(
        "shapley_values",
        "methods.shapley",
        "ShapleyValues",
        order=1,
        kind="perturbation",
        cost="budget joint-game evaluations",
        defaults={"budget": 2**11, "backend": "fixlip", "seed": 0},
    ),
    MethodSpec(
        "fsii",
        "methods.shapley",
        "FSII",
        order=2,
        kind="perturbation",
        cost="budget joint-game evaluations",
        defaults={"budget": 2**13, "backend": "fixlip", "seed": 0},
    ),
    MethodSpec(
        "kernel_shap",
        "methods.captum_methods",
        "KernelShapMethod",
        order=1,
        kind="perturbation",
        cost="n_samples joint-game evaluations",
        defaults={"n_samples": 1024, "seed": 0},
    ),
    MethodSpec(
        "shapley_value_sampling",
        "methods.captum_methods",
        "ShapleyValueSamplingMethod",
        order=1,
        kind="perturbation",
        cost="n_samples * (n + 1) joint-game evaluations",
        defaults={"n_samples": 16, "seed": 0},
    ),
    MethodSpec(
        "feature_ablation",
        "methods.captum_methods",
        "FeatureAblationMethod",
        order=1,
        kind="perturbation",
        cost="n + 1 joint-game evaluations",
    ),
    MethodSpec(
        "lime",
        "methods.captum_methods",
        "LimeMethod",
        order=1,
        kind="perturbation",
        cost="n_samples joint-game evaluations",
        defaults={"n_samples": 1024, "seed": 0},
    ),
    MethodSpec(
        "integrated_gradients",
        "methods.captum_methods",
        "IntegratedGradientsMethod",
        order=1,
        kind="gradient",
        cost="n_steps forwards + backwards of both towers",
        defaults={"n_steps": 50},
        models=_HIDDEN_MODELS,
    ),
)

#: Every method by name (read-only).
METHODS: Mapping[str, MethodSpec] = MappingProxyType({s.name: s for s in _SPECS})


def method_names(order: int | None = None, kind: str | None = None) -> list[str]:
    """Registered names, optionally only those of one ``order`` and/or ``kind``."""
    return [
        s.name
        for s in _SPECS
        if (order is None or s.order == order) and (kind is None or s.kind == kind)
    ]


def get_method(name: str, model: Any, tokenizer_or_processor: Any = None, **kwargs: Any) -> Any:
    """Build the method ``name`` for ``model`` with its defaults, overridden by ``kwargs``.

    Args:
        name: A key of :data:`METHODS`.
        model: The dual encoder.
        tokenizer_or_processor: Its tokenizer/processor (see
            :func:`fixlip_captum.adapters.get_adapter`).
        **kwargs: Settings of the method (constructor keywords), e.g. ``budget=2**12``.

    Returns:
        An object with ``attribute_interactions(image, text)`` and ``attribute(image, text)``.

    Raises:
        KeyError: Unknown name (the message lists the registered ones).
    """
    if name not in METHODS:
        raise KeyError(f"Unknown method {name!r}; registered: {', '.join(METHODS)}.")
    spec = METHODS[name]
    return spec.cls(model, tokenizer_or_processor, **{**spec.defaults, **kwargs})


def __getattr__(name: str) -> Any:
    # Classes are importable from here (``from fixlip_captum.methods import GAME``) but are
    # only imported when asked for.
    for spec in _SPECS:
        if spec.class_name == name:
            return spec.cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
