"""The iterative (matrix-free CG) solver against the direct Cholesky solve on the same samples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from fixlip_captum import NotIdentifiableError, approximate_crossmodal, approximate_interactions
from fixlip_captum.samplers import bernoulli_coalitions, make_generator
from fixlip_captum.solvers import (
    centred_design,
    crossmodal,
    interaction_terms,
    quadratic,
    solve_crossmodal,
    systems,
    terms_index,
)
from fixlip_captum.solvers.cg import (
    conjugate_gradient,
    refined_conjugate_gradient,
    ritz_extremes,
)
from fixlip_captum.solvers.quadratic import QuadraticNormalOperator, quadratic_layout

N_I, N_T = 9, 5
LOOKUPS = ["all", "crossmodal", [0, 2, 5, 7, 9, 10, 12]]


def crossmodal_game(seed: int):
    """Cross-modal values with pairwise, third-order and non-polynomial parts."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(N_I, N_T, generator=gen, dtype=torch.float64)
    q = torch.randn(N_I, N_I, generator=gen, dtype=torch.float64)

    def game(zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        xi, xt = zi.double().cpu(), zt.double().cpu()
        v = xi @ a @ xt.T + ((xi @ q) * xi).sum(1, keepdim=True)
        return v + 0.5 * torch.tanh(v) + xi[:, :1] * xi[:, 1:2] * xt[:, 0]

    return game


def joint_game(n: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    lin = torch.randn(n, generator=gen, dtype=torch.float64)
    pair = torch.randn(n, n, generator=gen, dtype=torch.float64).triu(1)

    def game(coalitions: torch.Tensor) -> torch.Tensor:
        x = coalitions.double()
        v = x @ lin + ((x @ pair) * x).sum(1)
        return v + torch.sin(v) + x[:, 0] * x[:, 1] * x[:, 2]

    return game


@pytest.fixture(params=["exact blocks", "diagonal pairs"])
def preconditioner(request, monkeypatch):
    """Both preconditioners: each modality's block factorised whole, or linear + diagonal."""
    if request.param == "diagonal pairs":
        monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    return request.param


@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("pairs", LOOKUPS, ids=["all", "crossmodal", "subset"])
def test_crossmodal_iterative_equals_direct(pairs, p, preconditioner, monkeypatch):
    # The lookup's own product basis (no richer image basis, which only the direct solve
    # fits: see test_richer_image_basis_only_where_solved_directly).
    monkeypatch.setattr(crossmodal, "RICHER_MIN_RATIO", math.inf)
    kw = dict(m_image=160, m_text=2**N_T, p=p, seed=3, pairs=pairs)  # text enumerated
    game = crossmodal_game(1)
    direct = approximate_crossmodal(game, N_I, N_T, solver="direct", **kw)
    iterative = approximate_crossmodal(game, N_I, N_T, solver="iterative", **kw)
    np.testing.assert_allclose(iterative.values, direct.values, rtol=0, atol=1e-8)
    assert direct.estimation_info["solver"] == "direct"
    info = iterative.estimation_info
    assert info["solver"] == "iterative" and info["cg_tolerance"] == systems.CG_RTOL
    assert 0 < info["cg_iterations"] < 200 and info["cg_relative_residual"] < 1e-11
    assert 1.0 <= info["condition_estimate"] < 1e3


def test_richer_image_basis_only_where_solved_directly():
    kw = dict(m_image=160, m_text=2**N_T, p=0.3, seed=3, pairs="crossmodal")
    game = crossmodal_game(1)
    direct = approximate_crossmodal(game, N_I, N_T, solver="direct", **kw).estimation_info
    iterative = approximate_crossmodal(game, N_I, N_T, solver="iterative", **kw).estimation_info
    # image: 1 + 9 lookup features, + 36 pairs (46 <= 160 / 1.5); text: 1 + 5, + 10 pairs.
    assert (direct["extra_image_features"], direct["extra_text_features"]) == (36, 10)
    assert (iterative["extra_image_features"], iterative["extra_text_features"]) == (0, 10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("p", [0.3, 0.7])
def test_crossmodal_iterative_equals_direct_on_cuda(p, monkeypatch):
    monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)  # the diagonal preconditioner
    kw = dict(m_image=160, m_text=2**N_T, p=p, seed=3, device="cuda")
    game = crossmodal_game(1)
    direct = approximate_crossmodal(game, N_I, N_T, solver="direct", **kw)
    iterative = approximate_crossmodal(game, N_I, N_T, solver="iterative", **kw)
    np.testing.assert_allclose(iterative.values, direct.values, rtol=0, atol=1e-8)
    assert iterative.estimation_info["cg_relative_residual"] < 1e-11


@pytest.mark.parametrize(
    ("index", "p"), [("FWBII", 0.3), ("FWBII", 0.5), ("FWBII", 0.7), ("FSII", 0.5)]
)
@pytest.mark.parametrize("pairs", LOOKUPS, ids=["all", "crossmodal", "subset"])
def test_joint_iterative_equals_direct(pairs, index, p, monkeypatch):
    # One side of all n players: factorised whole it would be the direct solve, so test the
    # preconditioner large joint designs get (linear block exact, pairs by their diagonal).
    monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    n = N_I + N_T
    kw = dict(index=index, p=p, seed=5, pairs=pairs, n_image=N_I, batch_size=300)
    game = joint_game(n, 2)
    direct = approximate_interactions(game, n, 700, solver="direct", **kw)
    iterative = approximate_interactions(game, n, 700, solver="iterative", **kw)
    np.testing.assert_allclose(iterative.values, direct.values, rtol=0, atol=1e-8)
    assert iterative.estimation_info["solver"] == "iterative"
    if index == "FSII":  # the border coalitions are fitted exactly
        border = torch.tensor([[False] * n, [True] * n])
        full = game(border)
        assert iterative.baseline_value == pytest.approx(float(full[0]), abs=1e-9)
        assert float(np.sum(iterative.values)) == pytest.approx(float(full[1]), abs=1e-8)


def _problem(m_i: int, m_t: int, p: float, seed: int, pairs="all"):
    gen = make_generator(seed)
    zi = bernoulli_coalitions(m_i, N_I, p, gen)
    zt = bernoulli_coalitions(m_t, N_T, p, gen)
    values = crossmodal_game(seed)(zi, zt)
    wi = torch.full((m_i,), 1.0 / m_i, dtype=torch.float64)
    wt = torch.full((m_t,), 1.0 / m_t, dtype=torch.float64)
    terms = interaction_terms(N_I + N_T, 2, pairs, n_image=N_I)
    return zi, wi, zt, wt, values, terms


@pytest.mark.parametrize("pairs", LOOKUPS, ids=["all", "crossmodal", "subset"])
def test_operator_is_the_dense_normal_equations(pairs):
    """A c (matrix-free) and Phi^T W Y equal the assembled Gram and right-hand sides."""
    n = N_I + N_T
    gen = make_generator(0)
    z = bernoulli_coalitions(200, n, 0.3, gen)
    w = torch.rand(200, generator=gen, dtype=torch.float64)
    y = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    terms = interaction_terms(n, 2, pairs, n_image=N_I)
    phi = centred_design(z, terms_index(terms, n), 0.3)
    op = QuadraticNormalOperator(quadratic_layout(terms, n), z, w, 0.3)
    eye = torch.eye(len(terms), dtype=torch.float64)
    torch.testing.assert_close(op.apply(eye), phi.T @ (w[:, None] * phi), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.rhs(y), phi.T @ (w[:, None] * y), rtol=0, atol=1e-12)


def test_lanczos_condition_estimate_matches_the_spectrum(monkeypatch):
    """Ritz values from the CG coefficients bracket-converge to M^-1 A's extreme eigenvalues."""
    monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    zi, wi, _, _, _, _ = _problem(80, 20, 0.5, 4)
    terms = interaction_terms(N_I, 2)
    op = QuadraticNormalOperator(quadratic_layout(terms, N_I), zi, wi, 0.5)
    eye = torch.eye(len(terms), dtype=torch.float64)
    a, m_inv = op.apply(eye), op.precondition(eye)
    chol = torch.linalg.cholesky(torch.linalg.inv(m_inv))
    eig = torch.linalg.eigvalsh(
        torch.linalg.solve_triangular(
            chol, torch.linalg.solve_triangular(chol, a, upper=False).T, upper=False
        )
    )
    y = torch.randn(80, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = conjugate_gradient(op.apply, op.rhs(y), op.precondition, rtol=1e-13)
    lo, hi = ritz_extremes(result.alphas[0], result.betas[0])
    assert lo == pytest.approx(float(eig.min()), rel=1e-3)
    assert hi == pytest.approx(float(eig.max()), rel=1e-3)


def test_conjugate_gradient_solves_several_columns():
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(40, 40, generator=gen, dtype=torch.float64)
    a = q @ q.T + 0.5 * torch.eye(40, dtype=torch.float64)
    b = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    result = conjugate_gradient(lambda x: a @ x, b, lambda r: r, rtol=1e-12)
    assert result.converged and result.iterations <= 80
    torch.testing.assert_close(result.solution, torch.linalg.solve(a, b), rtol=0, atol=1e-8)


def _ill_conditioned(seed: int = 0, size: int = 60, condition: float = 1e4):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(size, size, generator=gen, dtype=torch.float64))
    eig = torch.logspace(0, -np.log10(condition), size, dtype=torch.float64)
    a = (q * eig) @ q.T
    return a, torch.randn(size, 2, generator=gen, dtype=torch.float64)


def test_refinement_reaches_the_true_residual_with_a_float32_operator():
    """Float32 products inside, float64 residuals outside: the solution is that of the
    float64 system to the requested residual, which plain float32 CG cannot reach."""
    a, b = _ill_conditioned()
    a32 = a.float()
    exact = torch.linalg.solve(a, b)
    result = refined_conjugate_gradient(
        lambda x: a @ x, lambda x: (a32 @ x.float()).double(), b, lambda r: r, rtol=1e-12
    )
    assert result.converged and result.refinements >= 2
    true_residual = (b - a @ result.solution).norm(dim=0) / b.norm(dim=0)
    assert float(true_residual.max()) <= 1e-12
    assert float((result.solution - exact).norm() / exact.norm()) < 1e-8
    single = conjugate_gradient(lambda x: (a32 @ x.float()).double(), b, lambda r: r, rtol=1e-12)
    assert float((single.solution - exact).norm() / exact.norm()) > 1e-6


def test_refinement_falls_back_to_the_exact_operator_when_the_fast_one_is_too_rough():
    a, b = _ill_conditioned(1)
    noise = torch.randn(a.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rough = a + 1e-2 * (noise + noise.T)  # condition 1e4 x error 1e-2: no contraction
    result = refined_conjugate_gradient(lambda x: a @ x, lambda x: rough @ x, b, lambda r: r)
    assert result.converged
    torch.testing.assert_close(result.solution, torch.linalg.solve(a, b), rtol=0, atol=1e-6)


def test_refinement_stops_the_probe_on_its_error():
    a, b = _ill_conditioned(3)
    probe = torch.randn(a.shape[0], generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    rhs = torch.cat([b[:, :1], (a @ probe)[:, None]], dim=1)
    result = refined_conjugate_gradient(
        lambda x: a @ x, lambda x: a @ x, rhs, lambda r: r, rtol=1e-12, probe=probe, probe_tol=1e-3
    )
    error = float((result.solution[:, 1] - probe).norm() / probe.norm())
    assert result.converged and error <= 1e-3
    assert float((b[:, 0] - a @ result.solution[:, 0]).norm() / b[:, 0].norm()) <= 1e-12


def test_single_precision_operator_matches_the_double_one():
    zi, wi, _, _, _, _ = _problem(300, 20, 0.3, 5)
    terms = interaction_terms(N_I, 2)
    op = QuadraticNormalOperator(quadratic_layout(terms, N_I), zi, wi, 0.3)
    c = torch.randn(len(terms), 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact, single = op.apply(c), op.apply_single(c)
    assert single.dtype == torch.float64
    assert 0 < float((single - exact).norm() / exact.norm()) < 1e-5


def test_too_few_distinct_masks_refused():
    zi, wi, zt, wt, values, terms = _problem(120, 24, 0.5, 1)
    zt = torch.cat([zt[:10]] * 3)  # 30 masks, 10 distinct; the text side needs 16
    values = crossmodal_game(1)(zi, zt)
    wt = torch.full((30,), 1.0 / 30, dtype=torch.float64)
    for solver in ("direct", "iterative"):
        with pytest.raises(NotIdentifiableError, match="at least"):
            solve_crossmodal(
                zi,
                wi,
                zt,
                wt,
                values,
                terms,
                N_I,
                0.5,
                solver=solver,
                hint="use a budget of at least 1",
            )


@pytest.mark.parametrize("exact", [True, False])
def test_singular_design_with_enough_distinct_masks_refused(exact, monkeypatch):
    """Player 0 always kept: its column equals the intercept. Distinct masks abound, yet the
    system is singular; the iterative solver must refuse (no minimum-norm answer)."""
    if not exact:
        monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    zi, wi, zt, wt, values, terms = _problem(300, 24, 0.5, 2)
    zi[:, 0] = True
    values = crossmodal_game(2)(zi, zt)
    for solver in ("direct", "iterative"):
        with pytest.raises(NotIdentifiableError, match=r"singular|never vary"):
            solve_crossmodal(zi, wi, zt, wt, values, terms, N_I, 0.5, solver=solver)


def test_collinear_pair_features_refused_by_the_probe(monkeypatch):
    """Players 1 and 2 identical in every image mask: pair (1, 2) is constant and (0,1)
    equals (0,2). Only the null-space probe can see it when the pairs are preconditioned by
    their diagonal."""
    monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    zi, wi, zt, wt, values, terms = _problem(300, 24, 0.5, 6)
    zi[:, 2] = zi[:, 1]
    zi[:, 3] = ~zi[:, 1]
    values = crossmodal_game(6)(zi, zt)
    with pytest.raises(NotIdentifiableError, match=r"singular|never vary"):
        solve_crossmodal(zi, wi, zt, wt, values, terms, N_I, 0.5, solver="direct")
    with pytest.raises(NotIdentifiableError, match="singular"):
        solve_crossmodal(zi, wi, zt, wt, values, terms, N_I, 0.5, solver="iterative")


def test_poor_conditioning_warns_with_the_number(monkeypatch):
    monkeypatch.setattr(quadratic, "EXACT_FEATURES", 0)
    # 48 image masks for 46 image features: identifiable, badly conditioned.
    zi, wi, zt, wt, values, terms = _problem(48, 24, 0.5, 7)
    direct, _ = solve_crossmodal(zi, wi, zt, wt, values, terms, N_I, 0.5, solver="direct")
    with pytest.warns(RuntimeWarning, match=r"condition number estimate \d"):
        coef, info = solve_crossmodal(zi, wi, zt, wt, values, terms, N_I, 0.5, solver="iterative")
    assert info["condition_estimate"] > systems.WARN_CONDITION
    torch.testing.assert_close(coef, direct, rtol=0, atol=1e-6 * float(direct.abs().max()))


def test_auto_picks_iterative_for_large_image_bases(monkeypatch):
    kw = dict(m_image=160, m_text=28, seed=0)
    game = crossmodal_game(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = approximate_crossmodal(game, N_I, N_T, **kw)
    assert small.estimation_info["solver"] == "direct"
    monkeypatch.setattr(crossmodal, "EXACT_FEATURES", 10)
    large = approximate_crossmodal(game, N_I, N_T, **kw)
    direct = approximate_crossmodal(game, N_I, N_T, solver="direct", **kw)
    assert large.estimation_info["solver"] == "iterative"
    np.testing.assert_allclose(large.values, direct.values, rtol=0, atol=1e-8)


def test_solver_argument_checked_before_the_game_runs():
    def game(zi, zt):
        raise AssertionError("the game must not run")

    with pytest.raises(ValueError, match="solver must be one of"):
        approximate_crossmodal(game, N_I, N_T, 4000, solver="cg")
    with pytest.raises(ValueError, match="order <= 2"):
        approximate_crossmodal(game, N_I, N_T, 4000, solver="iterative", max_order=3)
