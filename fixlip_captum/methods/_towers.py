"""Model internals for the gradient baselines (Grad-ECLIP, GAME, exCLIP, IntegratedGradients).

The adapters (``fixlip_captum.adapters``) hide a model behind masked encoding; gradient
methods need more: the towers' own forward passes with gradients, the attention of
individual blocks, the hidden state entering a block, and where each tower pools.
:class:`Towers` collects those for each supported family, working on the unmodified model:

* attention is observed by forward hooks on the attention modules that recompute the
  attention from the module's own weights and return that output in place of the
  module's (same result to float rounding, ~1e-6), keeping queries, keys, values, the
  attention probabilities and the head outputs with their gradients;
* a block's input is read or replaced by a forward pre-hook on the block.

Every hook is removed when its context manager exits. Transformers models are switched to
eager attention for the duration (so that the attention mask reaching the module is the
additive float mask) and switched back afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionRecord", "AttentionRecorder", "BlockInput", "Towers"]

_T = TypeVar("_T")


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


@overload
def _as_additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor: ...


@overload
def _as_additive(mask: None, dtype: torch.dtype) -> None: ...


def _as_additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        # nn.MultiheadAttention's bool masks mark positions that may NOT be attended.
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf")
        )
    return mask.to(dtype)


# torch types every attribute read through nn.Module.__getattr__ as `Tensor | Module`; the
# foreign towers are walked with these checked readers instead.
def _module_list(owner: nn.Module, path: str) -> list[nn.Module]:
    """The blocks of the ``nn.ModuleList`` / ``nn.Sequential`` at ``path`` under ``owner``."""
    blocks = owner.get_submodule(path)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        raise TypeError(
            f"{type(owner).__name__}.{path} is a {type(blocks).__name__}, not a list of "
            "transformer blocks; this tower is not supported by the gradient baselines."
        )
    return list(blocks)


def _linear(owner: nn.Module, name: str) -> nn.Linear:
    """The ``nn.Linear`` submodule ``name`` of an attention module."""
    layer = owner.get_submodule(name)
    if not isinstance(layer, nn.Linear):
        raise TypeError(
            f"{type(owner).__name__}.{name} is a {type(layer).__name__}, not nn.Linear; this "
            "attention module is not supported by the gradient baselines."
        )
    return layer


def _plain_attr(owner: nn.Module, name: str, kind: type[_T]) -> _T:
    """A plain (non-parameter, non-submodule) attribute of a foreign module, of type ``kind``."""
    value = getattr(owner, name)
    if not isinstance(value, kind):
        raise TypeError(
            f"{type(owner).__name__}.{name} is {value!r}, expected a {kind.__name__}; this "
            "model is not supported by the gradient baselines."
        )
    return value


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


def _pooled(output: Any) -> torch.Tensor:
    # transformers 5 returns BaseModelOutputWithPooling from get_*_features, 4.x a tensor.
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


class Towers:
    """Family-specific access to the two towers of a dual encoder.

    Supported: open_clip ``CLIP`` and ``CustomTextCLIP`` (ViT image tower with
    ``nn.MultiheadAttention`` blocks; a timm image tower is supported for hidden states and
    the embedding only), transformers ``CLIPModel``, ``SiglipModel`` and ``Siglip2Model``
    (the latter needs its adapter, which patchifies the pixels).

    Args:
        model: The dual encoder.
        adapter: Its adapter (required for SigLIP2 only).

    Attributes:
        family: ``"open_clip"``, ``"hf_clip"``, ``"hf_siglip"`` or ``"hf_siglip2"``.
        image_blocks: Image transformer blocks in order (``None`` if unavailable).
        text_blocks: Text transformer blocks in order.
        image_attention / text_attention: Their attention modules.
        image_cls: Sequence position pooled by the image tower (0 = class token) or
            ``None`` when the tower pools by attention (SigLIP's MAP head).
        n_image_prefix: Number of non-patch positions before the patches (1 with a class
            token, else 0).
        image_batch_first / text_batch_first: Layout of block inputs.
    """

    def __init__(self, model: nn.Module, adapter: Any = None) -> None:
        self.model = model
        self.adapter = adapter
        self.family = ""
        self.image_blocks: list[nn.Module] | None = None
        self.text_blocks: list[nn.Module] = []
        self.token_embedding: nn.Module
        self.image_cls: int | None = None
        self.image_batch_first = True
        self.text_batch_first = True
        self._image_why = ""
        self._image_attention_ok = True
        self._text_eos_id: int | None = None
        try:
            import open_clip
        except ImportError:  # pragma: no cover - open_clip is a dependency
            open_clip = None

        if open_clip is not None and isinstance(model, (open_clip.CLIP, open_clip.CustomTextCLIP)):
            self._init_open_clip(model, open_clip)
        elif not self._init_transformers(model, adapter):
            raise TypeError(
                f"{type(model).__name__} is not supported by the gradient baselines; use "
                "open_clip CLIP/CustomTextCLIP or transformers CLIPModel/SiglipModel/"
                "Siglip2Model, or a perturbation method."
            )

    # ------------------------------------------------------------------ construction
    def _init_transformers(self, model: nn.Module, adapter: Any) -> bool:
        """Set up a transformers CLIP / SigLIP / SigLIP2 model; False for any other model."""
        try:
            import transformers
        except ImportError:  # pragma: no cover - optional
            return False
        if isinstance(model, transformers.CLIPModel):
            self.family = "hf_clip"
            self.image_blocks = list(model.vision_model.encoder.layers)
            self.text_blocks = list(model.text_model.encoder.layers)
            self.image_cls = 0
            self.token_embedding = model.text_model.embeddings.token_embedding
            eos = model.text_model.eos_token_id
            self._text_eos_id = None if eos is None else int(eos)
            return True
        if isinstance(model, (transformers.SiglipModel, transformers.Siglip2Model)):
            self.family = "hf_siglip"
            if isinstance(model, transformers.Siglip2Model):
                self.family = "hf_siglip2"
                if adapter is None or not hasattr(adapter, "patchify"):
                    raise TypeError(
                        "SigLIP2 takes patchified pixels; pass its adapter "
                        "(fixlip_captum.adapters.get_adapter(model, processor))."
                    )
            self.image_blocks = list(model.vision_model.encoder.layers)
            self.text_blocks = list(model.text_model.encoder.layers)
            self.image_cls = None
            self._image_why = (
                "SigLIP has no class token: it pools the patch tokens with an attention head "
                "(MAP) outside the transformer, so there is no class-token query to explain."
            )
            self.token_embedding = model.text_model.embeddings.token_embedding
            return True
        return False

    def _init_open_clip(self, model: nn.Module, open_clip: Any) -> None:
        from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

        self.family = "open_clip"
        if isinstance(model.visual, VisionTransformer):
            if getattr(model.visual, "attn_pool", None) is not None:
                self._image_why = "the open_clip image tower pools with an attention pooler."
            else:
                self.image_blocks = list(model.visual.transformer.resblocks)
                self.image_cls = 0
                self.image_batch_first = model.visual.transformer.batch_first
        else:
            trunk = getattr(model.visual, "trunk", None)
            blocks = getattr(trunk, "blocks", None)
            if blocks is not None and getattr(trunk, "num_prefix_tokens", 1) == 0:
                # timm SigLIP-style trunk: hidden states are reachable (exCLIP), attention
                # is not the nn.MultiheadAttention we recompute.
                self.image_blocks = list(blocks)
                self._image_attention_ok = False
            self._image_why = (
                f"the image tower is {type(model.visual).__name__} (a timm trunk: no class "
                "token, attention-pool head), not an open_clip VisionTransformer."
            )
        text: nn.Module = model.text if isinstance(model, open_clip.CustomTextCLIP) else model
        if (
            isinstance(model, open_clip.CustomTextCLIP)
            and getattr(text, "cls_emb", None) is not None
        ):
            raise TypeError("open_clip text towers with an appended class token are not supported.")
        self.text_blocks = _module_list(text, "transformer.resblocks")
        self.text_batch_first = _plain_attr(text.get_submodule("transformer"), "batch_first", bool)
        self.token_embedding = text.get_submodule("token_embedding")
        self._text_module = text
        own_blocks = self.image_blocks if self._image_attention_ok else []
        for blk in [*(own_blocks or []), *self.text_blocks]:
            if not isinstance(blk, ResidualAttentionBlock):
                raise TypeError(
                    f"open_clip block type {type(blk).__name__} (custom attention) is not "
                    "supported by the gradient baselines; use a perturbation method."
                )

    # ------------------------------------------------------------------ properties
    @property
    def image_attention(self) -> list[nn.Module]:
        blocks = self.require_image_blocks()
        if not self._image_attention_ok:
            raise NotImplementedError(
                f"This method needs the image attention, but {self._image_why}"
            )
        return [self._attention_of(b) for b in blocks]

    @property
    def text_attention(self) -> list[nn.Module]:
        return [self._attention_of(b) for b in self.text_blocks]

    def _attention_of(self, block: nn.Module) -> nn.Module:
        return block.get_submodule("attn" if self.family == "open_clip" else "self_attn")

    @property
    def n_image_prefix(self) -> int:
        return 0 if self.image_cls is None else 1

    def require_image_blocks(self) -> list[nn.Module]:
        if self.image_blocks is None:
            raise NotImplementedError(
                f"This method needs the image tower's transformer blocks, but {self._image_why}"
            )
        return self.image_blocks

    def require_image_cls(self, method: str) -> int:
        self.require_image_blocks()
        if self.image_cls is None:
            raise NotImplementedError(
                f"{method} explains the class-token query, but {self._image_why}"
            )
        return self.image_cls

    def logit_scale_bias(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(exp(logit_scale), logit_bias or None)`` as 0-d tensors."""
        scale = self.model.logit_scale.detach().exp().reshape(-1)[0]
        bias = getattr(self.model, "logit_bias", None)
        return scale, (None if bias is None else bias.detach().reshape(-1)[0])

    # ------------------------------------------------------------------ forward passes
    @contextlib.contextmanager
    def eager(self) -> Iterator[None]:
        """Eval mode, and eager attention for transformers models, restored on exit."""
        was_training = self.model.training
        self.model.eval()
        previous = None
        if self.family.startswith("hf_"):
            previous = self.model.config._attn_implementation
            if previous != "eager":
                self.model.set_attn_implementation("eager")
        try:
            yield
        finally:
            if previous is not None and previous != "eager":
                self.model.set_attn_implementation(previous)
            self.model.train(was_training)

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unnormalised image embeddings ``[B, D]`` of ``pixel_values [B, C, H, W]``."""
        if self.family == "open_clip":
            return self.model.encode_image(pixel_values)
        if self.family == "hf_siglip2":
            # NaFlex: [B, P, p*p*C] patches, every patch attended, the adapter's grid.
            patches = self.adapter.patchify(pixel_values)
            bsz, n_patches = patches.shape[:2]
            grid = torch.tensor([self.adapter.patch_grid], device=patches.device)
            return _pooled(
                self.model.get_image_features(
                    pixel_values=patches,
                    pixel_attention_mask=torch.ones(
                        bsz, n_patches, dtype=torch.long, device=patches.device
                    ),
                    spatial_shapes=grid.expand(bsz, 2),
                )
            )
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised text embeddings ``[B, D]`` of ``input_ids [B, L]``.

        ``attention_mask [B, L]`` is used by transformers models; open_clip applies its own
        masks (causal, and padding where the tower is configured for it).
        """
        if self.family == "open_clip":
            return self.model.encode_text(input_ids)
        return _pooled(
            self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        )

    def text_pool_position(self, input_ids: torch.Tensor) -> int:
        """Position in ``input_ids [L]`` whose final hidden state the text tower pools."""
        ids = input_ids.reshape(-1)
        if self.family == "open_clip":
            text = self._text_module
            pool = getattr(text, "text_pool_type", None) or getattr(text, "pool_type", "argmax")
            eos = getattr(text, "text_eos_id", None)
            if eos is None:
                eos = getattr(text, "eos_id", None)
            if pool == "argmax":
                return int(ids.argmax())
            if pool == "eos":
                if eos is None:
                    raise NotImplementedError(
                        "open_clip text tower pools at the end-of-text token but has no eos id."
                    )
                return int((ids == int(eos)).int().argmax())
            if pool == "first":
                return 0
            if pool == "last":
                return ids.numel() - 1
            raise NotImplementedError(f"open_clip text pool_type {pool!r} has no single position.")
        if self.family == "hf_clip":
            eos = self._text_eos_id
            if eos is None:
                raise ValueError(
                    "The CLIP text config has no eos_token_id, so the pooled position is "
                    "unknown; set model.config.text_config.eos_token_id."
                )
            if eos == 2:
                return int(ids.argmax())
            hits = (ids == eos).nonzero()
            if hits.numel() == 0:
                raise ValueError(f"The token ids contain no end-of-text id {eos}.")
            return int(hits[0])
        return ids.numel() - 1  # SigLIP pools the last position

    # ------------------------------------------------------------------ attention
    def recompute_attention(
        self, module: nn.Module, args: tuple, kwargs: dict, single_head: bool
    ) -> tuple[torch.Tensor, AttentionRecord]:
        """Recompute ``module``'s self-attention from its inputs; see :class:`AttentionRecorder`.

        Returns the attention output in the module's layout and the record.
        """
        if self.family == "open_clip":
            if not isinstance(module, nn.MultiheadAttention):
                raise TypeError(
                    f"open_clip attention module {type(module).__name__} is not "
                    "nn.MultiheadAttention; it cannot be recomputed."
                )
            query = args[0] if args else kwargs["query"]
            key = args[1] if len(args) > 1 else kwargs.get("key", query)
            if key is not query:
                raise NotImplementedError("Only self-attention blocks can be recorded.")
            batch_first = module.batch_first
            x = query if batch_first else query.transpose(0, 1)
            if not x.requires_grad and torch.is_grad_enabled():
                x = x.detach().requires_grad_(True)
            bsz, length, _ = x.shape
            heads = module.num_heads
            w = module.in_proj_weight
            b = module.in_proj_bias
            wq, wk, wv = w.chunk(3)
            bq, bk, bv = b.chunk(3) if b is not None else (None, None, None)
            mask = _as_additive(kwargs.get("attn_mask"), x.dtype)
            if mask is not None:
                mask = (
                    mask.view(1, 1, length, length)
                    if mask.dim() == 2
                    else mask.view(bsz, heads, length, length)
                )
            kpm = kwargs.get("key_padding_mask")
            if kpm is not None:
                extra = _as_additive(kpm, x.dtype).view(bsz, 1, 1, length)
                mask = extra if mask is None else mask + extra
            out_proj: nn.Linear = module.out_proj
        else:
            x = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            if not x.requires_grad and torch.is_grad_enabled():
                x = x.detach().requires_grad_(True)
            batch_first = True
            heads = _plain_attr(module, "num_heads", int)
            q_proj, k_proj, v_proj = (_linear(module, n) for n in ("q_proj", "k_proj", "v_proj"))
            wq, bq = q_proj.weight, q_proj.bias
            wk, bk = k_proj.weight, k_proj.bias
            wv, bv = v_proj.weight, v_proj.bias
            mask = kwargs.get("attention_mask")
            if mask is None and len(args) > 1:
                mask = args[1]
            mask = _as_additive(mask, x.dtype)
            out_proj = _linear(module, "out_proj")
        if single_head:
            scale = wq.shape[0] ** -0.5
            n_heads = 1
            if mask is not None and mask.shape[1] > 1:
                mask = mask[:, :1]  # open_clip repeats one mask per head
        else:
            n_heads = heads
            scale = float(getattr(module, "scale", (wq.shape[0] // heads) ** -0.5))
        out, rec = _attention(x, (wq, bq, wk, bk, wv, bv), out_proj, n_heads, scale, mask)
        if not batch_first:  # only open_clip blocks may be sequence-first
            out = out.transpose(0, 1)
        return out, rec
