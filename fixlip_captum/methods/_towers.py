"""Tower internals for the gradient baselines (Grad-ECLIP, GAME, exCLIP), family-agnostic.

The adapters (``fixlip_captum.adapters``) hide a model behind masked encoding; gradient
methods need more: the towers' own forward passes with gradients, the attention of
individual blocks, the hidden state entering a block, and where each tower pools. Each
model family exposes those through its adapter (``image_tower`` / ``text_tower``,
``image_features`` / ``text_features``, ``attention_call``, ``internals``);
:class:`Towers` bundles them for the methods, working on the unmodified model:

* attention is observed by forward hooks on the attention modules that recompute the
  attention from the module's own weights and return that output in place of the
  module's (same result to float rounding, ~1e-6), keeping queries, keys, values, the
  attention probabilities and the head outputs with their gradients;
* a block's input is read or replaced by a forward pre-hook on the block.

Every hook is removed when its context manager exits; the family's ``internals()`` context
(eval mode, and eager attention for transformers) is restored on exit as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fixlip_captum.adapters.base import DualEncoderAdapter

__all__ = ["AttentionRecord", "AttentionRecorder", "BlockInput", "Towers"]


@dataclass
class AttentionRecord:
    """What one attention call computed (batch ``B``, heads ``h``, length ``L``).

    Attributes:
        q, k, v: ``[B, h, L, d_h]`` queries, keys and values per head.
        attn: ``[B, h, L, L]`` attention probabilities (gradient retained).
        out: ``[B, L, h * d_h]`` head outputs concatenated, before the out-projection
            (gradient retained).
    """

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    attn: torch.Tensor
    out: torch.Tensor


def _attention(
    x: torch.Tensor,
    weights: tuple[
        torch.Tensor,
        torch.Tensor | None,
        torch.Tensor,
        torch.Tensor | None,
        torch.Tensor,
        torch.Tensor | None,
    ],
    out_proj: nn.Linear,
    n_heads: int,
    scale: float,
    mask: torch.Tensor | None,
) -> tuple[torch.Tensor, AttentionRecord]:
    """Multi-head self-attention of ``x [B, L, D]`` with the given projection weights.

    ``mask`` is additive and broadcastable to ``[B, n_heads, L, L]``.
    """
    wq, bq, wk, bk, wv, bv = weights
    bsz, length, _ = x.shape
    dh = wq.shape[0] // n_heads

    def heads(t: torch.Tensor) -> torch.Tensor:
        return t.view(bsz, length, n_heads, dh).transpose(1, 2)

    q, k, v = heads(F.linear(x, wq, bq)), heads(F.linear(x, wk, bk)), heads(F.linear(x, wv, bv))
    scores = (q @ k.transpose(-1, -2)) * scale
    if mask is not None:
        scores = scores + mask
    attn = scores.softmax(dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(bsz, length, n_heads * dh)
    if attn.requires_grad:
        attn.retain_grad()
        out.retain_grad()
    return out_proj(out), AttentionRecord(q=q, k=k, v=v, attn=attn, out=out)


class AttentionRecorder:
    """Context manager recording (and recomputing) the attention of chosen modules.

    Args:
        towers: The model's :class:`Towers`.
        modules: Attention modules to hook (from ``towers.image_attention`` or
            ``towers.text_attention``).
        single_head: If True, the hooked modules compute ONE head over the full width with
            scale ``1 / sqrt(D)`` (the Grad-ECLIP reference code's recomputation). This
            changes the model's forward pass. If False the recomputation is the model's own
            multi-head attention.

    After a forward pass inside the context, ``records[i]`` holds the
    :class:`AttentionRecord` of ``modules[i]`` (the last call); :meth:`recorded` returns them
    all, checked.
    """

    def __init__(
        self, towers: Towers, modules: Sequence[nn.Module], single_head: bool = False
    ) -> None:
        self.towers = towers
        self.modules = list(modules)
        self.single_head = single_head
        self.records: list[AttentionRecord | None] = [None] * len(self.modules)
        self._handles: list[Any] = []

    def _hook(self, slot: int) -> Callable[..., Any]:
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
            out, rec = self.towers.recompute_attention(module, args, kwargs, self.single_head)
            self.records[slot] = rec
            if isinstance(output, tuple):
                return (out, rec.attn if len(output) > 1 and output[1] is not None else None)
            return out

        return hook

    def recorded(self) -> list[AttentionRecord]:
        """``records`` after a forward pass, or a ``RuntimeError`` if a hooked module did not
        run (the forward pass did not go through every module given)."""
        missing = [i for i, rec in enumerate(self.records) if rec is None]
        if missing:
            raise RuntimeError(
                f"Attention modules {missing} (of {len(self.records)} hooked) did not run; "
                "call the tower's forward pass inside the AttentionRecorder context."
            )
        return [rec for rec in self.records if rec is not None]

    def __enter__(self) -> AttentionRecorder:
        for slot, module in enumerate(self.modules):
            self._handles.append(module.register_forward_hook(self._hook(slot), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


class BlockInput:
    """Context manager that reads, or replaces, the hidden state entering one block.

    Args:
        block: The transformer block.
        replace: ``[B, L, H]`` tensor put in place of the block's input (batch-first), or
            ``None`` to only record it.
        batch_first: Whether the block receives ``[B, L, H]`` (else ``[L, B, H]``).

    ``captured`` holds the block's (original) input, batch-first, after a forward pass
    (:meth:`require_captured` returns it, checked).
    """

    def __init__(
        self, block: nn.Module, replace: torch.Tensor | None = None, batch_first: bool = True
    ) -> None:
        self.block = block
        self.replace = replace
        self.batch_first = batch_first
        self.captured: torch.Tensor | None = None
        self._handle: Any = None

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> Any:
        in_kwargs = not args
        x = kwargs["hidden_states"] if in_kwargs else args[0]
        self.captured = x if self.batch_first else x.transpose(0, 1)
        if self.replace is None:
            return None
        new = self.replace if self.batch_first else self.replace.transpose(0, 1)
        if new.shape != x.shape:
            raise ValueError(
                f"replacement hidden state has shape {tuple(new.shape)}, the block receives "
                f"{tuple(x.shape)}; run the tower on a batch of matching size."
            )
        if in_kwargs:
            return args, {**kwargs, "hidden_states": new}
        return (new, *args[1:]), kwargs

    def require_captured(self) -> torch.Tensor:
        """``captured``, or a ``RuntimeError`` if the block has not run."""
        if self.captured is None:
            raise RuntimeError(
                "The block did not run; call the tower's forward pass inside the BlockInput "
                "context before reading its input."
            )
        return self.captured

    def __enter__(self) -> BlockInput:
        self._handle = self.block.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


class Towers:
    """The two towers of a dual encoder as the gradient baselines see them.

    A thin view of the family adapter's tower internals (no family-specific code here).

    Args:
        model: The dual encoder.
        adapter: Its adapter; ``None`` = ``get_adapter(model)`` (no tokenizer).

    Attributes:
        adapter: The family adapter.
        image_blocks: Image transformer blocks in order (``None`` if unavailable).
        text_blocks: Text transformer blocks in order.
        image_cls: Sequence position pooled by the image tower (0 = class token) or
            ``None`` when it pools by attention or averaging (SigLIP's MAP head).
        n_image_prefix: Number of non-patch positions before the patches.
        image_batch_first / text_batch_first: Layout of block inputs.

    Raises:
        UnsupportedModelError: The family exposes no tower internals.
    """

    def __init__(self, model: nn.Module, adapter: DualEncoderAdapter | None = None) -> None:
        if adapter is None:
            from fixlip_captum.adapters import get_adapter

            adapter = get_adapter(model)
        self.model = model
        self.adapter = adapter
        image, text = adapter.image_tower(), adapter.text_tower()
        self._image, self._text = image, text
        self.image_blocks: list[nn.Module] | None = list(image.blocks) or None
        self.text_blocks: list[nn.Module] = list(text.blocks)
        self.image_cls = image.pool_position
        self.n_image_prefix = image.n_prefix
        self.image_batch_first = image.batch_first
        self.text_batch_first = text.batch_first

    @property
    def token_embedding(self) -> nn.Module:
        """The text tower's token-embedding module."""
        if self._text.token_embedding is None:
            raise NotImplementedError(
                f"This method needs the text tower's token embedding, but {self._text.why}"
            )
        return self._text.token_embedding

    # ------------------------------------------------------------------ properties
    @property
    def image_attention(self) -> list[nn.Module]:
        self.require_image_blocks()
        if not self._image.attention:
            raise NotImplementedError(
                f"This method needs the image attention, but {self._image.why}"
            )
        return list(self._image.attention)

    @property
    def text_attention(self) -> list[nn.Module]:
        if not self._text.attention:
            raise NotImplementedError(f"This method needs the text attention, but {self._text.why}")
        return list(self._text.attention)

    def require_image_blocks(self) -> list[nn.Module]:
        if self.image_blocks is None:
            raise NotImplementedError(
                f"This method needs the image tower's transformer blocks, but {self._image.why}"
            )
        return self.image_blocks

    def require_image_cls(self, method: str) -> int:
        self.require_image_blocks()
        if self.image_cls is None:
            raise NotImplementedError(
                f"{method} explains the class-token query, but {self._image.why}"
            )
        return self.image_cls

    def logit_scale_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(exp(logit_scale), logit_bias or None)`` as 0-d tensors."""
        return self.adapter.logit_scale_bias()

    # ------------------------------------------------------------------ forward passes
    def eager(self) -> contextlib.AbstractContextManager[None]:
        """The family's internals context: eval mode (and eager attention for transformers
        models), restored on exit."""
        return self.adapter.internals()

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings ``[B, D]`` of ``pixel_values [B, C, H, W]``."""
        return self.adapter.image_features(pixel_values)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised text embeddings ``[B, D]`` of ``input_ids [B, L]`` with
        ``attention_mask [B, L]`` (where the family uses it)."""
        return self.adapter.text_features(input_ids, attention_mask)

    # ------------------------------------------------------------------ attention
    def recompute_attention(
        self, module: nn.Module, args: tuple, kwargs: dict, single_head: bool
    ) -> tuple[torch.Tensor, AttentionRecord]:
        """Recompute ``module``'s self-attention from its inputs; see :class:`AttentionRecorder`.

        Returns the attention output in the module's layout and the record.
        """
        call = self.adapter.attention_call(module, args, kwargs)
        mask = call.mask
        if single_head:
            scale = call.weights[0].shape[0] ** -0.5
            n_heads = 1
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, :1]  # open_clip repeats one mask per head
        else:
            n_heads = call.heads
            scale = call.scale
        out, rec = _attention(call.x, call.weights, call.out_proj, n_heads, scale, mask)
        if not call.batch_first:
            out = out.transpose(0, 1)
        return out, rec
