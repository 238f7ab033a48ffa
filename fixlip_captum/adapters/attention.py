"""Decoding a self-attention call into :class:`~fixlip_captum.adapters.base.AttentionCall`.

Two module kinds cover the supported towers: torch's ``nn.MultiheadAttention`` (open_clip)
and the ``q_proj / k_proj / v_proj / out_proj`` modules of transformers. A family's
:meth:`~fixlip_captum.adapters.base.DualEncoderAdapter.attention_call` picks one.
"""

from __future__ import annotations

from typing import Any, TypeVar

import torch
from torch import nn

from fixlip_captum.adapters.base import AttentionCall, UnsupportedModelError

__all__ = ["as_additive_mask", "multihead_attention_call", "projection_attention_call"]

_T = TypeVar("_T")


def as_additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """An attention mask as an additive float mask (bool masks of ``nn.MultiheadAttention``
    mark the positions that may NOT be attended)."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


def _with_grad(x: torch.Tensor) -> torch.Tensor:
    if not x.requires_grad and torch.is_grad_enabled():
        return x.detach().requires_grad_(True)
    return x


def _linear(owner: nn.Module, name: str) -> nn.Linear:
    layer = owner.get_submodule(name)
    if not isinstance(layer, nn.Linear):
        raise UnsupportedModelError(
            f"{type(owner).__name__}.{name} is a {type(layer).__name__}, not nn.Linear; this "
            "attention module cannot be recomputed by the gradient baselines; use a "
            "perturbation method."
        )
    return layer


def _plain_attr(owner: nn.Module, name: str, kind: type[_T]) -> _T:
    value = getattr(owner, name)
    if not isinstance(value, kind):
        raise UnsupportedModelError(
            f"{type(owner).__name__}.{name} is {value!r}, expected a {kind.__name__}; this "
            "attention module cannot be recomputed by the gradient baselines."
        )
    return value


def multihead_attention_call(module: nn.Module, args: tuple, kwargs: dict) -> AttentionCall:
    """Decode a self-attention call of ``nn.MultiheadAttention`` (query = key = value)."""
    if not isinstance(module, nn.MultiheadAttention):
        raise UnsupportedModelError(
            f"attention module {type(module).__name__} is not nn.MultiheadAttention; it "
            "cannot be recomputed by the gradient baselines."
        )
    query = args[0] if args else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs.get("key", query)
    if key is not query:
        raise NotImplementedError("Only self-attention blocks can be recorded.")
    batch_first = bool(module.batch_first)
    x = _with_grad(query if batch_first else query.transpose(0, 1))
    bsz, length, _ = x.shape
    heads = int(module.num_heads)
    wq, wk, wv = module.in_proj_weight.chunk(3)
    b = module.in_proj_bias
    bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)
    mask = as_additive_mask(kwargs.get("attn_mask"), x.dtype)
    if mask is not None:
        mask = (
            mask.view(1, 1, length, length)
            if mask.dim() == 2
            else mask.view(bsz, heads, length, length)
        )
    kpm = kwargs.get("key_padding_mask")
    if kpm is not None:
        extra = as_additive_mask(kpm, x.dtype)
        assert extra is not None
        extra = extra.view(bsz, 1, 1, length)
        mask = extra if mask is None else mask + extra
    return AttentionCall(
        x=x,
        weights=(wq, bq, wk, bk, wv, bv),
        out_proj=module.out_proj,
        heads=heads,
        scale=(wq.shape[0] // heads) ** -0.5,
        mask=mask,
        batch_first=batch_first,
    )


def projection_attention_call(module: nn.Module, args: tuple, kwargs: dict) -> AttentionCall:
    """Decode a call of a transformers attention module with ``q_proj``, ``k_proj``,
    ``v_proj``, ``out_proj``, ``num_heads`` (and ``scale``); needs eager attention so the
    mask it receives is additive."""
    x: Any = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
    x = _with_grad(x)
    heads = _plain_attr(module, "num_heads", int)
    q_proj, k_proj, v_proj = (_linear(module, n) for n in ("q_proj", "k_proj", "v_proj"))
    mask = kwargs.get("attention_mask")
    if mask is None and len(args) > 1:
        mask = args[1]
    scale = float(getattr(module, "scale", (q_proj.weight.shape[0] // heads) ** -0.5))
    return AttentionCall(
        x=x,
        weights=(
            q_proj.weight,
            q_proj.bias,
            k_proj.weight,
            k_proj.bias,
            v_proj.weight,
            v_proj.bias,
        ),
        out_proj=_linear(module, "out_proj"),
        heads=heads,
        scale=scale,
        mask=as_additive_mask(mask, x.dtype),
        batch_first=True,
    )
