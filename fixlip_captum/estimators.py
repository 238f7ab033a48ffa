"""Faithful interaction estimators: exact, model-agnostic sampling, and cross-modal.

All three fit the order-``k`` surrogate ``f(S) = sum_{|T| <= k} e_T 1[T subset S]`` by
weighted least squares against the game ``v``:

* ``index="FWBII"`` (faithful weighted Banzhaf): weights ``mu_p(S) = p^|S| (1-p)^(n-|S|)``;
  ``p = 0.5`` is shapiq's FBII.
* ``index="FSII"`` (faithful Shapley): Shapley-kernel weights, with ``f(empty) = v(empty)``
  and ``f(N) = v(N)`` enforced exactly.

The cross-modal estimator exploits that under ``mu_p`` the image and text masks are
independent: ``m_I`` image masks and ``m_T`` text masks give ``m_I * m_T`` values, and the
normal equations factorise (see :mod:`fixlip_captum.solvers.wls`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ._validation import (
    as_values,
    check_index,
    check_max_order,
    check_n_players,
    check_p,
    check_positive_int,
    resolve_device,
)
from .interaction_values import ExplanationContext, FIxLIPInteractionValues, make_interaction_values
from .samplers import (
    all_coalitions,
    bernoulli_coalitions,
    make_generator,
    shapley_kernel_coalitions,
    shapley_kernel_weights,
    weighted_banzhaf_weights,
)
from .solvers import (
    JointSystem,
    NotIdentifiableError,
    centred_design,
    centred_to_product,
    check_solver,
    describe_pairs,
    interaction_terms,
    solve_crossmodal,
    terms_index,
)
from .solvers.terms import PairsSpec
from .solvers.terms import split_terms as _split_terms

__all__ = [
    "MAX_EXACT_PLAYERS",
    "approximate_crossmodal",
    "approximate_interactions",
    "crossmodal_split",
    "exact_interactions",
    "minimum_budget",
]

MAX_EXACT_PLAYERS = 20

JointGame = Callable[[torch.Tensor], Any]
CrossModalGame = Callable[[torch.Tensor, torch.Tensor], Any]


def _index_name(index: str, p: float) -> str:
    """The name stored in the InteractionValues: shapiq's ``FBII`` when it applies."""
    if index == "FWBII" and p == 0.5:
        return "FBII"
    return index


def _accumulate(
    game: JointGame,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    system: JointSystem,
    device: torch.device,
) -> None:
    """Feed the game's values on batches of ``(coalitions, weights)`` to the solver."""
    for coalitions, weights in batches:
        values = as_values(game(coalitions), (coalitions.shape[0],), device)
        system.add(coalitions, weights, values)


def _chunks(
    coalitions_fn: Callable[[int, int], torch.Tensor],
    weights_fn: Callable[[torch.Tensor], torch.Tensor],
    total: int,
    batch_size: int,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, total, batch_size):
        coalitions = coalitions_fn(start, min(start + batch_size, total))
        yield coalitions, weights_fn(coalitions)


def _shapley_constraints(
    game: JointGame, n: int, index_t: torch.Tensor, device: torch.device
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Evaluate v(empty), v(N) and return the constraint system ``(A [2, T], d [2])``."""
    border = torch.zeros((2, n), dtype=torch.bool, device=device)
    border[1] = True
    d = as_values(game(border), (2,), device)
    a = centred_design(border, index_t, 0.5)
    return (a, d), d


def _finish(
    coef: torch.Tensor,
    terms: list[tuple[int, ...]],
    basis_p: float,
    *,
    estimator: str,
    n_players: int,
    index: str,
    p: float,
    max_order: int,
    pairs: PairsSpec,
    estimated: bool,
    budget: int,
    extra_info: dict[str, Any] | None = None,
    context: ExplanationContext | None = None,
) -> FIxLIPInteractionValues:
    """Convert to the product basis and wrap, recording the settings actually used."""
    values = centred_to_product(coef, terms, basis_p).cpu().numpy()
    index_p = p if index == "FWBII" else None
    info = {
        "estimator": estimator,
        "index": index,
        "p": index_p,
        "max_order": max_order,
        "pairs": describe_pairs(pairs),
        "budget": budget,
        **(extra_info or {}),
    }
    return make_interaction_values(
        values,
        terms,
        n_players=n_players,
        index=_index_name(index, p),
        max_order=max_order,
        p=index_p,
        estimated=estimated,
        estimation_budget=budget,
        estimation_info=info,
        context=context,
    )


def exact_interactions(
    game: JointGame,
    n_players: int,
    *,
    index: str = "FWBII",
    p: float = 0.5,
    max_order: int = 2,
    pairs: PairsSpec = "all",
    n_image: int | None = None,
    batch_size: int = 2**14,
    device: torch.device | str | None = None,
) -> FIxLIPInteractionValues:
    """Exact faithful interactions by enumerating all ``2^n`` coalitions.

    Args:
        game: Callable ``coalitions [m, n] bool -> values [m] float`` (True = player kept).
        n_players: Number of players ``n`` (at most 20).
        index: ``"FWBII"`` (faithful weighted Banzhaf, keep-probability ``p``) or ``"FSII"``.
        p: Keep-probability in (0, 1) for ``"FWBII"`` (ignored for ``"FSII"``).
        max_order: Highest interaction order (1, 2 or 3).
        pairs: Which higher-order terms are fitted (see
            :func:`fixlip_captum.solvers.interaction_terms`).
        n_image: Number of image players, for ``pairs="crossmodal"``.
        batch_size: Coalitions per call of ``game``.
        device: Where the least squares run.

    Returns:
        :class:`FIxLIPInteractionValues` (``estimated=False``, budget ``2^n``).
    """
    n = check_n_players(n_players)
    index = check_index(index)
    max_order = check_max_order(max_order, n)
    p = check_p(p)
    batch_size = check_positive_int(batch_size, "batch_size")
    if n > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact_interactions enumerates 2^n coalitions and is limited to "
            f"{MAX_EXACT_PLAYERS} players; got n={n}. Use approximate_interactions or "
            "approximate_crossmodal instead."
        )
    dev = resolve_device(device)
    terms = interaction_terms(n, max_order, pairs, n_image=n_image)
    index_t = terms_index(terms, n).to(dev)
    basis_p = p if index == "FWBII" else 0.5
    ids = all_coalitions(n, device=dev)
    if index == "FWBII":
        weights_fn = lambda c: weighted_banzhaf_weights(c, p)  # noqa: E731
    else:
        weights_fn = shapley_kernel_weights
    system = JointSystem(terms, n, basis_p, dev, solver="direct")
    _accumulate(game, _chunks(lambda a, b: ids[a:b], weights_fn, 2**n, batch_size), system, dev)
    evaluations = system.evaluations
    constraints = None
    if index == "FSII":
        constraints, _ = _shapley_constraints(game, n, index_t, dev)
        evaluations += 2
    coef, _ = system.solve(constraints)
    return _finish(
        coef,
        terms,
        basis_p,
        estimator="exact",
        n_players=n,
        index=index,
        p=p,
        max_order=max_order,
        pairs=pairs,
        estimated=False,
        budget=evaluations,
    )


def approximate_interactions(
    game: JointGame,
    n_players: int,
    budget: int,
    *,
    index: str = "FWBII",
    p: float = 0.5,
    max_order: int = 2,
    seed: int | None = None,
    device: torch.device | str | None = None,
    pairs: PairsSpec = "all",
    n_image: int | None = None,
    batch_size: int = 2**12,
    solver: str = "auto",
) -> FIxLIPInteractionValues:
    """Model-agnostic estimator: sample coalitions, fit the surrogate by least squares.

    ``"FWBII"`` draws ``budget`` i.i.d. coalitions keeping each player with probability
    ``p`` (exactly the weighting measure, so every row has weight ``1/budget``).
    ``"FSII"`` evaluates the empty and full coalitions (enforced exactly) and draws
    ``budget - 2`` coalitions from the Shapley kernel. If ``budget >= 2^n`` all coalitions
    are enumerated instead and the result is exact.

    Args:
        game: Callable ``coalitions [m, n] bool -> values [m] float``.
        n_players: Number of players ``n``.
        budget: Number of game evaluations.
        index: ``"FWBII"`` or ``"FSII"``.
        p: Keep-probability in (0, 1) for ``"FWBII"``.
        max_order: Highest interaction order (1, 2 or 3).
        seed: Seed of the coalition sampler (``None`` = fresh entropy).
        device: Where coalitions are built and the least squares run (default CPU).
        pairs: Which higher-order terms are fitted: ``"all"``, ``"crossmodal"`` (needs
            ``n_image``), or a list of player ids (all pairs inside it). Needed above ~150
            players, where all pairs are too many.
        n_image: Number of image players (ids ``0..n_image-1``), for ``pairs="crossmodal"``.
        batch_size: Coalitions per call of ``game``.
        solver: Least-squares solver: ``"direct"`` (Gram + Cholesky), ``"iterative"``
            (preconditioned CG, matrix-free, order <= 2) or ``"auto"`` (iterative for large
            term sets; the rule is in :mod:`fixlip_captum.solvers.systems`).

    Returns:
        :class:`FIxLIPInteractionValues`; ``estimation_info`` records budget, seed and the
        solver used (with CG iterations, tolerance and condition estimate when iterative).

    Raises:
        NotIdentifiableError: budget below the number of fitted terms, or samples that do
            not determine them.
    """
    n = check_n_players(n_players)
    index = check_index(index)
    max_order = check_max_order(max_order, n)
    p = check_p(p)
    budget = check_positive_int(budget, "budget")
    batch_size = check_positive_int(batch_size, "batch_size")
    solver = check_solver(solver, max_order)
    dev = resolve_device(device)
    terms = interaction_terms(n, max_order, pairs, n_image=n_image)
    if n <= MAX_EXACT_PLAYERS and budget >= 2**n:
        iv = exact_interactions(
            game,
            n,
            index=index,
            p=p,
            max_order=max_order,
            pairs=pairs,
            n_image=n_image,
            device=dev,
        )
        iv.estimation_info.update(estimator="enumeration", requested_budget=budget, seed=seed)
        return iv
    extra = 2 if index == "FSII" else 0
    minimum = len(terms) + extra
    hint = (
        f"{len(terms)} interactions are fitted (n={n}, max_order={max_order}); use a budget "
        f"of at least {minimum} (several times more for a stable estimate), or fit fewer "
        "pairs with pairs=[...]."
    )
    if budget < minimum:
        raise NotIdentifiableError(f"budget={budget} is too small. {hint}")
    index_t = terms_index(terms, n).to(dev)
    gen = make_generator(seed)
    n_samples = budget - extra
    if index == "FWBII":
        basis_p = p
        draw = lambda a, b: bernoulli_coalitions(b - a, n, p, gen, dev)  # noqa: E731
    else:
        basis_p = 0.5
        draw = lambda a, b: shapley_kernel_coalitions(b - a, n, gen, dev)  # noqa: E731
    uniform = lambda c: torch.full((c.shape[0],), 1.0 / n_samples, dtype=torch.float64)  # noqa: E731
    system = JointSystem(terms, n, basis_p, dev, solver=solver)
    _accumulate(game, _chunks(draw, uniform, n_samples, batch_size), system, dev)
    evaluations = system.evaluations
    constraints = None
    if index == "FSII":
        constraints, _ = _shapley_constraints(game, n, index_t, dev)
        evaluations += 2
    coef, solver_info = system.solve(constraints, hint=hint)
    return _finish(
        coef,
        terms,
        basis_p,
        estimator="model-agnostic",
        n_players=n,
        index=index,
        p=p,
        max_order=max_order,
        pairs=pairs,
        estimated=True,
        budget=evaluations,
        extra_info={"seed": seed, **solver_info},
    )


def minimum_budget(
    n_image: int,
    n_text: int,
    *,
    max_order: int = 2,
    pairs: PairsSpec = "all",
    crossmodal: bool = True,
) -> int:
    """The fewest evaluations that can identify the fitted terms.

    Args:
        n_image: Image players.
        n_text: Text players.
        max_order: Highest interaction order.
        pairs: Fitted pairs (see :func:`fixlip_captum.solvers.interaction_terms`).
        crossmodal: ``True``: image-text pairs for :func:`approximate_crossmodal`
            (distinct image parts x distinct text parts, each capped at ``2^n``);
            ``False``: joint evaluations for :func:`approximate_interactions` (one per term).

    Returns:
        The minimum; a stable estimate needs a few times more.
    """
    terms = interaction_terms(n_image + n_text, max_order, pairs, n_image=n_image)
    if not crossmodal:
        return len(terms)
    image_feats, text_feats, _, _ = _split_terms(terms, n_image)
    min_i = min(2**n_image, len(image_feats)) if n_image < 62 else len(image_feats)
    min_t = min(2**n_text, len(text_feats)) if n_text < 62 else len(text_feats)
    return min_i * min_t


def crossmodal_split(
    budget: int, n_image: int, n_text: int, n_image_features: int, n_text_features: int
) -> tuple[int, int]:
    """Default split of ``budget`` pairs into ``m_image x m_text`` masks.

    With ``F`` the distinct image (text) parts of the fitted terms — the fewest masks that
    identify them — and a 25 % margin ``need = min(2^n, ceil(1.25 F))``:

    1. ``m_text = min(2^n_T, max(4, ceil(sqrt(budget) n_T / n_I)))`` — the published rule:
       captions have fewer players than images, so fewer text masks;
    2. raised to ``need_T`` if below it;
    3. ``m_image = min(2^n_I, floor(budget / m_text))``;
    4. if ``m_image < need_I``, text masks are traded for image masks:
       ``m_text = max(min(2^n_T, F_T), floor(budget / need_I))`` and ``m_image`` recomputed;
    5. if ``m_text`` is more than half of ``2^n_T`` (many duplicate draws), all ``2^n_T``
       text masks are enumerated instead, provided ``floor(budget / 2^n_T)`` image masks
       still reach ``min(2^n_I, F_I)``.

    A modality whose ``m`` reaches ``2^n`` is enumerated exactly (weights ``mu_p``).

    Args:
        budget: Number of image-text pairs.
        n_image: Image players.
        n_text: Text players.
        n_image_features: Distinct image parts of the fitted terms.
        n_text_features: Distinct text parts of the fitted terms.

    Returns:
        ``(m_image, m_text)``.
    """
    all_text = 2**n_text if n_text < 62 else budget
    all_image = 2**n_image if n_image < 62 else budget
    need_text = min(all_text, math.ceil(1.25 * n_text_features))
    need_image = min(all_image, math.ceil(1.25 * n_image_features))
    m_text = min(all_text, max(4, math.ceil(math.sqrt(budget) * n_text / n_image)))
    m_text = max(m_text, need_text)
    if budget // m_text < need_image:
        m_text = max(min(all_text, n_text_features), budget // need_image)
    # Drawing more than half of all text masks wastes draws on duplicates (and can leave the
    # system singular): enumerate them instead when the image side can still be identified.
    min_image = min(all_image, n_image_features)
    if all_text > m_text > all_text // 2 and budget // all_text >= min_image:
        m_text = all_text
    m_image = min(all_image, budget // m_text)
    return m_image, m_text


def _modality_masks(
    m: int, n: int, p: float, gen: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Enumerate all ``2^n`` masks (weights ``mu_p``) when ``m >= 2^n``, else draw ``m``."""
    if n < 62 and m >= 2**n:
        masks = all_coalitions(n, device=device)
        return masks, weighted_banzhaf_weights(masks, p), True
    masks = bernoulli_coalitions(m, n, p, gen, device)
    return masks, torch.full((m,), 1.0 / m, dtype=torch.float64, device=device), False


def approximate_crossmodal(
    game: CrossModalGame,
    n_image: int,
    n_text: int,
    budget: int | None = None,
    *,
    m_image: int | None = None,
    m_text: int | None = None,
    p: float = 0.5,
    max_order: int = 2,
    seed: int | None = None,
    device: torch.device | str | None = None,
    pairs: PairsSpec = "all",
    index: str = "FWBII",
    solver: str = "auto",
) -> FIxLIPInteractionValues:
    """Cross-modal FWBII estimator: ``m_I`` image masks x ``m_T`` text masks, all pairs.

    Each modality's masks are drawn i.i.d. keeping each player with probability ``p``
    (or enumerated with weights ``mu_p`` when ``m >= 2^n`` for that modality). Under
    ``mu_p`` the two modalities are independent, so the product design is a valid sample
    of ``mu_p`` over all ``n_I + n_T`` players and the Gram factorises into the image Gram
    times the text Gram: no ``(pairs x terms)`` matrix is ever built.

    Args:
        game: Callable ``(image_coalitions [m_I, n_I] bool, text_coalitions [m_T, n_T] bool)
            -> values [m_I, m_T] float``.
        n_image: Image players (ids ``0..n_I-1``).
        n_text: Text players (ids ``n_I..n_I+n_T-1``).
        budget: Number of image-text pairs ``m_I * m_T``; split by
            :func:`crossmodal_split` unless ``m_image``/``m_text`` are given.
        m_image: Number of image masks (overrides the split).
        m_text: Number of text masks (overrides the split).
        p: Keep-probability in (0, 1).
        max_order: Highest interaction order (1, 2 or 3).
        seed: Seed of the mask sampler.
        device: Where masks are built and the least squares run (default CPU).
        pairs: ``"all"``, ``"crossmodal"`` (only image-text pairs: the image side then
            needs only ``1 + n_I`` masks) or a list of player ids.
        index: Must be ``"FWBII"``; FSII's kernel does not factorise across modalities.
        solver: Least-squares solver: ``"direct"`` (factorised Gram + Cholesky),
            ``"iterative"`` (preconditioned CG on the matrix-free normal equations, order
            <= 2; memory of the masks only) or ``"auto"`` (iterative for large term sets;
            the rule is in :mod:`fixlip_captum.solvers.systems`).

    Returns:
        :class:`FIxLIPInteractionValues` with ``estimation_info`` holding ``m_image``,
        ``m_text``, the budget actually used and the solver record (CG iterations,
        tolerance, residual and condition estimate when iterative).

    Raises:
        NotIdentifiableError: too few image or text masks for the fitted terms.
    """
    if index != "FWBII":
        raise ValueError(
            f"approximate_crossmodal supports index='FWBII' only; got {index!r}. The Shapley "
            "kernel does not factorise across modalities: use approximate_interactions(..., "
            "index='FSII') on a joint game instead."
        )
    n_i = check_n_players(n_image, "n_image")
    n_t = check_n_players(n_text, "n_text")
    n = n_i + n_t
    max_order = check_max_order(max_order, n)
    p = check_p(p)
    solver = check_solver(solver, max_order)
    dev = resolve_device(device)
    terms = interaction_terms(n, max_order, pairs, n_image=n_i)
    image_feats, text_feats, _, _ = _split_terms(terms, n_i)
    f_i, f_t = len(image_feats), len(text_feats)
    min_i = min(2**n_i, f_i) if n_i < 62 else f_i
    min_t = min(2**n_t, f_t) if n_t < 62 else f_t
    hint = (
        f"The fitted terms need at least {min_i} distinct image masks and {min_t} distinct "
        f"text masks, i.e. a budget of at least {min_i * min_t} pairs (more for a stable "
        "estimate); pass a larger budget, set m_image/m_text, or fit fewer pairs with "
        "pairs='crossmodal' or pairs=[...]."
    )
    if m_image is not None:
        m_image = check_positive_int(m_image, "m_image")
    if m_text is not None:
        m_text = check_positive_int(m_text, "m_text")
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    if m_image is None and m_text is None:
        if budget is None:
            raise ValueError("Give a budget (number of image-text pairs) or m_image and m_text.")
        m_image, m_text = crossmodal_split(budget, n_i, n_t, f_i, f_t)
    elif m_image is None or m_text is None:
        if budget is None:
            raise ValueError("Give both m_image and m_text, or one of them and a budget.")
        if m_text is not None:
            m_image = budget // m_text
        elif m_image is not None:
            m_text = budget // m_image
    assert m_image is not None and m_text is not None
    if m_image < min_i or m_text < min_t:
        raise NotIdentifiableError(
            f"{m_image} image masks x {m_text} text masks cannot identify the interactions. " + hint
        )
    gen = make_generator(seed)
    z_image, w_image, image_enum = _modality_masks(m_image, n_i, p, gen, dev)
    z_text, w_text, text_enum = _modality_masks(m_text, n_t, p, gen, dev)
    values = as_values(
        game(z_image, z_text), (z_image.shape[0], z_text.shape[0]), dev, "cross-modal game"
    )
    coef, solver_info = solve_crossmodal(
        z_image, w_image, z_text, w_text, values, terms, n_i, p, solver=solver, hint=hint
    )
    used = int(z_image.shape[0] * z_text.shape[0])
    return _finish(
        coef,
        terms,
        p,
        estimator="crossmodal",
        n_players=n,
        index="FWBII",
        p=p,
        max_order=max_order,
        pairs=pairs,
        estimated=not (image_enum and text_enum),
        budget=used,
        extra_info={
            "requested_budget": budget,
            "m_image": int(z_image.shape[0]),
            "m_text": int(z_text.shape[0]),
            "image_enumerated": image_enum,
            "text_enumerated": text_enum,
            "seed": seed,
            **solver_info,
        },
        context=ExplanationContext(n_image=n_i, n_text=n_t),
    )
