"""CrossModalGame and JointGame on tiny open_clip models (CLIP and SigLIP-style)."""

from __future__ import annotations

import pytest
import torch
from _models import (
    OPEN_CLIP_FAMILIES,
    random_pixels,
)

from fixlip_captum.adapters import get_adapter
from fixlip_captum.games import CrossModalGame, JointGame

torch.set_num_threads(1)

CAPTION = "a red cat on the grass"
ATOL = 1e-5
FAMILIES = OPEN_CLIP_FAMILIES


@pytest.fixture(params=sorted(FAMILIES))
def adapter(request):
    build, tok = FAMILIES[request.param]
    return get_adapter(build(), tok())


def _masks(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(m, n, generator=g) < 0.5


class CountingAdapter:
    """Wraps an adapter's encoders: counts encoded rows, optionally fails like CUDA OOM
    for batches larger than ``oom_above``."""

    def __init__(self, adapter, oom_above=None):
        self.adapter = adapter
        self.oom_above = oom_above
        self.image_rows = []
        self.text_rows = []
        self._image, self._text = adapter.encode_image, adapter.encode_text

    def __enter__(self):
        def encode_image(pixels, coalitions=None, masking="mean"):
            m = 1 if coalitions is None else coalitions.shape[0]
            if self.oom_above is not None and m > self.oom_above:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.image_rows.append(m)
            return self._image(pixels, coalitions, masking)

        def encode_text(text, coalitions=None):
            m = 1 if coalitions is None else coalitions.shape[0]
            if self.oom_above is not None and m > self.oom_above:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            self.text_rows.append(m)
            return self._text(text, coalitions)

        self.adapter.encode_image = encode_image
        self.adapter.encode_text = encode_text
        return self

    def __exit__(self, *exc):
        del self.adapter.encode_image, self.adapter.encode_text


@pytest.mark.parametrize("masking", ["mean", "drop"])
def test_full_and_empty_values(adapter, masking):
    model = adapter.model
    pixels = random_pixels(0)
    game = CrossModalGame(adapter, pixels, CAPTION, image_masking=masking)
    ids = game.text.input_ids[None]
    with torch.no_grad():
        out = model(pixels, ids)
    expected = (out[2] * out[0] @ out[1].T + (out[3] if len(out) == 4 else 0)).detach()
    assert game.v_full == pytest.approx(float(expected), abs=ATOL)
    assert game.n_image == 16 and game.n_text == 6
    values = game(torch.ones(1, 16, dtype=torch.bool), torch.ones(1, 6, dtype=torch.bool))
    assert values.shape == (1, 1) and values.dtype == torch.float32
    assert float(values) == pytest.approx(game.v_full, abs=ATOL)
    empty = game(torch.zeros(1, 16, dtype=torch.bool), torch.zeros(1, 6, dtype=torch.bool))
    assert float(empty) == pytest.approx(game.v_empty, abs=ATOL)
    cosine = CrossModalGame(adapter, pixels, CAPTION, image_masking=masking, value="cosine")
    assert cosine.v_full == pytest.approx(float(out[0] @ out[1].T), abs=ATOL)


@pytest.mark.parametrize("masking", ["mean", "drop"])
def test_values_are_pairwise_similarities_and_joint_agrees(adapter, masking):
    pixels = random_pixels(1)
    game = CrossModalGame(adapter, pixels, CAPTION, image_masking=masking, batch_size=5)
    image_masks, text_masks = _masks(13, 16, 0), _masks(7, 6, 1)
    values = game(image_masks, text_masks)
    assert values.shape == (13, 7)
    # Reference: encode each masked image and text on its own, take the model's similarity.
    text = adapter.tokenize(CAPTION)
    for a in (0, 5, 12):
        for b in (0, 3, 6):
            img = adapter.encode_image(pixels, image_masks[a : a + 1], masking)
            txt = adapter.encode_text(text, text_masks[b : b + 1])
            ref = float(adapter.similarity(img, txt).detach())
            assert float(values[a, b]) == pytest.approx(ref, abs=ATOL)
    # The joint game on the same coalitions (rows = all pairs) gives the same values.
    joint = JointGame(adapter, pixels, CAPTION, image_masking=masking, batch_size=3)
    rows = torch.cat([image_masks.repeat_interleave(7, dim=0), text_masks.repeat(13, 1)], dim=1)
    torch.testing.assert_close(joint(rows).view(13, 7), values, atol=ATOL, rtol=0)
    torch.testing.assert_close(game.joint()(rows).view(13, 7), values, atol=ATOL, rtol=0)


def test_each_masked_input_encoded_once(adapter):
    game = CrossModalGame(adapter, random_pixels(2), CAPTION, batch_size=4)
    image_masks = torch.cat([_masks(6, 16, 3), _masks(6, 16, 3)])  # every row twice
    text_masks = torch.cat([_masks(5, 6, 4)] * 3)
    with CountingAdapter(adapter) as counter:
        values = game(image_masks, text_masks)
    assert sum(counter.image_rows) == 6 and max(counter.image_rows) <= 4
    assert sum(counter.text_rows) == len(torch.unique(text_masks, dim=0))
    torch.testing.assert_close(values[:6], values[6:], atol=0, rtol=0)


@pytest.mark.parametrize("masking", ["mean", "drop"])
def test_batch_size_does_not_change_values(adapter, masking):
    pixels = random_pixels(3)
    image_masks, text_masks = _masks(20, 16, 5), _masks(9, 6, 6)
    big = CrossModalGame(adapter, pixels, CAPTION, image_masking=masking, batch_size=64)
    small = CrossModalGame(adapter, pixels, CAPTION, image_masking=masking, batch_size=3)
    torch.testing.assert_close(
        small(image_masks, text_masks), big(image_masks, text_masks), atol=ATOL, rtol=0
    )


def test_oom_halves_batch_size_and_gives_same_values(adapter):
    pixels = random_pixels(4)
    image_masks, text_masks = _masks(11, 16, 7), _masks(6, 6, 8)
    reference = CrossModalGame(adapter, pixels, CAPTION, batch_size=64)(image_masks, text_masks)
    game = CrossModalGame(adapter, pixels, CAPTION, batch_size=16)
    with CountingAdapter(adapter, oom_above=3) as counter:
        values = game(image_masks, text_masks)
    torch.testing.assert_close(values, reference, atol=ATOL, rtol=0)
    # 16 -> 8 -> 4 -> 2 for images and texts; later calls keep the smaller size.
    assert game.batch_size == 2 and max(counter.image_rows) == 2
    assert sum(counter.image_rows) == 11
    # Out of memory even for one row: the error reaches the caller with advice.
    with (
        CountingAdapter(adapter, oom_above=0),
        pytest.raises(torch.OutOfMemoryError, match="single"),
    ):
        CrossModalGame(adapter, pixels, CAPTION, batch_size=4)(image_masks, text_masks)


def test_other_errors_are_not_swallowed(adapter):
    game = CrossModalGame(adapter, random_pixels(0), CAPTION)

    def broken(*args, **kwargs):
        raise RuntimeError("something else")

    adapter.encode_image = broken
    try:
        with pytest.raises(RuntimeError, match="something else"):
            game(_masks(2, 16, 0), _masks(2, 6, 0))
    finally:
        del adapter.encode_image


def test_autocast_bfloat16_keeps_float32_similarity(adapter):
    pixels = random_pixels(5)
    image_masks, text_masks = _masks(6, 16, 9), _masks(4, 6, 10)
    full = CrossModalGame(adapter, pixels, CAPTION)(image_masks, text_masks)
    half = CrossModalGame(adapter, pixels, CAPTION, autocast_dtype=torch.bfloat16)
    values = half(image_masks, text_masks)
    assert values.dtype == torch.float32
    # bf16 encoders: close, not equal (the game is a slightly different function).
    assert (values - full).abs().max() < 0.1


def test_progress_bar(adapter, capsys):
    game = CrossModalGame(adapter, random_pixels(0), CAPTION, show_progress=True)
    game(_masks(3, 16, 0), _masks(2, 6, 0))
    assert "encoding masked images" in capsys.readouterr().err


def test_game_errors(adapter):
    pixels = random_pixels(0)
    with pytest.raises(ValueError, match="image_masking"):
        CrossModalGame(adapter, pixels, CAPTION, image_masking="blur")
    with pytest.raises(ValueError, match="value must be"):
        CrossModalGame(adapter, pixels, CAPTION, value="prob")
    with pytest.raises(ValueError, match="batch_size"):
        CrossModalGame(adapter, pixels, CAPTION, batch_size=0)
    with pytest.raises(ValueError, match="autocast_dtype"):
        CrossModalGame(adapter, pixels, CAPTION, autocast_dtype=torch.float64)
    with pytest.raises(TypeError, match="DualEncoderAdapter"):
        CrossModalGame(adapter.model, pixels, CAPTION)
    with pytest.raises(ValueError, match="caption is empty"):
        CrossModalGame(adapter, pixels, "")
    with pytest.raises(ValueError, match="image tensor has shape"):
        CrossModalGame(adapter, torch.zeros(3, 64, 64), CAPTION)
    game = CrossModalGame(adapter, pixels, CAPTION)
    with pytest.raises(TypeError, match=r"torch\.bool"):
        game(torch.ones(2, 16), torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[m, 6\]"):
        game(torch.ones(2, 16, dtype=torch.bool), torch.ones(2, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[m, 22\]"):
        game.joint()(torch.ones(2, 16, dtype=torch.bool))
