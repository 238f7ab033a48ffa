"""Faithful interaction estimators: exact, model-agnostic sampling, and cross-modal.

All three fit the order-``k`` surrogate ``f(S) = sum_{|T| <= k} e_T 1[T subset S]`` by
weighted least squares against the game ``v``:

* ``index="FWBII"`` (faithful weighted Banzhaf): weights ``mu_p(S) = p^|S| (1-p)^(n-|S|)``;
  ``p = 0.5`` is shapiq's FBII.
* ``index="FSII"`` (faithful Shapley): Shapley-kernel weights, with ``f(empty) = v(empty)``
  and ``f(N) = v(N)`` enforced exactly.

The cross-modal estimator exploits that under ``mu_p`` the image and text masks are
independent: ``m_I`` image masks and ``m_T`` text masks give ``m_I * m_T`` values, and the
least squares on the product of the two modalities' bases is solved one modality at a time
(see :mod:`fixlip_captum.solvers.crossmodal`).

Every public function validates its arguments once into a
:class:`~fixlip_captum.settings.Settings` and a :class:`~fixlip_captum.settings.SamplingPlan`;
:func:`estimate_joint` and :func:`estimate_crossmodal` take a plan and trust it. Masks are
drawn by :func:`fixlip_captum.samplers.stratified_coalitions`: distinct, whole coalition sizes
enumerated where that is worth it, the other sizes sampled without replacement with weights
that estimate the weighting measure without bias (docs/estimators.md).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._validation import as_values, check_positive_int, resolve_device
from .interaction_values import ExplanationContext, FIxLIPInteractionValues, make_interaction_values
from .samplers import (
    all_coalitions,
    banzhaf_size_masses,
    make_generator,
    shapley_kernel_weights,
    shapley_size_masses,
    size_leverages,
    stratified_coalitions,
    weighted_banzhaf_weights,
)
from .settings import (
    MAX_EXACT_PLAYERS,
    SamplingPlan,
    Settings,
    crossmodal_split,
    minimum_budget,
    plan_crossmodal,
    plan_joint,
)
from .solvers import (
    JointSystem,
    centred_design,
    centred_to_product,
    check_solver,
    crossmodal_method,
    joint_method,
    solve_crossmodal,
    solve_normal_equations,
    terms_index,
)
from .solvers.quadratic import EXACT_FEATURES
from .solvers.terms import PairsSpec, weighted_gram, weighted_rhs

__all__ = [
    "MAX_EXACT_PLAYERS",
    "approximate_crossmodal",
    "approximate_interactions",
    "crossmodal_split",
    "estimate_crossmodal",
    "estimate_joint",
    "exact_interactions",
    "minimum_budget",
]

JointGame = Callable[[torch.Tensor], Any]
CrossModalGame = Callable[[torch.Tensor, torch.Tensor], Any]
Term = tuple[int, ...]

# Smallest pivot of a modality's unit-diagonal Gram that counts as identified. The
# cross-modal Gram is a principal submatrix of the Kronecker product of the two modality
# Grams, whose pivots multiply: sqrt of the solver's 1e-9 keeps the product solvable.
_MODALITY_PIVOT_TOL = 3.2e-5
_JOINT_PIVOT_TOL = 1e-9


# A draw whose smallest pivot reaches this is taken at once; otherwise the next kind of draw
# is tried and the best-conditioned one kept (near the minimum budget a draw can be
# identifiable yet poorly conditioned).
_WELL_IDENTIFIED = 1e-4


def _min_pivot(gram: torch.Tensor) -> float:
    """Smallest squared pivot of the unit-diagonal Cholesky factor of ``gram`` (PSD); 0 when
    it is (numerically) singular. Full rank, for the solvers, means ``>= 1e-9``."""
    diag = torch.diagonal(gram)
    if not bool((diag > 0).all()):
        return 0.0
    scale = diag.rsqrt()
    chol, info = torch.linalg.cholesky_ex(gram * scale[:, None] * scale[None, :])
    return float((torch.diagonal(chol) ** 2).min()) if int(info) == 0 else 0.0


def _anchors(terms: Sequence[Term], n: int, p: float) -> list[Term]:
    """Coalitions that identify ``terms`` by themselves: the terms as coalitions (``p <= 1/2``)
    or their complements (``p > 1/2``, where large coalitions carry the mass).

    The terms are closed under subsets, so the design of ``1[T subset S]`` over these
    coalitions is unitriangular (ordered by size); complements give the same in ``1 - x``.
    """
    if p <= 0.5:
        return list(terms)
    return [tuple(i for i in range(n) if i not in set(t)) for t in terms]


def _draw(
    m: int,
    n: int,
    size_mass: list[float],
    terms: Sequence[Term],
    index: torch.Tensor,
    basis_p: float,
    gen: torch.Generator,
    device: torch.device,
    tol: float,
    constraint: torch.Tensor | None = None,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict[str, Any]]:
    """Stratified coalitions whose weighted Gram identifies ``terms``, tried in turn until
    one is well conditioned (smallest pivot ``>= 1e-4``; else the best one is kept):

    1. complementary pairs (their even terms see only ``m / 2`` distinct rows, so this needs
       about twice the minimum);
    2. independent strata;
    3. independent strata allocated by mass alone;
    4. with :func:`_anchors` included (identifiable for every seed once ``m >= len(terms)``).

    ``check=False`` (a design too large for its Gram, solved iteratively): independent strata,
    with no Gram formed; the iterative solver then certifies identifiability itself (distinct
    masks and a probe, :mod:`fixlip_captum.solvers.systems`) and raises if the draw is short.

    Draws are allocated to sizes by mass times mean leverage of ``terms``
    (:func:`fixlip_captum.samplers.size_leverages`), the weights stay those of the mass.

    Returns coalitions, weights, Gram (``None`` unchecked) and sampler info (``"draw"``
    names the one used).
    """
    orders = collections.Counter(len(t) for t in terms)
    importance = size_leverages(n, basis_p, dict(orders))
    if not check:
        coalitions, weights, info = stratified_coalitions(
            m, n, size_mass, gen, device=device, importance=importance
        )
        info["draw"] = "independent"
        return coalitions, weights, None, info
    extra = 0.0 if constraint is None else constraint.T @ constraint
    border = {(), tuple(range(n))} if constraint is not None else set()
    anchors = [a for a in _anchors(terms, n, basis_p) if a not in border]
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("antithetic", {"antithetic": True, "importance": importance}),
        ("independent", {"importance": importance}),
        ("independent by mass", {}),
        ("anchored", {"anchors": anchors, "importance": importance}),
    ]
    best: tuple[float, str, tuple[torch.Tensor, torch.Tensor, dict[str, Any]], torch.Tensor]
    best = (-1.0, "", (torch.empty(0), torch.empty(0), {}), torch.empty(0))
    for name, options in attempts:
        coalitions, weights, info = stratified_coalitions(
            m, n, size_mass, gen, device=device, **options
        )
        gram = weighted_gram(coalitions, weights, index, basis_p)
        pivot = _min_pivot(gram + extra)
        if pivot > best[0]:
            best = (pivot, name, (coalitions, weights, info), gram)
        if pivot >= max(tol, _WELL_IDENTIFIED):
            break
    _, name, (coalitions, weights, info), gram = best
    info["draw"] = name
    return coalitions, weights, gram, info


def _finish(
    coef: torch.Tensor,
    plan: SamplingPlan,
    *,
    estimator: str,
    estimated: bool,
    used: int,
    extra_info: dict[str, Any] | None = None,
    context: ExplanationContext | None = None,
) -> FIxLIPInteractionValues:
    """Convert to the product basis and wrap, recording the plan and what was used."""
    settings = plan.settings
    values = centred_to_product(coef, plan.terms, settings.basis_p).cpu().numpy()
    info = {"estimator": estimator, **plan.info(), "budget": used, **(extra_info or {})}
    return make_interaction_values(
        values,
        list(plan.terms),
        n_players=plan.n_players,
        index=settings.index_name,
        max_order=settings.max_order,
        p=settings.p,
        estimated=estimated,
        estimation_budget=used,
        estimation_info=info,
        context=context,
    )


def _values(
    game: JointGame, coalitions: torch.Tensor, batch_size: int | None, device: torch.device
) -> torch.Tensor:
    """``[m]`` game values, in one call (a JointGame then encodes each distinct image and
    text part once) or in calls of ``batch_size`` coalitions."""
    step = coalitions.shape[0] if batch_size is None else batch_size
    parts = []
    for start in range(0, coalitions.shape[0], max(step, 1)):
        chunk = coalitions[start : start + step]
        parts.append(as_values(game(chunk), (chunk.shape[0],), device))
    return torch.cat(parts)


def estimate_joint(
    game: JointGame,
    plan: SamplingPlan,
    *,
    device: torch.device,
    batch_size: int | None = None,
    solver: str = "auto",
) -> FIxLIPInteractionValues:
    """Model-agnostic estimate (or exact enumeration) following a joint :class:`SamplingPlan`.

    Args:
        game: Callable ``coalitions [m, n] bool -> values [m] float``.
        plan: From :func:`fixlip_captum.settings.plan_joint` (trusted).
        device: Where coalitions are built and the least squares run.
        batch_size: Coalitions per call of ``game`` (``None``: all in one call).
        solver: ``"auto"``, ``"direct"`` or ``"iterative"`` (checked by the caller).

    Returns:
        :class:`FIxLIPInteractionValues`.
    """
    settings = plan.settings
    n, p = plan.n_players, settings.basis_p
    shapley = settings.index == "FSII"
    index_t = terms_index(plan.terms, n).to(device)
    constraint = None
    border = torch.zeros((2, n), dtype=torch.bool, device=device)
    border[1] = True
    if shapley:
        constraint = centred_design(border, index_t, p)
    direct = joint_method(solver, plan.terms, n) == "direct"
    gram: torch.Tensor | None = None
    if plan.exhaustive:
        coalitions = all_coalitions(n, device=device)
        if shapley:
            weights = shapley_kernel_weights(coalitions)
        else:
            weights = weighted_banzhaf_weights(coalitions, p)
        if direct:
            gram = weighted_gram(coalitions, weights, index_t, p)
        sampler: dict[str, Any] = {}
        estimator = "exact"
    else:
        masses = shapley_size_masses(n) if shapley else banzhaf_size_masses(n, p)
        gen = make_generator(settings.seed)
        m = plan.budget - (2 if shapley else 0)
        coalitions, weights, gram, sampler = _draw(
            m,
            n,
            masses,
            plan.terms,
            index_t,
            p,
            gen,
            device,
            _JOINT_PIVOT_TOL,
            constraint,
            # The rank check forms the T x T Gram: always for the direct solver (it forms it
            # anyway), for the iterative one only where it is small.
            check=direct or len(plan.terms) <= EXACT_FEATURES,
        )
        estimator = "model-agnostic"
    values = _values(game, coalitions, batch_size, device)
    used = coalitions.shape[0]
    constraints = None
    if shapley:
        assert constraint is not None
        constraints = (constraint, _values(game, border, None, device))
        used += 2
    if direct:
        assert gram is not None
        rhs = weighted_rhs(coalitions, weights, values, index_t, p)
        coef = solve_normal_equations(gram, rhs, constraints, hint=plan.hint)
        solver_info: dict[str, Any] = {"solver": "direct"}
    else:
        system = JointSystem(plan.terms, n, p, device, solver="iterative")
        system.add(coalitions, weights, values)
        coef, solver_info = system.solve(constraints, hint=plan.hint)
    return _finish(
        coef,
        plan,
        estimator=estimator,
        estimated=not plan.exhaustive,
        used=used,
        extra_info={**sampler, **solver_info},
    )


def exact_interactions(
    game: JointGame,
    n_players: int,
    *,
    index: str = "FWBII",
    p: float | None = None,
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
        p: Keep-probability in (0, 1) for ``"FWBII"`` (default 0.5; not for ``"FSII"``).
        max_order: Highest interaction order (1, 2 or 3).
        pairs: Which higher-order terms are fitted (see
            :func:`fixlip_captum.solvers.interaction_terms`).
        n_image: Number of image players, for ``pairs="crossmodal"``.
        batch_size: Coalitions per call of ``game``.
        device: Where the least squares run.

    Returns:
        :class:`FIxLIPInteractionValues` (``estimated=False``, budget ``2^n``).
    """
    settings = Settings.create(index=index, p=p, max_order=max_order, pairs=pairs)
    batch_size = check_positive_int(batch_size, "batch_size")
    plan = plan_joint(settings, n_players, n_image=n_image)
    if plan.n_players > MAX_EXACT_PLAYERS:
        raise ValueError(
            f"exact_interactions enumerates 2^n coalitions and is limited to "
            f"{MAX_EXACT_PLAYERS} players; got n={plan.n_players}. Use approximate_interactions "
            "or approximate_crossmodal instead."
        )
    plan = dataclasses.replace(plan, budget=2**plan.n_players)
    return estimate_joint(
        game, plan, device=resolve_device(device), batch_size=batch_size, solver="direct"
    )


def approximate_interactions(
    game: JointGame,
    n_players: int,
    budget: int | None = None,
    *,
    index: str = "FWBII",
    p: float | None = None,
    max_order: int = 2,
    seed: int | None = None,
    device: torch.device | str | None = None,
    pairs: PairsSpec = "all",
    n_image: int | None = None,
    batch_size: int | None = None,
    solver: str = "auto",
) -> FIxLIPInteractionValues:
    """Model-agnostic estimator: distinct coalitions, fitted by weighted least squares.

    The coalitions are size-stratified (:func:`fixlip_captum.samplers.stratified_coalitions`):
    whole sizes with the most mass per coalition are enumerated, the others sampled without
    replacement, weighted so that the sample estimates the weighting measure (``mu_p`` for
    ``"FWBII"``, the Shapley kernel for ``"FSII"``) without bias. ``"FSII"`` also evaluates
    the empty and full coalitions (enforced exactly). A draw that cannot identify the terms is
    replaced by one that can, so every budget ``>=`` the minimum works for every seed. If
    ``budget >= 2^n`` all coalitions are enumerated and the result is exact.

    Args:
        game: Callable ``coalitions [m, n] bool -> values [m] float``.
        n_players: Number of players ``n``.
        budget: Number of game evaluations (``None``: the default rule,
            :func:`fixlip_captum.settings.default_budget`).
        index: ``"FWBII"`` or ``"FSII"``.
        p: Keep-probability in (0, 1) for ``"FWBII"`` (default 0.5; not for ``"FSII"``).
        max_order: Highest interaction order (1, 2 or 3).
        seed: Seed of the coalition sampler (``None`` = fresh entropy).
        device: Where coalitions are built and the least squares run (default CPU).
        pairs: Which higher-order terms are fitted: ``"all"``, ``"crossmodal"`` (needs
            ``n_image``), or a list of player ids (all pairs inside it). Needed above ~150
            players, where all pairs are too many.
        n_image: Number of image players (ids ``0..n_image-1``), for ``pairs="crossmodal"``.
        batch_size: Coalitions per call of ``game`` (``None``: all in one call, so a
            :class:`~fixlip_captum.games.JointGame` encodes each distinct part once).
        solver: Least-squares solver: ``"direct"`` (Gram + Cholesky), ``"iterative"``
            (preconditioned CG, matrix-free, order <= 2) or ``"auto"`` (iterative for large
            term sets; the rule is in :mod:`fixlip_captum.solvers.systems`).

    Returns:
        :class:`FIxLIPInteractionValues`; ``estimation_info`` records the plan, budget, seed
        and the solver used (with CG iterations, tolerance and condition estimate when
        iterative).

    Raises:
        NotIdentifiableError: budget below the number of fitted terms.
    """
    settings = Settings.create(
        index=index, p=p, max_order=max_order, pairs=pairs, seed=seed, budget=budget
    )
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    solver = check_solver(solver, settings.max_order)
    plan = plan_joint(settings, n_players, n_image=n_image)
    return estimate_joint(
        game, plan, device=resolve_device(device), batch_size=batch_size, solver=solver
    )


def _modality(
    m: int,
    n: int,
    p: float,
    features: Sequence[Term],
    gen: torch.Generator,
    device: torch.device,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Masks ``[m, n]``, weights ``[m]`` and sampler info of one modality (``check``: the
    draw's Gram is checked for full rank, see :func:`_draw`)."""
    index = terms_index(features, n).to(device)
    masses = banzhaf_size_masses(n, p)
    if n < 62 and m >= 2**n:
        masks = all_coalitions(n, device=device)
        weights = weighted_banzhaf_weights(masks, p)
        info: dict[str, Any] = {"enumerated": True}
    else:
        masks, weights, _, info = _draw(
            m,
            n,
            masses,
            features,
            index,
            p,
            gen,
            device,
            _MODALITY_PIVOT_TOL,
            check=check,
        )
        info["enumerated"] = False
    return masks, weights, info


def estimate_crossmodal(
    game: CrossModalGame, plan: SamplingPlan, *, device: torch.device, solver: str = "auto"
) -> FIxLIPInteractionValues:
    """Cross-modal estimate following a cross-modal :class:`SamplingPlan` (trusted).

    Args:
        game: Callable ``(image_coalitions [m_I, n_I] bool, text_coalitions [m_T, n_T] bool)
            -> values [m_I, m_T] float``.
        plan: From :func:`fixlip_captum.settings.plan_crossmodal`.
        device: Where masks are built and the least squares run.
        solver: ``"auto"``, ``"direct"`` or ``"iterative"`` (checked by the caller).

    Returns:
        :class:`FIxLIPInteractionValues`.
    """
    p = plan.settings.basis_p
    n_i, n_t = plan.n_image or 0, plan.n_text
    gen = make_generator(plan.settings.seed)
    method = crossmodal_method(solver, plan.terms, n_i)

    def checked(features: Sequence[Term]) -> bool:
        # The rank check forms the modality's Gram: always for the direct solver (it forms
        # it anyway), for the iterative one only where it is small.
        return method == "direct" or len(features) <= EXACT_FEATURES

    z_image, w_image, info_i = _modality(
        plan.m_image, n_i, p, plan.image_features, gen, device, checked(plan.image_features)
    )
    z_text, w_text, info_t = _modality(
        plan.m_text, n_t, p, plan.text_features, gen, device, checked(plan.text_features)
    )
    values = as_values(
        game(z_image, z_text), (z_image.shape[0], z_text.shape[0]), device, "cross-modal game"
    )
    coef, solver_info = solve_crossmodal(
        z_image, w_image, z_text, w_text, values, plan.terms, n_i, p, solver=method, hint=plan.hint
    )
    return _finish(
        coef,
        plan,
        estimator="crossmodal",
        estimated=not (info_i["enumerated"] and info_t["enumerated"]),
        used=int(z_image.shape[0] * z_text.shape[0]),
        extra_info={
            "m_image": int(z_image.shape[0]),
            "m_text": int(z_text.shape[0]),
            "image_enumerated": info_i["enumerated"],
            "text_enumerated": info_t["enumerated"],
            "image_sampler": info_i,
            "text_sampler": info_t,
            **solver_info,
        },
        context=ExplanationContext(n_image=n_i, n_text=n_t),
    )


def approximate_crossmodal(
    game: CrossModalGame,
    n_image: int,
    n_text: int,
    budget: int | None = None,
    *,
    m_image: int | None = None,
    m_text: int | None = None,
    p: float | None = None,
    max_order: int = 2,
    seed: int | None = None,
    device: torch.device | str | None = None,
    pairs: PairsSpec = "all",
    index: str = "FWBII",
    solver: str = "auto",
) -> FIxLIPInteractionValues:
    """Cross-modal FWBII estimator: ``m_I`` image masks x ``m_T`` text masks, all pairs.

    Each modality's masks are distinct and size-stratified
    (:func:`fixlip_captum.samplers.stratified_coalitions`), or all ``2^n`` of them with
    weights ``mu_p`` when ``m >= 2^n``. Under ``mu_p`` the two modalities are independent, so
    the product of the two weighted samples estimates ``mu_p`` over all ``n_I + n_T`` players
    and the least squares on the product of the image and text bases is solved one modality
    at a time (:mod:`fixlip_captum.solvers.crossmodal`): no ``(pairs x terms)`` and no
    ``T x T`` matrix is ever built. Identifiable at every budget ``>= minimum_budget`` for
    every seed.

    Args:
        game: Callable ``(image_coalitions [m_I, n_I] bool, text_coalitions [m_T, n_T] bool)
            -> values [m_I, m_T] float``.
        n_image: Image players (ids ``0..n_I-1``).
        n_text: Text players (ids ``n_I..n_I+n_T-1``).
        budget: Number of image-text pairs ``m_I * m_T``; split by
            :func:`crossmodal_split` unless ``m_image``/``m_text`` are given; ``None``: the
            default rule (:func:`fixlip_captum.settings.plan_crossmodal`).
        m_image: Number of image masks (overrides the split).
        m_text: Number of text masks (overrides the split).
        p: Keep-probability in (0, 1) (default 0.5).
        max_order: Highest interaction order (1, 2 or 3).
        seed: Seed of the mask sampler.
        device: Where masks are built and the least squares run (default CPU).
        pairs: ``"all"``, ``"crossmodal"`` (only image-text pairs: the image side then
            needs only ``1 + n_I`` masks) or a list of player ids.
        index: Must be ``"FWBII"``; FSII's kernel does not factorise across modalities.
        solver: Least-squares solver: ``"direct"``, ``"iterative"`` (matrix-free CG, order
            <= 2) or ``"auto"`` (see :mod:`fixlip_captum.solvers.systems`).

    Returns:
        :class:`FIxLIPInteractionValues` with ``estimation_info`` holding the plan
        (``m_image``, ``m_text``, minimum) and the budget actually used.

    Raises:
        NotIdentifiableError: too few image or text masks for the fitted terms.
    """
    settings = Settings.create(
        index=index, p=p, max_order=max_order, pairs=pairs, seed=seed, budget=budget
    )
    solver = check_solver(solver, settings.max_order)
    plan = plan_crossmodal(settings, n_image, n_text, m_image=m_image, m_text=m_text)
    return estimate_crossmodal(game, plan, device=resolve_device(device), solver=solver)
