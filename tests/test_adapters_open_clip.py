"""open_clip adapter (CLIP with a ViT tower, CustomTextCLIP with a timm SigLIP trunk).

Reference values come from the model itself: its own ``forward``/``encode_*`` on the same
inputs, or the same network run by hand (pixels zeroed, tokens gathered, explicit key masks).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import open_clip
import pytest
import torch
from _models import (
    OPEN_CLIP_FAMILIES,
    open_clip_bpe_tokenizer,
    random_pixels,
    siglip_word_tokenizer,
    tiny_open_clip_clip,
    tiny_open_clip_siglip,
)
from PIL import Image

from fixlip_captum.adapters import OpenCLIPAdapter, UnsupportedModelError, get_adapter
from fixlip_captum.adapters.masking import map_head_over_nothing


@pytest.fixture(autouse=True)
def _no_grad():
    # Scoped to this module: a global switch would leak into the gradient-method tests.
    with torch.no_grad():
        yield


CAPTION = "a red cat on the grass"
ATOL = 1e-5
FAMILIES = OPEN_CLIP_FAMILIES


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    build, tok = FAMILIES[request.param]
    model, tokenizer = build(), tok()
    return request.param, model, tokenizer, get_adapter(model, tokenizer)


def _model_logit(model, pixels, ids):
    """The model's own logit for one pair, from its forward output."""
    out = model(pixels, ids[None])
    logit = out[2] * out[0] @ out[1].T
    if len(out) == 4:
        logit = logit + out[3]
    return float(logit[0, 0])


def _coalitions(m, n, seed, p=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, n, generator=g) < p


def test_dispatch_by_type(family):
    _name, model, tokenizer, adapter = family
    assert isinstance(adapter, OpenCLIPAdapter)
    assert get_adapter(adapter) is adapter
    assert adapter.patch_grid == (4, 4) and adapter.n_image_players == 16
    assert adapter.image_size == (32, 32)
    # A subclass is still detected by type, whatever its name.
    renamed = type("SomethingElse", (type(model),), {})
    model2 = object.__new__(renamed)
    model2.__dict__ = model.__dict__
    assert isinstance(get_adapter(model2, tokenizer), OpenCLIPAdapter)


def test_unsupported_model_lists_supported():
    with pytest.raises(UnsupportedModelError, match=r"open_clip\.CLIP") as info:
        get_adapter(torch.nn.Linear(3, 3))
    assert isinstance(info.value, TypeError)
    assert "transformers.Siglip2Model" in str(info.value)


def test_full_coalition_is_model_logit(family):
    name, model, _, adapter = family
    pixels = random_pixels(0)
    text = adapter.tokenize(CAPTION)
    expected = _model_logit(model, pixels, text.input_ids)
    for masking in ("mean", "drop"):
        img = adapter.encode_image(pixels, torch.ones(1, 16, dtype=torch.bool), masking)
        txt = adapter.encode_text(text, torch.ones(1, text.n_players, dtype=torch.bool))
        assert float(adapter.similarity(img, txt)[0, 0]) == pytest.approx(expected, abs=ATOL)
    cos = float(
        model.encode_image(pixels, normalize=True)
        @ model.encode_text(text.input_ids[None], normalize=True).T
    )
    sim = adapter.similarity(adapter.encode_image(pixels), adapter.encode_text(text), "cosine")
    assert float(sim) == pytest.approx(cos, abs=ATOL)
    if name == "siglip":
        # logit = exp(1.5) * cos - 10: the bias is applied.
        assert expected == pytest.approx(np.exp(1.5) * cos - 10.0, abs=1e-4)


def test_tokenize_players_and_labels(family):
    name, _, tokenizer, adapter = family
    text = adapter.tokenize(CAPTION)
    assert text.labels == ["a", "red", "cat", "on", "the", "grass"]
    assert text.input_ids.shape == (adapter.context_length,)
    if name == "clip":
        # [SOT] a red cat on the grass [EOT] 0 ...: players at 1..6, pooled at the EOT.
        assert text.player_positions.tolist() == [1, 2, 3, 4, 5, 6]
        assert int(text.input_ids[0]) == tokenizer.sot_token_id
        assert text.pool_position == 7
    else:
        # SigLIP layout: no start token, EOS == PAD, pooled at the last position.
        assert text.player_positions.tolist() == [0, 1, 2, 3, 4, 5]
        assert text.pool_position == adapter.context_length - 1
    # Ids (list or tensor, unpadded or padded) give the same TextInput.
    short = text.input_ids[: text.extra["end_position"] + 1]
    for ids in (short.tolist(), short, text.input_ids[None]):
        again = adapter.tokenize(ids)
        assert torch.equal(again.input_ids, text.input_ids)
        assert torch.equal(again.player_positions, text.player_positions)


def test_mean_masking_zeroes_patch_pixels(family):
    _name, model, _tokenizer, adapter = family
    pixels = random_pixels(1)
    coalitions = _coalitions(5, 16, seed=3)
    got = adapter.encode_image(pixels, coalitions, "mean")
    for row, keep in enumerate(coalitions):
        x = pixels.clone()
        for j in torch.nonzero(~keep).flatten().tolist():
            r, c = divmod(j, 4)
            x[:, :, 8 * r : 8 * r + 8, 8 * c : 8 * c + 8] = 0.0
        ref = model.encode_image(x, normalize=True)[0]
        torch.testing.assert_close(got[row], ref, atol=ATOL, rtol=0)


def test_drop_equals_cls_key_mask_for_clip_vit():
    """With CLS pooling, removing patch tokens equals masking them as attention keys."""
    model = tiny_open_clip_clip()
    adapter = get_adapter(model, open_clip_bpe_tokenizer())
    visual = model.visual
    pixels = random_pixels(2)
    coalitions = _coalitions(6, 16, seed=4)
    coalitions[0] = False  # only the class token left
    dropped = adapter.encode_image(pixels, coalitions, "drop")
    heads = visual.transformer.resblocks[0].attn.num_heads
    tokens = visual._embeds(pixels)
    for row, keep in enumerate(coalitions):
        keys = torch.cat([torch.ones(1, dtype=torch.bool), keep])
        mask = torch.zeros(17, 17).masked_fill(~keys[None, :], float("-inf"))
        x = visual.transformer(tokens, attn_mask=mask[None].repeat(heads, 1, 1))
        pooled, _ = visual._pool(x)
        ref = torch.nn.functional.normalize(pooled @ visual.proj, dim=-1)[0]
        torch.testing.assert_close(dropped[row], ref, atol=ATOL, rtol=0)
    # ... and differs from mean masking, a different value function.
    assert (dropped[1:] - adapter.encode_image(pixels, coalitions[1:], "mean")).abs().max() > 1e-3


def test_siglip_drop_is_token_removal_through_map_head():
    """timm trunk: drop = run the blocks and the MAP head on the kept patch tokens only."""
    model = tiny_open_clip_siglip()
    adapter = get_adapter(model, siglip_word_tokenizer())
    trunk = model.visual.trunk
    pixels = random_pixels(5)
    coalitions = _coalitions(4, 16, seed=6)
    got = adapter.encode_image(pixels, coalitions, "drop")
    tokens = trunk.norm_pre(trunk._pos_embed(trunk.patch_embed(pixels)))
    for row, keep in enumerate(coalitions):
        feats = trunk.forward_head(trunk.norm(trunk.blocks(tokens[:, keep])))
        ref = torch.nn.functional.normalize(model.visual.head(feats), dim=-1)[0]
        torch.testing.assert_close(got[row], ref, atol=ATOL, rtol=0)
    # timm's own attn_mask leaves the MAP head unmasked: masked patches leak (not equal).
    keep = coalitions[0]
    key_mask = torch.zeros(1, 1, 16, 16).masked_fill(~keep[None, None, None, :], float("-inf"))
    feats = trunk.forward_head(trunk.forward_features(pixels, attn_mask=key_mask))
    leaky = torch.nn.functional.normalize(model.visual.head(feats), dim=-1)[0]
    assert (leaky - got[0]).abs().max() > 1e-4
    # No patch left: the MAP head attends over nothing (a finite embedding, same every call)
    # and its attention output is the empty sum, 0: timm's own unfused head on zero tokens.
    empty = adapter.encode_image(pixels, torch.zeros(2, 16, dtype=torch.bool), "drop")
    assert torch.isfinite(empty).all() and torch.equal(empty[0], empty[1])
    unfused = copy.deepcopy(model)
    unfused.visual.trunk.attn_pool.fused_attn = False
    t = unfused.visual.trunk
    feats = t.forward_head(t.norm(t.blocks(tokens[:, :0])))
    ref = torch.nn.functional.normalize(unfused.visual.head(feats), dim=-1)[0]
    torch.testing.assert_close(empty[0], ref, atol=ATOL, rtol=0)


def test_map_head_over_nothing_on_timm_pool():
    """The shared empty-head rule on timm's AttentionPoolLatent: the head's output when
    every value it attends to is zero (value projection zeroed), whatever the keys."""
    pool = copy.deepcopy(tiny_open_clip_siglip().visual.trunk.attn_pool)
    d = pool.proj.weight.shape[0]
    pool.kv.weight[d:] = 0.0
    pool.kv.bias[d:] = 0.0
    x = torch.randn(3, 5, d, generator=torch.Generator().manual_seed(16))
    torch.testing.assert_close(map_head_over_nothing(pool, 3), pool(x), atol=ATOL, rtol=0)


def test_drop_batching_invariance(family):
    _name, _model, _tokenizer, adapter = family
    pixels = random_pixels(7)
    coalitions = _coalitions(24, 16, seed=8)
    full = adapter.encode_image(pixels, coalitions, "drop")
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    pieces = torch.cat(
        [adapter.encode_image(pixels, coalitions[perm][i : i + 5], "drop") for i in range(0, 24, 5)]
    )
    torch.testing.assert_close(pieces, full[perm], atol=ATOL, rtol=0)
    singles = torch.cat([adapter.encode_image(pixels, c[None], "drop") for c in coalitions[:6]])
    torch.testing.assert_close(singles, full[:6], atol=ATOL, rtol=0)


def test_text_key_mask_equals_token_removal(family):
    """Removing a token as a key equals removing it from the sequence while the others keep
    their position embeddings (causal order and pooled position are unchanged)."""
    name, model, _, adapter = family
    text = adapter.tokenize(CAPTION)
    coalitions = _coalitions(5, text.n_players, seed=9)
    coalitions[0] = False
    got = adapter.encode_text(text, coalitions)
    ids = text.input_ids[None]
    pool = text.pool_position
    for row, keep_players in enumerate(coalitions):
        keep = torch.ones(ids.shape[1], dtype=torch.bool)
        keep[text.player_positions] = keep_players
        new_pool = int(keep[:pool].sum())
        if name == "clip":
            x = model.token_embedding(ids) + model.positional_embedding
            x = x[:, keep]
            k = x.shape[1]
            x = model.transformer(x, attn_mask=model.attn_mask[:k, :k])
            feats = model.ln_final(x)[:, new_pool] @ model.text_projection
        else:
            t = model.text
            x = (t.token_embedding(ids) + t.positional_embedding)[:, keep]
            x = t.transformer(x, attn_mask=None)
            feats = t.text_projection(t.ln_final(x)[:, new_pool])
        ref = torch.nn.functional.normalize(feats, dim=-1)[0]
        torch.testing.assert_close(got[row], ref, atol=ATOL, rtol=0)


def test_masked_token_id_has_no_effect(family):
    _name, _model, _tokenizer, adapter = family
    text = adapter.tokenize(CAPTION)
    j = 2  # the token "cat"
    changed = text.input_ids.clone()
    changed[text.player_positions[j]] = int(text.input_ids[text.player_positions[1]])  # "red"
    other = dataclasses.replace(text, input_ids=changed)
    masked = torch.ones(3, text.n_players, dtype=torch.bool)
    masked[:, j] = False
    masked[1, 0] = False
    masked[2, :] = False
    torch.testing.assert_close(
        adapter.encode_text(text, masked), adapter.encode_text(other, masked), atol=0, rtol=0
    )
    # Kept, the id matters: the test above can fail.
    kept = torch.ones(1, text.n_players, dtype=torch.bool)
    assert (adapter.encode_text(text, kept) - adapter.encode_text(other, kept)).abs().max() > 1e-3


def test_preprocess_pil_and_display_image(family):
    _name, _model, _tokenizer, adapter = family
    rng = np.random.default_rng(0)
    pil = Image.fromarray(rng.integers(0, 256, size=(48, 40, 3), dtype=np.uint8))
    x = adapter.preprocess_image(pil)
    assert x.shape == (1, 3, 32, 32) and x.dtype == torch.float32
    shown = adapter.display_image(x)
    assert shown.shape == (32, 32, 3) and shown.min() >= 0 and shown.max() <= 1
    # Un-normalising undoes the normalisation exactly: re-normalised it is x again.
    cfg = adapter._preprocess_cfg
    mean = torch.tensor(cfg.mean).view(3, 1, 1)
    std = torch.tensor(cfg.std).view(3, 1, 1)
    back = (torch.from_numpy(shown).float().permute(2, 0, 1) - mean) / std
    torch.testing.assert_close(back, x[0], atol=1e-5, rtol=0)
    # A tensor input is only checked, not changed.
    assert torch.equal(adapter.preprocess_image(x[0]), x)


def test_clear_errors(family):
    name, _model, _, adapter = family
    with pytest.raises(ValueError, match="image tensor has shape"):
        adapter.preprocess_image(torch.zeros(1, 3, 48, 48))
    with pytest.raises(ValueError, match="image tensor has shape"):
        adapter.preprocess_image(torch.zeros(1, 1, 32, 32))
    with pytest.raises(TypeError, match=r"PIL\.Image or a tensor"):
        adapter.preprocess_image(np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="caption is empty"):
        adapter.tokenize("   ")
    with pytest.raises(ValueError, match="longer than the model's context"):
        adapter.tokenize(" ".join(["cat"] * adapter.context_length))
    # Exactly filling the context is fine; one token more is not.
    n_special = 2 if name == "clip" else 1
    fits = adapter.tokenize(" ".join(["cat"] * (adapter.context_length - n_special)))
    assert fits.n_players == adapter.context_length - n_special
    with pytest.raises(ValueError, match="longer than the model's context"):
        adapter.tokenize(" ".join(["cat"] * (adapter.context_length - n_special + 1)))
    with pytest.raises(ValueError, match="context"):
        adapter.tokenize(list(range(3, 3 + adapter.context_length + 1)))
    with pytest.raises(ValueError, match="image masking"):
        adapter.encode_image(random_pixels(0), torch.ones(1, 16, dtype=torch.bool), "blur")
    with pytest.raises(TypeError, match=r"torch\.bool"):
        adapter.encode_image(random_pixels(0), torch.ones(1, 16), "mean")
    with pytest.raises(ValueError, match=r"shape \[m, 16\]"):
        adapter.encode_image(random_pixels(0), torch.ones(1, 15, dtype=torch.bool), "mean")
    with pytest.raises(ValueError, match="value must be"):
        adapter.similarity(torch.ones(1, 4), torch.ones(1, 4), "dot")


def test_tokenizer_required_for_non_bpe_vocabulary():
    with pytest.raises(ValueError, match="pass its tokenizer"):
        OpenCLIPAdapter(tiny_open_clip_siglip())
    # The BPE-vocabulary CLIP falls back to open_clip's own tokenizer.
    adapter = OpenCLIPAdapter(tiny_open_clip_clip())
    assert isinstance(adapter.tokenizer, open_clip.SimpleTokenizer)
    assert adapter.tokenize(CAPTION).labels[-1] == "grass"


def test_half_precision_model_takes_float32_inputs(family):
    """A bfloat16 copy of the model (as open_clip's precision='bf16' loads it) encodes the
    float32 preprocessed image; its score is the float32 score up to bf16 rounding."""
    import copy

    _name, model, tokenizer, adapter = family
    half = get_adapter(copy.deepcopy(model).to(torch.bfloat16), tokenizer)
    pixels = random_pixels(9)
    text = adapter.tokenize(CAPTION)
    coalitions = _coalitions(3, 16, seed=10)
    for masking in ("mean", "drop"):
        ref = adapter.similarity(
            adapter.encode_image(pixels, coalitions, masking), adapter.encode_text(text)
        )
        got = half.similarity(
            half.encode_image(pixels, coalitions, masking), half.encode_text(text)
        )
        assert got.dtype == torch.float32
        assert (got - ref).abs().max() < 0.1


# ---------------------------------------------------------------------------------------
# Issue 20/19: pooling kinds under drop, tokenizer kinds, refusals, token-id checks
# ---------------------------------------------------------------------------------------

BERT_WORDS = ("a", "red", "cat", "on", "the", "grass", "photo", "of")


def _wordpiece_tokenizer(tmp_path, strip_sep: bool):
    """open_clip's ``HFTokenizer`` around an offline WordPiece (BERT) tokenizer, as CLIPA."""
    from open_clip.tokenizer import HFTokenizer
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS]
    BertTokenizerFast(vocab={w: i for i, w in enumerate(words)}).save_pretrained(tmp_path)
    return HFTokenizer(str(tmp_path), context_length=12, strip_sep_token=strip_sep)


def _tiny_clipa(vocab_size: int, final_ln_after_pool: bool):
    """CLIPA-shaped CustomTextCLIP: averaged patch tokens (no pooled class token),
    bidirectional text tower pooled at the last position."""
    torch.manual_seed(5)
    vision = dict(
        image_size=32,
        patch_size=8,
        width=32,
        layers=2,
        head_width=16,
        no_ln_pre=True,
        pool_type="avg",
        final_ln_after_pool=final_ln_after_pool,
    )
    text = dict(
        context_length=12,
        vocab_size=vocab_size,
        width=32,
        heads=2,
        layers=2,
        pool_type="last",
        no_causal_mask=True,
    )
    return open_clip.CustomTextCLIP(embed_dim=16, vision_cfg=vision, text_cfg=text).eval()


@pytest.mark.parametrize("strip_sep", [True, False])
@pytest.mark.parametrize("final_ln_after_pool", [True, False])
def test_clipa_wordpiece_special_tokens_and_average_pool_drop(
    tmp_path, strip_sep, final_ln_after_pool
):
    tokenizer = _wordpiece_tokenizer(tmp_path, strip_sep)
    model = _tiny_clipa(len(tokenizer.tokenizer), final_ln_after_pool)
    adapter = get_adapter(model, tokenizer)
    text = adapter.tokenize("a red cat")
    assert text.labels == ["a", "red", "cat"]  # no [CLS], no [SEP]
    assert int(text.input_ids[0]) == tokenizer.tokenizer.cls_token_id
    px = random_pixels(2)
    ids = tokenizer(["a red cat"])[0]
    v = float(adapter.similarity(adapter.encode_image(px), adapter.encode_text(text))[0, 0])
    assert v == pytest.approx(_model_logit(model, px, ids), abs=ATOL)
    full = torch.ones(1, 16, dtype=torch.bool)
    torch.testing.assert_close(adapter.encode_image(px, full, "drop"), adapter.encode_image(px))
    none = adapter.encode_image(px, torch.zeros(1, 16, dtype=torch.bool), "drop")
    # The mean of no patch is zero: what the tower makes of a zero pooled feature.
    zero = torch.zeros(1, 32)
    pooled = model.visual.ln_post(zero) if final_ln_after_pool else zero
    expected = torch.nn.functional.normalize(pooled @ model.visual.proj, dim=-1)
    torch.testing.assert_close(none, expected)


def test_timm_average_pool_drop_keeps_no_patch_finite():
    import timm
    from open_clip.timm_model import TimmModel

    torch.manual_seed(6)
    trunk = timm.models.vision_transformer.VisionTransformer(
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=1,
        num_heads=2,
        class_token=False,
        global_pool="avg",
        num_classes=0,
    )
    model = copy.deepcopy(tiny_open_clip_siglip())
    visual = TimmModel("vit_tiny_patch16_224", embed_dim=32, image_size=32, pool="", proj="linear")
    visual.trunk = trunk.eval()
    visual.head = torch.nn.Linear(32, 32)
    model.visual = visual
    adapter = get_adapter(model, siglip_word_tokenizer())
    px = random_pixels(3)
    full = torch.ones(1, 16, dtype=torch.bool)
    torch.testing.assert_close(
        adapter.encode_image(px, full, "drop"), adapter.encode_image(px), atol=1e-6, rtol=1e-5
    )
    none = adapter.encode_image(px, torch.zeros(1, 16, dtype=torch.bool), "drop")
    expected = torch.nn.functional.normalize(visual.head(trunk.fc_norm(torch.zeros(1, 32))), dim=-1)
    torch.testing.assert_close(none, expected)


def test_unsupported_towers_name_the_classes():
    model = copy.deepcopy(tiny_open_clip_siglip())
    model.visual.trunk.patch_embed.proj = torch.nn.Identity()  # a conv stem (MobileCLIP-B)
    # no maskable patch tokens: pixel-grid players (output-stride grid), "drop" refused
    adapter = get_adapter(model, siglip_word_tokenizer())
    assert adapter.patch_grid == (1, 1) and adapter.image_maskings == ("mean",)
    with pytest.raises(ValueError, match="has no patch tokens to drop"):
        adapter.encode_image(random_pixels(0), torch.ones(1, 1, dtype=torch.bool), "drop")
    model = copy.deepcopy(tiny_open_clip_siglip())
    model.text = torch.nn.Linear(2, 2)
    with pytest.raises(UnsupportedModelError, match="text tower Linear"):
        get_adapter(model, siglip_word_tokenizer())


def test_token_ids_checked_and_special_only_caption_refused():
    adapter = get_adapter(tiny_open_clip_clip(), open_clip_bpe_tokenizer())
    ids = open_clip_bpe_tokenizer()(["a cat"])[0]
    with pytest.raises(TypeError, match="integers"):
        adapter.tokenize(ids.float() + 0.4)
    with pytest.raises(ValueError, match=r"\[0, 49408\)"):
        adapter.tokenize(torch.tensor([49406, 50000, 49407]))
    with pytest.raises(ValueError, match=r"besides special tokens"):
        adapter.tokenize("<start_of_text>")


def test_unknown_words_are_warned_about():
    from fixlip_captum.models import get_tokenizer, load_default

    model, _, tokenizer = load_default()
    adapter = get_adapter(model, tokenizer)
    with pytest.warns(UserWarning, match="unknown to the tokenizer"):
        text = adapter.tokenize("a zebra circle")
    assert text.n_players == 3
    assert get_tokenizer is not None
