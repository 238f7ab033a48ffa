"""Issue #19 through the Python API: one table row per bad input (error type and the key
words of its message) and one per input that used to be silently wrong (the correct value).

Rows of #19 owned by other helpers: the family helper's (float / out-of-vocabulary token
ids, a caption of only special tokens, the ``<unk>`` warning) are here; train-mode models
are covered by the family contract test; short captions at the default budget by
``tests/test_sampling.py`` (the plan gives a 1-token caption no more image masks than a
10-token one).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _models import open_clip_bpe_tokenizer, random_pil_image, tiny_open_clip_clip
from PIL import Image

from fixlip_captum import FIxLIP, load_interaction_values, make_interaction_values
from fixlip_captum.games import CrossModalGame
from fixlip_captum.images import load_image, to_rgb
from fixlip_captum.interaction_values import ExplanationContext, FIxLIPInteractionValues

torch.set_num_threads(1)

CAPTION = "a red cat"
SETTINGS = dict(budget=2**10, seed=0, pairs="crossmodal")


@pytest.fixture(scope="module")
def explainer():
    return FIxLIP(tiny_open_clip_clip(), open_clip_bpe_tokenizer())


def _preprocess():
    import open_clip

    return open_clip.image_transform(32, is_train=False)


def _ctx(n_image, n_text, v_empty=1.0, v_full=5.0):
    rows = 1 if n_image else 0
    return ExplanationContext(
        n_image=n_image,
        n_text=n_text,
        grid=(rows, n_image) if n_image else None,
        token_labels=[f"w{j}" for j in range(n_text)],
        v_empty=v_empty,
        v_full=v_full,
    )


def _iv(n_image=2, n_text=1, scale=1.0, p=0.5, index="FWBII"):
    n = n_image + n_text
    terms = [(), *[(i,) for i in range(n)], *[(i, j) for i in range(n) for j in range(i + 1, n)]]
    values = scale * np.arange(1, len(terms) + 1, dtype=float)
    return make_interaction_values(
        values,
        terms,
        n_players=n,
        index=index,
        max_order=2,
        p=p,
        context=_ctx(n_image, n_text, v_empty=scale, v_full=5.0 * scale),
    )


# ---------------------------------------------------------------------- bad inputs
ERROR_ROWS = {
    "0x0 image": (
        lambda ex: ex.attribute_interactions(Image.new("RGB", (0, 0)), CAPTION, **SETTINGS),
        ValueError,
        ["empty", "0x0"],
    ),
    "caption as bytes": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), b"a red cat", **SETTINGS),
        TypeError,
        ["bytes", "decode"],
    ),
    "caption as bytes in a list": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), [b"a", b"b"], **SETTINGS),
        TypeError,
        ["bytes"],
    ),
    "FIxLIP(model, preprocess)": (
        lambda ex: FIxLIP(tiny_open_clip_clip(), _preprocess()),
        TypeError,
        ["image transform", "get_tokenizer"],
    ),
    "FIxLIP(preprocess, tokenizer)": (
        lambda ex: FIxLIP(_preprocess(), open_clip_bpe_tokenizer()),
        TypeError,
        ["image transform", "model"],
    ),
    "p=0": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, p=0.0),
        ValueError,
        ["strictly between 0 and 1"],
    ),
    "mode='banana'": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, mode="banana"),
        ValueError,
        ["banzhaf", "shapley"],
    ),
    "budget=0": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, budget=0),
        ValueError,
        ["positive"],
    ),
    "an image that is neither PIL nor tensor": (
        lambda ex: ex.attribute_interactions("cat.jpg", CAPTION, **SETTINGS),
        TypeError,
        ["PIL"],
    ),
    "3 images for 2 captions": (
        lambda ex: ex.attribute_interactions([random_pil_image(0)] * 3, ["a", "b"], **SETTINGS),
        ValueError,
        ["3 images and 2 captions"],
    ),
    "a list for FIxLIPMethod (refused before any work)": (
        lambda ex: (
            __import__("fixlip_captum.methods", fromlist=["get_method"])
            .get_method("fixlip", ex.adapter)
            .attribute_interactions([random_pil_image(0)] * 2, CAPTION)
        ),
        ValueError,
        ["one image-text pair", "2 pairs"],
    ),
    "iv1 + iv2 of 5 and 3 players": (
        lambda ex: _iv(4, 1) + _iv(2, 1),
        ValueError,
        ["5 and 3 players"],
    ),
    "iv1 + iv2 with other image/text split": (
        lambda ex: _iv(2, 1) + _iv(1, 2),
        ValueError,
        ["players differ"],
    ),
    "iv1 + iv2 of different p": (lambda ex: _iv(p=0.5) + _iv(p=0.3), ValueError, ["different p"]),
    "iv1 + iv2 of different indices": (
        lambda ex: _iv(index="FWBII") + _iv(index="FSII"),
        ValueError,
        ["different indices"],
    ),
    "iv + 3": (lambda ex: _iv() + 3, TypeError, ["Cannot add int", "iv * 2"]),
    "iv * 'a'": (lambda ex: _iv() * "a", TypeError, ["real number"]),
    "iv / 0": (lambda ex: _iv() / 0, ZeroDivisionError, ["by 0"]),
    "token ids as floats (captum's sensitivity perturbation)": (
        lambda ex: ex.attribute_interactions(
            random_pil_image(0), ex.adapter.tokenize(CAPTION).input_ids.float() + 0.4, **SETTINGS
        ),
        TypeError,
        ["token ids must be integers"],
    ),
    "token ids out of the vocabulary": (
        lambda ex: ex.attribute_interactions(
            random_pil_image(0), torch.tensor([49406, 10**6, 49407]), **SETTINGS
        ),
        ValueError,
        ["must lie in", "vocabulary"],
    ),
    "a caption of only special tokens": (
        lambda ex: ex.attribute_interactions(
            random_pil_image(0), torch.tensor([49406, 49407]), **SETTINGS
        ),
        ValueError,
        ["special tokens", "at least one word"],
    ),
    "seed=1.5": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, budget=2**10, seed=1.5),
        TypeError,
        ["seed must be None or an integer", "1.5"],
    ),
    "seed='abc'": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, seed="abc"),
        TypeError,
        ["seed must be None or an integer", "str"],
    ),
    "seed=2**70": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, seed=2**70),
        ValueError,
        ["0..2^63-1"],
    ),
    "budget=2**40": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, budget=2**40),
        ValueError,
        ["maximum meaningful budget", "2^30"],
    ),
    "budget=4096.5": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, budget=4096.5),
        TypeError,
        ["budget must be an integer"],
    ),
    "mode='shapley' with p=0.3": (
        lambda ex: ex.attribute_interactions(random_pil_image(0), CAPTION, mode="shapley", p=0.3),
        ValueError,
        ["no keep-probability"],
    ),
    "load a missing file": (
        lambda ex: load_interaction_values("/no/such/explanation.json"),
        FileNotFoundError,
        ["No explanation file"],
    ),
}


@pytest.mark.parametrize("row", sorted(ERROR_ROWS))
def test_bad_input_gets_a_clear_error(explainer, row):
    call, error, words = ERROR_ROWS[row]
    with pytest.raises(error) as info:
        call(explainer)
    for word in words:
        assert word in str(info.value), (row, str(info.value))


@pytest.mark.parametrize(
    "content, words",
    [
        ("half", ["not a complete JSON file", "interrupted"]),
        ('{"name": "something else"}', ["not an explanation", "iv.save()"]),
        ("[1, 2, 3]", ["not an explanation"]),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ["not a complete JSON file"]),
    ],
    ids=["half-written", "unrelated JSON", "JSON list", "binary"],
)
def test_loading_a_damaged_or_unrelated_file(tmp_path, content, words):
    good = tmp_path / "good.json"
    _iv().save(good)
    path = tmp_path / "bad.json"
    if content == "half":
        text = good.read_text()
        path.write_text(text[: len(text) // 2])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_interaction_values(path)
    for word in words:
        assert word in str(info.value)


def test_words_unknown_to_the_tokenizer_warn():
    from fixlip_captum.models import load_default

    model, _, tokenizer = load_default()
    with pytest.warns(UserWarning, match="unknown to the tokenizer"):
        FIxLIP(model, tokenizer).make_game(random_pil_image(0), "a zebra ring")


# ---------------------------------------------------------------------- correct values
def _grey_png(tmp_path, array, name):
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return path


def test_16_bit_png_is_scaled_not_white(tmp_path):
    rng = np.random.default_rng(0)
    levels16 = rng.integers(0, 65536, size=(48, 40), dtype=np.uint16)
    path = _grey_png(tmp_path, levels16, "grey16.png")
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(load_image(path))
    expected = np.round(levels16 / 257.0).astype(np.uint8)
    assert rgb.shape == (48, 40, 3)
    np.testing.assert_array_equal(rgb[..., 0], expected)
    assert rgb.min() < 10 and rgb.max() > 245  # full range, not all white


def test_16_bit_image_explains_like_its_8_bit_copy(explainer):
    rng = np.random.default_rng(1)
    levels16 = rng.integers(0, 65536, size=(32, 32), dtype=np.uint16)
    image16 = Image.fromarray(levels16)
    image8 = Image.fromarray(np.round(levels16 / 257.0).astype(np.uint8)).convert("RGB")
    iv16 = explainer.attribute_interactions(image16, CAPTION, **SETTINGS)
    iv8 = explainer.attribute_interactions(image8, CAPTION, **SETTINGS)
    np.testing.assert_array_equal(iv16.values, iv8.values)
    assert iv16.context.v_full == iv8.context.v_full


_L = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
MODE_ROWS = {
    # mode: (image, expected RGB array)
    "I (8-bit range)": (Image.fromarray(_L.astype(np.int32)), np.stack([_L] * 3, -1)),
    "I (16-bit range)": (
        Image.fromarray(_L.astype(np.int32) * 257),
        np.stack([_L] * 3, -1),
    ),
    "F in [0, 1]": (
        Image.fromarray(_L.astype(np.float32) / 255.0),
        np.stack([_L] * 3, -1),
    ),
    "F in [0, 255]": (Image.fromarray(_L.astype(np.float32)), np.stack([_L] * 3, -1)),
    "LA, opaque": (
        Image.fromarray(np.stack([_L, np.full_like(_L, 255)], -1), mode="LA"),
        np.stack([_L] * 3, -1),
    ),
    "LA, transparent -> white": (
        Image.fromarray(np.stack([_L, np.zeros_like(_L)], -1), mode="LA"),
        np.full((32, 32, 3), 255, np.uint8),
    ),
    "P": (Image.fromarray(_L).convert("P"), np.asarray(Image.fromarray(_L).convert("RGB"))),
    "CMYK": (
        Image.new("CMYK", (32, 32), (0, 255, 255, 0)),
        np.broadcast_to(np.array([255, 0, 0], np.uint8), (32, 32, 3)),
    ),
    "RGBA, half transparent red over white": (
        Image.new("RGBA", (32, 32), (255, 0, 0, 128)),
        np.broadcast_to(np.array([255, 127, 127], np.uint8), (32, 32, 3)),
    ),
}


@pytest.mark.parametrize("row", sorted(MODE_ROWS))
def test_image_modes_convert_to_the_right_rgb(row):
    image, expected = MODE_ROWS[row]
    rgb = np.asarray(to_rgb(image))
    assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
    np.testing.assert_allclose(rgb.astype(int), expected.astype(int), atol=1)


def test_arithmetic_keeps_the_subclass_context_and_p():
    a, b = _iv(scale=1.0), _iv(scale=3.0)
    cases = {
        "a + b": (a + b, 4.0),
        "a - b": (a - b, -2.0),
        "a * 2": (a * 2, 2.0),
        "2 * a": (2 * a, 2.0),
        "np.float64(2) * a": (np.float64(2) * a, 2.0),
        "-a": (-a, -1.0),
        "a / 2": (a / 2, 0.5),
        "sum([a, b])": (sum([a, b]), 4.0),
    }
    for name, (result, factor) in cases.items():
        assert isinstance(result, FIxLIPInteractionValues), name
        assert result.p == 0.5 and result.context is not None, name
        expected = factor * np.arange(1, len(a.interaction_lookup) + 1)
        for term, k in a.interaction_lookup.items():
            assert result[term] == pytest.approx(expected[k]), (name, term)
        # The explanation of c * v is c times that of v: v(empty), v(full) scale alike.
        assert result.context.v_full == pytest.approx(factor * 5.0), name
        np.testing.assert_allclose(result.first_order(), factor * a.first_order())


def test_progress_shows_no_bars_for_v_empty_and_v_full(capsys):
    from _models import random_pixels

    from fixlip_captum.adapters import get_adapter

    adapter = get_adapter(tiny_open_clip_clip(), open_clip_bpe_tokenizer())
    game = CrossModalGame(adapter, random_pixels(0), CAPTION, show_progress=True)
    capsys.readouterr()
    assert np.isfinite(game.v_empty) and np.isfinite(game.v_full)
    assert "encoding masked" not in capsys.readouterr().err
    masks = torch.rand(8, game.n_image, generator=torch.Generator().manual_seed(0)) < 0.5
    game(masks, torch.ones(1, game.n_text, dtype=torch.bool))
    assert "encoding masked images" in capsys.readouterr().err  # real work still shows


def test_save_interrupted_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    _iv(scale=1.0).save(path)
    before = path.read_bytes()
    from shapiq import InteractionValues

    def fail(self, p, **kwargs):
        Path(p).write_text('{"half": ')
        raise KeyboardInterrupt

    from pathlib import Path

    monkeypatch.setattr(InteractionValues, "to_json_file", fail)
    with pytest.raises(KeyboardInterrupt):
        _iv(scale=2.0).save(path)
    assert path.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["x.json"]
    json.loads(before)


def test_integral_budgets_of_any_type_give_the_same_explanation(explainer):
    """``budget=np.int64(4096)`` and ``4096.0`` are the budget 4096 (they were refused)."""
    image = random_pil_image(0)
    ref = explainer.attribute_interactions(image, CAPTION, budget=4096, seed=0, pairs="crossmodal")
    for budget in (np.int64(4096), 4096.0):
        iv = explainer.attribute_interactions(
            image, CAPTION, budget=budget, seed=0, pairs="crossmodal"
        )
        assert iv.estimation_info["budget"] == ref.estimation_info["budget"]
        np.testing.assert_array_equal(iv.values, ref.values)
