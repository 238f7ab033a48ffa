"""Grad-ECLIP and GAME on tiny random-init models (open_clip CLIP, transformers CLIP)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _models import (
    MODEL_FAMILIES,
    hf_clip_processor,
    hf_siglip2_processor,
    hf_siglip_processor,
    open_clip_bpe_tokenizer,
    random_pil_image,
    siglip_word_tokenizer,
    tiny_hf_clip,
    tiny_hf_siglip,
    tiny_hf_siglip2,
    tiny_open_clip_clip,
    tiny_open_clip_siglip,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.methods._towers import AttentionRecorder, Towers
from fixlip_captum.methods.game import GAME
from fixlip_captum.methods.grad_eclip import GradECLIP

CAPTION = "a red cat on the grass"
FAMILIES = {name: MODEL_FAMILIES[name] for name in ("open_clip", "hf_clip")}


@pytest.fixture(params=list(FAMILIES))
def family(request):
    build, tok = FAMILIES[request.param]
    model, tokenizer = build(), tok()
    adapter = get_adapter(model, tokenizer)
    pixel_values = adapter.preprocess_image(random_pil_image(0))
    text = adapter.tokenize(CAPTION)
    return request.param, model, tokenizer, adapter, pixel_values, text


def _own_outputs(model, adapter, pixel_values, text):
    with torch.no_grad():
        img = adapter.encode_image(pixel_values, None)
        txt = adapter.encode_text(text, None)
    return img.clone(), txt.clone()


def _hooks(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_recorder_reproduces_model_and_single_head_does_not(family):
    _, model, _, adapter, px, text = family
    towers = Towers(model, get_adapter(model))
    ids, mask = text.input_ids[None], text.attention_mask[None]
    with torch.no_grad():
        ref_i, ref_t = towers.encode_image(px), towers.encode_text(ids, mask)
    with towers.eager(), torch.no_grad():
        with (
            AttentionRecorder(towers, towers.image_attention),
            AttentionRecorder(towers, towers.text_attention),
        ):
            rec_i, rec_t = towers.encode_image(px), towers.encode_text(ids, mask)
        with AttentionRecorder(towers, towers.image_attention, single_head=True):
            single_i = towers.encode_image(px)
    torch.testing.assert_close(rec_i, ref_i, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rec_t, ref_t, atol=1e-5, rtol=1e-5)
    assert (single_i - ref_i).abs().max() > 1e-3
    # The model's own encoder (adapter path) gives the same embedding direction.
    torch.testing.assert_close(F.normalize(ref_i, dim=-1), adapter.encode_image(px, None))


def test_open_clip_recorded_attention_is_the_modules_own():
    model = tiny_open_clip_clip()
    adapter = get_adapter(model, open_clip_bpe_tokenizer())
    px = adapter.preprocess_image(random_pil_image(1))
    towers = Towers(model, get_adapter(model))
    block = towers.image_blocks[-1]
    seen = {}
    handle = block.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    with torch.no_grad(), AttentionRecorder(towers, [block.attn]) as rec:
        towers.encode_image(px)
    handle.remove()
    x = block.ln_1(seen["x"])
    with torch.no_grad():
        _, weights = block.attn(x, x, x, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(rec.records[0].attn, weights, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["grad_eclip", "grad_eclip_single", "game", "game_all"])
def test_players_finite_deterministic_and_model_untouched(family, method):
    _name, model, tokenizer, adapter, px, text = family
    make = {
        "grad_eclip": lambda: GradECLIP(model, tokenizer),
        "grad_eclip_single": lambda: GradECLIP(model, tokenizer, heads="single"),
        "game": lambda: GAME(model, tokenizer),
        "game_all": lambda: GAME(model, tokenizer, start_layer=0),
    }[method]
    before = _own_outputs(model, adapter, px, text)
    hooks_before = _hooks(model)
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    explainer = make()
    iv = explainer.attribute_interactions(px, CAPTION)
    iv2 = explainer.attribute_interactions(px, CAPTION)
    after = _own_outputs(model, adapter, px, text)

    n_i, n_t = adapter.n_image_players, text.n_players
    assert iv.n_players == n_i + n_t == len(iv.context.token_labels) + n_i
    assert iv.max_order == 1
    assert iv.index == explainer.index and "-" not in iv.index
    assert set(iv.interaction_lookup) == {(), *[(i,) for i in range(n_i + n_t)]}
    assert np.all(np.isfinite(iv.values))
    np.testing.assert_array_equal(iv.values, iv2.values)
    assert np.abs(iv.values).sum() > 0
    assert iv.context.grid == adapter.patch_grid
    assert iv.context.v_full == pytest.approx(
        float(adapter.similarity(*before, value="logit")[0, 0]), abs=1e-5
    )
    # The model is exactly as before: same outputs, no hooks left, no gradients stored,
    # same attention implementation.
    torch.testing.assert_close(after[0], before[0], atol=0, rtol=0)
    torch.testing.assert_close(after[1], before[1], atol=0, rtol=0)
    assert _hooks(model) == hooks_before
    assert all(p.grad is None for p in model.parameters())
    if impl is not None:
        assert model.config._attn_implementation == impl
    img, txt = explainer.attribute(px, CAPTION)
    assert img.shape == adapter.patch_grid and txt.shape == (n_t,)
    np.testing.assert_allclose(img.reshape(-1).numpy(), iv.values[1 : n_i + 1], rtol=1e-6)


def test_grad_eclip_explains_models_cosine_only_with_model_heads(family):
    _, model, tokenizer, *_ = family
    px = random_pil_image(2)
    info = GradECLIP(model, tokenizer).attribute_interactions(px, CAPTION).estimation_info
    assert info["explained_cosine"] == pytest.approx(info["model_cosine"], abs=1e-5)
    single = GradECLIP(model, tokenizer, heads="single").attribute_interactions(px, CAPTION)
    assert abs(single.estimation_info["explained_cosine"] - info["model_cosine"]) > 1e-4
    assert np.all(single.values >= 0)


def _hf_reference_states(model, px, ids, mask, n_text_layers):
    """q, k, v and head outputs O (with d cos / d O) from the model's own modules."""
    store = {}
    handles = []
    towers = {
        "img": list(model.vision_model.encoder.layers)[-1:],
        "txt": list(model.text_model.encoder.layers)[-n_text_layers:],
    }
    for tower, layers in towers.items():
        for li, layer in enumerate(layers):
            att = layer.self_attn
            for nm in ("q_proj", "k_proj", "v_proj"):
                handles.append(
                    getattr(att, nm).register_forward_hook(
                        lambda m, a, o, key=(tower, li, nm): store.__setitem__(key, o)
                    )
                )
            handles.append(
                att.out_proj.register_forward_pre_hook(
                    lambda m, a, key=(tower, li, "o"): store.__setitem__(key, a[0])
                )
            )
    try:
        fi = F.normalize(model.get_image_features(pixel_values=px).pooler_output, dim=-1)
        ft = F.normalize(
            model.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1
        )
        keys = [k for k in store if k[2] == "o"]
        target = (fi * ft.detach()).sum() + (fi.detach() * ft).sum()
        grads = torch.autograd.grad(target, [store[k] for k in keys])
    finally:
        for h in handles:
            h.remove()
    return store, dict(zip(keys, grads, strict=True)), towers


def test_grad_eclip_matches_hand_computation_hf_clip():
    """Grad-ECLIP from the formula, with q, k, v and d cos / d O read from the model's own
    projections (no recomputation): image = last block at CLS, text = all blocks at EOT."""
    model, proc = tiny_hf_clip(), hf_clip_processor()
    adapter = get_adapter(model, proc)
    px = adapter.preprocess_image(random_pil_image(3))
    text = adapter.tokenize(CAPTION)
    ids, mask = text.input_ids[None], text.attention_mask[None]
    n_layers = len(model.text_model.encoder.layers)
    store, grads, _towers = _hf_reference_states(model, px, ids, mask, n_layers)
    heads = model.config.vision_config.num_attention_heads

    def contribution(tower, li, query, norm):
        q, k, v = (store[(tower, li, nm)][0].detach() for nm in ("q_proj", "k_proj", "v_proj"))
        length, width = k.shape
        dh = width // heads
        w = grads[(tower, li, "o")][0, query].view(heads, dh)
        total = torch.zeros(length)
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            sim = F.cosine_similarity(q[query, sl][None], k[:, sl], dim=-1)
            lam = (sim - sim[norm].min()) / (sim[norm].max() - sim[norm].min())
            total += lam * (v[:, sl] @ w[h])
        return total

    n_i = adapter.n_image_players
    patches = torch.arange(1, 1 + n_i)
    img = contribution("img", 0, 0, patches)[patches].clamp_min(0)
    eos = int((text.input_ids == 1).nonzero()[0])
    all_pos = torch.arange(ids.shape[1])
    txt = sum(contribution("txt", li, eos, all_pos) for li in range(n_layers))
    txt = txt[text.player_positions].clamp_min(0)

    iv = GradECLIP(model, proc).attribute_interactions(px, CAPTION)
    np.testing.assert_allclose(iv.values[1 : 1 + n_i], img.numpy(), atol=1e-6, rtol=1e-4)
    np.testing.assert_allclose(iv.values[1 + n_i :], txt.numpy(), atol=1e-6, rtol=1e-4)


def test_game_matches_eager_attention_gradients_hf_clip():
    """GAME from the attention probabilities that transformers itself returns (eager)."""
    import copy

    model, proc = tiny_hf_clip(), hf_clip_processor()
    adapter = get_adapter(model, proc)
    px = adapter.preprocess_image(random_pil_image(4))
    text = adapter.tokenize(CAPTION)
    ids, mask = text.input_ids[None], text.attention_mask[None]
    ref = copy.deepcopy(model)
    ref.set_attn_implementation("eager")
    vo = ref.vision_model(pixel_values=px, output_attentions=True)
    to = ref.text_model(input_ids=ids, attention_mask=mask, output_attentions=True)
    fi = F.normalize(ref.visual_projection(vo.pooler_output), dim=-1)
    ft = F.normalize(ref.text_projection(to.pooler_output), dim=-1)
    logit = ref.logit_scale.exp() * (fi * ft).sum()
    att = [*vo.attentions, *to.attentions]
    grads = torch.autograd.grad(logit, att)

    def rollout(attn, grad, start):
        rel = torch.eye(attn[0].shape[-1], dtype=torch.float64)
        for a, g in list(zip(attn, grad, strict=True))[start:]:
            rel = rel + (g[0] * a[0].detach()).clamp_min(0).mean(0).double() @ rel
        return rel

    n_v = len(vo.attentions)
    n_i = adapter.n_image_players
    eos = int((text.input_ids == 1).nonzero()[0])
    for start in (-1, 0):
        r_i = rollout(vo.attentions, grads[:n_v], start)
        r_t = rollout(to.attentions, grads[n_v:], start)
        expected = np.concatenate(
            [r_i[0, 1 : 1 + n_i].numpy(), r_t[eos, text.player_positions].numpy()]
        )
        iv = GAME(model, proc, start_layer=start).attribute_interactions(px, CAPTION)
        np.testing.assert_allclose(iv.values[1:], expected, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    "build, tok",
    [
        (tiny_hf_siglip, hf_siglip_processor),
        (tiny_hf_siglip2, hf_siglip2_processor),
        (tiny_open_clip_siglip, siglip_word_tokenizer),
    ],
)
@pytest.mark.parametrize("cls", [GradECLIP, GAME])
def test_siglip_raises_clear_error(build, tok, cls):
    with pytest.raises(NotImplementedError, match="class token"):
        cls(build(), tok())


def test_bad_arguments_raise():
    model, tok = tiny_open_clip_clip(), open_clip_bpe_tokenizer()
    with pytest.raises(ValueError, match="heads"):
        GradECLIP(model, tok, heads="two")
    with pytest.raises(ValueError, match="start_layer"):
        GAME(model, tok, start_layer=5)
