"""Core estimators against brute-force least squares, shapiq's ExactComputer and known games."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from shapiq import ExactComputer, InteractionValues

from fixlip_captum import (
    NotIdentifiableError,
    approximate_crossmodal,
    approximate_interactions,
    exact_interactions,
    first_order_values,
    load_interaction_values,
)
from fixlip_captum.estimators import _modality, crossmodal_split
from fixlip_captum.samplers import make_generator
from fixlip_captum.solvers import crossmodal, split_terms

# ---------------------------------------------------------------- reference implementations


def random_game(n: int, seed: int, third_order: float = 1.0):
    """A non-additive game: linear + pairwise + a few triples + a smooth non-polynomial part."""
    rng = np.random.default_rng(seed)
    lin = torch.tensor(rng.normal(size=n))
    pair = torch.tensor(np.triu(rng.normal(size=(n, n)), 1))
    triples = [tuple(rng.choice(n, 3, replace=False)) for _ in range(3)]
    coef3 = rng.normal(size=3) * third_order

    def game(coalitions: torch.Tensor) -> torch.Tensor:
        x = coalitions.double().cpu()
        out = 0.3 + x @ lin + ((x @ pair) * x).sum(1)
        for (a, b, c), w in zip(triples, coef3, strict=True):
            out = out + w * x[:, a] * x[:, b] * x[:, c]
        return out + third_order * torch.sin(1.7 * x.sum(1))

    return game


def two_additive_game(n: int, seed: int):
    rng = np.random.default_rng(seed)
    lin = torch.tensor(rng.normal(size=n))
    pair = torch.tensor(np.triu(rng.normal(size=(n, n)), 1))
    truth = {(): 0.7}
    truth.update({(i,): float(lin[i]) for i in range(n)})
    truth.update({(i, j): float(pair[i, j]) for i in range(n) for j in range(i + 1, n)})

    def game(coalitions: torch.Tensor) -> torch.Tensor:
        x = coalitions.double().cpu()
        return 0.7 + x @ lin + ((x @ pair) * x).sum(1)

    return game, truth


def product_design(coalitions: np.ndarray, terms) -> np.ndarray:
    return np.stack(
        [np.all(coalitions[:, list(t)], axis=1) if t else np.ones(len(coalitions)) for t in terms],
        axis=1,
    ).astype(float)


def all_subsets(n: int) -> np.ndarray:
    return np.array(list(itertools.product([False, True], repeat=n)))


def all_terms(n: int, k: int):
    return [t for order in range(k + 1) for t in itertools.combinations(range(n), order)]


def brute_force_fwbii(game, n: int, p: float, k: int) -> dict:
    s = all_subsets(n)
    v = game(torch.tensor(s)).numpy()
    w = p ** s.sum(1) * (1 - p) ** (n - s.sum(1))
    terms = all_terms(n, k)
    x = product_design(s, terms)
    coef = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * v))
    return dict(zip(terms, coef, strict=True))


def brute_force_fsii(game, n: int, k: int) -> dict:
    from math import comb

    s = all_subsets(n)
    v = game(torch.tensor(s)).numpy()
    size = s.sum(1)
    w = np.array([0.0 if z in (0, n) else (n - 1) / (comb(n, z) * z * (n - z)) for z in size])
    terms = all_terms(n, k)
    x = product_design(s, terms)
    border = (size == 0) | (size == n)
    a, d = x[border], v[border]
    kkt = np.block([[x.T @ (w[:, None] * x), a.T], [a, np.zeros((len(a), len(a)))]])
    sol = np.linalg.solve(kkt, np.concatenate([x.T @ (w * v), d]))
    return dict(zip(terms, sol[: len(terms)], strict=True))


def max_diff(iv, reference: dict) -> float:
    return max(abs(iv[t] - val) for t, val in reference.items())


def to_crossmodal(game, n_image: int):
    """Wrap a joint game as a cross-modal one (all pairs of image and text masks)."""

    def crossmodal(z_image: torch.Tensor, z_text: torch.Tensor) -> torch.Tensor:
        m_i, m_t = z_image.shape[0], z_text.shape[0]
        joint = torch.cat(
            [
                z_image[:, None, :].expand(m_i, m_t, -1),
                z_text[None, :, :].expand(m_i, m_t, -1),
            ],
            dim=2,
        )
        return game(joint.reshape(m_i * m_t, -1)).reshape(m_i, m_t)

    return crossmodal


# ---------------------------------------------------------------- exact


@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("n,k", [(6, 2), (9, 2), (7, 1), (6, 3)])
def test_exact_matches_brute_force(p, n, k):
    game = random_game(n, seed=n + k)
    iv = exact_interactions(game, n, p=p, max_order=k)
    ref = brute_force_fwbii(game, n, p, k)
    assert max_diff(iv, ref) < 1e-9
    assert iv.p == p
    assert iv.estimated is False


@pytest.mark.parametrize("n", [5, 8, 10])
def test_exact_fbii_equals_shapiq(n):
    game = random_game(n, seed=n)
    iv = exact_interactions(game, n, p=0.5)
    ref = ExactComputer(n_players=n, game=lambda x: game(torch.tensor(x)).numpy())("FBII", 2)
    assert iv.index == "FBII"
    assert max(abs(iv[t] - ref[t]) for t in ref.interaction_lookup) < 1e-9


@pytest.mark.parametrize("n", [5, 8, 10])
def test_exact_fsii_equals_shapiq_and_brute_force(n):
    game = random_game(n, seed=10 + n)
    iv = exact_interactions(game, n, index="FSII")
    assert max_diff(iv, brute_force_fsii(game, n, 2)) < 1e-9
    ref = ExactComputer(n_players=n, game=lambda x: game(torch.tensor(x)).numpy())("FSII", 2)
    # shapiq enforces the empty/full coalitions with a large finite weight; we solve the
    # constrained problem exactly, hence the looser tolerance against shapiq.
    assert max(abs(iv[t] - ref[t]) for t in ref.interaction_lookup if t) < 1e-6
    full = torch.ones(1, n, dtype=torch.bool)
    assert abs(sum(iv.values) - float(game(full)[0])) < 1e-9  # efficiency


def test_exact_refuses_too_many_players():
    with pytest.raises(ValueError, match="limited to 20 players"):
        exact_interactions(lambda c: c.sum(1).double(), 21)


# ---------------------------------------------------------------- recovery and convergence


def test_two_additive_game_recovered_by_every_estimator():
    game, truth = two_additive_game(12, seed=3)
    for iv in (
        approximate_interactions(game, 12, 400, p=0.3, seed=0),
        approximate_interactions(game, 12, 400, index="FSII", seed=0),
        approximate_crossmodal(to_crossmodal(game, 8), 8, 4, budget=60 * 16, p=0.7, seed=0),
    ):
        assert max_diff(iv, truth) < 1e-8, iv.estimation_info


def _mean_error(estimate, exact, seeds):
    return np.mean([max_diff(estimate(seed), exact) for seed in seeds])


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_model_agnostic_converges(p):
    n = 10
    game = random_game(n, seed=7, third_order=2.0)
    exact = brute_force_fwbii(game, n, p, 2)
    small = _mean_error(
        lambda s: approximate_interactions(game, n, 200, p=p, seed=s), exact, range(5)
    )
    large = _mean_error(
        lambda s: approximate_interactions(game, n, 3200 // 4 * 4, p=p, seed=s), exact, range(5)
    )
    assert large <= 0.5 * small, (small, large)


def test_model_agnostic_fsii_converges():
    n = 10
    game = random_game(n, seed=8, third_order=2.0)
    exact = brute_force_fsii(game, n, 2)
    est = lambda b: lambda s: approximate_interactions(game, n, b, index="FSII", seed=s)  # noqa: E731
    small, large = _mean_error(est(200), exact, range(5)), _mean_error(est(3200), exact, range(5))
    assert large <= 0.5 * small, (small, large)


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_crossmodal_converges(p):
    n_i, n_t = 11, 5
    game = random_game(n_i + n_t, seed=9, third_order=2.0)
    exact = brute_force_fwbii(game, n_i + n_t, p, 2)
    cm = to_crossmodal(game, n_i)

    # 32 text masks = all of them (enumerated): the error comes from the image sampling.
    def est(m):
        return lambda s: approximate_crossmodal(cm, n_i, n_t, m_image=m, m_text=32, p=p, seed=s)

    small, large = _mean_error(est(120), exact, range(4)), _mean_error(est(1920), exact, range(4))
    assert large <= 0.5 * small, (small, large)


# ---------------------------------------------------------------- cross-modal == dense


def centred(coalitions: np.ndarray, players, p: float) -> np.ndarray:
    """``z_T(S) = prod_{i in T} (x_i - p) / sqrt(p (1 - p))`` per row."""
    z = (coalitions.astype(float) - p) / np.sqrt(p * (1 - p))
    return np.prod(z[:, list(players)], axis=1) if players else np.ones(len(coalitions))


def tensor_reference(
    zi, wi, zt, wt, game, terms, n_i: int, p: float, image_basis, extra_text=()
) -> dict:
    """Brute force of the cross-modal estimator: per text column group, the dense weighted
    least squares over ALL image-text pairs on the product basis ``z_f(a) z_g(b)`` (``f`` in
    the group's image basis, ``g`` any text feature of the lookup or ``extra_text``), its
    centred coefficients of the lookup terms kept, then the product-basis values by the
    Moebius transform of that surrogate."""
    f_of = {t: tuple(i for i in t if i < n_i) for t in terms}
    g_of = {t: tuple(i for i in t if i >= n_i) for t in terms}
    text_feats = sorted(set(g_of.values()), key=lambda g: (len(g), g))
    text_feats += [tuple(n_i + i for i in g) for g in extra_text]
    joint = np.concatenate([np.repeat(zi, len(zt), axis=0), np.tile(zt, (len(zi), 1))], axis=1)
    v = game(torch.tensor(joint)).numpy()
    w = np.outer(wi, wt).reshape(-1)
    coef = {}
    for g_order in sorted({len(g) for g in g_of.values()}):
        basis = image_basis(g_order)
        feats = [(f, g) for f in basis for g in text_feats]
        x = np.stack([centred(joint, f + g, p) for f, g in feats], axis=1)
        c = np.linalg.solve(x.T @ (w[:, None] * x), x.T @ (w * v))
        fitted = dict(zip(feats, c, strict=True))
        for t in terms:
            if len(g_of[t]) == g_order:
                coef[t] = fitted[(f_of[t], g_of[t])]

    def surrogate(members) -> float:
        row = np.zeros((1, joint.shape[1]), dtype=bool)
        row[0, list(members)] = True
        return sum(c * centred(row, t, p)[0] for t, c in coef.items())

    return {
        u: sum(
            (-1) ** (len(u) - r) * surrogate(s)
            for r in range(len(u) + 1)
            for s in itertools.combinations(u, r)
        )
        for u in terms
    }


def _recorded_crossmodal(game, n_i, n_t, p, pairs, **kw):
    """Run approximate_crossmodal and return it with the masks and weights it drew."""
    cm = to_crossmodal(game, n_i)
    seen = {}

    def recording(z_image, z_text):
        seen["image"], seen["text"] = z_image.clone(), z_text.clone()
        return cm(z_image, z_text)

    iv = approximate_crossmodal(
        recording, n_i, n_t, m_image=300, m_text=60, p=p, seed=1, pairs=pairs, **kw
    )
    # The same draws again, with their weights (image first, then text, one generator).
    gen = make_generator(1)
    image_feats, text_feats, _, _ = split_terms(list(iv.interaction_lookup), n_i)
    mi, wi, _ = _modality(300, n_i, p, image_feats, gen, torch.device("cpu"))
    mt, wt, _ = _modality(60, n_t, p, text_feats, gen, torch.device("cpu"))
    np.testing.assert_array_equal(mi.numpy(), seen["image"].numpy())
    np.testing.assert_array_equal(mt.numpy(), seen["text"].numpy())
    return iv, mi.numpy(), wi.numpy(), mt.numpy(), wt.numpy(), image_feats


@pytest.mark.parametrize("pairs", ["all", "crossmodal", [0, 2, 5, 9, 10]])
@pytest.mark.parametrize("p", [0.3, 0.5])
def test_crossmodal_equals_dense_weighted_least_squares(pairs, p):
    """Small image basis: every text column on the whole image basis, both modalities'
    bases enriched by the next order where the masks afford it (300 image, 60 text)."""
    n_i, n_t = 9, 6
    game = random_game(n_i + n_t, seed=4)
    iv, zi, wi, zt, wt, image_feats = _recorded_crossmodal(game, n_i, n_t, p, pairs)
    info = iv.estimation_info
    assert not info["text_enumerated"]
    terms = list(iv.interaction_lookup)
    _, text_feats, _, _ = split_terms(terms, n_i)
    extra_i = crossmodal.richer_basis(image_feats, n_i, 300)
    extra_t = crossmodal.richer_basis(text_feats, n_t, 60)
    # "all": image features of order <= 3 (130 <= 300 / 1.5), text not (42 > 60 / 1.5);
    # "crossmodal": image order <= 2 (46), text order <= 2 (22).
    assert (info["extra_image_features"], info["extra_text_features"]) == (
        len(extra_i),
        len(extra_t),
    )
    assert extra_i and (bool(extra_t) == (pairs == "crossmodal"))
    basis = image_feats + extra_i
    ref = tensor_reference(zi, wi, zt, wt, game, terms, n_i, p, lambda order: basis, extra_t)
    assert max(abs(iv[t] - ref[t]) for t in terms) < 1e-8
    if pairs == "crossmodal":
        assert all(len(t) < 2 or (t[0] < n_i <= t[1]) for t in terms)


@pytest.mark.parametrize("solver", ["direct", "iterative"])
@pytest.mark.parametrize("p", [0.3, 0.7])
def test_crossmodal_large_image_basis_equals_dense(solver, p, monkeypatch):
    """Above EXACT_FEATURES image features: the empty text column on the whole image basis,
    the others on the image intercept and singletons; both solvers give the brute force."""
    monkeypatch.setattr(crossmodal, "EXACT_FEATURES", 20)
    n_i, n_t = 9, 6
    game = random_game(n_i + n_t, seed=5)
    iv, zi, wi, zt, wt, image_feats = _recorded_crossmodal(game, n_i, n_t, p, "all", solver=solver)
    assert iv.estimation_info["solver"] == solver
    terms = list(iv.interaction_lookup)
    low = [f for f in image_feats if len(f) <= 1]
    ref = tensor_reference(
        zi, wi, zt, wt, game, terms, n_i, p, lambda order: image_feats if order == 0 else low
    )
    assert max(abs(iv[t] - ref[t]) for t in terms) < 1e-8


def test_crossmodal_enumerates_small_text_with_exact_weights():
    n_i, n_t = 8, 3
    game = random_game(n_i + n_t, seed=5)
    exact = brute_force_fwbii(game, n_i + n_t, 0.3, 2)
    iv = approximate_crossmodal(to_crossmodal(game, n_i), n_i, n_t, m_image=256, m_text=64, p=0.3)
    assert iv.estimation_info["text_enumerated"] and iv.estimation_info["image_enumerated"]
    assert iv.estimation_info["m_text"] == 8
    assert max_diff(iv, exact) < 1e-9  # both sides enumerated with mu_p weights -> exact


def test_budget_split_rule():
    n_i, n_t = 49, 8
    cm = to_crossmodal(lambda c: c.double().sum(1), n_i)
    iv = approximate_crossmodal(cm, n_i, n_t, budget=2**15, pairs="crossmodal", seed=0)
    info = iv.estimation_info
    # published rule ceil(sqrt(B) * n_T / n_I) = 30 is above the floor 1.25 * F_T (F_T = 1 + 8)
    assert info["m_text"] == int(np.ceil(np.sqrt(2**15) * 8 / 49)) == 30
    # all pairs, n_I = 36: F_I = 667, F_T = 1 + 10 + 45 = 56 -> published rule gives
    # ceil(256 * 10 / 36) = 72 >= need_T = 70 text masks, and 910 >= need_I = 834 images.
    assert crossmodal_split(2**16, 36, 10, 667, 56) == (910, 72)
    # n_I = 49: F_I = 1226, F_T = 37. 2^15 // 60 = 546 images < need_I = 1533, so text masks
    # drop to their minimum F_T = 37 and images rise to 2^15 // 37 = 885.
    assert crossmodal_split(2**15, n_i, n_t, 1226, 37) == (885, 37)
    # 5 tokens, 2^17 pairs: the rule asks for 51 of the 32 possible text masks -> all 32
    assert crossmodal_split(2**17, 36, 5, 667, 16) == (2**17 // 32, 32)
    # 5 tokens, 2^16: 25 of 32 (> half) -> enumerate, since 2^16 // 32 = 2048 >= 667 images
    assert crossmodal_split(2**16, 36, 5, 667, 16) == (2048, 32)
    # ... but not when the image side would drop below its minimum
    assert crossmodal_split(2**14, 36, 5, 667, 16) == (2**14 // 19, 19)
    # tiny captions are enumerated: 2^3 = 8 text masks
    assert crossmodal_split(2**15, n_i, 3, 1226, 7) == (2**15 // 8, 8)
    assert info["m_image"] == 2**15 // info["m_text"]
    assert info["budget"] == info["m_image"] * info["m_text"] <= 2**15


# ---------------------------------------------------------------- determinism and errors


def test_same_seed_same_result_different_seed_differs():
    game = random_game(10, seed=1)
    a = approximate_interactions(game, 10, 300, seed=42)
    b = approximate_interactions(game, 10, 300, seed=42)
    c = approximate_interactions(game, 10, 300, seed=43)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.allclose(a.values, c.values)
    cm = to_crossmodal(game, 6)
    x = approximate_crossmodal(cm, 6, 4, m_image=60, m_text=16, seed=7)
    y = approximate_crossmodal(cm, 6, 4, m_image=60, m_text=16, seed=7)
    np.testing.assert_array_equal(x.values, y.values)


@pytest.mark.parametrize("p", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_p_outside_open_interval(p):
    game = random_game(4, seed=0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        exact_interactions(game, 4, p=p)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        approximate_crossmodal(to_crossmodal(game, 2), 2, 2, budget=64, p=p)


def test_budget_too_small_names_minimum():
    game = random_game(30, seed=0)
    with pytest.raises(NotIdentifiableError, match="at least 466"):
        approximate_interactions(game, 30, 100)
    cm = to_crossmodal(game, 24)
    with pytest.raises(NotIdentifiableError, match="at least 301 distinct image masks"):
        approximate_crossmodal(cm, 24, 6, budget=2000)
    with pytest.raises(NotIdentifiableError):
        approximate_crossmodal(cm, 24, 6, m_image=300, m_text=30)


def test_extreme_p_still_identifies_with_distinct_masks():
    # At p ~ 1 i.i.d. draws keep every player (a singular system); distinct masks plus the
    # anchored fallback still identify the terms, and an additive game comes out exactly.
    def crossmodal(zi, zt):
        return (
            torch.zeros(zi.shape[0], zt.shape[0], dtype=torch.float64) + zi.double().sum(1)[:, None]
        )

    iv = approximate_crossmodal(crossmodal, 12, 3, m_image=80, m_text=8, p=0.999999, seed=0)
    assert iv.estimation_info["image_sampler"]["draw"] == "anchored"
    for t, k in iv.interaction_lookup.items():
        assert abs(iv.values[k] - (1.0 if len(t) == 1 and t[0] < 12 else 0.0)) < 1e-6


def test_bad_game_outputs():
    with pytest.raises(ValueError, match="expected"):
        approximate_interactions(lambda c: torch.zeros(c.shape[0], 2), 5, 40, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        approximate_interactions(lambda c: torch.full((c.shape[0],), float("nan")), 5, 40, seed=0)
    with pytest.raises(ValueError, match="expected"):
        approximate_crossmodal(lambda zi, zt: torch.zeros(zi.shape[0]), 5, 3, budget=2000, seed=0)
    with pytest.raises(ValueError, match="FSII"):
        approximate_crossmodal(lambda zi, zt: None, 5, 3, budget=2000, index="FSII")
    with pytest.raises(ValueError, match="index must be one of"):
        exact_interactions(lambda c: c.sum(1), 3, index="SII")


# ---------------------------------------------------------------- the result object


def test_interaction_values_roundtrip_without_warnings(tmp_path):
    game = random_game(7, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iv = approximate_crossmodal(
            to_crossmodal(game, 4), 4, 3, m_image=16, m_text=8, p=0.3, seed=0
        )
        assert isinstance(iv, InteractionValues)
        assert iv.index == "FWBII" and iv.p == 0.3
        intercept = iv[()]
        assert intercept == iv.values[iv.interaction_lookup[()]]
        path = tmp_path / "iv.json"
        iv.save(path)
        loaded = load_interaction_values(path)
    assert loaded.p == 0.3 and loaded.index == "FWBII"
    assert loaded.estimation_info["m_image"] == 16
    assert loaded.estimation_budget == iv.estimation_budget == 16 * 8
    for t in iv.interaction_lookup:
        assert loaded[t] == pytest.approx(iv[t], abs=1e-12)
    # shapiq's own loader keeps the intercept (it warns that it does not know "FWBII").
    with pytest.warns(UserWarning, match="FWBII"):
        plain = InteractionValues.load(path)
    assert plain[()] == pytest.approx(intercept)


@pytest.mark.parametrize("p", [0.3, 0.5, 0.8])
def test_first_order_is_weighted_banzhaf_of_the_surrogate(p):
    n = 6
    iv = exact_interactions(random_game(n, seed=3), n, p=p)
    s = all_subsets(n)
    surrogate = product_design(s, list(iv.interaction_lookup)) @ np.array(
        [iv[t] for t in iv.interaction_lookup]
    )
    index_of = {tuple(row): k for k, row in enumerate(s)}
    expected = np.zeros(n)
    for i in range(n):
        for row in s[~s[:, i]]:
            with_i = row.copy()
            with_i[i] = True
            weight = p ** row.sum() * (1 - p) ** (n - 1 - row.sum())
            expected[i] += weight * (
                surrogate[index_of[tuple(with_i)]] - surrogate[index_of[tuple(row)]]
            )
    np.testing.assert_allclose(first_order_values(iv), expected, atol=1e-10)
    np.testing.assert_allclose(iv.first_order(), expected, atol=1e-10)


def test_model_agnostic_crossmodal_pairs_lookup():
    n_i, n_t = 7, 4
    _, truth = two_additive_game(n_i + n_t, seed=11)
    # zero the within-modality pairs so that the cross-modal lookup is exact
    kept = {t: v for t, v in truth.items() if len(t) < 2 or t[0] < n_i <= t[1]}

    def crossmodal_only(c):
        x = c.double().cpu()
        return sum(v * x[:, list(t)].prod(1) if t else v for t, v in kept.items())

    for index in ("FWBII", "FSII"):
        iv = approximate_interactions(
            crossmodal_only, n_i + n_t, 300, index=index, pairs="crossmodal", n_image=n_i, seed=0
        )
        assert set(iv.interaction_lookup) == set(kept)
        assert max_diff(iv, kept) < 1e-8


def test_barely_determined_budget_warns_with_the_numbers():
    game = to_crossmodal(random_game(16, seed=0), 12)
    with pytest.warns(RuntimeWarning, match=r"79 image features .* inflate the estimate"):
        iv = approximate_crossmodal(game, 12, 4, 869, seed=0)  # the minimum: 79 x 11
    assert iv.estimation_info["variance_inflation"] > crossmodal.WARN_INFLATION
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        iv = approximate_crossmodal(game, 12, 4, 2**13, seed=0)  # 512 x all 16 text masks
    assert iv.estimation_info["variance_inflation"] == pytest.approx(512 / (512 - 79))


def test_variance_inflation():
    assert crossmodal.variance_inflation(16, 11, 4) == 1.0  # all 2^4 masks: exact weights
    assert crossmodal.variance_inflation(11, 11, 5) == math.inf
    assert crossmodal.variance_inflation(200, 100, 20) == pytest.approx(2.0)
