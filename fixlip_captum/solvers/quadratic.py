"""The order-<=2 normal equations applied matrix-free, for the cross-modal and the joint design.

An order-<=2 surrogate in the centred basis is an intercept ``c0``, a linear part ``u`` and a
symmetric pair matrix ``X`` (zero diagonal, ``X_ij = X_ji = c_ij / 2``), so its value on mask
``a`` with centred features ``z(a)`` is ``c0 + z(a)·u + z(a)^T X z(a)``. For all ``m`` masks
the pair part is ``rowsum((Z X) * Z)``: ``O(m n^2)`` time, ``O(m n + n^2)`` memory; its
transpose (the gradient for the pair coefficients) is ``Z^T diag(r) Z``. No
``masks x terms`` design, no ``F x F`` and no ``T x T`` matrix is ever formed.

Cross-modal design (rows are all pairs ``(a, b)`` of an image mask and a text mask, weights
``w_I(a) w_T(b)``): the prediction is ``h_I(a) + h_T(b) + z(a)^T B y(b)``, with ``h`` the
image-only and text-only parts and ``B`` the image-text pair coefficients. Summing over the
``m_I x m_T`` pairs factorises, so one application of the normal-equation operator costs two
quadratic forms per modality plus products with small ``n x n`` matrices. The joint design
(model-agnostic estimator) is the special case with a single empty "text" mask of weight 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .wls import NotIdentifiableError, scaled_cholesky

__all__ = ["EXACT_FEATURES", "QuadraticLayout", "QuadraticNormalOperator", "quadratic_layout"]

# Rows per block in the quadratic forms (bounds the [r, rows, P] temporaries).
_ROW_BLOCK = 8192
# A modality's own block is factorised exactly when it has at most this many features.
EXACT_FEATURES = 3000


@dataclass(frozen=True)
class _Pairs:
    """Pair terms ``(players[rows[k]], players[cols[k]])`` fitted at ``position[k]``."""

    players: torch.Tensor  # [P] long, ids local to the side (or side-pair) they index
    rows: torch.Tensor  # [K] long, into players (or into the first side for cross pairs)
    cols: torch.Tensor  # [K] long
    position: torch.Tensor  # [K] long, position of the term in the term list
    width: int  # number of columns of the matrix the pairs index (P, or C_T for cross)

    def to(self, device: torch.device) -> _Pairs:
        return _Pairs(
            self.players.to(device),
            self.rows.to(device),
            self.cols.to(device),
            self.position.to(device),
            self.width,
        )

    @property
    def flat(self) -> torch.Tensor:
        """``[K]`` positions of ``(rows, cols)`` in the flattened matrix."""
        return self.rows * self.width + self.cols

    @property
    def flat_transposed(self) -> torch.Tensor:
        return self.cols * self.width + self.rows


@dataclass(frozen=True)
class QuadraticLayout:
    """Where each block of an order-<=2 term list sits (see :func:`quadratic_layout`)."""

    n_terms: int
    intercept: int
    image_single: torch.Tensor  # [n_I] long, positions of the image singletons
    text_single: torch.Tensor  # [n_T] long
    image_pairs: _Pairs  # players: image ids 0..n_I-1
    text_pairs: _Pairs  # players: text ids 0..n_T-1
    cross_image: torch.Tensor  # [C_I] long, image ids in cross pairs
    cross_text: torch.Tensor  # [C_T] long, text ids in cross pairs
    cross_pairs: _Pairs  # rows into cross_image, cols into cross_text


def _pairs(
    found: list[tuple[int, int, int]], players_a: list[int], players_b: list[int] | None = None
) -> _Pairs:
    local_a = {p: k for k, p in enumerate(players_a)}
    local_b = local_a if players_b is None else {p: k for k, p in enumerate(players_b)}
    long = torch.long
    return _Pairs(
        players=torch.tensor(players_a, dtype=long),
        rows=torch.tensor([local_a[i] for i, _, _ in found], dtype=long),
        cols=torch.tensor([local_b[j] for _, j, _ in found], dtype=long),
        position=torch.tensor([k for _, _, k in found], dtype=long),
        width=len(players_a if players_b is None else players_b),
    )


def quadratic_layout(terms: Sequence[tuple[int, ...]], n_image: int) -> QuadraticLayout | None:
    """Blocks of an order-<=2 term list with every singleton, or ``None`` if it is not one.

    Args:
        terms: Sorted tuples of player ids (players ``0..n_image-1`` are the image side,
            the rest the text side; for a joint design pass ``n_image = n_players``).
        n_image: Number of image players.

    Returns:
        The layout, or ``None`` when a term has order 3 or more, a singleton is missing, or
        the intercept is missing (the iterative solver then does not apply).
    """
    n_players = 1 + max((max(t) for t in terms if t), default=-1)
    n_players = max(n_players, n_image)
    single = [-1] * n_players
    intercept = -1
    image_found: list[tuple[int, int, int]] = []
    text_found: list[tuple[int, int, int]] = []
    cross_found: list[tuple[int, int, int]] = []
    for k, term in enumerate(terms):
        if len(term) == 0:
            intercept = k
        elif len(term) == 1:
            single[term[0]] = k
        elif len(term) == 2:
            i, j = term
            if j < n_image:
                image_found.append((i, j, k))
            elif i >= n_image:
                text_found.append((i - n_image, j - n_image, k))
            else:
                cross_found.append((i, j - n_image, k))
        else:
            return None
    if intercept < 0 or min(single, default=0) < 0:
        return None
    image_players = sorted({i for t in image_found for i in t[:2]})
    text_players = sorted({i for t in text_found for i in t[:2]})
    cross_image = sorted({i for i, _, _ in cross_found})
    cross_text = sorted({j for _, j, _ in cross_found})
    long = torch.long
    return QuadraticLayout(
        n_terms=len(terms),
        intercept=intercept,
        image_single=torch.tensor(single[:n_image], dtype=long),
        text_single=torch.tensor(single[n_image:], dtype=long),
        image_pairs=_pairs(image_found, image_players),
        text_pairs=_pairs(text_found, text_players),
        cross_image=torch.tensor(cross_image, dtype=long),
        cross_text=torch.tensor(cross_text, dtype=long),
        cross_pairs=_pairs(cross_found, cross_image, cross_text),
    )


class _Side:
    """One modality's masks: centred features, weights and its pair terms."""

    def __init__(
        self,
        masks: torch.Tensor,
        weights: torch.Tensor,
        p: float,
        single: torch.Tensor,
        pairs: _Pairs,
        cross: torch.Tensor,
    ) -> None:
        device = weights.device
        scale = math.sqrt(p * (1.0 - p))
        self.z = (masks.to(device=device, dtype=torch.float64) - p) / scale  # [m, n]
        self.w = weights.to(torch.float64)  # [m]
        self.total = self.w.sum()
        self.single = single.to(device)
        self.pairs = pairs.to(device)
        self._flat = self.pairs.flat
        self._flat_t = self.pairs.flat_transposed
        self.zp = self.z[:, self.pairs.players]  # [m, P]
        self.zc = self.z[:, cross.to(device)]  # [m, C]
        self.zc_w = self.zc.T @ self.w  # [C]
        self.gram_cross = self.zc.T @ (self.w[:, None] * self.zc)  # [C, C]

    @property
    def n_features(self) -> int:
        return 1 + self.z.shape[1] + self.pairs.position.shape[0]

    def unpack(self, coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``coef [T, r]`` -> linear part ``[n, r]`` and symmetric pair matrices
        ``[P, r * P]`` (column block ``j`` is the matrix of right-hand side ``j``)."""
        u = coef.index_select(0, self.single)
        size, r = self.pairs.players.shape[0], coef.shape[1]
        x = coef.new_zeros((r, size * size))
        if size:
            half = coef.index_select(0, self.pairs.position).T / 2
            x.index_copy_(1, self._flat, half)
            x.index_add_(1, self._flat_t, half)
        return u, x.view(r, size, size).transpose(0, 1).reshape(size, r * size)

    def value(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``z(a)·u + z(a)^T X z(a)`` for every mask: ``[m, r]``."""
        out = self.z @ u
        size = self.zp.shape[1]
        if size:
            r = x.shape[1] // size
            for start in range(0, self.z.shape[0], _ROW_BLOCK):
                zp = self.zp[start : start + _ROW_BLOCK]
                zx = (zp @ x).view(zp.shape[0], r, size)
                out[start : start + _ROW_BLOCK] += (zx * zp[:, None, :]).sum(-1)
        return out

    def gradient(self, rho: torch.Tensor, out: torch.Tensor) -> None:
        """Add ``Phi_side^T rho`` (linear and pair parts) into ``out [T, r]``; ``rho [m, r]``."""
        out.index_add_(0, self.single, self.z.T @ rho)
        if not self.pairs.position.numel():
            return
        size, r = self.zp.shape[1], rho.shape[1]
        acc = rho.new_zeros((r, size, size))
        for start in range(0, self.z.shape[0], _ROW_BLOCK):
            zp = self.zp[start : start + _ROW_BLOCK]
            block = rho[start : start + _ROW_BLOCK]
            for col in range(r):
                acc[col] += (zp * block[:, col : col + 1]).T @ zp
        out.index_add_(0, self.pairs.position, acc.view(r, -1).index_select(1, self._flat).T)

    def features(self, with_intercept: bool, with_pairs: bool) -> torch.Tensor:
        """The side's own centred design ``[m, F]`` (with pairs: for small sides only)."""
        parts = [self.z]
        if with_intercept:
            parts.insert(0, self.z.new_ones((self.z.shape[0], 1)))
        if with_pairs and self.pairs.position.numel():
            parts.append(self.zp[:, self.pairs.rows] * self.zp[:, self.pairs.cols])
        return torch.cat(parts, dim=1)

    def positions(self, with_intercept: bool, intercept: int) -> torch.Tensor:
        parts = [self.single, self.pairs.position]
        if with_intercept:
            parts.insert(0, torch.tensor([intercept], device=self.single.device))
        return torch.cat(parts)

    def pair_diagonal(self) -> torch.Tensor:
        """Diagonal of the side's Gram on its pair terms: ``sum_a w z_i^2 z_j^2``."""
        sq = self.zp**2
        gram = sq.T @ (self.w[:, None] * sq)
        return gram[self.pairs.rows, self.pairs.cols]


def _inverse(gram: torch.Tensor, hint: str) -> torch.Tensor:
    """Symmetric inverse of an SPD block through its scaled Cholesky factor (raises if the
    block is singular: those terms are then not identifiable)."""
    chol, scale = scaled_cholesky(gram, hint)
    inv = torch.cholesky_inverse(chol) * scale[:, None] * scale[None, :]
    return (inv + inv.T) / 2


class QuadraticNormalOperator:
    """``c -> Phi^T W Phi c`` for the cross-modal (or joint) design, with a preconditioner.

    Args:
        layout: From :func:`quadratic_layout`.
        image_masks: ``[m_I, n_I]`` bool (for a joint design: the coalitions).
        image_weights: ``[m_I]`` float64.
        text_masks: ``[m_T, n_T]`` bool (joint design: ``[1, 0]``).
        text_weights: ``[m_T]`` float64 (joint design: ``[1.0]``).
        p: Centring probability of the basis.
        hint: Appended to a :class:`NotIdentifiableError` (e.g. the minimum budget).
    """

    def __init__(
        self,
        layout: QuadraticLayout,
        image_masks: torch.Tensor,
        image_weights: torch.Tensor,
        text_masks: torch.Tensor,
        text_weights: torch.Tensor,
        p: float,
        hint: str = "",
    ) -> None:
        self.layout = layout
        self.device = image_weights.device
        self.image = _Side(
            image_masks,
            image_weights,
            p,
            layout.image_single,
            layout.image_pairs,
            layout.cross_image,
        )
        self.text = _Side(
            text_masks,
            text_weights.to(self.device),
            p,
            layout.text_single,
            layout.text_pairs,
            layout.cross_text,
        )
        self.cross = layout.cross_pairs.to(self.device)
        self._cross_flat = self.cross.flat
        self.intercept = layout.intercept
        self._build_preconditioner(hint)

    # -- the operator -------------------------------------------------------------------
    def _unpack_cross(self, coef: torch.Tensor) -> torch.Tensor:
        c_i, c_t = self.image.zc.shape[1], self.text.zc.shape[1]
        b = coef.new_zeros((coef.shape[1], c_i * c_t))
        b.index_copy_(1, self._cross_flat, coef.index_select(0, self.cross.position).T)
        return b.view(coef.shape[1], c_i, c_t)

    def _add_cross(self, g_b: torch.Tensor, out: torch.Tensor) -> None:
        """``out[cross terms] += g_b[:, rows, cols]`` for ``g_b [r, C_I, C_T]``."""
        picked = g_b.reshape(g_b.shape[0], -1).index_select(1, self._cross_flat).T
        out.index_add_(0, self.cross.position, picked)

    def apply(self, coef: torch.Tensor) -> torch.Tensor:
        """``Phi^T W Phi coef`` for ``coef [T, r]`` -> ``[T, r]`` float64."""
        img, txt = self.image, self.text
        h_i = img.value(*img.unpack(coef)) + coef[self.intercept]  # [m_I, r]
        h_t = txt.value(*txt.unpack(coef))  # [m_T, r]
        b = self._unpack_cross(coef)  # [r, C_I, C_T]
        cross_i = torch.einsum("mc,rcd,d->mr", img.zc, b, txt.zc_w)  # [m_I, r]
        cross_t = torch.einsum("mc,rdc,d->mr", txt.zc, b, img.zc_w)  # [m_T, r]
        rho_i = img.w[:, None] * (txt.total * h_i + txt.w @ h_t + cross_i)
        rho_t = txt.w[:, None] * (img.total * h_t + img.w @ h_i + cross_t)
        out = torch.zeros_like(coef)
        out[self.intercept] = rho_i.sum(0)
        img.gradient(rho_i, out)
        txt.gradient(rho_t, out)
        if self.cross.position.numel():
            wh_i = img.zc.T @ (img.w[:, None] * h_i)  # [C_I, r]
            wh_t = txt.zc.T @ (txt.w[:, None] * h_t)  # [C_T, r]
            g_b = (
                torch.einsum("cr,d->rcd", wh_i, txt.zc_w)
                + torch.einsum("c,dr->rcd", img.zc_w, wh_t)
                + img.gram_cross @ b @ txt.gram_cross
            )
            self._add_cross(g_b, out)
        return out

    def rhs(self, values: torch.Tensor) -> torch.Tensor:
        """``Phi^T W v`` for the values ``[m_I, m_T]`` of every pair -> ``[T, 1]``."""
        img, txt = self.image, self.text
        v = values.to(torch.float64)
        rho_i = (img.w * (v @ txt.w))[:, None]
        rho_t = (txt.w * (img.w @ v))[:, None]
        out = torch.zeros((self.layout.n_terms, 1), dtype=torch.float64, device=self.device)
        out[self.intercept] = rho_i.sum()
        img.gradient(rho_i, out)
        txt.gradient(rho_t, out)
        if self.cross.position.numel():
            g_b = img.zc.T @ (img.w[:, None] * v * txt.w[None, :]) @ txt.zc
            self._add_cross(g_b[None], out)
        return out

    # -- the preconditioner --------------------------------------------------------------
    def _build_preconditioner(self, hint: str) -> None:
        """Block-diagonal: each modality's own block (exactly when small; else its linear
        block exactly and its pairs by their diagonal) and the image-text pairs exactly
        (their block is the Kronecker product of two ``n x n`` Grams)."""
        img, txt = self.image, self.text
        self._blocks: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._diag_pos: list[torch.Tensor] = []
        self._diag_inv: list[torch.Tensor] = []
        # The intercept belongs to the first side whose block is factorised whole.
        exact = [s.n_features <= EXACT_FEATURES for s in (txt, img)]
        owner = txt if exact[0] else img
        for side, other, whole in ((txt, img, exact[0]), (img, txt, exact[1])):
            with_intercept = side is owner
            phi = side.features(with_intercept, with_pairs=whole)
            pos = side.positions(with_intercept, self.intercept)[: phi.shape[1]]
            if not whole and side.pairs.position.numel():
                diag = side.pair_diagonal() * other.total
                if not bool((diag > 0).all()):
                    raise NotIdentifiableError(
                        f"Some interactions never vary in the samples. {hint}"
                    )
                self._diag_pos.append(side.pairs.position)
                self._diag_inv.append(1.0 / diag)
            if phi.shape[1]:
                gram = phi.T @ (side.w[:, None] * phi) * other.total
                self._blocks.append((pos, _inverse(gram, hint)))
        self._cross_inverses = None
        if self.cross.position.numel():
            self._cross_inverses = (_inverse(img.gram_cross, hint), _inverse(txt.gram_cross, hint))

    def precondition(self, resid: torch.Tensor) -> torch.Tensor:
        """Apply the inverse of the block-diagonal preconditioner to ``resid [T, r]``."""
        out = torch.zeros_like(resid)
        for pos, inv in self._blocks:
            out.index_add_(0, pos, inv @ resid.index_select(0, pos))
        for pos, inv in zip(self._diag_pos, self._diag_inv, strict=True):
            out.index_add_(0, pos, inv[:, None] * resid.index_select(0, pos))
        if self._cross_inverses is not None:
            inv_i, inv_t = self._cross_inverses
            # (G_I kron G_T)^-1 vec(B) = vec(G_I^-1 B G_T^-1)
            self._add_cross(inv_i @ self._unpack_cross(resid) @ inv_t, out)
        return out
