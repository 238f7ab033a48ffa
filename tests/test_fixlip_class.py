"""The Captum-style FIxLIP class: dual-encoder and generic paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _models import (
    OPEN_CLIP_FAMILIES,
    hf_clip_processor,
    hf_siglip2_processor,
    hf_siglip_processor,
    open_clip_bpe_tokenizer,
    random_pil_image,
    random_pixels,
    siglip_word_tokenizer,
    tiny_hf_clip,
    tiny_hf_siglip,
    tiny_hf_siglip2,
    tiny_open_clip_clip_2x2,
    tiny_open_clip_siglip,
)
from captum.attr import PerturbationAttribution, ShapleyValues
from shapiq import ExactComputer

import fixlip_captum
from fixlip_captum import FIxLIP, FIxLIPInteractionValues, NotIdentifiableError, exact_interactions
from fixlip_captum.adapters import UnsupportedModelError

torch.set_num_threads(1)

CAPTION = "a red cat"
BUDGET = 2**11  # 8 text masks (all of 2^3) x 256 image masks
FAMILIES = OPEN_CLIP_FAMILIES


@pytest.fixture(params=sorted(FAMILIES))
def explainer(request):
    build, tok = FAMILIES[request.param]
    return FIxLIP(build(), tok())


def _model_logit(model, pixels, ids):
    with torch.no_grad():
        out = model(pixels, ids[None])
    logit = out[2] * out[0] @ out[1].T + (out[3] if len(out) == 4 else 0)
    return float(logit.detach())


def test_is_a_captum_perturbation_attribution(explainer):
    assert fixlip_captum.FIxLIP is FIxLIP
    assert isinstance(explainer, PerturbationAttribution)
    assert explainer.multiplies_by_inputs is False
    assert explainer.adapter is not None


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_attribute_interactions_and_context(explainer, p):
    pixels = random_pixels(0)
    iv = explainer.attribute_interactions(pixels, CAPTION, p=p, budget=BUDGET, seed=0)
    assert isinstance(iv, FIxLIPInteractionValues)
    assert iv.n_players == 16 + 3 and iv.max_order == 2 and iv.p == p
    assert iv.index == ("FBII" if p == 0.5 else "FWBII")
    ctx = iv.context
    assert ctx.grid == (4, 4) and ctx.token_labels == ["a", "red", "cat"]
    assert ctx.caption == CAPTION and ctx.image.shape == (32, 32, 3)
    ids = explainer.adapter.tokenize(CAPTION).input_ids
    assert ctx.v_full == pytest.approx(_model_logit(explainer.adapter.model, pixels, ids), abs=1e-5)
    info = iv.estimation_info
    assert info["m_text"] == 8 and info["text_enumerated"] is True
    assert info["m_image"] == BUDGET // 8 and info["image_masking"] == "mean"
    assert info["adapter"] == "OpenCLIPAdapter" and info["value"] == "logit"
    # Same seed, same values; another seed, other values.
    again = explainer.attribute_interactions(pixels, CAPTION, p=p, budget=BUDGET, seed=0)
    np.testing.assert_array_equal(again.values, iv.values)
    other = explainer.attribute_interactions(pixels, CAPTION, p=p, budget=BUDGET, seed=1)
    assert np.abs(other.values - iv.values).max() > 1e-6


def test_shapley_mode_is_efficient(explainer):
    """FSII enforces f(empty) = v(empty) and f(N) = v(N): the Shapley values of the fitted
    surrogate add up to v(N) - v(empty) exactly, whatever the budget."""
    iv = explainer.attribute_interactions(
        random_pixels(1), CAPTION, mode="shapley", budget=400, seed=0
    )
    assert iv.index == "FSII" and iv.estimation_info["mode"] == "shapley"
    phi = iv.first_order()
    ctx = iv.context
    assert phi.sum() == pytest.approx(ctx.v_full - ctx.v_empty, abs=1e-4)
    assert iv[()] == pytest.approx(ctx.v_empty, abs=1e-4)


@pytest.mark.parametrize("p", [0.5, 0.3])
def test_enumerated_budget_gives_exact_values(p):
    """2 x 2 patches and 3 tokens: a budget of 2^4 x 2^3 pairs enumerates both modalities,
    so the cross-modal result is the exact FWBII(p) of the joint game (shapiq's FBII at
    p = 0.5, the exact enumeration estimator otherwise)."""
    explainer = FIxLIP(tiny_open_clip_clip_2x2(), open_clip_bpe_tokenizer())
    pixels = random_pixels(7)
    iv = explainer.attribute_interactions(pixels, CAPTION, p=p, budget=2**7, seed=0)
    info = iv.estimation_info
    assert info["image_enumerated"] and info["text_enumerated"] and iv.n_players == 7
    joint = explainer.make_game(pixels, CAPTION).joint()
    if p == 0.5:
        ref = ExactComputer(
            n_players=7, game=lambda x: joint(torch.as_tensor(x, dtype=torch.bool)).double().numpy()
        )("FBII", 2)
    else:
        ref = exact_interactions(joint, 7, p=p)
    terms = [t for t in ref.interaction_lookup if len(t) >= 1]
    assert len(terms) == 7 + 21
    assert max(abs(iv[t] - ref[t]) for t in terms) < 1e-5
    assert max(abs(ref[t]) for t in terms) > 1e-2  # a real game, not all zeros


def test_enumerated_shapley_mode_equals_shapiq_fsii():
    explainer = FIxLIP(tiny_open_clip_clip_2x2(), open_clip_bpe_tokenizer())
    pixels = random_pixels(8)
    iv = explainer.attribute_interactions(pixels, CAPTION, mode="shapley", budget=2**7)
    joint = explainer.make_game(pixels, CAPTION).joint()
    ref = ExactComputer(
        n_players=7, game=lambda x: joint(torch.as_tensor(x, dtype=torch.bool)).double().numpy()
    )("FSII", 2)
    # shapiq enforces v(empty), v(N) with a large finite weight; we solve exactly.
    assert max(abs(iv[t] - ref[t]) for t in ref.interaction_lookup if t) < 1e-4


@pytest.mark.parametrize(
    "build, processor",
    [
        (tiny_hf_clip, hf_clip_processor),
        (tiny_hf_siglip, hf_siglip_processor),
        (tiny_hf_siglip2, hf_siglip2_processor),
    ],
)
def test_transformers_models_through_fixlip(build, processor):
    explainer = FIxLIP(build(), processor())
    adapter = explainer.adapter
    image = random_pil_image(0)
    iv = explainer.attribute_interactions(image, CAPTION, mode="shapley", budget=300, seed=0)
    assert iv.context.grid == adapter.patch_grid and iv.context.token_labels == ["a", "red", "cat"]
    text = adapter.tokenize(CAPTION)
    pixels = adapter.preprocess_image(image)
    with torch.no_grad():
        full = adapter.similarity(adapter.encode_image(pixels), adapter.encode_text(text))
    assert iv.context.v_full == pytest.approx(float(full), abs=1e-5)
    phi = iv.first_order()
    assert phi.sum() == pytest.approx(iv.context.v_full - iv.context.v_empty, abs=1e-4)
    (pix_attr, tok_attr), ivs = explainer.attribute(
        (pixels, text.input_ids[None]),
        mode="shapley",
        budget=300,
        seed=0,
        return_interactions=True,
    )
    assert pix_attr.shape == pixels.shape
    # The caption's ids (as the processor pads them) explain the same game as the caption.
    assert ivs[0].context.v_full == pytest.approx(iv.context.v_full, abs=1e-6)
    assert ivs[0].context.v_empty == pytest.approx(iv.context.v_empty, abs=1e-6)
    phi_ids = torch.as_tensor(ivs[0].first_order(), dtype=torch.float32)
    torch.testing.assert_close(
        phi_ids, torch.as_tensor(phi, dtype=torch.float32), atol=1e-5, rtol=0
    )
    assert torch.equal(tok_attr[0, text.player_positions], phi_ids[-3:])
    n_i = adapter.n_image_players
    assert torch.equal(pix_attr[0, 0], phi_ids[:n_i][adapter.pixel_player_map()])


def test_attribute_maps_carry_player_values(explainer):
    adapter = explainer.adapter
    pixels = torch.cat([random_pixels(2), random_pixels(3)])
    captions = [CAPTION, "a big dog"]
    ids = torch.stack([adapter.tokenize(c).input_ids for c in captions])
    (pix_attr, tok_attr), ivs = explainer.attribute(
        (pixels, ids), budget=BUDGET, seed=0, p=0.7, return_interactions=True
    )
    assert pix_attr.shape == pixels.shape and tok_attr.shape == ids.shape
    for b, iv in enumerate(ivs):
        phi = torch.as_tensor(iv.first_order(), dtype=torch.float32)
        for j in range(16):
            r, c = divmod(j, 4)
            patch = pix_attr[b, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8]
            assert torch.equal(patch, torch.full_like(patch, float(phi[j])))
        positions = adapter.tokenize(ids[b]).player_positions
        assert torch.equal(tok_attr[b, positions], phi[16:])
        others = torch.ones(ids.shape[1], dtype=torch.bool)
        others[positions] = False
        assert torch.equal(tok_attr[b, others], torch.zeros(int(others.sum())))
    # A batch equals one call per example.
    single = explainer.attribute((pixels[1:], ids[1:]), budget=BUDGET, seed=0, p=0.7)
    torch.testing.assert_close(single[0], pix_attr[1:], atol=0, rtol=0)
    torch.testing.assert_close(single[1], tok_attr[1:], atol=0, rtol=0)


def test_lists_of_pairs_equal_single_calls(explainer):
    images = [random_pixels(4), random_pixels(5)]
    captions = [CAPTION, "a blue dog"]
    kwargs = dict(budget=BUDGET, seed=3)
    many = explainer.attribute_interactions(images, captions, **kwargs)
    assert isinstance(many, list) and len(many) == 2
    for img, cap, iv in zip(images, captions, many, strict=True):
        one = explainer.attribute_interactions(img, cap, **kwargs)
        np.testing.assert_array_equal(one.values, iv.values)
        assert one.context.caption == cap
    # One image with several captions; a [B, C, H, W] tensor counts as B images.
    shared = explainer.attribute_interactions(images[0], captions, **kwargs)
    np.testing.assert_array_equal(shared[0].values, many[0].values)
    stacked = explainer.attribute_interactions(torch.cat(images), captions, **kwargs)
    np.testing.assert_array_equal(stacked[1].values, many[1].values)


def test_drop_masking_and_cosine_value():
    explainer = FIxLIP(
        tiny_open_clip_siglip(), siglip_word_tokenizer(), image_masking="drop", value="cosine"
    )
    iv = explainer.attribute_interactions(random_pixels(6), CAPTION, budget=BUDGET, seed=0)
    assert iv.estimation_info["image_masking"] == "drop"
    model = explainer.adapter.model
    ids = explainer.adapter.tokenize(CAPTION).input_ids[None]
    with torch.no_grad():
        out = model(random_pixels(6), ids)
    assert iv.context.v_full == pytest.approx(float(out[0] @ out[1].T), abs=1e-5)


def test_errors(explainer):
    pixels = random_pixels(0)
    for p in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="p must lie strictly between 0 and 1"):
            explainer.attribute_interactions(pixels, CAPTION, p=p, budget=BUDGET)
    with pytest.raises(ValueError, match="budget must be a positive integer"):
        explainer.attribute_interactions(pixels, CAPTION, budget=0)
    with pytest.raises(TypeError, match="budget must be an int"):
        explainer.attribute_interactions(pixels, CAPTION, budget=100.5)
    with pytest.raises(ValueError, match="mode must be"):
        explainer.attribute_interactions(pixels, CAPTION, budget=BUDGET, mode="owen")
    with pytest.raises(NotIdentifiableError):
        explainer.attribute_interactions(pixels, CAPTION, budget=64)
    with pytest.raises(ValueError, match="image tensor has shape"):
        explainer.attribute_interactions(torch.zeros(1, 3, 64, 64), CAPTION, budget=BUDGET)
    with pytest.raises(ValueError, match="image tensor has shape"):
        explainer.attribute_interactions(torch.zeros(1, 4, 32, 32), CAPTION, budget=BUDGET)
    with pytest.raises(ValueError, match="caption is empty"):
        explainer.attribute_interactions(pixels, " ", budget=BUDGET)
    with pytest.raises(ValueError, match="longer than the model's context"):
        explainer.attribute_interactions(pixels, "cat " * 40, budget=BUDGET)
    with pytest.raises(ValueError, match="2 images and 3 captions"):
        explainer.attribute_interactions([pixels, pixels], ["a", "b", "c"], budget=BUDGET)
    shapley_cross = explainer.attribute_interactions(
        pixels, CAPTION, mode="shapley", pairs="crossmodal", budget=BUDGET, seed=0
    )
    n_i = shapley_cross.context.n_image
    assert all(len(t) < 2 or t[0] < n_i <= t[1] for t in shapley_cross.interaction_lookup)
    ids = explainer.adapter.tokenize(CAPTION).input_ids[None]
    with pytest.raises(ValueError, match="feature_mask is not used for a dual encoder"):
        explainer.attribute((pixels, ids), feature_mask=torch.zeros(1, 16), budget=BUDGET)
    with pytest.raises(ValueError, match=r"\(pixel_values \[B, C, H, W\], input_ids"):
        explainer.attribute(pixels, budget=BUDGET)
    with pytest.raises(ValueError, match="image_masking"):
        FIxLIP(explainer.adapter.model, image_masking="noise")


def test_unsupported_models():
    with pytest.raises(UnsupportedModelError, match="Supported models"):
        FIxLIP(object())
    generic = FIxLIP(torch.nn.Linear(3, 1))
    assert generic.adapter is None
    with pytest.raises(TypeError, match=r"open_clip\.CLIP"):
        generic.attribute_interactions(random_pixels(0), CAPTION)


# ------------------------------------------------------------------ generic path


def _forward(x1, x2):
    """v = 2 a + 3 (b + c) + 5 a d - e with players a | (b, c) | d | e."""
    f = 2 * x1[:, 0] + 3 * (x1[:, 1] + x1[:, 2]) + 5 * x1[:, 0] * x2[:, 0] - x2[:, 1]
    return torch.stack([f, -f], dim=1)


GENERIC_INPUTS = (
    torch.tensor([[1.0, 0.5, 0.5], [2.0, 1.0, 0.0]]),
    torch.tensor([[1.0, 2.0], [0.5, 1.0]]),
)
GENERIC_MASK = (torch.tensor([[0, 1, 1]]), torch.tensor([[2, 3]]))


@pytest.mark.parametrize("p", [0.3, 0.5])
def test_generic_path_exact_banzhaf(p):
    """Budget >= 2^4 enumerates: e_a = 2 x_a, e_bc = 3 (x_b + x_c), e_ad = 5 x_a x_d,
    e_e = -x_e, so phi_a = e_a + p e_ad, phi_d = p e_ad (hand-derived)."""
    explainer = FIxLIP(_forward)
    attrs, ivs = explainer.attribute(
        GENERIC_INPUTS,
        target=0,
        feature_mask=GENERIC_MASK,
        p=p,
        budget=16,
        return_interactions=True,
    )
    x1, x2 = GENERIC_INPUTS
    for b in range(2):
        a, bc, d, e = x1[b, 0], x1[b, 1] + x1[b, 2], x2[b, 0], x2[b, 1]
        e_ad = 5 * a * d
        phi = [2 * a + p * e_ad, 3 * bc, p * e_ad, -e]
        expected1 = torch.tensor([phi[0], phi[1], phi[1]])
        expected2 = torch.tensor([phi[2], phi[3]])
        torch.testing.assert_close(attrs[0][b], expected1, atol=1e-5, rtol=0)
        torch.testing.assert_close(attrs[1][b], expected2, atol=1e-5, rtol=0)
        assert ivs[b][(0, 2)] == pytest.approx(float(e_ad), abs=1e-8)
        assert ivs[b][(1, 3)] == pytest.approx(0.0, abs=1e-8)
    # target=1 explains the negated output.
    neg = explainer.attribute(GENERIC_INPUTS, target=1, feature_mask=GENERIC_MASK, p=p, budget=16)
    torch.testing.assert_close(neg[0], -attrs[0], atol=1e-5, rtol=0)


def test_generic_shapley_matches_captum_shapley_values():
    """For this 2-additive game the FSII first-order values are the Shapley values, which
    captum's exact ShapleyValues computes by enumerating permutations."""
    explainer = FIxLIP(_forward)
    baselines = (0.0, torch.tensor([[0.5, -1.0]]))
    ours = explainer.attribute(
        GENERIC_INPUTS,
        baselines=baselines,
        target=0,
        feature_mask=GENERIC_MASK,
        mode="shapley",
        budget=16,
    )
    ref = ShapleyValues(_forward).attribute(
        GENERIC_INPUTS, baselines=baselines, target=0, feature_mask=GENERIC_MASK
    )
    for o, r in zip(ours, ref, strict=True):
        torch.testing.assert_close(o, r.float(), atol=1e-5, rtol=0)


def test_generic_path_default_mask_and_tensor_input():
    """Without a feature mask every scalar is a player; a tensor input gives a tensor."""
    weights = torch.tensor([1.0, -2.0, 0.5])
    x = torch.tensor([[1.0, 2.0, 3.0]])
    attr = FIxLIP(lambda t: t @ weights).attribute(x, budget=8, p=0.4)
    assert isinstance(attr, torch.Tensor)
    torch.testing.assert_close(attr, x * weights, atol=1e-5, rtol=0)
