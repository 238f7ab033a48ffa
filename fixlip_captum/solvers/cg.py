"""Preconditioned conjugate gradients on several right-hand sides, with Lanczos estimates,
and mixed-precision iterative refinement around them.

The CG coefficients ``alpha_k, beta_k`` of each column define the Lanczos tridiagonal of the
preconditioned operator on that column's Krylov space; its extreme eigenvalues (Ritz values)
estimate the operator's extreme eigenvalues, hence its condition number, at no extra cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigvalsh_tridiagonal

__all__ = ["CGResult", "conjugate_gradient", "refined_conjugate_gradient", "ritz_extremes"]

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CGResult:
    """Solution and convergence record of :func:`conjugate_gradient`."""

    solution: torch.Tensor  # [T, r]
    iterations: int
    relative_residual: torch.Tensor  # [r], ||b - A x|| / ||b|| from the recurrence
    converged: bool
    alphas: list[np.ndarray]  # per column (and inner run), the CG step lengths
    betas: list[np.ndarray]
    refinements: int = 0  # outer steps of refined_conjugate_gradient (0: plain CG)


def conjugate_gradient(
    apply_a: Operator,
    rhs: torch.Tensor,
    precondition: Operator,
    *,
    rtol: float = 1e-10,
    max_iter: int = 5000,
    probe: torch.Tensor | None = None,
    probe_tol: float = 1e-6,
) -> CGResult:
    """Solve ``A x = b`` column by column (``A`` symmetric positive definite), from ``x = 0``.

    Args:
        apply_a: ``[T, r] -> [T, r]``, the operator on every column at once.
        rhs: ``[T, r]`` right-hand sides.
        precondition: ``[T, r] -> [T, r]``, the inverse of a symmetric positive definite
            approximation of ``A``.
        rtol: A column stops once ``||b - A x|| <= rtol ||b||``.
        max_iter: Most iterations.
        probe: ``[T]``, the known solution of the last column (``b = A probe``); that
            column stops once ``||x - probe|| <= probe_tol ||probe||`` instead.
        probe_tol: See ``probe``.

    Returns:
        :class:`CGResult`.
    """
    x = torch.zeros_like(rhs)
    resid = rhs.clone()
    z = precondition(resid)
    direction = z.clone()
    rz = (resid * z).sum(0)
    b_norm = rhs.norm(dim=0).clamp_min(torch.finfo(rhs.dtype).tiny)

    def still_active(active: torch.Tensor) -> torch.Tensor:
        active = active & (resid.norm(dim=0) > rtol * b_norm)
        if probe is not None:
            error = (x[:, -1] - probe).norm() / probe.norm()
            active[-1] &= bool(error > probe_tol)
        return active

    active = still_active(torch.ones(rhs.shape[1], dtype=torch.bool, device=rhs.device))
    alphas: list[list[float]] = [[] for _ in range(rhs.shape[1])]
    betas: list[list[float]] = [[] for _ in range(rhs.shape[1])]
    iterations = 0
    while bool(active.any()) and iterations < max_iter:
        iterations += 1
        if bool(active.all()):
            q = apply_a(direction)
        else:  # finished columns cost nothing more
            q = torch.zeros_like(direction)
            q[:, active] = apply_a(direction[:, active])
        pq = (direction * q).sum(0)
        alpha = torch.where(active, rz / torch.where(active, pq, 1.0), 0.0)
        x += alpha * direction
        resid -= alpha * q
        z = precondition(resid)
        rz_new = (resid * z).sum(0)
        beta = torch.where(active, rz_new / torch.where(active, rz, 1.0), 0.0)
        for col in torch.nonzero(active).flatten().tolist():
            alphas[col].append(float(alpha[col]))
            betas[col].append(float(beta[col]))
        active = still_active(active)
        direction = z + beta * direction
        rz = torch.where(active, rz_new, rz)
    return CGResult(
        solution=x,
        iterations=iterations,
        relative_residual=resid.norm(dim=0) / b_norm,
        converged=not bool(active.any()),
        alphas=[np.asarray(a) for a in alphas],
        betas=[np.asarray(b) for b in betas],
    )


# Relative residual to which each inner solve of the refinement runs: one refinement step
# then gains about four digits (measured: 3 steps from 1 to 1e-12 at condition ~4,500).
INNER_RTOL = 1e-4


def refined_conjugate_gradient(
    apply_exact: Operator,
    apply_fast: Operator,
    rhs: torch.Tensor,
    precondition: Operator,
    *,
    rtol: float = 1e-10,
    max_iter: int = 5000,
    probe: torch.Tensor | None = None,
    probe_tol: float = 1e-6,
) -> CGResult:
    """Solve ``A x = b`` by iterative refinement: the residual ``b - A x`` in full
    precision (``apply_exact``), the correction by CG with a cheaper, less accurate
    operator (``apply_fast``, e.g. float32 products), repeated until every column reaches
    ``rtol``.

    With ``apply_fast`` accurate to a relative ``delta``, each step reduces the residual
    by about ``max(INNER_RTOL, condition * delta)``; should a step gain less than a factor
    of two (``condition * delta`` near 1), the inner solves switch to ``apply_exact``. The
    final residual is computed with ``apply_exact``: ``rtol`` holds for the true residual,
    not a recurrence.

    Args:
        apply_exact: ``[T, r] -> [T, r]``, the operator in full precision.
        apply_fast: ``[T, r] -> [T, r]``, an approximation of it.
        rhs: ``[T, r]`` right-hand sides.
        precondition: As in :func:`conjugate_gradient`.
        rtol: A column is done once ``||b - A x|| <= rtol ||b||``.
        max_iter: Most inner CG iterations in all.
        probe: ``[T]``, the known solution of the last column; that column is done once
            ``||x - probe|| <= probe_tol ||probe||``.
        probe_tol: See ``probe``.

    Returns:
        :class:`CGResult`; ``alphas`` / ``betas`` hold every inner run's columns, and
        ``iterations`` counts inner iterations.
    """
    x = torch.zeros_like(rhs)
    b_norm = rhs.norm(dim=0).clamp_min(torch.finfo(rhs.dtype).tiny)
    inner_op, total, steps = apply_fast, 0, 0
    alphas: list[np.ndarray] = []
    betas: list[np.ndarray] = []
    previous = math.inf
    while True:
        resid = rhs - apply_exact(x)
        relative = resid.norm(dim=0) / b_norm
        active = relative > rtol
        if probe is not None:
            active[-1] = bool((x[:, -1] - probe).norm() > probe_tol * probe.norm())
        if not bool(active.any()) or total >= max_iter:
            break
        worst = float(relative[active].max())
        if worst > previous / 2:
            inner_op = apply_exact  # the fast operator is too inaccurate for this system
        previous = worst
        # The probe column stops on its error (the correction's target is probe - x); the
        # others need only what is left to reach rtol, and at most INNER_RTOL per step.
        target, target_tol = None, probe_tol
        if probe is not None and bool(active[-1]):
            target = probe - x[:, -1]
            target_tol = probe_tol * float(probe.norm() / target.norm())
        main = active.clone()
        if probe is not None:
            main[-1] = False
        needed = float(relative[main].max()) if bool(main.any()) else 1.0
        inner = conjugate_gradient(
            inner_op,
            resid[:, active],
            precondition,
            rtol=min(max(INNER_RTOL, 0.5 * rtol / needed), 0.5),
            max_iter=max_iter - total,
            probe=target,
            probe_tol=target_tol,
        )
        x[:, active] += inner.solution
        total += inner.iterations
        steps += 1
        alphas += inner.alphas
        betas += inner.betas
    return CGResult(
        solution=x,
        iterations=total,
        relative_residual=relative,
        converged=not bool(active.any()),
        alphas=alphas,
        betas=betas,
        refinements=steps,
    )


def ritz_extremes(alphas: np.ndarray, betas: np.ndarray) -> tuple[float, float]:
    """Smallest and largest Ritz value of the Lanczos tridiagonal of a CG run.

    ``T[k, k] = 1/alpha_k + beta_{k-1}/alpha_{k-1}``, ``T[k, k+1] = sqrt(beta_k)/alpha_k``.

    Returns:
        ``(lambda_min, lambda_max)`` estimates; ``(nan, nan)`` for an empty run.
    """
    k = len(alphas)
    if k == 0:
        return float("nan"), float("nan")
    diag = 1.0 / alphas
    diag[1:] += betas[:-1] / alphas[:-1]
    off = np.sqrt(np.maximum(betas[:-1], 0.0)) / alphas[:-1]
    eig = eigvalsh_tridiagonal(diag, off) if k > 1 else diag
    return float(eig.min()), float(eig.max())
