"""Weighted least squares without a dense (coalitions x terms) design matrix.

Model-agnostic path: the Gram ``Phi^T W Phi`` and right-hand side ``Phi^T W v`` are
accumulated over chunks of coalitions, so memory is ``O(T^2 + chunk * T)``.

The cross-modal estimator solves one modality at a time with the same scaled Cholesky
(:mod:`fixlip_captum.solvers.crossmodal`).
"""

from __future__ import annotations

import torch

__all__ = [
    "NotIdentifiableError",
    "scaled_cholesky",
    "solve_normal_equations",
]

# A pivot of the unit-diagonal Gram below this means the terms are not identifiable
# from these coalitions (a column is a combination of the others).
_PIVOT_TOL = 1e-9


class NotIdentifiableError(ValueError):
    """The sampled coalitions cannot determine every requested interaction."""


def scaled_cholesky(gram: torch.Tensor, hint: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky factor of the unit-diagonal Gram ``D^-1/2 G D^-1/2`` and ``D^-1/2``.

    Raises if a pivot is (numerically) zero: the terms are then not identifiable.
    """
    diag = torch.diagonal(gram)
    if not bool((diag > 0).all()):
        raise NotIdentifiableError(f"Some interactions never vary in the samples. {hint}")
    scale = diag.rsqrt()
    chol, info = torch.linalg.cholesky_ex(gram * scale[:, None] * scale[None, :])
    if int(info) != 0 or float((torch.diagonal(chol) ** 2).min()) < _PIVOT_TOL:
        raise NotIdentifiableError(
            "The sampled coalitions do not identify all requested interactions "
            f"(the normal equations are singular). {hint}"
        )
    return chol, scale


def solve_normal_equations(
    gram: torch.Tensor,
    rhs: torch.Tensor,
    constraints: tuple[torch.Tensor, torch.Tensor] | None = None,
    hint: str = "",
) -> torch.Tensor:
    """Solve ``min_c c^T G c - 2 c^T b`` (optionally subject to ``A c = d``).

    Args:
        gram: ``[T, T]`` float64, symmetric positive semi-definite.
        rhs: ``[T]`` float64.
        constraints: ``(A [r, T], d [r])`` equality constraints (exactly enforced through the
            KKT system), e.g. the empty and full coalition for Shapley interactions.
        hint: Appended to the error message when the system is singular (e.g. the minimum
            budget).

    Returns:
        ``[T]`` coefficients.

    Raises:
        NotIdentifiableError: if the data do not determine the coefficients. No
            minimum-norm fallback: a silent arbitrary answer would be wrong.
    """
    if constraints is None:
        chol, scale = scaled_cholesky(gram, hint)
        return scale * torch.cholesky_solve((scale * rhs)[:, None], chol)[:, 0]
    a, d = constraints
    scaled_cholesky(gram + a.T @ a, hint)
    t, r = gram.shape[0], a.shape[0]
    kkt = torch.zeros((t + r, t + r), dtype=gram.dtype, device=gram.device)
    kkt[:t, :t] = gram
    kkt[:t, t:] = a.T
    kkt[t:, :t] = a
    solution = torch.linalg.solve(kkt, torch.cat([rhs, d]))
    return solution[:t]
