"""Which interactions are fitted (the "lookup"), and the basis they are fitted in.

A term is a sorted tuple of players; the fitted surrogate is
``f(S) = sum_T e_T 1[T subset S]`` (the product basis). The solver works in the centred
basis ``z_T(S) = prod_{i in T} (x_i - p) / sqrt(p (1 - p))``, whose Gram matrix under
``mu_p`` is the identity, so the normal equations are well conditioned; the result is
converted back to the product basis at the end (both span the same functions because the
term set is closed under taking subsets).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch

__all__ = [
    "PairsSpec",
    "centred_design",
    "centred_to_product",
    "describe_pairs",
    "interaction_terms",
    "split_terms",
    "terms_index",
    "weighted_gram",
    "weighted_rhs",
]

# Rows of the centred design formed at a time by weighted_gram / weighted_rhs.
_CHUNK = 2**12

PairsSpec = str | Sequence[int]


def interaction_terms(
    n_players: int,
    max_order: int,
    pairs: PairsSpec = "all",
    n_image: int | None = None,
) -> list[tuple[int, ...]]:
    """Terms of the surrogate, closed under subsets, ordered by order then lexicographically.

    Args:
        n_players: Number of players ``n``.
        max_order: Highest order fitted (1, 2 or 3).
        pairs: Which terms of order >= 2 are fitted: ``"all"``; ``"crossmodal"`` (only
            image-text pairs; needs ``n_image`` and ``max_order <= 2``); or a sequence of
            player ids (all higher-order terms inside that subset). The intercept and every
            singleton are always fitted.
        n_image: Number of image players (players ``0..n_image-1``), for ``"crossmodal"``.

    Returns:
        List of sorted tuples, starting with ``()``.
    """
    players = range(n_players)
    terms: list[tuple[int, ...]] = [(), *((i,) for i in players)]
    if max_order < 2:
        return terms
    if isinstance(pairs, str):
        if pairs == "all":
            inside: Sequence[int] = list(players)
        elif pairs == "crossmodal":
            if n_image is None or not 0 < n_image < n_players:
                raise ValueError(
                    "pairs='crossmodal' needs the number of image players (0 < n_image < n)."
                )
            if max_order > 2:
                raise ValueError("pairs='crossmodal' is defined for max_order <= 2.")
            terms += [(i, j) for i in range(n_image) for j in range(n_image, n_players)]
            return terms
        else:
            raise ValueError(
                f"pairs must be 'all', 'crossmodal' or a list of player ids; got {pairs!r}."
            )
    else:
        inside = sorted({int(i) for i in pairs})
        if any(i < 0 or i >= n_players for i in inside):
            raise ValueError(f"pairs names players outside 0..{n_players - 1}.")
    for order in range(2, max_order + 1):
        terms += list(itertools.combinations(inside, order))
    return terms


def describe_pairs(pairs: PairsSpec) -> str | list[int]:
    """JSON-friendly record of the ``pairs`` argument."""
    return pairs if isinstance(pairs, str) else sorted(int(i) for i in pairs)


def terms_index(terms: Sequence[tuple[int, ...]], n_players: int) -> torch.Tensor:
    """``[T, k]`` long: players of each term, padded with ``n_players`` (a constant-1 column)."""
    k = max((len(t) for t in terms), default=0)
    out = torch.full((len(terms), max(k, 1)), n_players, dtype=torch.long)
    for row, term in enumerate(terms):
        if term:
            out[row, : len(term)] = torch.tensor(term, dtype=torch.long)
    return out


def centred_design(coalitions: torch.Tensor, index: torch.Tensor, p: float) -> torch.Tensor:
    """Centred-basis design matrix.

    Args:
        coalitions: ``[m, n]`` bool.
        index: ``[T, k]`` from :func:`terms_index` (on the same device).
        p: Centring probability.

    Returns:
        ``[m, T]`` float64 with entries ``z_T(S_row)``.
    """
    scale = math.sqrt(p * (1.0 - p))
    z = (coalitions.to(torch.float64) - p) / scale
    z = torch.cat([z, torch.ones_like(z[:, :1])], dim=1)
    design = z[:, index[:, 0]]
    for col in range(1, index.shape[1]):
        design = design * z[:, index[:, col]]
    return design


def centred_to_product(
    coef: torch.Tensor, terms: Sequence[tuple[int, ...]], p: float
) -> torch.Tensor:
    """Convert centred-basis coefficients to product-basis values.

    ``z_T = s^-|T| sum_{U subset T} (-p)^(|T|-|U|) 1[U subset S]`` with ``s = sqrt(p(1-p))``,
    hence ``e_U = sum_{T superset U} c_T s^-|T| (-p)^(|T|-|U|)``.

    Args:
        coef: ``[T]`` centred coefficients.
        terms: The terms (closed under subsets).
        p: Centring probability used for the design.

    Returns:
        ``[T]`` product-basis values on ``coef``'s device.
    """
    position = {t: k for k, t in enumerate(terms)}
    s = math.sqrt(p * (1.0 - p))
    src, dst, factor = [], [], []
    for k, term in enumerate(terms):
        order = len(term)
        for sub_order in range(order + 1):
            for sub in itertools.combinations(term, sub_order):
                if sub not in position:
                    raise ValueError(
                        f"The term set must contain every subset of its terms; {sub} of "
                        f"{term} is missing."
                    )
                src.append(k)
                dst.append(position[sub])
                factor.append(s ** (-order) * (-p) ** (order - sub_order))
    device = coef.device
    contrib = coef[torch.tensor(src, device=device)] * torch.tensor(
        factor, dtype=torch.float64, device=device
    )
    out = torch.zeros_like(coef)
    out.index_add_(0, torch.tensor(dst, device=device), contrib)
    return out


def split_terms(
    terms: Sequence[tuple[int, ...]], n_image: int
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], torch.Tensor, torch.Tensor]:
    """Split joint terms into (image feature, text feature) pairs.

    Returns the image features (image player ids), the text features (local text ids
    ``0..n_T-1``) and, per term, the index of its image and its text feature.
    """
    image_feats: dict[tuple[int, ...], int] = {}
    text_feats: dict[tuple[int, ...], int] = {}
    fi, gi = [], []
    for term in terms:
        f = tuple(i for i in term if i < n_image)
        g = tuple(i - n_image for i in term if i >= n_image)
        fi.append(image_feats.setdefault(f, len(image_feats)))
        gi.append(text_feats.setdefault(g, len(text_feats)))
    return (
        list(image_feats),
        list(text_feats),
        torch.tensor(fi, dtype=torch.long),
        torch.tensor(gi, dtype=torch.long),
    )


def weighted_gram(
    masks: torch.Tensor, weights: torch.Tensor, index: torch.Tensor, p: float
) -> torch.Tensor:
    """``Phi^T W Phi`` (``[T, T]`` float64) of the centred design, formed in row chunks.

    Args:
        masks: ``[m, n]`` bool.
        weights: ``[m]`` float64.
        index: ``[T, k]`` from :func:`terms_index` (on the masks' device).
        p: Centring probability.
    """
    t = index.shape[0]
    gram = torch.zeros((t, t), dtype=torch.float64, device=masks.device)
    for start in range(0, masks.shape[0], _CHUNK):
        phi = centred_design(masks[start : start + _CHUNK], index, p)
        gram += (phi * weights[start : start + _CHUNK, None]).T @ phi
    return gram


def weighted_rhs(
    masks: torch.Tensor, weights: torch.Tensor, values: torch.Tensor, index: torch.Tensor, p: float
) -> torch.Tensor:
    """``Phi^T W y`` of the centred design, formed in row chunks: ``values [m]`` -> ``[T]``,
    ``[m, r]`` -> ``[T, r]`` (float64); other arguments as :func:`weighted_gram`."""
    shape = (index.shape[0], *values.shape[1:])
    rhs = torch.zeros(shape, dtype=torch.float64, device=masks.device)
    w = weights.reshape(-1, *([1] * (values.ndim - 1)))
    for start in range(0, masks.shape[0], _CHUNK):
        phi = centred_design(masks[start : start + _CHUNK], index, p)
        rhs += phi.T @ (w[start : start + _CHUNK] * values[start : start + _CHUNK])
    return rhs
