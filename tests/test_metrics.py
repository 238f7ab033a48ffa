"""Tests of fixlip_captum.metrics against hand-derived numbers and exact enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import shapiq
import torch
from scipy.stats import pearsonr, spearmanr

from fixlip_captum.interaction_values import make_interaction_values
from fixlip_captum.metrics import (
    draw_coalitions,
    faithfulness_scores,
    greedy_order,
    insertion_deletion,
    p_faithfulness,
    pointing_game,
)


def _iv(n, first=None, pairs=None, intercept=0.0, index="FWBII", p=0.5):
    terms, values = [()], [intercept]
    for i, v in enumerate(first if first is not None else np.zeros(n)):
        terms.append((i,))
        values.append(float(v))
    max_order = 1
    for (i, j), v in (pairs or {}).items():
        terms.append((i, j))
        values.append(float(v))
        max_order = 2
    return make_interaction_values(
        values, terms, n_players=n, index=index, max_order=max_order, p=p
    )


class TwoAdditiveGame:
    """v(S) = c + sum_i a_i x_i + sum_{i<j} b_ij x_i x_j; counts calls and coalitions."""

    def __init__(self, c, a, b):
        self.c = float(c)
        self.a = torch.as_tensor(a, dtype=torch.float64)
        self.b = torch.as_tensor(b, dtype=torch.float64)  # symmetric, zero diagonal
        self.calls = 0
        self.rows = 0

    def __call__(self, coalitions):
        assert coalitions.dtype == torch.bool
        self.calls += 1
        self.rows += coalitions.shape[0]
        x = coalitions.to(torch.float64)
        return self.c + x @ self.a + 0.5 * torch.einsum("mi,ij,mj->m", x, self.b, x)

    def exact_iv(self):
        n = self.a.shape[0]
        pairs = {
            (i, j): float(self.b[i, j])
            for i in range(n)
            for j in range(i + 1, n)
            if self.b[i, j] != 0
        }
        return _iv(n, self.a.numpy(), pairs)


def _random_two_additive(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = np.triu(rng.normal(size=(n, n)) * (rng.random((n, n)) < 0.4), 1)
    return TwoAdditiveGame(rng.normal(), a, b + b.T)


# ---------------------------------------------------------------- greedy ordering


def test_greedy_order_hand_checked_four_players():
    # gains: insertion 0 (1.0) -> 2 (0.8 beats 0.5-2) -> 3 (-0.2 beats -1.4) -> 1
    # deletion: 3 (-0.2) -> 2 (0.8 beats 1.0 and 0.5+1.5) -> 0 (1.0 beats 2.1) -> 1
    iv = _iv(4, [1.0, 0.5, 0.8, -0.2], {(0, 1): -2.0, (1, 2): 0.1, (1, 3): 1.5})
    assert greedy_order(iv, "insertion").tolist() == [0, 2, 3, 1]
    assert greedy_order(iv, "deletion").tolist() == [3, 2, 0, 1]


def test_first_order_ties_broken_by_index_one_at_a_time():
    iv = _iv(5, [1.0, 2.0, 1.0, -1.0, 1.0])
    assert greedy_order(iv, "insertion").tolist() == [1, 0, 2, 4, 3]
    assert greedy_order(iv, "deletion").tolist() == [3, 0, 2, 4, 1]


def test_greedy_order_matches_per_candidate_reference():
    rng = np.random.default_rng(3)
    n = 12
    first = rng.normal(size=n)
    pairs = {(i, j): rng.normal() for i in range(n) for j in range(i + 1, n) if rng.random() < 0.5}
    iv = _iv(n, first, pairs)
    for mode, pick in (("insertion", max), ("deletion", min)):
        chosen: list[int] = []
        for _ in range(n):
            gains = {
                v: first[v] + sum(pairs.get(tuple(sorted((u, v))), 0.0) for u in chosen)
                for v in range(n)
                if v not in chosen
            }
            chosen.append(pick(gains, key=gains.get))
        assert greedy_order(iv, mode).tolist() == chosen


def test_greedy_order_rejects_bad_mode_and_third_order():
    iv = _iv(3, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="mode"):
        greedy_order(iv, "both")
    iv3 = make_interaction_values(
        [0.0, 1.0], [(), (0, 1, 2)], n_players=3, index="Moebius", max_order=3
    )
    with pytest.raises(ValueError, match="order <= 2"):
        greedy_order(iv3)


# ---------------------------------------------------------------- insertion / deletion


def test_insertion_deletion_additive_game_matches_cumulative_sums():
    # 50 players: every grid point is one more player, so the curves are the cumsums.
    rng = np.random.default_rng(0)
    n = 50
    w = rng.normal(size=n)
    game = TwoAdditiveGame(0.7, w, np.zeros((n, n)))
    res = insertion_deletion(_iv(n, w), game)
    sorted_w = np.sort(w)[::-1]
    span = w.sum()
    ins = np.concatenate([[0.0], np.cumsum(sorted_w)]) / span
    dele = (span - np.concatenate([[0.0], np.cumsum(sorted_w)])) / span
    np.testing.assert_allclose(res.insertion, ins, atol=1e-12)
    np.testing.assert_allclose(res.deletion, dele, atol=1e-12)
    assert res.v_empty == pytest.approx(0.7)
    assert res.v_full == pytest.approx(0.7 + span)
    assert np.array_equal(res.insertion_order, np.argsort(-w, kind="stable"))


def test_aid_hand_computed():
    # 30 players worth +1, 20 worth -1: v(full) - v(empty) = 10.
    # insertion: 0 -> 3 at f=0.6 -> 1 at f=1: area 0.9 + 0.8 = 1.7
    # deletion: 1 -> -2 at f=0.6 -> 0 at f=1: area -0.3 - 0.4 = -0.7
    w = np.array([1.0] * 30 + [-1.0] * 20)
    game = TwoAdditiveGame(0.0, w, np.zeros((50, 50)))
    res = insertion_deletion(_iv(50, w), game)
    assert res.insertion_area == pytest.approx(1.7)
    assert res.deletion_area == pytest.approx(-0.7)
    assert res.aid == pytest.approx(2.4)
    assert res.aid_raw == pytest.approx(24.0)  # times v(full) - v(empty) = 10


def test_aid_raw_keeps_its_sign_when_the_full_value_is_below_the_empty_one():
    # v(empty) = 5, v(full) = 5 + 1 - 3 = 3: the normalised AID flips sign, the raw does not.
    w = np.array([1.0, -3.0])
    game = TwoAdditiveGame(5.0, w, np.zeros((2, 2)))
    res = insertion_deletion(_iv(2, w), game, n_grid=3)
    # insertion 5 -> 6 -> 3, deletion 3 -> 2 (remove player 0) -> 5
    np.testing.assert_allclose(res.insertion_raw, [5.0, 6.0, 3.0])
    np.testing.assert_allclose(res.deletion_raw, [3.0, 2.0, 5.0])
    assert res.aid_raw == pytest.approx(0.25 * (2 + 2 * 4 - 2))  # trapezoid of [2, 4, -2]
    assert res.aid == pytest.approx(res.aid_raw / -2.0)


def test_grid_rounding_with_few_players():
    # n = 4, 51 grid points: k = floor(4 j / 50 + 1/2) -> 7, 12, 13, 12, 7 points per k.
    w = np.array([3.0, 1.0, -1.0, 2.0])
    game = TwoAdditiveGame(1.0, w, np.zeros((4, 4)))
    res = insertion_deletion(_iv(4, w), game)
    per_k = np.array([0.0, 3.0, 5.0, 6.0, 5.0]) / 5.0  # order 0, 3, 1, 2
    expected = np.repeat(per_k, [7, 12, 13, 12, 7])
    np.testing.assert_allclose(res.insertion, expected, atol=1e-12)
    assert res.deletion_order.tolist() == [0, 3, 1, 2]
    # at most 2 * 5 distinct coalitions (empty/full shared) in one call
    assert game.rows <= 10


def test_second_order_curves_follow_greedy_cliques_and_are_nested():
    game = _random_two_additive(10, seed=1)
    iv = game.exact_iv()
    res = insertion_deletion(iv, game, n_grid=11, batch_size=4)
    assert res.insertion_order.tolist() == greedy_order(iv, "insertion").tolist()
    assert res.deletion_order.tolist() == greedy_order(iv, "deletion")[::-1].tolist()
    # n = 10, 11 grid points: k = grid index; check against the game directly.
    for k in range(11):
        kept = np.zeros(10, bool)
        kept[res.insertion_order[:k]] = True
        v = float(game(torch.as_tensor(kept[None])))
        assert res.insertion_raw[k] == pytest.approx(v)
        kept = np.ones(10, bool)
        kept[res.deletion_order[:k]] = False
        v = float(game(torch.as_tensor(kept[None])))
        assert res.deletion_raw[k] == pytest.approx(v)
    # With the exact explanation the greedy insertion prefix beats the deletion one.
    assert res.aid > 0


def test_insertion_deletion_degenerate_game_raises():
    game = TwoAdditiveGame(2.0, np.zeros(4), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="undefined"):
        insertion_deletion(_iv(4, [1.0, 0, 0, 0]), game)


def test_game_with_wrong_output_shape_raises():
    iv = _iv(3, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="one value per coalition"):
        insertion_deletion(iv, lambda c: torch.zeros(c.shape[0], 2))


# ---------------------------------------------------------------- p-faithfulness


@pytest.mark.parametrize("distribution", [0.3, 0.5, 0.7, "shapley"])
def test_exact_explanation_of_two_additive_game_is_perfect(distribution):
    game = _random_two_additive(9, seed=2)
    res = p_faithfulness(game.exact_iv(), game, distribution=distribution, n_samples=300, seed=4)
    assert res.spearman == pytest.approx(1.0)
    assert res.pearson == pytest.approx(1.0)
    assert res.r2 == pytest.approx(1.0)
    assert res.r2_unscaled == pytest.approx(1.0)
    assert res.scale == pytest.approx(1.0)
    assert res.n_samples == 300
    assert game.rows == 301  # the fresh coalitions plus the empty one


def test_faithfulness_hand_computed_on_full_enumeration():
    # v(S) = x0 x1 over 4 players, explained by Shapley values 0.5, 0.5.
    # Over the 16 coalitions: pearson = spearman = sqrt(2/3), a = 2/3, R^2 = 5/9,
    # unscaled R^2 = 1/3.
    coal = np.array(list(itertools.product([False, True], repeat=4)))
    values = (coal[:, 0] & coal[:, 1]).astype(float)
    iv = _iv(4, [0.5, 0.5, 0.0, 0.0])
    res = faithfulness_scores(iv, coal, values, 0.0)
    assert res.pearson == pytest.approx(np.sqrt(2 / 3))
    assert res.spearman == pytest.approx(np.sqrt(2 / 3))
    assert res.scale == pytest.approx(2 / 3)
    assert res.r2 == pytest.approx(5 / 9)
    assert res.r2_unscaled == pytest.approx(1 / 3)


def test_scaled_explanation_keeps_r2_after_least_squares_scale():
    game = _random_two_additive(8, seed=5)
    exact = game.exact_iv()
    doubled = make_interaction_values(
        2.0 * exact.values,
        list(exact.interaction_lookup),
        n_players=8,
        index="FWBII",
        max_order=2,
    )
    res = p_faithfulness(doubled, game, distribution=0.5, n_samples=200, seed=1)
    assert res.scale == pytest.approx(0.5)
    assert res.r2 == pytest.approx(1.0)
    y = res.game_values
    assert res.r2_unscaled == pytest.approx(1 - np.sum(y**2) / np.sum((y - y.mean()) ** 2))


def test_intercept_conventions():
    # Game with v(empty) = c != 0. An explanation fitted on v carries e_() = c (read as its
    # prediction of v(empty)); one without intercept is anchored at the empty coalition.
    game = _random_two_additive(7, seed=8)
    exact0 = game.exact_iv()
    on_v = make_interaction_values(
        [game.c, *exact0.values[1:]],
        list(exact0.interaction_lookup),
        n_players=7,
        index="FWBII",
        max_order=2,
    )
    for iv, mode in ((exact0, "anchored"), (on_v, "fitted")):
        res = p_faithfulness(iv, game, n_samples=100)
        assert res.intercept == mode
        assert res.r2_unscaled == pytest.approx(1.0)
    assert p_faithfulness(on_v, game, n_samples=100, intercept="anchored").r2_unscaled == (
        pytest.approx(1.0)
    )
    off = p_faithfulness(exact0, game, n_samples=100, intercept="fitted")
    y = off.game_values
    # fitted surrogate = y - c, so SSE = m c^2
    assert off.r2_unscaled == pytest.approx(1 - len(y) * game.c**2 / np.sum((y - y.mean()) ** 2))
    with pytest.raises(ValueError, match="intercept"):
        p_faithfulness(exact0, game, n_samples=10, intercept="none")


def test_fitted_intercept_of_a_projection_hand_computed():
    # v = x0 x1 x2. Its FWBII(0.5) projection is e_() = p^3 = 1/8, e_i = -p^2 = -1/4,
    # e_ij = p = 1/2; the residual is -z0 z1 z2 = -+1/8 on every coalition. Over the 8
    # coalitions: SST = 7/8; "fitted" SSE = 8/64 -> R^2 = 6/7; "anchored" shifts every
    # prediction by -1/8 -> SSE = 4/16 -> R^2 = 5/7.
    from fixlip_captum.estimators import exact_interactions

    def game(c):
        return c.all(dim=1).to(torch.float64)

    iv = exact_interactions(game, 3, index="FWBII", p=0.5)
    assert iv[()] == pytest.approx(1 / 8)
    assert iv[(0,)] == pytest.approx(-1 / 4)
    assert iv[(0, 2)] == pytest.approx(1 / 2)
    coal = np.array(list(itertools.product([False, True], repeat=3)))
    values = coal.all(axis=1).astype(float)
    auto = faithfulness_scores(iv, coal, values, 0.0)
    assert auto.intercept == "fitted"
    assert auto.r2_unscaled == pytest.approx(6 / 7)
    anchored = faithfulness_scores(iv, coal, values, 0.0, intercept="anchored")
    assert anchored.r2_unscaled == pytest.approx(5 / 7)


def test_library_exact_fwbii_of_two_additive_game_is_perfect():
    from fixlip_captum.estimators import exact_interactions

    game = _random_two_additive(8, seed=9)
    iv = exact_interactions(game, 8, index="FWBII", p=0.7)
    for intercept in ("auto", "anchored", "fitted"):
        res = p_faithfulness(iv, game, distribution=0.7, n_samples=200, intercept=intercept)
        assert res.r2_unscaled == pytest.approx(1.0)
        assert res.spearman == pytest.approx(1.0)


def test_correlations_match_scipy_on_a_wrong_explanation():
    game = _random_two_additive(10, seed=6)
    rng = np.random.default_rng(0)
    iv = _iv(10, rng.normal(size=10))
    res = p_faithfulness(iv, game, distribution=0.3, n_samples=500, seed=2)
    assert res.spearman == pytest.approx(spearmanr(res.game_values, res.surrogate).statistic)
    assert res.pearson == pytest.approx(pearsonr(res.game_values, res.surrogate).statistic)
    assert res.r2 < 1.0


def test_shapiq_exact_fsii_of_two_additive_game_is_perfect():
    # Independent explainer: shapiq's exact FSII recovers a 2-additive game with v(empty)=0.
    base = _random_two_additive(6, seed=7)
    game = TwoAdditiveGame(0.0, base.a.numpy(), base.b.numpy())

    def np_game(coalitions):
        return game(torch.as_tensor(coalitions, dtype=torch.bool)).numpy()

    fsii = shapiq.ExactComputer(np_game, n_players=6)("FSII", order=2)
    res = p_faithfulness(fsii, game, distribution="shapley", n_samples=200, seed=0)
    assert res.r2_unscaled == pytest.approx(1.0)
    assert res.spearman == pytest.approx(1.0)


def test_draw_coalitions_distributions_and_seed():
    a = draw_coalitions(20, 4000, 0.3, seed=11)
    assert a.dtype == bool and a.shape == (4000, 20)
    assert abs(a.mean() - 0.3) < 0.01
    assert np.array_equal(a, draw_coalitions(20, 4000, 0.3, seed=11))
    assert not np.array_equal(a, draw_coalitions(20, 4000, 0.3, seed=12))
    n = 6
    s = draw_coalitions(n, 20000, "shapley", seed=0)
    sizes = s.sum(axis=1)
    assert sizes.min() >= 1 and sizes.max() <= n - 1
    k = np.arange(1, n)
    expected = (1 / (k * (n - k))) / np.sum(1 / (k * (n - k)))  # 0.263, 0.132, 0.105, ...
    observed = np.bincount(sizes, minlength=n)[1:] / 20000
    np.testing.assert_allclose(observed, expected, atol=0.012)
    # uniform subset given the size: each player kept equally often
    np.testing.assert_allclose(s.mean(axis=0), s.mean(), atol=0.015)
    with pytest.raises(ValueError, match="strictly between"):
        draw_coalitions(5, 10, 1.0)
    with pytest.raises(ValueError, match="strictly between"):
        p_faithfulness(_iv(5), TwoAdditiveGame(0, np.ones(5), np.zeros((5, 5))), distribution=0)
    with pytest.raises(ValueError, match="shapley"):
        draw_coalitions(5, 10, "banzhaf")


# ---------------------------------------------------------------- pointing game


def _two_object_masks():
    masks = np.zeros((2, 4), bool)
    masks[0, 0] = True  # token 0 names the object on patch 0
    masks[1, 3] = True  # token 1 names the object on patch 3
    return masks


def test_pgr_second_order_hand_computed():
    # 4 patches (players 0-3), 2 tokens (players 4, 5).
    pairs = {
        (0, 4): 2.0,
        (1, 4): -1.0,
        (2, 4): 0.5,  # token 0: correct 2 + 1, wrong 0.5
        (0, 5): 1.0,
        (3, 5): 1.0,
        (2, 5): -2.0,  # token 1: correct 1 + 2, wrong 1
        (0, 1): 9.0,
        (4, 5): -9.0,  # image-image and text-text pairs do not count
    }
    iv = _iv(6, [5.0, -5.0, 5.0, 5.0, 7.0, 7.0], pairs)
    res = pointing_game(iv, [0, 1], _two_object_masks())
    assert res.source == "interactions"
    np.testing.assert_allclose(res.correct, [3.0, 3.0])
    np.testing.assert_allclose(res.wrong, [0.5, 1.0])
    np.testing.assert_allclose(res.per_token, [6 / 7, 0.75])
    assert res.pgr == pytest.approx((6 / 7 + 0.75) / 2)


def test_pgr_first_order_shared_map_gives_one_over_k():
    # A map that is right about both objects still scores 1/2 per token; the tokens' own
    # values (7.0) are not counted anywhere.
    iv = _iv(6, [1.0, 0.0, 0.0, 1.0, 7.0, 7.0])
    res = pointing_game(iv, [0, 1], _two_object_masks())
    assert res.source == "first_order"
    np.testing.assert_allclose(res.per_token, [0.5, 0.5])
    one = pointing_game(iv, [0], _two_object_masks()[:1] | _two_object_masks()[1:])
    assert one.pgr == pytest.approx(1.0)


def test_pgr_first_order_view_of_second_order_and_zero_map():
    # phi_p = e_p + 0.5 * sum_j e_pj: patch 0 -> 1 + 0.5*2 = 2, patch 1 -> -1 - 0.5 = -1.5
    iv = _iv(6, [1.0, -1.0, 0.0, 0.0, 0.0, 0.0], {(0, 4): 2.0, (1, 5): -1.0}, p=0.5)
    masks = np.zeros((1, 4), bool)
    masks[0, 0] = True
    res = pointing_game(iv, [1], masks, use="first_order")
    assert res.correct[0] == pytest.approx(2.0 + 1.5) and res.wrong[0] == 0.0
    zero = pointing_game(_iv(6), [0, 1], _two_object_masks())
    assert np.all(np.isnan(zero.per_token)) and np.isnan(zero.pgr)
    with pytest.raises(ValueError, match="pair terms"):
        pointing_game(_iv(6, [1.0] * 6), [0], masks, use="interactions")
    with pytest.raises(ValueError, match="token_indices"):
        pointing_game(iv, [2], masks)
    with pytest.raises(ValueError, match="one row per token"):
        pointing_game(iv, [0, 1], masks)
