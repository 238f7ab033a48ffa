"""exCLIP (Moeller et al., TMLR 2025): integrated-Jacobian token-patch interactions.

At a chosen layer ``L`` each tower has hidden states ``h [S, H]`` (the input of block ``L``)
and reference hidden states ``r [S, H]`` (the same layer for a reference input). Write
``e(h)`` for the tower's (unnormalised) embedding computed from layer ``L`` on, and
``Delta = h - r``. Integrated Jacobians along the straight path,

    U[d, s] = sum_a Jbar[d, s, a] * Delta[s, a],
    Jbar = int_0^1 de/dh (r + alpha * Delta) d alpha     (right Riemann sum, N steps),

satisfy ``sum_s U[:, s] = e(h) - e(r)`` up to integration error, so

    A = U_t^T U_i / (||e_t|| ||e_i||)      [S_t, S_i]

sums to ``(e_t - e_t_ref) . (e_i - e_i_ref) / (||e_t|| ||e_i||)`` (the completeness identity).
``A`` is computed in this factored form, so memory is ``O(D * (S_t + S_i))`` instead of the
``(S_t * H) x (S_i * H)`` matrix of the published code.

References: the mean-colour image (all-zero normalised pixels) and the caption with every
player token replaced by a filler token (start, end and padding kept), so both sequences
have the same length and the text tail pools at the input's end-of-text position.

Players: entries of ``A`` between caption tokens and image patches become pair values
``(patch, n_I + token)``; there are no first-order terms. Rows/columns of special positions
(start/end/padding, class token) are not players; their share of the total is recorded in
``estimation_info`` (``total``, ``player_total``).

Cost per explanation: 2 forward passes per tower to read ``h`` and ``r`` (batched as one pass
of batch 2), one forward pass of batch ``N + 1`` per tower from the reference to the input,
and ``D`` backward passes of that batch through the blocks from ``L`` on (D = embedding
width; ``jacobian_chunk`` of them at a time, vectorised), plus the 2 image + 2 text
encodings that record v(full) and v(empty).

Supported: open_clip ``CLIP`` and ``CustomTextCLIP`` (ViT or timm image tower),
transformers ``CLIPModel``, ``SiglipModel`` and ``Siglip2Model``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fixlip_captum.interaction_values import FIxLIPInteractionValues, make_interaction_values
from fixlip_captum.methods._base import PairMethod
from fixlip_captum.methods._towers import BlockInput, Towers

__all__ = ["ExCLIP", "ExCLIPResult"]


@dataclass(eq=False)
class ExCLIPResult:
    """Everything exCLIP computed for one pair.

    Attributes:
        matrix: ``[S_t, S_i]`` interactions between all text and image positions.
        u_text / u_image: ``[D, S_t]`` / ``[D, S_i]`` integrated-Jacobian factors.
        e_text, e_image: Embeddings of the input (unnormalised) ``[D]``.
        e_text_ref, e_image_ref: Embeddings of the reference hidden states ``[D]``.
        scale: Factor applied after dividing by the norms (``exp(logit_scale)`` or 1).
        filler: Token id that replaced the caption's tokens in the reference text.
        text_rows: ``[n_T]`` rows of ``matrix`` that are text players.
        image_cols: ``[n_I]`` columns of ``matrix`` that are image players.
    """

    matrix: torch.Tensor
    u_text: torch.Tensor
    u_image: torch.Tensor
    e_text: torch.Tensor
    e_image: torch.Tensor
    e_text_ref: torch.Tensor
    e_image_ref: torch.Tensor
    scale: float
    filler: int
    text_rows: torch.Tensor
    image_cols: torch.Tensor

    def target(self) -> float:
        """``scale * (e_t - e_t_ref) . (e_i - e_i_ref) / (||e_t|| ||e_i||)``."""
        num = torch.dot(self.e_text - self.e_text_ref, self.e_image - self.e_image_ref)
        return float(self.scale * num / (self.e_text.norm() * self.e_image.norm()))

    def player_matrix(self) -> torch.Tensor:
        """``[n_T, n_I]``: the interactions between caption tokens and patches."""
        return self.matrix[self.text_rows][:, self.image_cols]


def _layer(layer: int, n: int, name: str) -> int:
    if not -n <= int(layer) < n:
        raise ValueError(f"{name}={layer} is outside the tower's {n} blocks (block inputs).")
    return int(layer) % n


class ExCLIP(PairMethod):
    """exCLIP second-order attributions between caption tokens and image patches.

    Args:
        model: open_clip ``CLIP``/``CustomTextCLIP`` or transformers ``CLIPModel``/
            ``SiglipModel``/``Siglip2Model``.
        tokenizer_or_processor: Tokenizer/processor for the adapter.
        adapter: A ready adapter (optional).
        layer: Image block whose INPUT is attributed (default ``-1``: input of the last block,
            layer 11 of a 12-block tower).
        text_layer: Same for the text tower; ``None`` = same rule as ``layer``.
        n_steps: Riemann steps N of the integrated Jacobians (default 20 as in the paper).
        text_filler_id: Token id that replaces every caption token in the reference text;
            ``None`` = the id of ``"."`` in the adapter's tokenizer (for vocabularies without
            it: the smallest id that is not a special token of the caption).
        jacobian_chunk: Embedding dimensions per vectorised backward pass (memory
            ``chunk * (N + 1) * S * H`` floats per tower).
        value: ``"logit"`` (default; ``A`` is multiplied by ``exp(logit_scale)``, the bias
            is a constant and not attributed) or ``"cosine"``.
        image_masking: Image masking used for v(empty) in the context.

    ``attribute(image, text)`` returns the ``[n_T, rows, cols]`` token-patch matrix;
    ``attribute_interactions`` the pair values (index ``"exCLIP"``, max_order 2, only
    image-text pairs, intercept 0); :meth:`compute` the full :class:`ExCLIPResult`.
    """

    name = "exclip"
    index = "exCLIP"
    max_order = 2

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer_or_processor: Any = None,
        *,
        adapter: Any = None,
        layer: int = -1,
        text_layer: int | None = None,
        n_steps: int = 20,
        text_filler_id: int | None = None,
        jacobian_chunk: int = 32,
        value: str = "logit",
        image_masking: str = "mean",
    ) -> None:
        super().__init__(
            model, tokenizer_or_processor, adapter=adapter, value=value, image_masking=image_masking
        )
        self.towers = Towers(model, self.adapter)
        self.layer = _layer(layer, len(self.towers.require_image_blocks()), "layer")
        t_layer = layer if text_layer is None else text_layer
        if text_layer is None and layer >= 0:
            t_layer = min(layer, len(self.towers.text_blocks) - 1)
        self.text_layer = _layer(t_layer, len(self.towers.text_blocks), "text_layer")
        if int(n_steps) < 1:
            raise ValueError(f"n_steps must be at least 1, got {n_steps}.")
        self.n_steps = int(n_steps)
        self.text_filler_id = text_filler_id
        if int(jacobian_chunk) < 1:
            raise ValueError(f"jacobian_chunk must be at least 1, got {jacobian_chunk}.")
        self.jacobian_chunk = int(jacobian_chunk)

    # ------------------------------------------------------------------ helpers
    def _filler(self, text_in: Any) -> int:
        if self.text_filler_id is not None:
            return int(self.text_filler_id)
        ids = text_in.input_ids.reshape(-1)
        special = set(ids.tolist()) - set(ids[text_in.player_positions].tolist())
        try:
            dot = self.adapter.tokenize(".")
        except (ValueError, TypeError, KeyError):
            dot = None
        if dot is not None and dot.n_players > 0:
            return int(dot.input_ids[dot.player_positions[0]])
        # No "." in the vocabulary (toy tokenizers): the smallest id that is not one of the
        # caption's special tokens (start, end, padding).
        return next(i for i in range(len(special) + 1) if i not in special)

    def _integrate(
        self,
        block: torch.nn.Module,
        batch_first: bool,
        h: torch.Tensor,
        r: torch.Tensor,
        run: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(U [D, S], e(h) [D], e(r) [D])`` for one tower; ``run(b)`` embeds a batch of b."""
        n = self.n_steps
        alphas = torch.arange(n + 1, device=h.device, dtype=h.dtype) / n
        delta = h - r
        path = (r[None] + alphas[:, None, None] * delta[None]).detach().requires_grad_(True)
        with BlockInput(block, replace=path, batch_first=batch_first):
            emb = run(n + 1).float()  # [n+1, D]
        # Steps 1..N form the right Riemann sum; step 0 is the reference itself.
        target = emb[1:]
        dim = emb.shape[1]
        u = torch.empty(dim, h.shape[0], dtype=torch.float32, device=h.device)
        eye = torch.eye(dim, dtype=target.dtype, device=target.device)
        chunk = self.jacobian_chunk
        for start in range(0, dim, chunk):
            stop = min(start + chunk, dim)
            # One vectorised backward per chunk of embedding dimensions (rows of J).
            seeds = eye[start:stop, None, :].expand(stop - start, n, dim)
            try:
                (g,) = torch.autograd.grad(
                    target, path, grad_outputs=seeds, is_grads_batched=True, retain_graph=True
                )
            except RuntimeError:
                # An op without a batching rule: one backward pass per dimension.
                g = torch.stack(
                    [
                        torch.autograd.grad(target[:, d].sum(), path, retain_graph=True)[0]
                        for d in range(start, stop)
                    ]
                )
            u[start:stop] = (g[:, 1:].sum(1) * delta).sum(-1).float() / n
        return u, emb[-1].detach(), emb[0].detach()

    def compute(self, pixel_values: torch.Tensor, text_in: Any) -> ExCLIPResult:
        """Run exCLIP on preprocessed inputs (see :class:`ExCLIPResult`)."""
        towers = self.towers
        device = pixel_values.device
        ids = text_in.input_ids.to(device)
        mask = text_in.attention_mask.to(device)
        players = text_in.player_positions.to(device)
        ref_ids = ids.clone()
        filler = self._filler(text_in)
        ref_ids[players] = filler
        img_block = towers.require_image_blocks()[self.layer]
        txt_block = towers.text_blocks[self.text_layer]
        with towers.eager():
            with torch.no_grad():
                with BlockInput(img_block, batch_first=towers.image_batch_first) as cap:
                    towers.encode_image(torch.cat([pixel_values, torch.zeros_like(pixel_values)]))
                h_i, r_i = cap.require_captured().detach()  # input, reference
                with BlockInput(txt_block, batch_first=towers.text_batch_first) as cap:
                    towers.encode_text(torch.stack([ids, ref_ids]), mask.expand(2, -1))
                h_t, r_t = cap.require_captured().detach()  # input, reference
            with torch.enable_grad():
                u_i, e_i, e_i_ref = self._integrate(
                    img_block,
                    towers.image_batch_first,
                    h_i,
                    r_i,
                    lambda b: towers.encode_image(pixel_values.expand(b, -1, -1, -1)),
                )
                u_t, e_t, e_t_ref = self._integrate(
                    txt_block,
                    towers.text_batch_first,
                    h_t,
                    r_t,
                    lambda b: towers.encode_text(ids.expand(b, -1), mask.expand(b, -1)),
                )
        scale = 1.0
        if self.value == "logit":
            scale = float(towers.logit_scale_bias()[0])
        matrix = scale * (u_t.T @ u_i) / (e_t.norm() * e_i.norm())
        n_prefix = towers.n_image_prefix
        return ExCLIPResult(
            matrix=matrix.detach(),
            u_text=u_t.detach(),
            u_image=u_i.detach(),
            e_text=e_t,
            e_image=e_i,
            e_text_ref=e_t_ref,
            e_image_ref=e_i_ref,
            scale=scale,
            filler=filler,
            text_rows=players,
            image_cols=torch.arange(n_prefix, n_prefix + self.n_image, device=device),
        )

    # ------------------------------------------------------------------ public API
    # Not the (image, text) maps of PairMethod: exCLIP's captum-style view is its matrix.
    def attribute(self, image: Any, text: Any) -> torch.Tensor:  # type: ignore[override]
        """Token-patch interactions ``[n_T, rows, cols]`` (float32, CPU)."""
        pixel_values, text_in = self.prepare(image, text)
        res = self.compute(pixel_values, text_in)
        rows, cols = self.grid
        return res.player_matrix().float().cpu().reshape(-1, rows, cols)

    def attribute_interactions(self, image: Any, text: Any) -> FIxLIPInteractionValues:
        """Explain one pair.

        Args:
            image: PIL image or tensor ``[C, H, W]`` / ``[1, C, H, W]`` (preprocessed).
            text: Caption string or token ids.

        Returns:
            Order-2 values with only image-text pairs ``(patch, n_I + token)``.
        """
        pixel_values, text_in = self.prepare(image, text)
        res = self.compute(pixel_values, text_in)
        pm = res.player_matrix().double().cpu().numpy()  # [n_T, n_I]
        n_i, n_t = self.n_image, text_in.n_players
        terms = [(i, n_i + t) for t in range(n_t) for i in range(n_i)]
        values = pm.reshape(-1)  # row-major over (token, patch), matching terms
        v_full, v_empty = self.pair_values(pixel_values, text_in)
        info = {
            "layer": self.layer,
            "text_layer": self.text_layer,
            "n_steps": self.n_steps,
            "text_filler_id": res.filler,
            "target": res.target(),
            "total": float(res.matrix.sum()),
            "player_total": float(np.sum(pm)),
            "scale": res.scale,
        }
        return make_interaction_values(
            np.concatenate([[0.0], values]),
            [(), *terms],
            n_players=n_i + n_t,
            index=self.index,
            max_order=2,
            estimated=True,
            estimation_info={"method": self.name, **info},
            context=self.context(pixel_values, text_in, v_full, v_empty),
        )
