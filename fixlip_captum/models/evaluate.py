"""Quality metrics of a scene model on held-out scenes (used by training and the tests)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from fixlip_captum.scenes import Sample, caption_matches, generate_batch, generate_sample

if TYPE_CHECKING:
    # What the metrics need (visual, encode_image, encode_text); open_clip ships no type
    # information, so mypy treats it as Any.
    from open_clip import CLIP

__all__ = [
    "OPENAI_MEAN",
    "OPENAI_STD",
    "arrays_to_tensor",
    "evaluate",
    "hard_negative_accuracy",
    "masking_pointing_accuracy",
    "retrieval_top1",
]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def arrays_to_tensor(
    arrays: Sequence[np.ndarray],
    mean: Sequence[float] = OPENAI_MEAN,
    std: Sequence[float] = OPENAI_STD,
) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` images -> normalised ``[B, 3, H, W]`` float32, the same as open_clip's
    validation transform for images already at the model's size (it resizes nothing then).

    Args:
        arrays: Images as uint8 arrays of one size.
        mean: Per-channel mean of the normalisation.
        std: Per-channel std of the normalisation.
    """
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def _model_norm(model: CLIP) -> tuple[Sequence[float], Sequence[float]]:
    cfg = getattr(model.visual, "preprocess_cfg", None) or {}
    return cfg.get("mean", OPENAI_MEAN), cfg.get("std", OPENAI_STD)


@torch.no_grad()
def _embed_images(model: CLIP, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    dev = next(model.parameters()).device
    out = [model.encode_image(pixels[i : i + batch].to(dev)) for i in range(0, len(pixels), batch)]
    return F.normalize(torch.cat(out).float(), dim=-1)


@torch.no_grad()
def _embed_texts(
    model: CLIP, tokenizer: Callable, texts: Sequence[str], batch: int = 512
) -> torch.Tensor:
    dev = next(model.parameters()).device
    out = [
        model.encode_text(tokenizer(list(texts[i : i + batch])).to(dev))
        for i in range(0, len(texts), batch)
    ]
    return F.normalize(torch.cat(out).float(), dim=-1)


def retrieval_top1(
    model: CLIP, tokenizer: Callable, samples: Sequence[Sample], group: int = 64
) -> dict[str, float]:
    """Caption retrieval among ``group`` candidates.

    The samples are cut into groups of ``group``; inside a group each image picks the caption
    with the highest similarity among the group's captions. A pick counts as correct when that
    caption describes the image (its own, or another that happens to name only objects present
    in it); likewise for text -> image.

    Args:
        model: open_clip CLIP.
        tokenizer: Its tokenizer.
        samples: At least ``group`` samples (a trailing partial group is dropped).
        group: Candidates per query.

    Returns:
        ``{"image_to_text": acc, "text_to_image": acc}``.
    """
    n = (len(samples) // group) * group
    if n == 0:
        raise ValueError(f"need at least group={group} samples, got {len(samples)}")
    mean, std = _model_norm(model)
    img = _embed_images(model, arrays_to_tensor([s.array for s in samples[:n]], mean, std))
    txt = _embed_texts(model, tokenizer, [s.text for s in samples[:n]])
    i2t = t2i = 0
    for g in range(0, n, group):
        sims = img[g : g + group] @ txt[g : g + group].T
        block = samples[g : g + group]
        for i, j in enumerate(sims.argmax(1).tolist()):
            i2t += caption_matches(block[i].objects, block[j].caption)
        for j, i in enumerate(sims.argmax(0).tolist()):
            t2i += caption_matches(block[i].objects, block[j].caption)
    return {"image_to_text": i2t / n, "text_to_image": t2i / n}


def hard_negative_accuracy(
    model: CLIP, tokenizer: Callable, samples: Sequence[Sample], kind: str, seed: int
) -> float:
    """Fraction of samples whose own caption scores above a hard negative of ``kind``
    (``"colour_swap"``, ``"shape_swap"``, ``"absent"``; one negative per sample, seeded)."""
    mean, std = _model_norm(model)
    img = _embed_images(model, arrays_to_tensor([s.array for s in samples], mean, std))
    negs = [s.hard_negative(kind, seed=seed + i).text for i, s in enumerate(samples)]
    pos = _embed_texts(model, tokenizer, [s.text for s in samples])
    neg = _embed_texts(model, tokenizer, negs)
    return float(((img * pos).sum(1) > (img * neg).sum(1)).float().mean())


def masking_pointing_accuracy(
    model: CLIP,
    tokenizer: Callable,
    samples: Sequence[Sample],
    grid: tuple[int, int] | None = None,
) -> float:
    """How often masking the named object's patches lowers the score most.

    For each sample (one named object, at least two objects), the patches covered by each
    object are masked in turn (normalised pixels set to 0, i.e. the mean colour) and the cosine
    with the caption recomputed; correct when masking the named object gives the largest drop.

    Args:
        model: open_clip CLIP.
        tokenizer: Its tokenizer.
        samples: Samples with exactly one named object and >= 2 objects.
        grid: Patch grid (default the model's ``visual.grid_size``).

    Returns:
        The fraction correct.
    """
    if grid is None:
        grid = tuple(model.visual.grid_size)
    rows, cols = grid
    mean, std = _model_norm(model)
    pixels, owners, named = [], [], []
    for s in samples:
        if len(s.named) != 1 or len(s.objects) < 2:
            raise ValueError("masking_pointing_accuracy needs one named object and >= 2 objects")
        x = arrays_to_tensor([s.array], mean, std)[0]
        h, w = x.shape[1:]
        pixels.append(x)
        for o in range(len(s.objects)):
            m = torch.from_numpy(s.patch_mask(o, (rows, cols)).reshape(rows, cols))
            pm = m.repeat_interleave(h // rows, 0).repeat_interleave(w // cols, 1)
            pixels.append(x * (~pm).float())
        owners.append(len(s.objects))
        named.append(s.named[0])
    img = _embed_images(model, torch.stack(pixels))
    txt = _embed_texts(model, tokenizer, [s.text for s in samples])
    correct, pos = 0, 0
    for k, n_obj in enumerate(owners):
        scores = img[pos : pos + 1 + n_obj] @ txt[k]
        drops = scores[0] - scores[1:]
        correct += int(drops.argmax()) == named[k]
        pos += 1 + n_obj
    return correct / len(owners)


def evaluate(
    model: CLIP, tokenizer: Callable, seed: int, n: int = 256, n_mask: int = 100
) -> dict[str, float]:
    """All quality metrics on scenes from seeds ``seed .. seed + n - 1`` (retrieval and hard
    negatives) and ``seed + n .. seed + n + n_mask - 1`` (single-object masking, 2-4 objects).

    Returns:
        ``{"top1_i2t", "top1_t2i", "colour_swap", "shape_swap", "absent", "masking"}``.
    """
    was_training = model.training
    model.eval()
    samples = generate_batch(range(seed, seed + n))
    rng = np.random.default_rng(seed)
    single = [
        generate_sample(seed + n + i, n_objects=int(rng.integers(2, 5)), n_named=1)
        for i in range(n_mask)
    ]
    r = retrieval_top1(model, tokenizer, samples)
    out = {
        "top1_i2t": r["image_to_text"],
        "top1_t2i": r["text_to_image"],
        "colour_swap": hard_negative_accuracy(model, tokenizer, samples, "colour_swap", seed),
        "shape_swap": hard_negative_accuracy(model, tokenizer, samples, "shape_swap", seed),
        "absent": hard_negative_accuracy(model, tokenizer, samples, "absent", seed),
        "masking": masking_pointing_accuracy(model, tokenizer, single),
    }
    model.train(was_training)
    return out
