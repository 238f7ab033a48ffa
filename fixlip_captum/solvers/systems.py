"""The least squares of each design, solved directly or iteratively (chosen automatically).

* ``"direct"``: the normal equations are formed (``T x T``) and factorised by a scaled
  Cholesky; a zero pivot raises :class:`NotIdentifiableError`.
* ``"iterative"``: preconditioned conjugate gradients on the centred-basis normal equations,
  applied matrix-free (:class:`~fixlip_captum.solvers.quadratic.QuadraticNormalOperator`),
  order <= 2 only. Memory is that of the masks and values. Identifiability is certified
  without a Gram: (1) at least as many distinct masks as distinct features per modality;
  (2) a random vector ``s`` is recovered from ``A s`` by the same CG run (``A`` singular
  would leave its null-space part of ``s`` unrecovered: the error is then about
  ``sqrt(dim null / T)``, far above the tolerance); (3) the Lanczos estimate of the
  condition number from the CG coefficients warns when it is large.
* ``"auto"``: iterative for order-<=2 term sets with at least ``ITERATIVE_LARGE_TERMS``
  terms (the direct ``T x T`` system then takes gigabytes), or cross-modal ones with at least
  ``ITERATIVE_MIN_TERMS`` terms whose modality blocks are all small enough to precondition
  exactly (CG then converges in a few iterations); direct otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .cg import conjugate_gradient, ritz_extremes
from .quadratic import EXACT_FEATURES, QuadraticNormalOperator, quadratic_layout
from .terms import centred_design, split_terms, terms_index
from .wls import NotIdentifiableError, crossmodal_normal_equations, solve_normal_equations

__all__ = [
    "ITERATIVE_LARGE_TERMS",
    "ITERATIVE_MIN_TERMS",
    "SOLVERS",
    "JointSystem",
    "check_solver",
    "crossmodal_method",
    "joint_method",
    "solve_crossmodal",
]

SOLVERS = ("auto", "direct", "iterative")
ITERATIVE_MIN_TERMS = 2500
ITERATIVE_LARGE_TERMS = 10_000
# CG stops at this relative residual of the normal equations.
CG_RTOL = 1e-11
CG_MAX_ITER = 5000
# The random probe's CG column stops once it is recovered to this relative error; above
# ten times this the system counts as singular (a null space of dimension k leaves an error
# of about sqrt(k / T), 6e-3 for one null vector among the 23,437 terms of ViT-B/16).
_PROBE_TOL = 1e-4
_RECOVERY_TOL = 10 * _PROBE_TOL
# Estimated condition number (of the preconditioned operator) above which we warn.
WARN_CONDITION = 1e4

Constraints = tuple[torch.Tensor, torch.Tensor]


def check_solver(solver: str, max_order: int) -> str:
    """``solver`` must be one of :data:`SOLVERS`; ``"iterative"`` needs ``max_order <= 2``."""
    if solver not in SOLVERS:
        raise ValueError(
            f"solver must be one of {SOLVERS} ('auto' picks the faster); got {solver!r}."
        )
    if solver == "iterative" and max_order > 2:
        raise ValueError(
            "solver='iterative' supports surrogates of order <= 2; use solver='direct' or "
            "'auto' for max_order=3."
        )
    return solver


def _method(solver: str, n_terms: int, has_layout: bool, blocks_small: bool = False) -> str:
    """The method ``solver`` stands for; ``blocks_small``: every modality's own block can
    be preconditioned exactly (cross-modal designs only)."""
    if solver == "iterative" and not has_layout:
        raise ValueError("solver='iterative' needs an order-<=2 term set with every singleton.")
    if solver == "auto":
        fast = n_terms >= ITERATIVE_LARGE_TERMS or (blocks_small and n_terms >= ITERATIVE_MIN_TERMS)
        return "iterative" if has_layout and fast else "direct"
    return solver


def joint_method(solver: str, terms: Sequence[tuple[int, ...]], n_players: int) -> str:
    """``"direct"`` or ``"iterative"``: what ``solver`` means for a joint design."""
    return _method(solver, len(terms), quadratic_layout(terms, n_players) is not None)


def crossmodal_method(solver: str, terms: Sequence[tuple[int, ...]], n_image: int) -> str:
    """``"direct"`` or ``"iterative"``: what ``solver`` means for a cross-modal design."""
    image_feats, text_feats, _, _ = split_terms(terms, n_image)
    small = max(len(image_feats), len(text_feats)) <= EXACT_FEATURES
    return _method(solver, len(terms), quadratic_layout(terms, n_image) is not None, small)


def _check_distinct(masks: torch.Tensor, needed: int, what: str, hint: str) -> None:
    """The count condition: ``needed`` features need at least as many distinct masks."""
    distinct = int(torch.unique(masks.to(torch.uint8), dim=0).shape[0])
    if distinct < needed:
        raise NotIdentifiableError(
            f"Only {distinct} distinct {what} were drawn; {needed} are needed. {hint}"
        )


def _iterative_solve(
    op: QuadraticNormalOperator,
    rhs: torch.Tensor,
    constraints: Constraints | None,
    hint: str,
    rtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """CG on ``[b, (A^T of the constraints), A s]``; KKT by the Schur complement."""
    t = rhs.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(0)
    probe = torch.randn((t, 1), generator=gen, dtype=torch.float64).to(op.device)
    columns = [rhs, op.apply(probe)]
    if constraints is not None:
        columns.insert(1, constraints[0].T.to(torch.float64))
    result = conjugate_gradient(
        op.apply,
        torch.cat(columns, dim=1),
        op.precondition,
        rtol=rtol,
        max_iter=max_iter,
        probe=probe[:, 0],
        probe_tol=_PROBE_TOL,
    )
    sol = result.solution
    # Every column's Ritz values lie in the operator's spectrum: pool them.
    extremes = [ritz_extremes(a, b) for a, b in zip(result.alphas, result.betas, strict=True)]
    lam_min = min(lo for lo, _ in extremes if lo == lo)
    lam_max = max(hi for _, hi in extremes if hi == hi)
    condition = lam_max / lam_min if lam_min > 0 else math.inf
    if not result.converged:
        raise NotIdentifiableError(
            f"Conjugate gradients did not converge in {result.iterations} iterations "
            f"(relative residual {float(result.relative_residual.max()):.2e}, condition "
            f"number estimate {condition:.3g}): the samples determine the interactions too "
            f"poorly. {hint}"
        )
    recovery = float((sol[:, -1:] - probe).norm() / probe.norm())
    if recovery > _RECOVERY_TOL:
        raise NotIdentifiableError(
            "The sampled coalitions do not identify all requested interactions (the normal "
            f"equations are singular: a random vector is recovered only to {recovery:.1e}). "
            f"{hint}"
        )
    coef = sol[:, 0]
    if constraints is not None:
        a, d = constraints
        g_inv_at = sol[:, 1:-1]  # [T, r]
        schur = a @ g_inv_at
        lagrange = torch.linalg.solve(schur, a @ coef - d.to(torch.float64))
        coef = coef - g_inv_at @ lagrange
    if condition > WARN_CONDITION:
        warnings.warn(
            f"The least squares are poorly conditioned (condition number estimate "
            f"{condition:.3g} after preconditioning): the estimate is noisy. A larger budget "
            f"helps. {hint}",
            RuntimeWarning,
            stacklevel=4,
        )
    info = {
        "solver": "iterative",
        "cg_tolerance": rtol,
        "cg_iterations": result.iterations,
        "cg_relative_residual": float(result.relative_residual[0]),
        "condition_estimate": condition,
        "identifiability_recovery_error": recovery,
    }
    return coef, info


def solve_crossmodal(
    image_masks: torch.Tensor,
    image_weights: torch.Tensor,
    text_masks: torch.Tensor,
    text_weights: torch.Tensor,
    values: torch.Tensor,
    terms: Sequence[tuple[int, ...]],
    n_image: int,
    p: float,
    *,
    solver: str = "auto",
    hint: str = "",
    rtol: float = CG_RTOL,
    max_iter: int = CG_MAX_ITER,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Centred-basis coefficients of the cross-modal weighted least squares.

    Args:
        image_masks: ``[m_I, n_I]`` bool.
        image_weights: ``[m_I]`` float64.
        text_masks: ``[m_T, n_T]`` bool.
        text_weights: ``[m_T]`` float64.
        values: ``[m_I, m_T]`` value of every pair.
        terms: Fitted terms (players ``0..n_I-1`` image, then text), closed under subsets.
        n_image: ``n_I``.
        p: Centring probability of the basis.
        solver: ``"auto"``, ``"direct"`` or ``"iterative"``.
        hint: Appended to a :class:`NotIdentifiableError` (the minimum budget).
        rtol: Relative residual at which CG stops.
        max_iter: Most CG iterations.

    Returns:
        ``(coef [T] float64, info)``; ``info["solver"]`` names the method used, with the CG
        tolerance, iterations, residual and condition estimate for the iterative one.
    """
    device = values.device
    layout = quadratic_layout(terms, n_image)
    image_feats, text_feats, fi, gi = split_terms(terms, n_image)
    method = crossmodal_method(solver, terms, n_image)
    if method == "direct":
        n_t = text_masks.shape[1]
        phi_image = centred_design(image_masks, terms_index(image_feats, n_image).to(device), p)
        phi_text = centred_design(text_masks, terms_index(text_feats, n_t).to(device), p)
        gram, rhs = crossmodal_normal_equations(
            phi_image, image_weights, phi_text, text_weights, values, fi.to(device), gi.to(device)
        )
        return solve_normal_equations(gram, rhs, hint=hint), {"solver": "direct"}
    assert layout is not None
    _check_distinct(image_masks, len(image_feats), "image masks", hint)
    _check_distinct(text_masks, len(text_feats), "text masks", hint)
    op = QuadraticNormalOperator(
        layout, image_masks, image_weights, text_masks, text_weights, p, hint
    )
    return _iterative_solve(op, op.rhs(values), None, hint, rtol, max_iter)


class JointSystem:
    """Weighted least squares of a joint design, fed chunk by chunk.

    The direct method accumulates ``Phi^T W Phi`` per chunk (memory ``O(T^2)``); the
    iterative one keeps the coalitions and values (memory ``O(m n)``) and solves by CG.

    Args:
        terms: Fitted terms, closed under subsets.
        n_players: ``n``.
        p: Centring probability of the basis.
        device: Where the least squares run.
        solver: ``"auto"``, ``"direct"`` or ``"iterative"``.
    """

    def __init__(
        self,
        terms: Sequence[tuple[int, ...]],
        n_players: int,
        p: float,
        device: torch.device,
        solver: str = "auto",
    ) -> None:
        self.terms = list(terms)
        self.n_players = n_players
        self.p = p
        self.device = device
        self.layout = quadratic_layout(self.terms, n_players)
        self.method = _method(solver, len(self.terms), self.layout is not None)
        t = len(self.terms)
        self.evaluations = 0
        if self.method == "direct":
            self._index = terms_index(self.terms, n_players).to(device)
            self._gram = torch.zeros((t, t), dtype=torch.float64, device=device)
            self._rhs = torch.zeros(t, dtype=torch.float64, device=device)
        self._chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, coalitions: torch.Tensor, weights: torch.Tensor, values: torch.Tensor) -> None:
        """Add rows: ``coalitions [m, n]`` bool, ``weights [m]``, ``values [m]`` float64."""
        coalitions = coalitions.to(self.device)
        weights = weights.to(device=self.device, dtype=torch.float64)
        self.evaluations += coalitions.shape[0]
        if self.method == "direct":
            phi = centred_design(coalitions, self._index, self.p)
            weighted = phi * weights[:, None]
            self._gram += weighted.T @ phi
            self._rhs += weighted.T @ values
        else:
            self._chunks.append((coalitions, weights, values.to(torch.float64)))

    def solve(
        self,
        constraints: Constraints | None = None,
        hint: str = "",
        rtol: float = CG_RTOL,
        max_iter: int = CG_MAX_ITER,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Coefficients ``[T]`` (optionally subject to ``A c = d``) and the solver record."""
        if self.method == "direct":
            coef = solve_normal_equations(self._gram, self._rhs, constraints, hint=hint)
            return coef, {"solver": "direct"}
        assert self.layout is not None
        masks = torch.cat([c for c, _, _ in self._chunks])
        weights = torch.cat([w for _, w, _ in self._chunks])
        values = torch.cat([v for _, _, v in self._chunks])
        _check_distinct(masks, len(self.terms), "coalitions", hint)
        op = QuadraticNormalOperator(
            self.layout,
            masks,
            weights,
            torch.zeros((1, 0), dtype=torch.bool, device=self.device),
            torch.ones(1, dtype=torch.float64, device=self.device),
            self.p,
            hint,
        )
        return _iterative_solve(op, op.rhs(values[:, None]), constraints, hint, rtol, max_iter)
