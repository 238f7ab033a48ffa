"""Weighted least squares without a dense (coalitions x terms) design matrix.

Model-agnostic path: the Gram ``Phi^T W Phi`` and right-hand side ``Phi^T W v`` are
accumulated over chunks of coalitions, so memory is ``O(T^2 + chunk * T)``.

Cross-modal path: rows are all pairs (image mask a, text mask b) with weight
``w_I[a] w_T[b]``, and a term ``(f, g)`` (image part f, text part g) has design entry
``phi_I[a, f] phi_T[b, g]``. Summing over pairs factorises:

    Gram[(f,g), (f',g')] = G_I[f, f'] * G_T[g, g'],     G_I = Phi_I^T W_I Phi_I
    rhs[(f,g)]           = (Phi_I^T W_I V W_T Phi_T)[f, g]

so the cost is that of the two per-modality Grams plus one ``[T, T]`` gather.
"""

from __future__ import annotations

import torch

__all__ = [
    "NotIdentifiableError",
    "crossmodal_normal_equations",
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


def crossmodal_normal_equations(
    phi_image: torch.Tensor,
    w_image: torch.Tensor,
    phi_text: torch.Tensor,
    w_text: torch.Tensor,
    values: torch.Tensor,
    image_feature: torch.Tensor,
    text_feature: torch.Tensor,
    chunk_size: int = 2048,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram and right-hand side of the cross-modal weighted least squares.

    Args:
        phi_image: ``[m_I, F_I]`` image features of each image mask.
        w_image: ``[m_I]`` weights of the image masks.
        phi_text: ``[m_T, F_T]`` text features of each text mask.
        w_text: ``[m_T]`` weights of the text masks.
        values: ``[m_I, m_T]`` game values of every pair.
        image_feature: ``[T]`` long, image feature of each term.
        text_feature: ``[T]`` long, text feature of each term.
        chunk_size: Rows of the ``[T, T]`` Gram assembled at a time (bounds temporaries).

    Returns:
        ``(gram [T, T], rhs [T])`` float64.
    """
    g_image = phi_image.T @ (w_image[:, None] * phi_image)
    g_text = phi_text.T @ (w_text[:, None] * phi_text)
    weighted = (w_image[:, None] * values) * w_text[None, :]
    rhs_matrix = phi_image.T @ weighted @ phi_text
    rhs = rhs_matrix[image_feature, text_feature]
    t = image_feature.shape[0]
    gram = torch.empty((t, t), dtype=torch.float64, device=values.device)
    for start in range(0, t, chunk_size):
        rows = slice(start, min(start + chunk_size, t))
        gram[rows] = g_image[image_feature[rows]][:, image_feature]
        gram[rows] *= g_text[text_feature[rows]][:, text_feature]
    return gram, rhs
