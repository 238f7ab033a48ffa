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
  terms (the direct ``T x T`` system then takes gigabytes); direct otherwise. (The
  cross-modal estimator, :mod:`fixlip_captum.solvers.crossmodal`, solves one modality at a
  time with these same two methods.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from .cg import refined_conjugate_gradient, ritz_extremes
from .quadratic import QuadraticNormalOperator, quadratic_layout
from .terms import centred_design, terms_index
from .wls import NotIdentifiableError, solve_normal_equations

__all__ = [
    "ITERATIVE_LARGE_TERMS",
    "SOLVERS",
    "JointSystem",
    "check_distinct",
    "check_solver",
    "iterative_solve",
    "joint_method",
    "resolve_method",
]

SOLVERS = ("auto", "direct", "iterative")
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


def resolve_method(solver: str, large: bool, has_layout: bool) -> str:
    """The method ``solver`` stands for: ``"auto"`` is iterative for a ``large`` order-<=2
    system (``has_layout``), direct otherwise."""
    if solver == "iterative" and not has_layout:
        raise ValueError("solver='iterative' needs an order-<=2 term set with every singleton.")
    if solver == "auto":
        return "iterative" if has_layout and large else "direct"
    return solver


def joint_method(solver: str, terms: Sequence[tuple[int, ...]], n_players: int) -> str:
    """``"direct"`` or ``"iterative"``: what ``solver`` means for a joint design."""
    has_layout = quadratic_layout(terms, n_players) is not None
    return resolve_method(solver, len(terms) >= ITERATIVE_LARGE_TERMS, has_layout)


def check_distinct(masks: torch.Tensor, needed: int, what: str, hint: str) -> None:
    """The count condition: ``needed`` features need at least as many distinct masks."""
    distinct = int(torch.unique(masks.to(torch.uint8), dim=0).shape[0])
    if distinct < needed:
        raise NotIdentifiableError(
            f"Only {distinct} distinct {what} were drawn; {needed} are needed. {hint}"
        )


def iterative_solve(
    op: QuadraticNormalOperator,
    rhs: torch.Tensor,
    constraints: Constraints | None,
    hint: str,
    rtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """CG on ``[B, (A^T of the constraints), A s]``; KKT by the Schur complement.

    Args:
        op: The normal-equation operator and its preconditioner.
        rhs: ``[T, r]`` right-hand sides (with constraints: ``r = 1``).
        constraints: ``(A [c, T], d [c])`` enforced exactly, or ``None``.
        hint: Appended to a :class:`NotIdentifiableError`.
        rtol: Relative residual at which CG stops.
        max_iter: Most CG iterations.

    Returns:
        ``(coef [T, r], info)``.
    """
    t, r = rhs.shape
    gen = torch.Generator(device="cpu").manual_seed(0)
    probe = torch.randn((t, 1), generator=gen, dtype=torch.float64).to(op.device)
    columns = [rhs, op.apply(probe)]
    if constraints is not None:
        columns.insert(1, constraints[0].T.to(torch.float64))
    result = refined_conjugate_gradient(
        op.apply,
        op.apply_single,
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
    coef = sol[:, :r]
    if constraints is not None:
        a, d = constraints
        g_inv_at = sol[:, r:-1]  # [T, c]
        schur = a @ g_inv_at
        lagrange = torch.linalg.solve(schur, a @ coef[:, 0] - d.to(torch.float64))
        coef = coef - (g_inv_at @ lagrange)[:, None]
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
        "cg_refinements": result.refinements,
        "cg_relative_residual": float(result.relative_residual[0]),
        "condition_estimate": condition,
        "identifiability_recovery_error": recovery,
    }
    return coef, info


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
        self.method = joint_method(solver, self.terms, n_players)
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
        check_distinct(masks, len(self.terms), "coalitions", hint)
        op = QuadraticNormalOperator(self.layout, masks, weights, self.p, hint)
        coef, info = iterative_solve(op, op.rhs(values[:, None]), constraints, hint, rtol, max_iter)
        return coef[:, 0], info
