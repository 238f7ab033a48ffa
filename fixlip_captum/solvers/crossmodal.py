"""The cross-modal least squares, solved one modality at a time.

Rows are all pairs ``(a, b)`` of an image mask and a text mask, weighted ``w_I(a) w_T(b)``
(the two modalities are independent under ``mu_p``). In the centred basis ``z`` the
population Gram is the identity, so the faithful interaction of a term with image part
``f`` and text part ``g`` is the coefficient ``E[v z_f z_g]`` of the orthogonal projection,
and the projection onto *any* span containing ``z_f z_g`` has the same coefficient there.
We therefore fit the product of the two modalities' bases, which factorises exactly on a
product design: with ``Phi_I`` (``[m_I, F_I]``), ``Phi_T`` (``[m_T, F_T]``), ``G = Phi^T W
Phi`` and the values ``V`` (``[m_I, m_T]``),

    C = G_I^-1 Phi_I^T W_I  V  W_T Phi_T G_T^-1          ([F_I, F_T])

and the term ``(f, g)`` is ``C[f, g]``. Step 1 (text): ``Q = W_T Phi_T G_T^-1`` and
``M = V Q``, one column per text feature ``g``: the image function ``a -> v(a, .)``'s
coefficient on ``z_g``. Step 2 (image): each column of ``M`` regressed on an image basis.

Why not the joint least squares of the terms alone (the 0.1 estimator)? Both converge to
the same faithful interactions, but the product basis also fits the higher-order products
``z_f z_g`` (``|f| + |g| > k``) that a dual encoder's ``<u(a), w(b)>`` is full of, instead
of leaving them in the residual, where they are sampling noise: at equal budget the MSE is
several times lower (benchmarks/results/sample_efficiency.md), and no ``T x T`` system is
formed. An exactly ``k``-additive game is still recovered exactly.

**A richer basis where it is cheap** (:func:`richer_basis`): the same argument allows any
further orthonormal features in a modality's basis, and where the masks afford it (at most
``EXACT_FEATURES`` features in all and at least ``RICHER_MIN_RATIO`` masks per feature)
each modality's basis also holds every feature of the next order (order 3 for an order-2
lookup). The estimand is unchanged; the fitted higher-order part of the value leaves the
residual, so at equal budget the MSE drops by a further 10-100x on the small games of
benchmarks/results/sample_efficiency.md. Should the richer Gram be singular for a draw,
that modality falls back to its lookup basis.

Which image basis each text column uses (:func:`column_groups`): the whole image basis
(every image feature of the lookup) while it has at most ``EXACT_FEATURES`` features;
above that (ViT-B/16 and larger, all pairs), only the empty text column uses it (one CG
solve) and a text column of order ``r >= 1`` uses the image features of order
``<= max(1, k - r)``, which still contain every term of that column.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch

from .quadratic import EXACT_FEATURES, QuadraticNormalOperator, quadratic_layout
from .systems import CG_MAX_ITER, CG_RTOL, check_distinct, iterative_solve, resolve_method
from .terms import centred_design, split_terms, terms_index, weighted_gram, weighted_rhs
from .wls import NotIdentifiableError, scaled_cholesky

__all__ = [
    "RICHER_MIN_RATIO",
    "WARN_INFLATION",
    "column_groups",
    "crossmodal_method",
    "richer_basis",
    "solve_crossmodal",
    "variance_inflation",
]

Term = tuple[int, ...]
# A modality's basis is enriched only with at least this many masks per feature.
RICHER_MIN_RATIO = 1.5
# Above this variance inflation (variance_inflation) solve_crossmodal warns.
WARN_INFLATION = 20.0


def variance_inflation(n_masks: int, n_features: int, n_players: int) -> float:
    """About how much sampling inflates a modality's least-squares variance:
    ``m / (m - F)`` for ``m`` sampled masks and ``F`` features (the mean diagonal of the
    inverse of a random ``F``-feature Gram from ``m`` rows, relative to ``1 / m``); ``1``
    when all ``2^n`` masks are enumerated, ``inf`` when ``m <= F``."""
    if n_players < 62 and n_masks >= 2**n_players:
        return 1.0
    return math.inf if n_masks <= n_features else n_masks / (n_masks - n_features)


def richer_basis(features: Sequence[Term], n_players: int, n_masks: int) -> list[Term]:
    """Features to add to one modality's basis: every feature of order up to one above the
    highest in ``features`` that is not there yet, or ``[]`` when the basis would exceed
    ``EXACT_FEATURES`` features or ``n_masks / RICHER_MIN_RATIO``.

    Args:
        features: The modality's features of the lookup (closed under subsets).
        n_players: Players of the modality.
        n_masks: Its (distinct) masks.

    Returns:
        The added features, sorted by order (empty when not affordable).
    """
    order = min(n_players, max((len(f) for f in features), default=0) + 1)
    total = sum(math.comb(n_players, k) for k in range(order + 1))
    if total == len(features) or total > min(EXACT_FEATURES, n_masks / RICHER_MIN_RATIO):
        return []
    have = set(features)
    return [
        t
        for k in range(order + 1)
        for t in itertools.combinations(range(n_players), k)
        if t not in have
    ]


def column_groups(
    image_feats: Sequence[Term], text_feats: Sequence[Term], max_order: int
) -> list[tuple[list[int], list[int]]]:
    """Which image basis regresses which text columns.

    Args:
        image_feats: Image features of the lookup (closed under subsets).
        text_feats: Text features of the lookup.
        max_order: Highest order of the lookup's terms.

    Returns:
        ``[(text columns, image basis)]`` as indices into ``text_feats`` / ``image_feats``;
        every column appears once, and every image feature paired with a column in the
        lookup is in that column's basis.
    """
    every = list(range(len(image_feats)))
    if len(image_feats) <= EXACT_FEATURES:
        return [(list(range(len(text_feats))), every)]
    groups: dict[int, list[int]] = {}
    for col, g in enumerate(text_feats):
        groups.setdefault(len(g), []).append(col)
    out = []
    for order, cols in sorted(groups.items()):
        if order == 0:
            out.append((cols, every))
        else:
            top = max(1, max_order - order)
            out.append((cols, [k for k, f in enumerate(image_feats) if len(f) <= top]))
    return out


def crossmodal_method(solver: str, terms: Sequence[Term], n_image: int) -> str:
    """``"direct"`` or ``"iterative"``: how the image side's largest regression is solved.

    ``"auto"`` is iterative when the image basis has more than ``EXACT_FEATURES`` features
    (its Gram would take gigabytes) and the lookup has order <= 2.
    """
    image_feats, _, _, _ = split_terms(terms, n_image)
    has_layout = quadratic_layout(image_feats, n_image) is not None
    return resolve_method(solver, len(image_feats) > EXACT_FEATURES, has_layout)


def _direct(
    masks: torch.Tensor,
    weights: torch.Tensor,
    basis: Sequence[Term],
    y: torch.Tensor | None,
    p: float,
    hint: str,
) -> torch.Tensor:
    """``G^-1 Phi^T W y`` for the basis ``basis`` (``y [m, r]`` -> ``[F, r]``); ``y=None``
    is the identity: ``G^-1 Phi^T W`` (``[F, m]``)."""
    index = terms_index(basis, masks.shape[1]).to(masks.device)
    chol, scale = scaled_cholesky(weighted_gram(masks, weights, index, p), hint)
    if y is None:
        rhs = (weights[:, None] * centred_design(masks, index, p)).T
    else:
        rhs = weighted_rhs(masks, weights, y.to(torch.float64), index, p)
    return scale[:, None] * torch.cholesky_solve(scale[:, None] * rhs, chol)


def _richer_first(
    solve: Callable[[list[Term]], torch.Tensor], basis: Sequence[Term], extra: list[Term]
) -> tuple[torch.Tensor, list[Term]]:
    """``solve(basis + extra)``, or ``solve(basis)`` when ``extra`` is empty or the richer
    Gram is singular for this draw; also returns the extra features actually used."""
    if extra:
        try:
            return solve([*basis, *extra]), extra
        except NotIdentifiableError:
            pass
    return solve(list(basis)), []


def _iterative(
    masks: torch.Tensor,
    weights: torch.Tensor,
    basis: Sequence[Term],
    y: torch.Tensor,
    p: float,
    hint: str,
    rtol: float,
    max_iter: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The same regression by matrix-free CG (order <= 2 bases)."""
    layout = quadratic_layout(basis, masks.shape[1])
    assert layout is not None
    check_distinct(masks, len(basis), "image masks", hint)
    op = QuadraticNormalOperator(layout, masks, weights, p, hint)
    return iterative_solve(op, op.rhs(y), None, hint, rtol, max_iter)


def solve_crossmodal(
    image_masks: torch.Tensor,
    image_weights: torch.Tensor,
    text_masks: torch.Tensor,
    text_weights: torch.Tensor,
    values: torch.Tensor,
    terms: Sequence[Term],
    n_image: int,
    p: float,
    *,
    solver: str = "auto",
    hint: str = "",
    rtol: float = CG_RTOL,
    max_iter: int = CG_MAX_ITER,
    richer_bases: bool = True,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Centred-basis coefficients of the cross-modal estimator (module docstring).

    Args:
        image_masks: ``[m_I, n_I]`` bool.
        image_weights: ``[m_I]`` float64.
        text_masks: ``[m_T, n_T]`` bool.
        text_weights: ``[m_T]`` float64.
        values: ``[m_I, m_T]`` value of every pair.
        terms: Fitted terms (players ``0..n_I-1`` image, then text), closed under subsets.
        n_image: ``n_I``.
        p: Centring probability of the basis.
        solver: ``"auto"``, ``"direct"`` or ``"iterative"`` (for the image regressions;
            the text side, at most a few thousand features, is always direct).
        hint: Appended to a :class:`NotIdentifiableError` (the minimum budget).
        rtol: Relative residual at which CG stops.
        max_iter: Most CG iterations.
        richer_bases: Enrich each modality's basis where affordable (:func:`richer_basis`;
            the image side only when it is solved directly, since CG's operator is of order
            2: ``solver="iterative"`` fits the lookup's own image basis). ``False`` fits the
            lookup's own product basis.

    Returns:
        ``(coef [T] float64, info)``; ``info["solver"]`` names the method of the largest
        image regression, with the CG record when it is iterative;
        ``info["extra_image_features"]`` / ``["extra_text_features"]`` count the features
        the richer bases added; ``info["variance_inflation"]`` is the product of both
        modalities' :func:`variance_inflation` (a ``RuntimeWarning`` above
        ``WARN_INFLATION``).

    Raises:
        NotIdentifiableError: a modality's masks do not identify its features.
    """
    device = values.device
    image_feats, text_feats, fi, gi = split_terms(terms, n_image)
    max_order = max(len(t) for t in terms)
    method = crossmodal_method(solver, terms, n_image)
    # Text side: Q = W_T Phi_T G_T^-1, then M = V Q (the lookup's text columns only).
    check_distinct(text_masks, len(text_feats), "text masks", hint)
    extra_t = (
        richer_basis(text_feats, text_masks.shape[1], text_masks.shape[0]) if richer_bases else []
    )
    q, extra_t = _richer_first(  # Q^T = G_T^-1 Phi_T^T W_T: [F_T (+ extra), m_T]
        partial(_direct, text_masks, text_weights, y=None, p=p, hint=hint), text_feats, extra_t
    )
    m = values.to(torch.float64) @ q[: len(text_feats)].T  # [m_I, F_T]
    check_distinct(image_masks, len(image_feats), "image masks", hint)
    # The image side is enriched only where it is solved directly (CG's operator is order-2).
    richer_image = richer_bases and method == "direct"
    extra_i = (
        richer_basis(image_feats, image_masks.shape[1], image_masks.shape[0])
        if richer_image
        else []
    )
    coef = torch.zeros(len(terms), dtype=torch.float64, device=device)
    fi, gi = fi.to(device), gi.to(device)
    info: dict[str, Any] = {"solver": "direct"}
    for cols, rows in column_groups(image_feats, text_feats, max_order):
        basis = [image_feats[k] for k in rows]
        y = m[:, cols]
        if method == "iterative" and (len(basis) > EXACT_FEATURES or solver == "iterative"):
            c, cg_info = _iterative(
                image_masks, image_weights, basis, y, p, hint, rtol=rtol, max_iter=max_iter
            )
            if len(basis) == len(image_feats):
                info = cg_info
        else:
            c, extra_i = _richer_first(
                partial(_direct, image_masks, image_weights, y=y, p=p, hint=hint), basis, extra_i
            )
        # Scatter C[f, g] into the terms of these columns.
        row_of = torch.full((len(image_feats),), -1, dtype=torch.long, device=device)
        row_of[torch.tensor(rows, device=device)] = torch.arange(len(rows), device=device)
        col_of = torch.full((len(text_feats),), -1, dtype=torch.long, device=device)
        col_of[torch.tensor(cols, device=device)] = torch.arange(len(cols), device=device)
        mine = col_of[gi] >= 0
        coef[mine] = c[row_of[fi[mine]], col_of[gi[mine]]]
    info["extra_image_features"] = len(extra_i)
    info["extra_text_features"] = len(extra_t)
    m_i, m_t = image_masks.shape[0], text_masks.shape[0]
    inflation = variance_inflation(m_i, len(image_feats), n_image) * variance_inflation(
        m_t, len(text_feats), text_masks.shape[1]
    )
    info["variance_inflation"] = inflation
    if inflation > WARN_INFLATION:
        warnings.warn(
            f"The budget barely determines the interactions: {m_i} image masks for "
            f"{len(image_feats)} image features and {m_t} text masks for {len(text_feats)} "
            f"text features inflate the estimate's variance about {inflation:.3g}x; twice "
            f"the minimum budget or more gives a far steadier estimate. {hint}",
            RuntimeWarning,
            stacklevel=4,
        )
    return coef, info
