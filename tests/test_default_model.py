"""The shipped scenes-clip model: loading, open_clip integration, tokenizer, quality bar."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
import torch

from benchmarks.train_scenes_clip import encode_text_trimmed
from fixlip_captum.models import (
    CHECKPOINT_PATH,
    CONFIG_PATH,
    MODEL_CARD_PATH,
    MODEL_NAME,
    TEST_SEED,
    VAL_SEED,
    SceneTokenizer,
    load_default,
)
from fixlip_captum.models.evaluate import (
    arrays_to_tensor,
    hard_negative_accuracy,
    masking_pointing_accuracy,
    retrieval_top1,
)
from fixlip_captum.scenes import generate_batch, generate_sample
from fixlip_captum.scenes.captions import CAPTION_VOCABULARY


@pytest.fixture(scope="module")
def loaded():
    torch.manual_seed(0)
    return load_default()


@pytest.fixture(scope="module")
def held_out():
    # Seeds from TEST_SEED are used neither in training nor for the logged validation.
    return generate_batch(range(TEST_SEED, TEST_SEED + 256))


def test_tokenizer_ids_and_interface():
    tok = SceneTokenizer(CAPTION_VOCABULARY, context_length=12)
    assert tok.pad_token_id == 0
    assert tok.eot_token_id == tok.vocab_size - 1 and tok.sot_token_id == tok.vocab_size - 2
    ids = tok("a red circle, and a Blue star!")
    assert ids.dtype == torch.long and ids.shape == (1, 12)
    words = ["a", "red", "circle", ",", "and", "a", "blue", "star"]
    expected = [tok.sot_token_id, *[tok.encoder[w] for w in words], tok.eot_token_id, 0, 0]
    assert ids[0].tolist() == expected
    assert tok.decode(ids[0]) == "a red circle, and a blue star"
    assert tok.convert_ids_to_tokens(ids[0, :3]) == ["<start_of_text>", "a", "red"]
    # Unknown words map to id 1; too-long texts are cut and still end with end-of-text.
    assert tok("a purple zebra")[0, 3].item() == tok.unk_token_id
    long = tok(["a"] * 1 + [" ".join(["red"] * 30)], context_length=6)
    assert long.shape == (2, 6) and long[1, -1].item() == tok.eot_token_id
    # End-of-text has the largest id, so argmax pooling finds it as well.
    assert int(long.argmax(dim=-1)[1]) == 5
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.convert_ids_to_tokens([tok.vocab_size])
    with pytest.raises(TypeError):
        tok([1, 2])


def test_files_and_open_clip_registration(tmp_path):
    assert CHECKPOINT_PATH.stat().st_size <= 10 * 2**20
    cfg = json.loads(CONFIG_PATH.read_text())
    card = json.loads(MODEL_CARD_PATH.read_text())
    assert card["config"] == cfg
    assert MODEL_NAME in open_clip.list_models()
    model = open_clip.create_model(MODEL_NAME)  # registered on import, random init
    assert type(model) is open_clip.CLIP
    assert model.text_pool_type == "eos"
    tok = SceneTokenizer.from_file(CONFIG_PATH.with_name(f"{MODEL_NAME}-tokenizer.json"))
    assert model.text_eos_id == tok.eot_token_id
    assert model.token_embedding.num_embeddings == tok.vocab_size
    assert tuple(model.visual.grid_size) == (6, 6)  # 36 image players
    tok.save(tmp_path / "t.json")
    assert SceneTokenizer.from_file(tmp_path / "t.json").vocab == tok.vocab


def test_load_default_matches_open_clip_paths(loaded):
    model, preprocess, tok = loaded
    assert not model.training
    sample = generate_sample(TEST_SEED + 999)
    x = preprocess(sample.image).unsqueeze(0)
    assert x.shape == (1, 3, 96, 96)
    torch.testing.assert_close(x, arrays_to_tensor([sample.array]), atol=1e-5, rtol=0)
    texts = [sample.text, "a red circle", "there is a blue star, a green ring, and a pink heart"]
    ids = tok(texts)
    with torch.no_grad():
        ref = model.encode_text(ids)
        torch.testing.assert_close(encode_text_trimmed(model, ids), ref, atol=1e-5, rtol=1e-4)
        # eos pooling == argmax pooling for this tokenizer.
        model.text_pool_type = "argmax"
        try:
            torch.testing.assert_close(model.encode_text(ids), ref)
        finally:
            model.text_pool_type = "eos"
        # Padding after end-of-text does not matter (causal mask).
        torch.testing.assert_close(model.encode_text(tok(texts, context_length=32)), ref)
        img, txt, scale = model(x, ids)[:3]
    assert img.shape == (1, 128) and txt.shape == (3, 128)
    assert 1.0 < float(scale) <= 100.0


def test_retrieval_among_64(loaded, held_out):
    model, _, tok = loaded
    r = retrieval_top1(model, tok, held_out, group=64)
    assert r["image_to_text"] >= 0.90, r
    assert r["text_to_image"] >= 0.85, r


@pytest.mark.parametrize("kind", ["colour_swap", "shape_swap"])
def test_hard_negatives(loaded, held_out, kind):
    model, _, tok = loaded
    acc = hard_negative_accuracy(model, tok, held_out, kind, seed=TEST_SEED)
    assert acc >= 0.90, (kind, acc)


def test_masking_the_named_object_hurts_most(loaded):
    model, _, tok = loaded
    rng = np.random.default_rng(TEST_SEED)
    samples = [
        generate_sample(TEST_SEED + 10_000 + i, n_objects=int(rng.integers(2, 5)), n_named=1)
        for i in range(60)
    ]
    acc = masking_pointing_accuracy(model, tok, samples)
    assert acc >= 0.90, acc


def test_test_seeds_are_not_training_or_validation_seeds():
    card = json.loads(MODEL_CARD_PATH.read_text())
    n_train = card["data"]["train_scenes"]
    seed = card["training"]["seed"]
    train = (10_000_000 * (seed + 1), 10_000_000 * (seed + 1) + n_train)
    assert train[1] < VAL_SEED < TEST_SEED
