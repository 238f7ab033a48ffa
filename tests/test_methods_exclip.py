"""exCLIP: completeness identity, players, determinism, model untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _models import (
    MODEL_FAMILIES,
    TOWER_FAMILIES,
    hf_clip_processor,
    hf_siglip_processor,
    open_clip_bpe_tokenizer,
    random_pil_image,
    tiny_hf_clip,
    tiny_hf_siglip,
    tiny_open_clip_clip,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.methods._towers import Towers
from fixlip_captum.methods.exclip import ExCLIP

CAPTION = "a red cat on the grass"
# exCLIP on the other open_clip towers (it runs on Eva, refuses the rest):
# tests/test_adapters_towers.py
FAMILIES = {k: v for k, v in MODEL_FAMILIES.items() if k not in TOWER_FAMILIES}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_completeness_identity_converges(name):
    """sum A = scale (e_t - e_t_ref).(e_i - e_i_ref) / (|e_t| |e_i|) up to the Riemann error,
    which shrinks like 1/N (the right Riemann sum is first-order accurate)."""
    build, tok = FAMILIES[name]
    model, tokenizer = build(), tok()
    sums = []
    for n_steps in (16, 64):
        explainer = ExCLIP(model, tokenizer, n_steps=n_steps)
        res = explainer.compute(*explainer.prepare(random_pil_image(0), CAPTION))
        sums.append(float(res.matrix.sum()))
        target = res.target()
    errors = [abs(s - target) / abs(target) for s in sums]
    assert errors[1] < 0.1
    assert errors[1] < errors[0] / 2.5  # ~4x smaller for 4x the steps
    # Richardson extrapolation removes the 1/N term: the identity holds to O(1/N^2).
    extrapolated = (4 * sums[1] - sums[0]) / 3
    assert extrapolated == pytest.approx(target, rel=5e-3)


def test_embeddings_are_the_models_and_model_untouched():
    model, tok = tiny_hf_clip(), hf_clip_processor()
    adapter = get_adapter(model, tok)
    px = adapter.preprocess_image(random_pil_image(1))
    text = adapter.tokenize(CAPTION)
    towers = Towers(model, get_adapter(model))
    with torch.no_grad():
        e_i = towers.encode_image(px)[0]
        e_t = towers.encode_text(text.input_ids[None], text.attention_mask[None])[0]
    impl = model.config._attn_implementation
    res = ExCLIP(model, tok).compute(px, text)
    # The path's end point (alpha = 1) reproduces the model's own embeddings.
    torch.testing.assert_close(res.e_image, e_i, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(res.e_text, e_t, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(towers.encode_image(px)[0], e_i, atol=0, rtol=0)
    assert model.config._attn_implementation == impl
    assert all(p.grad is None for p in model.parameters())
    assert res.u_text.shape == (e_t.shape[0], text.input_ids.shape[0])
    assert res.u_image.shape == (e_i.shape[0], 1 + adapter.n_image_players)


@pytest.mark.parametrize("name", ["open_clip", "hf_siglip"])
def test_players_pairs_only_and_deterministic(name):
    build, tok = FAMILIES[name]
    model, tokenizer = build(), tok()
    adapter = get_adapter(model, tokenizer)
    text = adapter.tokenize(CAPTION)
    n_i, n_t = adapter.n_image_players, text.n_players
    explainer = ExCLIP(model, tokenizer, n_steps=8)
    image = random_pil_image(2)
    iv = explainer.attribute_interactions(image, CAPTION)
    assert iv.index == "exCLIP" and iv.max_order == 2 and iv.n_players == n_i + n_t
    pair_terms = {(i, n_i + t) for i in range(n_i) for t in range(n_t)}
    assert set(iv.interaction_lookup) == {(), *pair_terms}
    assert iv[()] == 0.0
    assert np.all(np.isfinite(iv.values))
    matrix = explainer.attribute(image, CAPTION)
    assert matrix.shape == (n_t, *adapter.patch_grid)
    flat = matrix.reshape(n_t, n_i)
    for t, i in [(0, 0), (n_t - 1, n_i - 1), (1, 5)]:
        assert iv[(i, n_i + t)] == pytest.approx(float(flat[t, i]), rel=1e-5, abs=1e-7)
    iv2 = explainer.attribute_interactions(image, CAPTION)
    np.testing.assert_array_equal(iv.values, iv2.values)
    assert iv.estimation_info["player_total"] == pytest.approx(float(flat.sum()), rel=1e-4)
    with torch.no_grad():
        img_emb = adapter.encode_image(adapter.preprocess_image(image))
        v_full = float(adapter.similarity(img_emb, adapter.encode_text(text))[0, 0])
    assert iv.context.v_full == pytest.approx(v_full, abs=1e-5)


def test_cosine_value_divides_out_the_scale():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    image = random_pil_image(3)
    logit = ExCLIP(model, tok, n_steps=4).attribute(image, CAPTION)
    cosine = ExCLIP(model, tok, n_steps=4, value="cosine").attribute(image, CAPTION)
    torch.testing.assert_close(
        logit, cosine * float(model.logit_scale.detach().exp()), rtol=1e-5, atol=1e-7
    )


def test_bad_arguments_raise():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    with pytest.raises(ValueError, match="n_steps"):
        ExCLIP(model, tok, n_steps=0)
    with pytest.raises(ValueError, match="layer"):
        ExCLIP(model, tok, layer=7)


def test_reference_text_filler():
    # open_clip's BPE vocabulary has "." (id 269); the toy HF vocabulary has not, so the
    # smallest non-special id is used (start = 0 and end = pad = 1 are special there).
    oc = ExCLIP(tiny_open_clip_clip(), open_clip_bpe_tokenizer(), n_steps=2)
    assert oc._filler(oc.adapter.tokenize(CAPTION)) == 269
    hf = ExCLIP(tiny_hf_clip(), hf_clip_processor(), n_steps=2)
    assert hf._filler(hf.adapter.tokenize(CAPTION)) == 2
    image = random_pil_image(4)
    own = ExCLIP(tiny_hf_clip(), hf_clip_processor(), n_steps=2, text_filler_id=5)
    res = own.compute(*own.prepare(image, CAPTION))
    assert res.filler == 5
    assert not torch.allclose(res.matrix, hf.compute(*hf.prepare(image, CAPTION)).matrix)


def test_jacobian_chunking_does_not_change_the_result():
    model, tok = tiny_hf_siglip(), hf_siglip_processor()
    image = random_pil_image(6)
    a = ExCLIP(model, tok, n_steps=3, jacobian_chunk=5)
    b = ExCLIP(model, tok, n_steps=3)
    ra = a.compute(*a.prepare(image, CAPTION))
    rb = b.compute(*b.prepare(image, CAPTION))
    torch.testing.assert_close(ra.matrix, rb.matrix, atol=1e-6, rtol=1e-5)
