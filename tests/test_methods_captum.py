"""captum's first-order methods on the joint game, and IntegratedGradients per player."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _models import (
    hf_clip_processor,
    hf_siglip2_processor,
    open_clip_bpe_tokenizer,
    random_pil_image,
    tiny_hf_clip,
    tiny_hf_siglip2,
    tiny_open_clip_clip,
    tiny_open_clip_clip_2x2,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.games import JointGame
from fixlip_captum.methods.captum_methods import (
    FeatureAblationMethod,
    IntegratedGradientsMethod,
    KernelShapMethod,
    LimeMethod,
    ShapleyValueSamplingMethod,
)

CAPTION = "a red cat on the grass"
PERTURBATION = {
    "kernel_shap": lambda m, t, **kw: KernelShapMethod(m, t, n_samples=150, **kw),
    "shapley_value_sampling": lambda m, t, **kw: ShapleyValueSamplingMethod(
        m, t, n_samples=2, **kw
    ),
    "feature_ablation": lambda m, t, **kw: FeatureAblationMethod(m, t, **kw),
    "lime": lambda m, t, **kw: LimeMethod(m, t, n_samples=150, **kw),
}


@pytest.fixture(scope="module")
def setup():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    adapter = get_adapter(model, tok)
    image = random_pil_image(7)
    game = JointGame(adapter, image, CAPTION)
    return model, tok, adapter, image, game


@pytest.mark.parametrize("name", list(PERTURBATION))
def test_values_for_every_player_and_deterministic(setup, name):
    model, tok, _adapter, image, game = setup
    explainer = PERTURBATION[name](model, tok, seed=3)
    iv = explainer.attribute_interactions(image, CAPTION)
    n = game.n_players
    assert iv.n_players == n and iv.max_order == 1 and "-" not in iv.index
    assert set(iv.interaction_lookup) == {(), *[(i,) for i in range(n)]}
    assert np.all(np.isfinite(iv.values))
    assert iv.estimation_info["evaluations"] > 0
    again = PERTURBATION[name](model, tok, seed=3).attribute_interactions(image, CAPTION)
    np.testing.assert_array_equal(iv.values, again.values)
    assert iv.context.v_full == pytest.approx(game.v_full)
    state = torch.random.get_rng_state()
    explainer.attribute_interactions(image, CAPTION, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched


def test_feature_ablation_is_leave_one_out(setup):
    model, tok, _, image, game = setup
    iv = FeatureAblationMethod(model, tok).attribute_interactions(image, CAPTION)
    n = game.n_players
    leave_one_out = ~torch.eye(n, dtype=torch.bool)
    expected = game.v_full - game(leave_one_out).double().numpy()
    np.testing.assert_allclose([iv[(i,)] for i in range(n)], expected, atol=1e-5)
    assert iv.estimation_info["evaluations"] == n + 1


def test_sampling_methods_are_efficient_and_kernelshap_seed_matters(setup):
    model, tok, _, image, game = setup
    n = game.n_players
    svs = ShapleyValueSamplingMethod(model, tok, n_samples=2).attribute_interactions(image, CAPTION)
    total = sum(svs[(i,)] for i in range(n))
    # Every permutation's marginal contributions telescope to v(N) - v(empty).
    assert total == pytest.approx(game.v_full - game.v_empty, abs=1e-4)
    assert svs[()] == pytest.approx(game.v_empty)
    a = KernelShapMethod(model, tok, n_samples=100, seed=0).attribute_interactions(image, CAPTION)
    b = KernelShapMethod(model, tok, n_samples=100, seed=1).attribute_interactions(image, CAPTION)
    assert not np.allclose(a.values, b.values)


def test_shapley_value_sampling_converges_to_exact_sv():
    import shapiq

    model, tok = tiny_open_clip_clip_2x2(), open_clip_bpe_tokenizer()
    adapter = get_adapter(model, tok)
    image, caption = random_pil_image(5), "red cat grass"
    game = JointGame(adapter, image, caption)
    exact = shapiq.ExactComputer(
        lambda c: game(torch.as_tensor(np.asarray(c, dtype=bool))).double().numpy(),
        n_players=game.n_players,
    )("SV", 1)
    iv = ShapleyValueSamplingMethod(model, tok, n_samples=120).attribute_interactions(
        image, caption
    )
    est = np.array([iv[(i,)] for i in range(game.n_players)])
    ref = np.array([exact[(i,)] for i in range(game.n_players)])
    assert np.abs(est - ref).max() < 0.1 * np.abs(ref).max()


@pytest.mark.parametrize(
    "build, tok",
    [
        (tiny_open_clip_clip, open_clip_bpe_tokenizer),
        (tiny_hf_clip, hf_clip_processor),
        (tiny_hf_siglip2, hf_siglip2_processor),
    ],
)
def test_integrated_gradients_completeness(build, tok):
    model, tokenizer = build(), tok()
    adapter = get_adapter(model, tokenizer)
    image = random_pil_image(8)
    iv = IntegratedGradientsMethod(model, tokenizer, n_steps=32).attribute_interactions(
        image, CAPTION
    )
    text = adapter.tokenize(CAPTION)
    n = adapter.n_image_players + text.n_players
    assert iv.n_players == n
    assert set(iv.interaction_lookup) == {(), *[(i,) for i in range(n)]}
    total = sum(iv[(i,)] for i in range(n))
    # Sum of per-player attributions + F(baseline) = F(input) = the model's logit.
    assert total + iv[()] == pytest.approx(iv.context.v_full, abs=2e-3)
    assert abs(iv.estimation_info["convergence_delta"]) < 2e-3
    assert any(abs(iv[(adapter.n_image_players + t,)]) > 0 for t in range(text.n_players))
    assert all(p.grad is None for p in model.parameters())
