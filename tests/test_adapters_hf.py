"""transformers adapters (CLIPModel, SiglipModel, Siglip2Model) on tiny random-init models.

Every reference value comes from the model itself: its ``logits_per_image`` on the
processor's inputs, or the same network run by hand with an explicit key mask.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import numpy as np
import pytest
import torch
from _models import (
    hf_clip_processor,
    hf_siglip2_processor,
    hf_siglip_processor,
    random_pil_image,
    tiny_hf_clip,
    tiny_hf_siglip,
    tiny_hf_siglip2,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.adapters.hf_clip import HFCLIPAdapter
from fixlip_captum.adapters.hf_dual_encoder import l2_normalize
from fixlip_captum.adapters.hf_siglip import HFSiglipAdapter
from fixlip_captum.adapters.hf_siglip2 import HFSiglip2Adapter
from fixlip_captum.adapters.masking import map_head_over_nothing

torch.set_num_threads(1)

FAMILIES = {
    "clip": (tiny_hf_clip, hf_clip_processor, HFCLIPAdapter),
    "siglip": (tiny_hf_siglip, hf_siglip_processor, HFSiglipAdapter),
    "siglip2": (tiny_hf_siglip2, hf_siglip2_processor, HFSiglip2Adapter),
}
CAPTION = "a red cat on the grass"
ATOL = 1e-5


@pytest.fixture(scope="module")
def eager_models(tmp_path_factory):
    """The same tiny models saved and reloaded with ``from_pretrained`` and eager attention
    (additive float masks instead of SDPA's boolean ones)."""
    out = {}
    for family, (build, _, _) in FAMILIES.items():
        path = tmp_path_factory.mktemp(family)
        model = build()
        model.save_pretrained(path)
        out[family] = type(model).from_pretrained(path, attn_implementation="eager").eval()
    return out


def _model(family: str, attn: str, eager_models) -> torch.nn.Module:
    return FAMILIES[family][0]() if attn == "sdpa" else eager_models[family]


def _processor_inputs(family: str, captions, image, processor):
    """What a user would feed ``model(**inputs)`` for this family."""
    if family == "clip":
        return processor(text=captions, images=image, padding=True, return_tensors="pt")
    text = processor.tokenizer(captions, padding="max_length", max_length=12, return_tensors="pt")
    if family == "siglip":
        images = processor.image_processor(images=image, return_tensors="pt")
    else:
        ip = processor.image_processor
        images = ip(images=image, max_num_patches=ip.max_num_patches, return_tensors="pt")
    return {**text, **images}


def _coalitions(m: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(m, n, generator=g) < 0.5
    c[0] = False  # the empty coalition
    c[1] = True  # the full one
    return c


# ---------------------------------------------------------------------------------------
# All players kept: the adapter reproduces the model's own scores.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_unmasked_equals_model_logits(family, attn, eager_models):
    model = _model(family, attn, eager_models)
    processor = FAMILIES[family][1]()
    adapter = get_adapter(model, processor)
    assert type(adapter) is FAMILIES[family][2]
    # SigLIP2's adapter explains a square grid: give it a square image so the processor
    # (aspect-preserving) sees the same pixels.
    image = random_pil_image(3, 32, 32) if family == "siglip2" else random_pil_image(3, 40, 48)
    captions = [CAPTION, "a big blue dog"]
    with torch.no_grad():
        ref = model(**_processor_inputs(family, captions, image, processor))
        pixels = adapter.preprocess_image(image)
        texts = torch.cat([adapter.encode_text(adapter.tokenize(c)) for c in captions])
        for masking in ("mean", "drop"):
            img = adapter.encode_image(pixels, masking=masking)
            logits = adapter.similarity(img, texts)
            assert logits.dtype == torch.float32 and logits.shape == (1, 2)
            torch.testing.assert_close(logits, ref.logits_per_image, atol=ATOL, rtol=0)
            cosine = adapter.similarity(img, texts, value="cosine")
            torch.testing.assert_close(
                cosine, ref.image_embeds @ ref.text_embeds.T, atol=ATOL, rtol=0
            )
    # The scale (and bias) really enter: logit != cosine.
    assert (logits - cosine).abs().min() > 0.1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_token_ids_and_tensors_without_processor(family):
    """adapter(model, None): token ids and preprocessed tensors equal the model's call."""
    model = FAMILIES[family][0]()
    adapter = get_adapter(model, None)
    ids = {
        "clip": [0, 2, 27, 18, 1],
        "siglip": [3, 8, 6, 1, 1, 1],
        "siglip2": [2, 4, 9, 7, 1, 0, 0],
    }[family]
    text = adapter.tokenize(ids)
    expected_players = {"clip": [1, 2, 3], "siglip": [0, 1, 2], "siglip2": [1, 2, 3]}[family]
    assert text.player_positions.tolist() == expected_players
    assert text.labels == [f"<{ids[i]}>" for i in expected_players]
    g = torch.Generator().manual_seed(5)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        ours = adapter.similarity(adapter.encode_image(pixels), adapter.encode_text(text))
        input_ids = torch.tensor([ids])
        if family == "siglip2":
            patches = adapter.patchify(pixels)
            ref = model(
                input_ids=input_ids,
                pixel_values=patches,
                pixel_attention_mask=torch.ones(1, 16, dtype=torch.long),
                spatial_shapes=torch.tensor([[4, 4]]),
            )
        else:
            ref = model(input_ids=input_ids, pixel_values=pixels)
    torch.testing.assert_close(ours, ref.logits_per_image, atol=ATOL, rtol=0)


def test_siglip2_other_grid_and_patch_layout():
    """max_num_patches=25 -> a 5 x 5 grid (position embeddings resized from 4 x 4); the
    adapter's patchify is the processor's layout."""
    from transformers.models.siglip2.image_processing_siglip2 import convert_image_to_patches

    model, processor = tiny_hf_siglip2(), hf_siglip2_processor(25)
    adapter = HFSiglip2Adapter(model, processor)
    assert adapter.patch_grid == (5, 5) and adapter.image_size == (40, 40)
    assert HFSiglip2Adapter(model, processor, max_num_patches=12).patch_grid == (3, 3)
    image = random_pil_image(4, 40, 40)
    pixels = adapter.preprocess_image(image)
    torch.testing.assert_close(
        adapter.patchify(pixels)[0], convert_image_to_patches(pixels[0], 8), atol=0, rtol=0
    )
    torch.testing.assert_close(adapter.unpatchify(adapter.patchify(pixels)), pixels)
    with torch.no_grad():
        ref = model(**_processor_inputs("siglip2", [CAPTION], image, processor))
        ours = adapter.similarity(
            adapter.encode_image(pixels), adapter.encode_text(adapter.tokenize(CAPTION))
        )
    torch.testing.assert_close(ours, ref.logits_per_image, atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tokenize_players_labels_and_padding(family):
    adapter = get_adapter(FAMILIES[family][0](), FAMILIES[family][1]())
    text = adapter.tokenize("A red CAT")
    assert text.labels == ["a", "red", "cat"]
    assert text.text == "A red CAT"
    if family == "clip":
        # start, 3 words, end; no padding (CLIP is causal and pools at end-of-text).
        assert text.input_ids.numel() == 5
        assert text.player_positions.tolist() == [1, 2, 3]
        assert text.pool_position == 4
    else:
        # SigLIP pads to the context and pools at the last position.
        assert text.input_ids.numel() == 12
        assert text.pool_position == 11
        first = 0 if family == "siglip" else 1  # SigLIP2's tokenizer adds a start token
        assert text.player_positions.tolist() == [first, first + 1, first + 2]
        # The tokenizer's padding mask is kept as it is.
        assert text.attention_mask.tolist() == [1] * (first + 4) + [0] * (8 - first)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_caption_and_its_ids_give_the_same_text_input(family):
    """A caption string and the processor's ids for it (no mask given) give the same
    TextInput (the tokenizer's padding mask) and the same embeddings, so FIxLIP.attribute
    ((pixels, ids)) explains the same game as attribute_interactions(image, caption)."""
    model, processor = FAMILIES[family][0](), FAMILIES[family][1]()
    adapter = get_adapter(model, processor)
    for caption in ("a red cat", CAPTION, " ".join(["cat"] * 10)):
        text = adapter.tokenize(caption)
        kwargs = {} if family == "clip" else {"padding": "max_length", "max_length": 12}
        enc = processor.tokenizer(caption, **kwargs)
        assert text.input_ids.tolist() == enc["input_ids"]
        assert text.attention_mask.tolist() == enc["attention_mask"]
        c = _coalitions(6, text.n_players, seed=15)
        for ids in (text.input_ids, text.input_ids.tolist(), text.input_ids[None]):
            same = adapter.tokenize(ids)
            assert torch.equal(same.input_ids, text.input_ids)
            assert torch.equal(same.attention_mask, text.attention_mask)
            assert torch.equal(same.player_positions, text.player_positions)
            assert same.labels == text.labels and same.extra == text.extra
            with torch.no_grad():
                torch.testing.assert_close(
                    adapter.encode_text(same, c), adapter.encode_text(text, c), atol=0, rtol=0
                )
    if family != "clip":
        # Attending the padding is a different function (what the ids path used to do).
        text = adapter.tokenize("a red cat")
        ones = {"input_ids": text.input_ids, "attention_mask": torch.ones_like(text.input_ids)}
        with torch.no_grad():
            diff = adapter.encode_text(adapter.tokenize(ones)) - adapter.encode_text(text)
        assert diff.abs().max() > 1e-2


@pytest.mark.parametrize("side", ["left", "right"])
def test_ids_mask_follows_the_tokenizer_padding(side):
    """A tokenizer with no end token (padding id 0): its padding, on either side, is
    masked for ids as for the caption; the last word stays at the pooled position."""
    from _models import _word_tokenizer

    tokenizer = _word_tokenizer({"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}, "$A", pad="<pad>")
    tokenizer.padding_side = side
    adapter = HFSiglip2Adapter(tiny_hf_siglip2(), tokenizer)
    with pytest.warns(UserWarning, match="always kept") if side == "left" else nullcontext():
        text = adapter.tokenize("a red cat")
        same = adapter.tokenize(text.input_ids)
    expected = [0] * 9 + [1] * 3 if side == "left" else [1] * 3 + [0] * 9
    assert text.attention_mask.tolist() == expected
    assert torch.equal(same.attention_mask, text.attention_mask)
    assert torch.equal(same.player_positions, text.player_positions)


# ---------------------------------------------------------------------------------------
# Text masking: the masked token is removed as a key; its id has no effect.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_masked_token_id_has_no_effect(family, attn, eager_models):
    model = _model(family, attn, eager_models)
    adapter = get_adapter(model, FAMILIES[family][1]())
    text = adapter.tokenize(CAPTION)  # 6 players: a red cat on the grass
    tok = adapter.tokenizer
    dog, big = tok.convert_tokens_to_ids(tok.tokenize("dog") + tok.tokenize("big"))
    pos = text.player_positions
    # (kept players, {masked player: replacement id})
    cases = [
        (torch.tensor([[True, False, True, True, False, True]]), {1: big, 4: dog}),
        (torch.tensor([[False, True, True, True, True, True]]), {0: dog}),
    ]
    with torch.no_grad():
        for c, swaps in cases:
            alt = copy.deepcopy(text)
            for player, new_id in swaps.items():
                alt.input_ids[pos[player]] = new_id
            a, b = adapter.encode_text(text, c), adapter.encode_text(alt, c)
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
            # The same swap with the tokens kept does change the embedding, and masking
            # does change it: the comparison above can fail.
            full_a = adapter.encode_text(text)
            assert (full_a - adapter.encode_text(alt)).abs().max() > 1e-3
            assert (a - full_a).abs().max() > 1e-3


@pytest.mark.parametrize("family", list(FAMILIES))
def test_text_mask_reaches_the_model_as_attention_mask(family):
    """The masked encoding is the model's own text tower with attention_mask 0 on the
    masked tokens and the tokenizer's mask elsewhere (hand-built input, same model)."""
    model = FAMILIES[family][0]()
    adapter = get_adapter(model, FAMILIES[family][1]())
    text = adapter.tokenize(CAPTION)
    c = torch.tensor([[True, False, False, True, True, False]])
    mask = text.attention_mask.clone()
    mask[text.player_positions[[1, 2, 5]]] = 0
    with torch.no_grad():
        ref = model.get_text_features(
            input_ids=text.input_ids[None], attention_mask=mask[None]
        ).pooler_output
        torch.testing.assert_close(adapter.encode_text(text, c), l2_normalize(ref))


# ---------------------------------------------------------------------------------------
# Image masking.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_mean_masking_zeroes_row_major_patch_pixels(family):
    """Player 6 of the 4 x 4 grid is row 1, column 2: pixels [8:16, 16:24]."""
    model = FAMILIES[family][0]()
    adapter = get_adapter(model, None)
    g = torch.Generator().manual_seed(6)
    pixels = torch.randn(1, 3, 32, 32, generator=g) + 1.0
    c = torch.ones(1, 16, dtype=torch.bool)
    c[0, 6] = False
    manual = pixels.clone()
    manual[..., 8:16, 16:24] = 0.0
    assert adapter.pixel_player_map()[12, 20] == 6
    with torch.no_grad():
        ours = adapter.encode_image(pixels, c, masking="mean")
        if family == "siglip2":
            ref = model.get_image_features(
                pixel_values=adapter.patchify(manual),
                pixel_attention_mask=torch.ones(1, 16, dtype=torch.long),
                spatial_shapes=torch.tensor([[4, 4]]),
            ).pooler_output
        else:
            ref = model.get_image_features(pixel_values=manual).pooler_output
        torch.testing.assert_close(ours, l2_normalize(ref), atol=ATOL, rtol=0)
        assert (ours - adapter.encode_image(pixels)).abs().max() > 1e-3


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_clip_drop_equals_additive_key_mask(attn, eager_models):
    """CLIP pools only the class token, so removing patch tokens == -inf keys."""
    model = _model("clip", attn, eager_models)
    adapter = HFCLIPAdapter(model)
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    c = _coalitions(10, 16, seed=7)
    vision = model.vision_model
    with torch.no_grad():
        ours = adapter.encode_image(pixels, c, masking="drop")
        h = vision.pre_layrnorm(vision.embeddings(pixels)).expand(10, -1, -1)
        keep = torch.cat([torch.ones(10, 1, dtype=torch.bool), c], dim=1)  # class token kept
        additive = torch.zeros(10, 1, 17, 17)
        additive.masked_fill_(~keep[:, None, None, :], torch.finfo(torch.float32).min)
        out = vision.encoder(inputs_embeds=h, attention_mask=additive).last_hidden_state
        ref = model.visual_projection(vision.post_layernorm(out[:, 0]))
        torch.testing.assert_close(ours, l2_normalize(ref), atol=ATOL, rtol=0)
        # and it is a different value function from mean masking
        assert (ours - adapter.encode_image(pixels, c, masking="mean")).abs().max() > 1e-3


def _masked_map_head(head, hidden, keep):
    """SigLIP's MAP head with the masked keys excluded (a key padding mask)."""
    probe = head.probe.expand(hidden.shape[0], -1, -1)
    x = head.attention(probe, hidden, hidden, key_padding_mask=~keep)[0]
    x = x + head.mlp(head.layernorm(x))
    return x[:, 0]


def test_siglip_drop_equals_key_mask_in_encoder_and_head():
    """SigLIP: token drop == key mask in every layer AND in the MAP head; a key mask in the
    encoder alone leaks the masked tokens through the head (why the adapter drops)."""
    model = tiny_hf_siglip()
    adapter = HFSiglipAdapter(model)
    g = torch.Generator().manual_seed(8)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    c = _coalitions(10, 16, seed=8)[1:]  # the empty coalition has no keys to mask
    vision = model.vision_model
    m = c.shape[0]
    with torch.no_grad():
        ours = adapter.encode_image(pixels, c, masking="drop")
        h = vision.embeddings(pixels).expand(m, -1, -1)
        additive = torch.zeros(m, 1, 16, 16).masked_fill_(
            ~c[:, None, None, :], torch.finfo(torch.float32).min
        )
        out = vision.post_layernorm(
            vision.encoder(inputs_embeds=h, attention_mask=additive).last_hidden_state
        )
        ref = _masked_map_head(vision.head, out, c)
        torch.testing.assert_close(ours, l2_normalize(ref), atol=ATOL, rtol=0)
        leaky = l2_normalize(vision.head(out))
        assert (leaky[1:] - ours[1:]).abs().max() > 1e-3


def test_siglip2_drop_is_token_removal_and_ignores_masked_content():
    model = tiny_hf_siglip2()
    adapter = HFSiglip2Adapter(model)
    g = torch.Generator().manual_seed(9)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    c = _coalitions(10, 16, seed=9)
    noisy = pixels + 3.0 * torch.randn(1, 3, 32, 32, generator=g)
    vision = model.vision_model
    with torch.no_grad():
        ours = adapter.encode_image(pixels, c, masking="drop")
        for row in range(2, 10):  # rows 0/1: nothing masked / everything masked
            keep_pix = adapter._pixel_keep_mask(c[row : row + 1])
            changed = pixels * keep_pix + noisy * (1 - keep_pix)
            other = adapter.encode_image(changed, c[row : row + 1], masking="drop")
            torch.testing.assert_close(other, ours[row : row + 1], atol=ATOL, rtol=0)
            mean_a = adapter.encode_image(pixels, c[row : row + 1], masking="mean")
            mean_b = adapter.encode_image(changed, c[row : row + 1], masking="mean")
            torch.testing.assert_close(mean_a, mean_b, atol=ATOL, rtol=0)  # zeroed anyway
        # Explicit removal: gather the kept tokens after the (resized) position embedding.
        emb = vision.embeddings(adapter.patchify(pixels), torch.tensor([[4, 4]]))[0]
        for row in range(1, 10):
            kept = torch.nonzero(c[row]).flatten()
            hidden = vision.encoder(inputs_embeds=emb[kept][None]).last_hidden_state
            ref = vision.head(vision.post_layernorm(hidden))
            torch.testing.assert_close(ours[row : row + 1], l2_normalize(ref), atol=ATOL, rtol=0)


@pytest.mark.parametrize("family", ["siglip", "siglip2"])
def test_map_head_over_nothing(family):
    """With no patch left, the head's attention output is its out-projection bias alone:
    the same as attending to one key whose value projection is zero."""
    model = FAMILIES[family][0]()
    adapter = get_adapter(model, None)
    head = copy.deepcopy(model.vision_model.head)
    d = head.probe.shape[-1]
    with torch.no_grad():
        head.attention.in_proj_weight[2 * d :] = 0.0
        head.attention.in_proj_bias[2 * d :] = 0.0
        ref = head(torch.randn(3, 1, d))
        torch.testing.assert_close(map_head_over_nothing(head, 3), ref)
        empty = torch.zeros(2, 16, dtype=torch.bool)
        ours = adapter.encode_image(torch.randn(1, 3, 32, 32), empty, masking="drop")
        expected = l2_normalize(map_head_over_nothing(model.vision_model.head, 1))
        torch.testing.assert_close(ours, expected.expand(2, -1))
        assert torch.isfinite(ours).all()


@pytest.mark.parametrize("masking", ["mean", "drop"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_embeddings_do_not_depend_on_batching(family, masking):
    adapter = get_adapter(FAMILIES[family][0](), FAMILIES[family][1]())
    g = torch.Generator().manual_seed(11)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    c = _coalitions(14, 16, seed=11)
    text = adapter.tokenize(CAPTION)
    ct = _coalitions(9, text.n_players, seed=12)
    with torch.no_grad():
        together = adapter.encode_image(pixels, c, masking)
        singles = torch.cat(
            [adapter.encode_image(pixels, c[i : i + 1], masking) for i in range(14)]
        )
        perm = torch.randperm(14, generator=g)
        shuffled = adapter.encode_image(pixels, c[perm], masking)
        torch.testing.assert_close(singles, together, atol=ATOL, rtol=0)
        torch.testing.assert_close(shuffled, together[perm], atol=ATOL, rtol=0)
        t_together = adapter.encode_text(text, ct)
        t_chunks = torch.cat([adapter.encode_text(text, ct[:4]), adapter.encode_text(text, ct[4:])])
        torch.testing.assert_close(t_chunks, t_together, atol=ATOL, rtol=0)
        assert adapter.encode_image(pixels, c[:0], masking).shape == (0, together.shape[1])
    # distinct coalitions give distinct embeddings (the comparison above is not vacuous)
    assert (together[2:] - together[1]).abs().amax(dim=1).min() > 1e-4


def test_display_image_undoes_normalisation():
    for family in FAMILIES:
        adapter = get_adapter(FAMILIES[family][0](), FAMILIES[family][1]())
        g = torch.Generator().manual_seed(13)
        shown = torch.rand(3, 32, 32, generator=g)
        mean, std = adapter._mean_std()
        out = adapter.display_image(((shown - mean) / std)[None])
        assert out.shape == (32, 32, 3)
        np.testing.assert_allclose(out, shown.permute(1, 2, 0).numpy(), atol=1e-6)
    # without a processor, the family's published constants are used
    clip = HFCLIPAdapter(tiny_hf_clip())
    assert clip._mean_std()[0].flatten().tolist() == pytest.approx(
        [0.48145466, 0.4578275, 0.40821073]
    )
    # a processor with half a normalisation is refused, not completed with a guess
    adapter = get_adapter(FAMILIES["clip"][0](), FAMILIES["clip"][1]())
    # a copy: the test processors are cached and shared with other tests
    adapter.image_processor = copy.deepcopy(adapter.image_processor)
    adapter.image_processor.image_std = None
    with pytest.raises(ValueError, match="only one of image_mean / image_std"):
        adapter._mean_std()


# ---------------------------------------------------------------------------------------
# Clear errors.
# ---------------------------------------------------------------------------------------


def test_wrong_model_or_processor_type():
    with pytest.raises(TypeError, match="CLIPModel"):
        HFCLIPAdapter(tiny_hf_siglip())
    with pytest.raises(TypeError, match="SiglipModel"):
        HFSiglipAdapter(tiny_hf_siglip2())
    with pytest.raises(TypeError, match="Siglip2Model"):
        HFSiglip2Adapter(tiny_hf_clip())
    with pytest.raises(TypeError, match="tokenizer_or_processor"):
        HFCLIPAdapter(tiny_hf_clip(), "openai/clip-vit-base-patch32")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_image_errors(family):
    adapter = get_adapter(FAMILIES[family][0](), FAMILIES[family][1]())
    if family == "siglip2":  # any whole number of patches (the grid follows the image)
        with pytest.raises(ValueError, match="whole patches"):
            adapter.preprocess_image(torch.zeros(1, 3, 20, 20))
    else:
        with pytest.raises(ValueError, match="32x32"):
            adapter.preprocess_image(torch.zeros(1, 3, 24, 24))
    with pytest.raises(ValueError, match="channels"):
        adapter.preprocess_image(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="one image"):
        adapter.encode_image(torch.zeros(2, 3, 32, 32))
    with pytest.raises(TypeError, match="PIL image or a tensor"):
        adapter.preprocess_image(np.zeros((32, 32, 3)))
    with pytest.raises(ValueError, match="processor"):
        get_adapter(FAMILIES[family][0](), None).preprocess_image(random_pil_image(0))
    pixels = torch.zeros(1, 3, 32, 32)
    with pytest.raises(TypeError, match=r"torch\.bool"):
        adapter.encode_image(pixels, torch.ones(2, 16))
    with pytest.raises(ValueError, match=r"\[m, 16\]"):
        adapter.encode_image(pixels, torch.ones(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="masking"):
        adapter.encode_image(pixels, masking="zero")
    with pytest.raises(ValueError, match="value"):
        adapter.similarity(torch.ones(1, 4), torch.ones(1, 4), value="probability")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_caption_errors(family):
    adapter = get_adapter(FAMILIES[family][0](), FAMILIES[family][1]())
    for empty in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            adapter.tokenize(empty)
    with pytest.raises(ValueError, match="no tokens to explain"):
        adapter.tokenize("zebra")  # unknown word -> the unknown token, a special token
    # Context 12: CLIP and SigLIP2 spend two positions on start/end, SigLIP one on end.
    fits = 11 if family == "siglip" else 10
    assert adapter.tokenize(" ".join(["cat"] * fits)).n_players == fits
    with pytest.raises(ValueError, match="context is 12"):
        adapter.tokenize(" ".join(["cat"] * (fits + 1)))
    with pytest.raises(ValueError, match=r"must lie in \[0, "):
        adapter.tokenize([0, 10_000, 1])
    with pytest.raises(TypeError, match="TextInput"):
        adapter.encode_text([0, 2, 1])
    text = adapter.tokenize(CAPTION)
    with pytest.raises(ValueError, match=r"\[m, 6\]"):
        adapter.encode_text(text, torch.ones(1, 5, dtype=torch.bool))
    bare = get_adapter(FAMILIES[family][0](), None)
    with pytest.raises(ValueError, match="tokenizer or processor"):
        bare.tokenize(CAPTION)


def test_token_id_errors_without_tokenizer():
    with pytest.raises(ValueError, match="end-of-text"):
        HFCLIPAdapter(tiny_hf_clip()).tokenize([0, 5, 6, 7])
    with pytest.raises(ValueError, match="ends"):
        HFSiglipAdapter(tiny_hf_siglip()).tokenize([3, 4, 5])
    with pytest.raises(ValueError, match="no tokens to explain"):
        HFSiglipAdapter(tiny_hf_siglip()).tokenize([1, 1, 1])


def test_empty_text_coalition_without_attended_special_tokens():
    """If the tokenizer masks every non-player position, the empty coalition keeps the
    pooled position attending to itself (finite) and the other coalitions are unchanged."""
    model = tiny_hf_siglip()
    adapter = HFSiglipAdapter(model)
    ids = [3, 8, 6, 1, 1, 1]
    text = adapter.tokenize({"input_ids": ids, "attention_mask": [1, 1, 1, 0, 0, 0]})
    assert text.player_positions.tolist() == [0, 1, 2]
    c = torch.tensor([[False, False, False], [True, False, True]])
    with torch.no_grad():
        ours = adapter.encode_text(text, c)
        masks = torch.tensor([[0, 0, 0, 0, 0, 1], [1, 0, 1, 0, 0, 0]])
        ref = model.get_text_features(input_ids=torch.tensor([ids, ids]), attention_mask=masks)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, l2_normalize(ref.pooler_output))


def test_clip_legacy_eos_rule_pools_at_the_largest_id():
    """Old CLIP configs (eos_token_id == 2) pool at the argmax of the ids; the adapter
    finds the same position and never makes it a player."""
    model = copy.deepcopy(tiny_hf_clip())
    model.config.text_config.eos_token_id = 2
    model.text_model.eos_token_id = 2
    adapter = HFCLIPAdapter(model)
    top = model.config.text_config.vocab_size - 1
    ids = [0, 5, 6, top, 1, 1]
    text = adapter.tokenize(ids)
    assert text.pool_position == 3
    assert text.player_positions.tolist() == [1, 2]
    g = torch.Generator().manual_seed(14)
    pixels = torch.randn(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        ours = adapter.similarity(adapter.encode_image(pixels), adapter.encode_text(text))
        ref = model(input_ids=torch.tensor([ids]), pixel_values=pixels).logits_per_image
    torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)


def test_pooled_word_is_kept_and_not_a_player():
    """A tokenizer without an end token and with left padding puts the last word at the
    position SigLIP pools: it cannot be masked, so it is not a player (with a warning)."""
    from _models import _word_tokenizer

    tokenizer = _word_tokenizer({"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3}, "$A", pad="<pad>")
    tokenizer.padding_side = "left"
    adapter = HFSiglip2Adapter(tiny_hf_siglip2(), tokenizer)
    with pytest.warns(UserWarning, match="always kept"):
        text = adapter.tokenize("a red cat")
    assert text.labels == ["a", "red"]
    assert text.player_positions.tolist() == [9, 10]
    assert text.pool_position == 11
