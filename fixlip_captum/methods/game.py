"""GAME (Chefer, Gur & Wolf, ICCV 2021): gradient-weighted attention rollout for CLIP.

For a target ``y`` (the pair's logit ``exp(logit_scale) * cos (+ bias)``), each tower keeps a
relevance matrix ``R`` over its sequence, starting from the identity, and for every block
``b`` from the start layer to the last:

    Abar_b = mean_heads( relu( dy/dA_b * A_b ) ),      R <- R + Abar_b @ R

with ``A_b [heads, L, L]`` the attention probabilities. CLIP has no cross-attention, so each
tower has its own ``R``. Image relevance is ``R[CLS, patches]``; text relevance is
``R[EOT, tokens]`` at the position the text tower pools, read at the caption's tokens.

The default start layer is the LAST block (``start_layer=-1``), the setting of the FIxLIP
and Grad-ECLIP comparisons (then ``R = I + Abar_L``); earlier start layers reproduce the
original all-layer rollout (``start_layer=0``).

Attention probabilities and their gradients come from hooks that recompute each block's
multi-head attention from the model's own weights (the output is the model's, to float
rounding); the hooks are removed afterwards.

Cost per explanation: one forward pass of each tower and one backward pass, plus the 2 image
+ 2 text encodings that record v(full) and v(empty).

Supported: open_clip ``CLIP`` (ViT image tower), transformers ``CLIPModel``. SigLIP has no
class token in the image tower (its attention-pool head is outside the transformer), so
there is no class-token row to read: it raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.methods._base import PairMethod
from fixlip_captum.methods._towers import AttentionRecord, AttentionRecorder, Towers

__all__ = ["GAME"]


def _layer_index(layer: int, n_layers: int, name: str) -> int:
    if not -n_layers <= int(layer) < n_layers:
        raise ValueError(f"{name}={layer} is outside the tower's {n_layers} blocks.")
    return int(layer) % n_layers


def _rollout(records: list[AttentionRecord], grads: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """``R [L, L]`` of batch item 0 after the recorded blocks, in order."""
    length = records[0].attn.shape[-1]
    rel = torch.eye(length, dtype=torch.float64, device=records[0].attn.device)
    for rec, grad in zip(records, grads, strict=True):
        cam = (grad[0] * rec.attn[0].detach()).clamp_min(0.0).mean(0).double()
        rel = rel + cam @ rel
    return rel


class GAME(PairMethod):
    """GAME relevance of patches and caption tokens as order-1 values.

    Args:
        model: open_clip ``CLIP`` or transformers ``CLIPModel``.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        start_layer: First image block of the rollout (default ``-1`` = last block only).
        text_start_layer: First text block; ``None`` = same rule as ``start_layer``.
        value: ``"logit"`` (default; GAME's target) or ``"cosine"``: the target ``y`` and the
            value recorded as v(full)/v(empty).
        image_masking: Image masking used for v(empty).

    ``attribute(image, text)`` returns ``(image_relevance [rows, cols], text_relevance
    [n_T])``; ``attribute_interactions`` the same as order-1 values with index ``"GAME"``.
    """

    name = "game"
    index = "GAME"
    max_order = 1

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        start_layer: int = -1,
        text_start_layer: int | None = None,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        self.towers = Towers(model, self.adapter)
        self.towers.require_image_cls("GAME")
        self.start_layer = _layer_index(
            start_layer, len(self.towers.require_image_blocks()), "start_layer"
        )
        tsl = start_layer if text_start_layer is None else text_start_layer
        if text_start_layer is None and start_layer >= 0:
            # A non-negative start counts from the first block in both towers.
            tsl = min(start_layer, len(self.towers.text_blocks) - 1)
        self.text_start_layer = _layer_index(tsl, len(self.towers.text_blocks), "text_start_layer")

    def attribute_interactions(self, image: Any, text: Any) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.

        Returns:
            Order-1 values (index ``"GAME"``, intercept 0).
        """
        towers = self.towers
        pixel_values, text_in = self.prepare(image, text)
        device = pixel_values.device
        ids = text_in.input_ids.to(device)[None]
        mask = text_in.attention_mask.to(device)[None]
        cls = towers.require_image_cls("GAME")
        eos = text_in.pool_position
        img_modules = towers.image_attention[self.start_layer :]
        txt_modules = towers.text_attention[self.text_start_layer :]
        with (
            torch.enable_grad(),
            towers.eager(),
            AttentionRecorder(towers, img_modules) as rec_i,
            AttentionRecorder(towers, txt_modules) as rec_t,
        ):
            f_i = F.normalize(towers.encode_image(pixel_values).float(), dim=-1)
            f_t = F.normalize(towers.encode_text(ids, mask).float(), dim=-1)
            y = (f_i * f_t).sum()
            if self.value == "logit":
                scale, bias = towers.logit_scale_bias()
                y = scale.float() * y + (0.0 if bias is None else bias.float())
            recs_i, recs_t = rec_i.recorded(), rec_t.recorded()
            grads = torch.autograd.grad(y, [r.attn for r in [*recs_i, *recs_t]])
        n_img = len(img_modules)
        r_img = _rollout(recs_i, grads[:n_img])
        r_txt = _rollout(recs_t, grads[n_img:])
        n_prefix = towers.n_image_prefix
        img_rel = r_img[cls, n_prefix : n_prefix + self.n_image]
        txt_rel = r_txt[eos, text_in.player_positions.to(device)]

        v_full, v_empty = self.pair_values(pixel_values, text_in)
        info = {
            "start_layer": self.start_layer,
            "text_start_layer": self.text_start_layer,
            "target": self.value,
            "explained_value": float(y.detach()),
            "forward_passes": 1,
            "backward_passes": 1,
        }
        return self.first_order_result(
            img_rel,
            txt_rel,
            self.context(pixel_values, text_in, v_full, v_empty),
            info,
            estimated=False,
        )
