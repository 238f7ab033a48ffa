"""Grad-ECLIP (Zhao et al., ICML 2024): gradient-weighted attention-value maps for CLIP.

Grad-ECLIP explains the cosine ``cos(f_I, f_T)`` of a pair, each tower with the other
modality's embedding held fixed. For one attention block with queries ``q``, keys ``k``,
values ``V`` and head outputs ``O`` (before the out-projection), at the pooled query
position ``c`` (the class token for images, end-of-text for text):

* channel weights ``w = d cos / d O_c``;
* loosened spatial weights ``lambda_j = minmax_j cos(q_c, k_j)``;
* contribution of position ``j``: ``sum_ch w_ch V_{j,ch} lambda_j``.

The image map is ``ReLU`` of the contribution in the last block (min-max over the patches);
the text map is ``ReLU`` of the contributions summed over the last 8 blocks (min-max over all
positions, padding included), read at the caption's tokens.

Heads:

* ``heads="model"`` (default): the model's own multi-head attention, recomputed exactly
  from its weights. ``lambda`` is computed per head (query and key of that head) and each
  head's channels use that head's ``lambda``. The explained cosine is the model's.
* ``heads="single"``: the reference implementation's recomputation: every explained block
  computes ONE attention head over the full width with scale ``1/sqrt(D)``. This changes the
  forward pass, so the explained cosine is no longer the model's (both are recorded in
  ``estimation_info``: ``model_cosine`` and ``explained_cosine``). Use it only to reproduce
  published Grad-ECLIP maps.

Cost per explanation: one forward pass of each tower and one backward pass (through both
towers at once), plus the 2 image + 2 text encodings that record v(full) and v(empty).

Supported: open_clip ``CLIP`` (ViT image tower), transformers ``CLIPModel``. Image maps need a
class token; SigLIP (attention-pool head, no class token) raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from fixlip_captum.interaction_values import FIxLIPInteractionValues
from fixlip_captum.methods._base import PairMethod, check_choice
from fixlip_captum.methods._towers import AttentionRecord, AttentionRecorder, Towers

__all__ = ["GradECLIP"]

HEADS = ("model", "single")


def _minmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    lo = x.amin(dim=dim, keepdim=True)
    hi = x.amax(dim=dim, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def _contribution(
    rec: AttentionRecord, grad_out: torch.Tensor, query: int, norm_positions: torch.Tensor
) -> torch.Tensor:
    """``sum_ch w_ch V_{j,ch} lambda_j`` for every position ``j`` (``[L]``), batch item 0.

    ``lambda`` is min-maxed per head over ``norm_positions``.
    """
    q = rec.q[0, :, query].detach()  # [h, d_h]
    k = rec.k[0].detach()  # [h, L, d_h]
    v = rec.v[0].detach()  # [h, L, d_h]
    heads, _, dh = k.shape
    w = grad_out[0, query].detach().view(heads, dh)  # [h, d_h]
    sim = F.cosine_similarity(q[:, None, :], k, dim=-1)  # [h, L]
    lam = torch.zeros_like(sim)
    lam[:, norm_positions] = _minmax(sim[:, norm_positions])
    return (lam * (v @ w[:, :, None]).squeeze(-1)).sum(0)


class GradECLIP(PairMethod):
    """Grad-ECLIP image and text maps as order-1 values over FIxLIP's players.

    Args:
        model: open_clip ``CLIP`` or transformers ``CLIPModel``.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        heads: ``"model"`` (faithful multi-head, default) or ``"single"`` (reference
            single-head recomputation); see the module docstring.
        image_layers: Number of last image blocks whose maps are summed (paper: 1).
        text_layers: Number of last text blocks whose maps are summed (paper: 8).
        value: Value recorded as v(full)/v(empty) in the context (the map itself always
            explains the cosine, as in the paper).
        image_masking: Image masking used for v(empty).

    ``attribute(image, text)`` returns ``(image_map [rows, cols], text_map [n_T])``;
    ``attribute_interactions`` returns the same numbers as order-1
    :class:`FIxLIPInteractionValues` with index ``"GradECLIP"`` (intercept 0).
    """

    name = "grad_eclip"
    index = "GradECLIP"
    max_order = 1

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        heads: str = "model",
        image_layers: int = 1,
        text_layers: int = 8,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        self.heads = check_choice(heads, HEADS, "heads")
        if int(image_layers) < 1 or int(text_layers) < 1:
            raise ValueError("image_layers and text_layers must be at least 1.")
        self.image_layers = int(image_layers)
        self.text_layers = int(text_layers)
        self.towers = Towers(model, self.adapter)
        self.towers.require_image_cls("Grad-ECLIP")

    def attribute_interactions(self, image: Any, text: Any) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.

        Returns:
            Order-1 values: ``ReLU`` map values of the patches and caption tokens.
        """
        towers = self.towers
        pixel_values, text_in = self.prepare(image, text)
        device = pixel_values.device
        ids = text_in.input_ids.to(device)[None]
        mask = text_in.attention_mask.to(device)[None]
        cls = towers.require_image_cls("Grad-ECLIP")
        n_img_layers = min(self.image_layers, len(towers.require_image_blocks()))
        n_txt_layers = min(self.text_layers, len(towers.text_blocks))
        img_modules = towers.image_attention[-n_img_layers:]
        txt_modules = towers.text_attention[-n_txt_layers:]
        eos = text_in.pool_position
        single = self.heads == "single"
        with (
            torch.enable_grad(),
            towers.eager(),
            AttentionRecorder(towers, img_modules, single) as rec_i,
            AttentionRecorder(towers, txt_modules, single) as rec_t,
        ):
            f_i = F.normalize(towers.encode_image(pixel_values).float(), dim=-1)
            f_t = F.normalize(towers.encode_text(ids, mask).float(), dim=-1)
            # Each tower's target holds the other modality fixed.
            cos_i = (f_i * f_t.detach()).sum()
            cos_t = (f_i.detach() * f_t).sum()
            recs_i, recs_t = rec_i.recorded(), rec_t.recorded()
            # autograd.grad, not backward: the model's parameter .grad stay untouched.
            grads = torch.autograd.grad(cos_i + cos_t, [r.out for r in [*recs_i, *recs_t]])
        g_img, g_txt = grads[:n_img_layers], grads[n_img_layers:]

        n_prefix = towers.n_image_prefix
        patches = torch.arange(n_prefix, n_prefix + self.n_image, device=device)
        # Start the sums at a 0-d tensor, not the int 0: same dtype and values, typed as a tensor.
        zero = torch.zeros((), device=device)
        img_map = sum(
            (_contribution(r, g, cls, patches) for r, g in zip(recs_i, g_img, strict=True)), zero
        )[patches]
        all_pos = torch.arange(ids.shape[1], device=device)
        txt_map = sum(
            (_contribution(r, g, eos, all_pos) for r, g in zip(recs_t, g_txt, strict=True)), zero
        )[text_in.player_positions.to(device)]

        v_full, v_empty = self.pair_values(pixel_values, text_in)
        with torch.no_grad():
            model_cos = float(
                self.adapter.similarity(
                    self.adapter.encode_image(pixel_values, None, masking=self.image_masking),
                    self.adapter.encode_text(text_in, None),
                    value="cosine",
                )[0, 0]
            )
        info = {
            "heads": self.heads,
            "image_layers": n_img_layers,
            "text_layers": n_txt_layers,
            "target": "cosine",
            "model_cosine": model_cos,
            "explained_cosine": float(cos_i.detach()),
            "forward_passes": 1,
            "backward_passes": 1,
        }
        return self.first_order_result(
            img_map.clamp_min(0.0),
            txt_map.clamp_min(0.0),
            self.context(pixel_values, text_in, v_full, v_empty),
            info,
            estimated=False,
        )
