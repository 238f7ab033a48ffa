"""The order-<=2 normal equations of one design, applied matrix-free.

An order-<=2 surrogate in the centred basis is an intercept ``c0``, a linear part ``u`` and a
symmetric pair matrix ``X`` (zero diagonal, ``X_ij = X_ji = c_ij / 2``), so its value on mask
``a`` with centred features ``z(a)`` is ``c0 + z(a)·u + z(a)^T X z(a)``. For all ``m`` masks
the pair part is ``rowsum((Z X) * Z)``: ``O(m n^2)`` time, ``O(m n + n^2)`` memory; its
transpose (the gradient for the pair coefficients) is ``Z^T diag(r) Z``. No
``masks x terms`` design and no ``T x T`` matrix is ever formed.

Used by the model-agnostic estimator (the joint design) and by the cross-modal estimator's
image regressions (:mod:`fixlip_captum.solvers.crossmodal`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .wls import NotIdentifiableError, scaled_cholesky

__all__ = ["EXACT_FEATURES", "QuadraticLayout", "QuadraticNormalOperator", "quadratic_layout"]

# Rows per block in the quadratic forms (bounds the [r, rows, P] temporaries).
_ROW_BLOCK = 2048
# A design's Gram is formed and factorised exactly (direct solve, exact preconditioner)
# when it has at most this many features.
EXACT_FEATURES = 3000


@dataclass(frozen=True)
class QuadraticLayout:
    """Where each block of an order-<=2 term list sits (see :func:`quadratic_layout`)."""

    n_terms: int
    intercept: int
    single: torch.Tensor  # [n] long, positions of the singletons
    players: torch.Tensor  # [P] long, players in some pair term
    rows: torch.Tensor  # [K] long, into players
    cols: torch.Tensor  # [K] long, into players
    pair_position: torch.Tensor  # [K] long, position of each pair term in the term list

    def to(self, device: torch.device) -> QuadraticLayout:
        return QuadraticLayout(
            n_terms=self.n_terms,
            intercept=self.intercept,
            single=self.single.to(device),
            players=self.players.to(device),
            rows=self.rows.to(device),
            cols=self.cols.to(device),
            pair_position=self.pair_position.to(device),
        )


def quadratic_layout(terms: Sequence[tuple[int, ...]], n_players: int) -> QuadraticLayout | None:
    """Blocks of an order-<=2 term list with every singleton, or ``None`` if it is not one.

    Args:
        terms: Sorted tuples of player ids ``0..n_players-1``.
        n_players: Number of players ``n``.

    Returns:
        The layout, or ``None`` when a term has order 3 or more, a singleton is missing, or
        the intercept is missing (the iterative solver then does not apply).
    """
    single = [-1] * n_players
    intercept = -1
    found: list[tuple[int, int, int]] = []
    for k, term in enumerate(terms):
        if len(term) == 0:
            intercept = k
        elif len(term) == 1:
            single[term[0]] = k
        elif len(term) == 2:
            found.append((term[0], term[1], k))
        else:
            return None
    if intercept < 0 or min(single, default=0) < 0:
        return None
    players = sorted({i for t in found for i in t[:2]})
    local = {p: k for k, p in enumerate(players)}
    long = torch.long
    return QuadraticLayout(
        n_terms=len(terms),
        intercept=intercept,
        single=torch.tensor(single, dtype=long),
        players=torch.tensor(players, dtype=long),
        rows=torch.tensor([local[i] for i, _, _ in found], dtype=long),
        cols=torch.tensor([local[j] for _, j, _ in found], dtype=long),
        pair_position=torch.tensor([k for _, _, k in found], dtype=long),
    )


def _inverse(gram: torch.Tensor, hint: str) -> torch.Tensor:
    """Symmetric inverse of an SPD block through its scaled Cholesky factor (raises if the
    block is singular: those terms are then not identifiable)."""
    chol, scale = scaled_cholesky(gram, hint)
    inv = torch.cholesky_inverse(chol) * scale[:, None] * scale[None, :]
    return (inv + inv.T) / 2


class QuadraticNormalOperator:
    """``c -> Phi^T W Phi c`` for the order-<=2 design of weighted masks, with a
    block preconditioner.

    Args:
        layout: From :func:`quadratic_layout`.
        masks: ``[m, n]`` bool.
        weights: ``[m]`` float64.
        p: Centring probability of the basis.
        hint: Appended to a :class:`NotIdentifiableError` (e.g. the minimum budget).
    """

    def __init__(
        self,
        layout: QuadraticLayout,
        masks: torch.Tensor,
        weights: torch.Tensor,
        p: float,
        hint: str = "",
    ) -> None:
        self.device = weights.device
        self.layout = layout.to(self.device)
        scale = math.sqrt(p * (1.0 - p))
        self.z = (masks.to(device=self.device, dtype=torch.float64) - p) / scale  # [m, n]
        self.w = weights.to(torch.float64)  # [m]
        self.zp = self.z[:, self.layout.players]  # [m, P]
        # Float32 copies for :meth:`apply_single`.
        self._single = (self.z.float(), self.zp.float(), self.w.float())
        size = self.zp.shape[1]
        self._flat = self.layout.rows * size + self.layout.cols
        self._flat_t = self.layout.cols * size + self.layout.rows
        self._build_preconditioner(hint)

    @property
    def n_features(self) -> int:
        return self.layout.n_terms

    # -- the operator -------------------------------------------------------------------
    def _unpack(self, coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``coef [T, r]`` -> linear part ``[n, r]`` and symmetric pair matrices
        ``[r, P, P]`` (one per right-hand side)."""
        u = coef.index_select(0, self.layout.single)
        size, r = self.zp.shape[1], coef.shape[1]
        x = coef.new_zeros((r, size * size))
        if size:
            half = coef.index_select(0, self.layout.pair_position).T / 2
            x.index_copy_(1, self._flat, half)
            x.index_add_(1, self._flat_t, half)
        return u, x.view(r, size, size)

    def _value(self, coef: torch.Tensor, z: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
        """``c0 + z(a)·u + z(a)^T X z(a)`` for every mask: ``[m, r]`` (in ``coef``'s dtype,
        that of ``z [m, n]`` and ``zp [m, P]``)."""
        u, x = self._unpack(coef)
        out = z @ u + coef[self.layout.intercept]
        size = zp.shape[1]
        if size:
            # One right-hand side at a time: a [rows, P] x [P, P] product each, which
            # measured 2x faster than one [P, r * P] product for r = 2 at P = 196.
            for col in range(x.shape[0]):
                for start in range(0, z.shape[0], _ROW_BLOCK):
                    rows = zp[start : start + _ROW_BLOCK]
                    out[start : start + _ROW_BLOCK, col] += ((rows @ x[col]) * rows).sum(-1)
        return out

    def _gradient(self, rho: torch.Tensor, z: torch.Tensor, zp: torch.Tensor) -> torch.Tensor:
        """``Phi^T rho`` for ``rho [m, r]`` -> ``[T, r]``."""
        out = rho.new_zeros((self.layout.n_terms, rho.shape[1]))
        out[self.layout.intercept] = rho.sum(0)
        out.index_add_(0, self.layout.single, z.T @ rho)
        if not self.layout.pair_position.numel():
            return out
        size, r = zp.shape[1], rho.shape[1]
        acc = rho.new_zeros((r, size, size))
        for start in range(0, z.shape[0], _ROW_BLOCK):
            rows = zp[start : start + _ROW_BLOCK]
            block = rho[start : start + _ROW_BLOCK]
            for col in range(r):
                acc[col] += (rows * block[:, col : col + 1]).T @ rows
        picked = acc.view(r, -1).index_select(1, self._flat).T
        out.index_add_(0, self.layout.pair_position, picked)
        return out

    def apply(self, coef: torch.Tensor) -> torch.Tensor:
        """``Phi^T W Phi coef`` for ``coef [T, r]`` -> ``[T, r]`` float64."""
        value = self._value(coef, self.z, self.zp)
        return self._gradient(self.w[:, None] * value, self.z, self.zp)

    def apply_single(self, coef: torch.Tensor) -> torch.Tensor:
        """:meth:`apply` with float32 products (about twice as fast; relative error
        ~1e-7, for the inner solves of mixed-precision refinement) -> ``[T, r]`` float64."""
        z, zp, w = self._single
        value = self._value(coef.float(), z, zp)
        return self._gradient(w[:, None] * value, z, zp).double()

    def rhs(self, values: torch.Tensor) -> torch.Tensor:
        """``Phi^T W Y`` for ``values [m, r]`` -> ``[T, r]``."""
        return self._gradient(self.w[:, None] * values.to(torch.float64), self.z, self.zp)

    # -- the preconditioner --------------------------------------------------------------
    def _build_preconditioner(self, hint: str) -> None:
        """The whole Gram inverted when small; else the intercept and linear block exactly
        and the pairs by their diagonal."""
        lay = self.layout
        ones = self.z.new_ones((self.z.shape[0], 1))
        whole = lay.n_terms <= EXACT_FEATURES
        parts = [ones, self.z]
        pos = [torch.tensor([lay.intercept], device=self.device), lay.single]
        if whole and lay.pair_position.numel():
            parts.append(self.zp[:, lay.rows] * self.zp[:, lay.cols])
            pos.append(lay.pair_position)
        phi = torch.cat(parts, dim=1)
        self._block_pos = torch.cat(pos)
        self._block_inv = _inverse(phi.T @ (self.w[:, None] * phi), hint)
        self._diag_pos = lay.pair_position[:0]
        self._diag_inv = self.w.new_zeros(0)
        if not whole and lay.pair_position.numel():
            sq = self.zp**2
            diag = (sq.T @ (self.w[:, None] * sq))[lay.rows, lay.cols]
            if not bool((diag > 0).all()):
                raise NotIdentifiableError(f"Some interactions never vary in the samples. {hint}")
            self._diag_pos, self._diag_inv = lay.pair_position, 1.0 / diag

    def precondition(self, resid: torch.Tensor) -> torch.Tensor:
        """Apply the inverse of the block-diagonal preconditioner to ``resid [T, r]``."""
        out = torch.zeros_like(resid)
        out.index_add_(0, self._block_pos, self._block_inv @ resid.index_select(0, self._block_pos))
        out.index_add_(
            0, self._diag_pos, self._diag_inv[:, None] * resid.index_select(0, self._diag_pos)
        )
        return out
