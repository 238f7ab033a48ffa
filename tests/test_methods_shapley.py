"""Shapley values and FSII on the joint game, against shapiq's exact computation."""

from __future__ import annotations

import numpy as np
import pytest
import shapiq
import torch
from _models import (
    open_clip_bpe_tokenizer,
    random_pil_image,
    tiny_open_clip_clip,
    tiny_open_clip_clip_2x2,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.games import JointGame
from fixlip_captum.methods.shapley import FSII, ShapleyValues

CAPTION = "red cat grass"  # 3 tokens + 4 patches = 7 players


@pytest.fixture(scope="module")
def small():
    model, tok = tiny_open_clip_clip_2x2(), open_clip_bpe_tokenizer()
    adapter = get_adapter(model, tok)
    image = random_pil_image(5)
    game = JointGame(adapter, image, CAPTION)
    assert game.n_players == 7

    def np_game(c):
        return game(torch.as_tensor(np.asarray(c, dtype=bool))).double().numpy()

    exact = shapiq.ExactComputer(np_game, n_players=game.n_players)
    return model, tok, image, game, exact


def _as_dict(iv, order):
    return {t: float(iv.values[k]) for t, k in iv.interaction_lookup.items() if len(t) == order}


def test_shapley_values_match_shapiq_exact(small):
    model, tok, image, game, exact = small
    sv = exact("SV", 1)
    n = game.n_players
    iv = ShapleyValues(model, tok, budget=2**n).attribute_interactions(image, CAPTION)
    assert iv.index == "SV" and iv.max_order == 1 and iv.n_players == n
    assert not iv.estimated
    for i in range(n):
        assert iv[(i,)] == pytest.approx(sv[(i,)], abs=1e-5)
    # Efficiency and the context: values sum to v(N) - v(empty).
    assert sum(iv[(i,)] for i in range(n)) == pytest.approx(game.v_full - game.v_empty, abs=1e-5)
    assert iv.context.v_full == pytest.approx(game.v_full)
    assert iv.context.v_empty == pytest.approx(game.v_empty)


def test_sampled_shapley_values_close_to_exact(small):
    model, tok, image, game, exact = small
    sv = exact("SV", 1)
    iv = ShapleyValues(model, tok, budget=80, seed=1).attribute_interactions(image, CAPTION)
    assert iv.estimated
    est = np.array([iv[(i,)] for i in range(game.n_players)])
    ref = np.array([sv[(i,)] for i in range(game.n_players)])
    # 78 kernel-sampled coalitions for 7 players: close to, not equal to, the exact values.
    assert np.corrcoef(est, ref)[0, 1] > 0.9
    assert np.abs(est - ref).max() < 0.25 * np.abs(ref).max()
    assert est.sum() == pytest.approx(ref.sum(), abs=1e-5)  # efficiency is enforced
    again = ShapleyValues(model, tok, budget=80, seed=1).attribute_interactions(image, CAPTION)
    np.testing.assert_array_equal(iv.values, again.values)


def test_fsii_matches_shapiq_exact(small):
    model, tok, image, game, exact = small
    ref = exact("FSII", 2)
    n = game.n_players
    iv = FSII(model, tok, budget=2**n).attribute_interactions(image, CAPTION)
    assert iv.index == "FSII" and iv.max_order == 2
    got = {**_as_dict(iv, 1), **_as_dict(iv, 2)}
    assert len(got) == n + n * (n - 1) // 2
    for term, value in got.items():
        assert value == pytest.approx(ref[term], abs=1e-4), term


@pytest.mark.parametrize("cls, index, order", [(ShapleyValues, "SV", 1), (FSII, "FSII", 2)])
def test_shapiq_backend_agrees(small, cls, index, order):
    """shapiq's own approximators on the same game, with the full budget, are exact too."""
    model, tok, image, game, exact = small
    ref = exact(index, order)
    n = game.n_players
    iv = cls(model, tok, budget=2**n, backend="shapiq").attribute_interactions(image, CAPTION)
    assert iv.estimation_info["approximator"] in ("KernelSHAP", "RegressionFSII")
    for term, value in _as_dict(iv, order).items():
        assert value == pytest.approx(ref[term], abs=1e-4), term


def test_kernelshapiq_backend_runs_on_same_players(small):
    model, tok, image, game, _ = small
    iv = FSII(model, tok, budget=100, backend="shapiq_kernelshapiq", seed=0).attribute_interactions(
        image, CAPTION
    )
    assert iv.index == "kSII" and iv.n_players == game.n_players
    assert np.all(np.isfinite(iv.values))


def test_fsii_sampled_on_larger_game_has_all_players():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    adapter = get_adapter(model, tok)
    image = random_pil_image(6)
    n = adapter.n_image_players + adapter.tokenize("a red cat").n_players
    iv = FSII(model, tok, budget=600, seed=0).attribute_interactions(image, "a red cat")
    assert iv.n_players == n
    assert len(_as_dict(iv, 1)) == n and len(_as_dict(iv, 2)) == n * (n - 1) // 2
    assert np.all(np.isfinite(iv.values))
    assert iv.context.grid == adapter.patch_grid


def test_bad_arguments_raise():
    model, tok = tiny_open_clip_clip_2x2(), open_clip_bpe_tokenizer()
    with pytest.raises(ValueError, match="backend"):
        FSII(model, tok, backend="nope")
    with pytest.raises(ValueError, match="budget"):
        ShapleyValues(model, tok, budget=0)
