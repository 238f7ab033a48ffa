"""Preconditioned conjugate gradients on several right-hand sides, with Lanczos estimates.

The CG coefficients ``alpha_k, beta_k`` of each column define the Lanczos tridiagonal of the
preconditioned operator on that column's Krylov space; its extreme eigenvalues (Ritz values)
estimate the operator's extreme eigenvalues, hence its condition number, at no extra cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import eigvalsh_tridiagonal

__all__ = ["CGResult", "conjugate_gradient", "ritz_extremes"]

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CGResult:
    """Solution and convergence record of :func:`conjugate_gradient`."""

    solution: torch.Tensor  # [T, r]
    iterations: int
    relative_residual: torch.Tensor  # [r], ||b - A x|| / ||b|| from the recurrence
    converged: bool
    alphas: list[np.ndarray]  # per column, the CG step lengths while it was active
    betas: list[np.ndarray]


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
        q = apply_a(direction)
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
