"""The scene generator: determinism, pixel/patch ground truth, caption words, hard negatives."""

from __future__ import annotations

import numpy as np
import pytest

from fixlip_captum.scenes import (
    COLOURS,
    SHAPES,
    caption_matches,
    generate_batch,
    generate_sample,
    split_words,
)
from fixlip_captum.scenes.generator import pixel_patch_index

SEEDS = range(20)


def test_same_seed_same_sample_and_different_seeds_differ():
    a, b = generate_sample(123), generate_sample(123)
    assert np.array_equal(a.array, b.array)
    assert a.text == b.text
    assert [o.key for o in a.objects] == [o.key for o in b.objects]
    assert all(np.array_equal(x.mask, y.mask) for x, y in zip(a.objects, b.objects, strict=True))
    assert (
        a.hard_negative("colour_swap", seed=5).text == b.hard_negative("colour_swap", seed=5).text
    )
    c = generate_sample(124)
    assert not np.array_equal(a.array, c.array)
    texts = {s.text for s in generate_batch(range(30))}
    assert len(texts) > 25  # captions vary


def test_sample_shapes_counts_and_distinct_attributes():
    for n_obj in (1, 2, 3, 4):
        for n_named in range(1, n_obj + 1):
            s = generate_sample(1000 + 10 * n_obj + n_named, n_objects=n_obj, n_named=n_named)
            assert s.array.shape == (96, 96, 3) and s.array.dtype == np.uint8
            assert s.image.size == (96, 96)
            assert len(s.objects) == n_obj and len(s.named) == n_named
            assert len({o.colour for o in s.objects}) == n_obj
            assert len({o.shape for o in s.objects}) == n_obj
            assert len({o.cell for o in s.objects}) == n_obj
    # The random choices cover the whole vocabulary of colours and shapes.
    samples = generate_batch(range(150))
    assert {o.colour for s in samples for o in s.objects} == set(COLOURS)
    assert {o.shape for s in samples for o in s.objects} == set(SHAPES)
    assert {len(s.objects) for s in samples} == {1, 2, 3, 4}
    assert {len(s.named) for s in samples} == {1, 2, 3, 4}


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="n_named"):
        generate_sample(0, n_objects=2, n_named=3)
    with pytest.raises(ValueError, match="n_objects"):
        generate_sample(0, n_objects=5)
    with pytest.raises(ValueError, match="seed"):
        generate_sample(-1)
    s = generate_sample(0)
    with pytest.raises(ValueError, match="grid"):
        s.patch_mask(0, (0, 3))
    with pytest.raises(IndexError):
        s.patch_mask(len(s.objects), 6)
    with pytest.raises(ValueError, match="hard-negative kind"):
        s.hard_negative("bogus")


def _nearest_colour(pixels: np.ndarray) -> np.ndarray:
    table = np.array(list(COLOURS.values()), dtype=np.float32)
    d = np.linalg.norm(pixels[:, None, :].astype(np.float32) - table[None], axis=-1)
    return d.argmin(1)


def test_object_masks_match_the_drawn_pixels():
    names = list(COLOURS)
    for seed in SEEDS:
        s = generate_sample(seed)
        img = s.array.astype(np.float32)
        cell = 48
        for o in s.objects:
            ys, xs = np.nonzero(o.mask)
            assert len(ys) > 40  # a visible object
            assert o.bbox == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            # Inside its own cell.
            r0, c0 = (o.cell // 2) * cell, (o.cell % 2) * cell
            assert ys.min() >= r0 and ys.max() < r0 + cell
            assert xs.min() >= c0 and xs.max() < c0 + cell
            # Masked pixels carry the object's colour ...
            inside = img[o.mask]
            nearest = _nearest_colour(inside)
            assert np.mean(nearest == names.index(o.colour)) > 0.97
            assert np.abs(inside.mean(0) - np.array(COLOURS[o.colour])).max() < 20
            # ... and the one-pixel ring around the mask does not (background there).
            grown = o.mask.copy()
            grown[1:] |= o.mask[:-1]
            grown[:-1] |= o.mask[1:]
            grown[:, 1:] |= o.mask[:, :-1]
            grown[:, :-1] |= o.mask[:, 1:]
            ring = img[grown & ~o.mask]
            close = np.linalg.norm(ring - np.array(COLOURS[o.colour]), axis=1) < 35
            assert close.mean() < 0.1
        # Objects never share pixels.
        total = sum(o.mask.astype(int) for o in s.objects)
        assert total.max() <= 1


@pytest.mark.parametrize("grid", [(6, 6), (8, 8), (3, 3), (7, 5), (1, 1)])
def test_patch_masks_for_any_grid(grid):
    rows, cols = grid
    for seed in range(6):
        s = generate_sample(seed)
        for k, o in enumerate(s.objects):
            cov = s.patch_coverage(k, grid)
            assert cov.shape == (rows * cols,)
            # Independent count: loop over patches with the floor(y * rows / H) boundaries.
            expected = np.zeros(rows * cols)
            ys = [(r * 96 + rows - 1) // rows for r in range(rows + 1)]
            xs = [(c * 96 + cols - 1) // cols for c in range(cols + 1)]
            for r in range(rows):
                for c in range(cols):
                    block = o.mask[ys[r] : ys[r + 1], xs[c] : xs[c + 1]]
                    expected[r * cols + c] = block.mean()
            np.testing.assert_allclose(cov, expected, atol=1e-12)
            assert np.array_equal(s.patch_mask(k, grid), expected > 0)
            assert np.array_equal(s.patch_mask(o, grid, 0.5), expected > 0.5)
        assert s.patch_masks(grid).shape == (len(s.objects), rows * cols)


def test_patch_masks_on_the_model_grid_sit_in_the_object_cell():
    # 96 px / 16 px patches: cell c covers patch rows/cols 3*(c//2).., 3*(c%2)..
    for seed in SEEDS:
        s = generate_sample(seed)
        for k, o in enumerate(s.objects):
            m = s.patch_mask(k, (6, 6)).reshape(6, 6)
            rr, cc = np.nonzero(m)
            assert set(rr // 3) == {o.cell // 2} and set(cc // 3) == {o.cell % 2}
            # Any pixel in a patch marks it; a 16x16 reshape gives the same.
            assert np.array_equal(m, o.mask.reshape(6, 16, 6, 16).any(axis=(1, 3)))
    idx = pixel_patch_index(96, 96, (6, 6))
    assert idx[0, 0] == 0 and idx[15, 16] == 1 and idx[16, 0] == 6 and idx[95, 95] == 35


def test_caption_words_name_the_right_objects():
    for seed in range(100):
        s = generate_sample(seed)
        cap = s.caption
        assert cap.words == split_words(cap.text)
        assert caption_matches(s.objects, cap)
        assert [s.objects[i].key for i in s.named] == list(cap.mentions)
        assert len(set(s.named)) == len(s.named)
        spans = [(b, e) for b, e in cap.char_spans]
        assert [cap.text[b:e] for b, e in spans] == cap.words
        for w, owner in zip(cap.words, cap.word_objects, strict=True):
            if w in COLOURS or w in SHAPES:
                # Every colour / shape word of a true caption names an object with that attribute.
                assert owner is not None
                assert w in s.objects[owner].key
            else:
                assert owner is None
        # Each named object owns exactly its colour word and its shape word.
        for k in s.named:
            owned = [w for w, o in zip(cap.words, cap.word_objects, strict=True) if o == k]
            assert sorted(owned) == sorted(s.objects[k].key)
        assert [i for _, _, i in s.word_spans] == s.named
        for b, e, i in s.word_spans:
            assert set(s.objects[i].key) <= set(cap.words[b:e])
            assert cap.words[b - 1] in ("a", "an", "the")


def test_hard_negatives_really_differ():
    for seed in range(80):
        s = generate_sample(seed)
        pos = s.caption
        for kind in ("colour_swap", "shape_swap", "absent"):
            neg = s.hard_negative(kind, seed=seed)
            assert not caption_matches(s.objects, neg), (kind, pos.text, neg.text)
            assert neg.text != pos.text
            assert len(neg.words) == len(pos.words)  # same phrasing, a minimal pair
            changed = [
                i for i, (a, b) in enumerate(zip(pos.words, neg.words, strict=True)) if a != b
            ]
            if kind == "colour_swap":
                # Only colour words change (and "a" / "an" before them).
                assert all(pos.words[i] in (*COLOURS, "a", "an") for i in changed)
                assert any(neg.words[i] in COLOURS for i in changed)
                # Colours are swapped between named objects when there are two of them.
                if len(pos.mentions) >= 2:
                    assert sorted(c for c, _ in neg.mentions) == sorted(c for c, _ in pos.mentions)
            elif kind == "shape_swap":
                assert all(pos.words[i] in SHAPES and neg.words[i] in SHAPES for i in changed)
                assert changed
                if len(pos.mentions) >= 2:
                    assert sorted(h for _, h in neg.mentions) == sorted(h for _, h in pos.mentions)
            else:
                diff = [
                    k
                    for k, (a, b) in enumerate(zip(pos.mentions, neg.mentions, strict=True))
                    if a != b
                ]
                assert len(diff) == 1
                assert neg.mentions[diff[0]] not in {o.key for o in s.objects}
            # Mentions that still match keep their object; broken ones own no words.
            for m, owner in zip(neg.mentions, neg.mention_objects, strict=True):
                if owner is not None:
                    assert s.objects[owner].key == m
