"""Train the scenes-clip model on generated scenes (CPU, seeded, reproducible).

Usage::

    python benchmarks/train_scenes_clip.py --out /tmp/scenes-clip --threads 2

(the defaults are the recipe of the shipped weights; the exact command is in the model card),
then copy ``scenes-clip.pt``, ``scenes-clip.json``, ``scenes-clip-tokenizer.json`` and
``model_card.*`` into ``fixlip_captum/models/assets/``. The training code is not part of the
installed package (``import fixlip_captum`` never loads it); it lives here, next to the
benchmarks, and needs a source checkout.

Every batch is generated on the fly from fixed seeds: batch ``t`` uses scene seeds
``10_000_000 * (seed + 1) + t * batch_size + i``. The validation scenes used for the logged
metrics start at :data:`VAL_SEED`; the held-out test scenes (tests/test_default_model.py)
start at :data:`TEST_SEED`; neither range overlaps training for ``seed < 49`` and fewer than
10M training scenes.

Objective per batch of B scenes, each with its caption (naming 1-4 of the objects) and two
hard-negative captions (colour swap, shape swap or absent object; same phrasing):

- image -> text cross-entropy over all 3B captions, where other captions that also describe
  the image (e.g. "a red circle" when the image has one) are removed from the softmax;
- text -> image cross-entropy over the B images for the B true captions (same removal);
- image -> {own caption, own two negatives} cross-entropy, to stress binding.

In 30% of the scenes the caption keeps only the shape words ("a circle and a star") and its two
negatives swap in shapes absent from the scene: colour is the easy cue, these captions can only
be matched by shape. A training-only linear head on the image patch tokens predicts the shape
covering each object patch (cross-entropy, weight ``--aux-weight``); without it the ViT stayed at
chance on shapes within the CPU budget. The head is not part of the shipped model.

Augmentation: in 30% of the images a random part of the patches that touch no named object is
set to the mean colour (normalised 0), the masking FIxLIP applies, so masked images are not
out of distribution. The caption stays true.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixlip_captum.models import TEST_SEED, VAL_SEED  # noqa: E402
from fixlip_captum.models.evaluate import OPENAI_MEAN, OPENAI_STD, arrays_to_tensor, evaluate  # noqa: E402
from fixlip_captum.models.tokenizer import SceneTokenizer  # noqa: E402
from fixlip_captum.scenes import COLOURS, SHAPES, Sample, generate_batch  # noqa: E402
from fixlip_captum.scenes.captions import CAPTION_VOCABULARY  # noqa: E402

if TYPE_CHECKING:
    # Imported in main at run time, so importing this module stays light; open_clip ships no
    # type information, so mypy treats it as Any.
    from open_clip import CLIP

__all__ = ["TEST_SEED", "VAL_SEED", "encode_text_trimmed", "main", "make_config"]

_NEG_KINDS = ("colour_swap", "shape_swap", "absent")
_NEG_PROBS = np.array([0.4, 0.4, 0.2])
_AUG_P = 0.3


def make_config(
    vocab_size: int,
    context_length: int = 32,
    image_size: int = 96,
    patch_size: int = 16,
    embed_dim: int = 128,
    vision_width: int = 128,
    vision_layers: int = 4,
    text_width: int = 128,
    text_layers: int = 3,
    head_width: int = 32,
    mlp_ratio: float = 2.0,
) -> dict:
    """open_clip model config of scenes-clip: a ViT with CLS pooling and a causal text tower
    pooled at the end-of-text token (``pool_type="eos"``, ``eos_id = vocab_size - 1``)."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {
            "image_size": image_size,
            "patch_size": patch_size,
            "width": vision_width,
            "layers": vision_layers,
            "head_width": head_width,
            "mlp_ratio": mlp_ratio,
        },
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": text_width,
            "heads": text_width // head_width,
            "layers": text_layers,
            "mlp_ratio": mlp_ratio,
            "pad_id": 0,
            "eos_id": vocab_size - 1,
            "pool_type": "eos",
        },
    }


def encode_text_trimmed(model: CLIP, tokens: torch.Tensor, chunks: int = 4) -> torch.Tensor:
    """``model.encode_text`` computed on length buckets, each cut after its last end-of-text.

    With a causal mask and pooling at end-of-text, padding after it cannot change the output,
    so this equals ``encode_text`` (checked at start-up) while skipping most padding compute.

    Args:
        model: open_clip ``CLIP`` with ``text_pool_type == "eos"``.
        tokens: ``[B, context_length]`` token ids.
        chunks: Number of length buckets.

    Returns:
        ``[B, embed_dim]`` unnormalised text features.
    """
    eos = (tokens == model.text_eos_id).int().argmax(dim=-1)
    order = torch.argsort(eos)
    out = []
    for idx in torch.tensor_split(order, min(chunks, len(order))):
        e = eos[idx]
        n = int(e.max()) + 1
        t = tokens[idx, :n]
        x = model.token_embedding(t) + model.positional_embedding[:n]
        x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
        x = model.ln_final(x)
        out.append(x[torch.arange(len(t)), e] @ model.text_projection)
    feats = torch.cat(out)
    return feats[torch.argsort(order)]


class _Batches(torch.utils.data.IterableDataset):
    """Generates training batches ``start..stop-1`` (in a worker process when asked)."""

    def __init__(
        self,
        tok: SceneTokenizer,
        seed: int,
        start: int,
        stop: int,
        batch_size: int,
        grid: tuple[int, int],
        shape_only_p: float,
        shape_only_from: int,
    ) -> None:
        self.tok, self.seed, self.start, self.stop = tok, seed, start, stop
        self.batch_size, self.grid = batch_size, grid
        self.shape_only_p, self.shape_only_from = shape_only_p, shape_only_from

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for step in range(self.start, self.stop):
            p = self.shape_only_p if step >= self.shape_only_from else 0.0
            yield make_batch(self.tok, self.seed, step, self.batch_size, self.grid, p)


def _keys(pairs: Iterable[tuple[str | None, str]]) -> np.ndarray:
    """Indicator over the (colour, shape) pairs; a ``None`` colour marks a shape-only mention
    and is left out here (see :func:`_shape_keys`)."""
    colours = {c: i for i, c in enumerate(COLOURS)}
    shapes = {s: i for i, s in enumerate(SHAPES)}
    out = np.zeros(len(COLOURS) * len(SHAPES), dtype=np.float32)
    for c, s in pairs:
        if c is not None:
            out[colours[c] * len(SHAPES) + shapes[s]] = 1.0
    return out


def _shape_keys(shapes: Iterable[str]) -> np.ndarray:
    out = np.zeros(len(SHAPES), dtype=np.float32)
    for s in shapes:
        out[SHAPES.index(s)] = 1.0
    return out


def _shape_only_text(template: dict, shapes: list[str]) -> str:
    words = list(template["prefix"])
    for k, shape in enumerate(shapes):
        if k:
            words += template["connectors"][k - 1]
        words += ["the" if template["definite"][k] else "a", shape]
    return " ".join(words).replace(" ,", ",")


def _shape_only_captions(
    sample: Sample, rng: np.random.Generator
) -> tuple[list[str], list[list[str]], list[str]]:
    """The sample's caption without colour words ("a circle and a star"), and two negatives
    that each replace one shape by a shape absent from the scene. Colours are the easy cue;
    these captions can only be matched by shape, which forces the towers to learn shapes."""
    template = sample.caption.template
    shapes = [m[1] for m in sample.caption.mentions]
    present = {o.shape for o in sample.objects}
    absent = [h for h in SHAPES if h not in present]
    negs = []
    for _ in range(2):
        neg = list(shapes)
        neg[int(rng.integers(len(neg)))] = absent[int(rng.integers(len(absent)))]
        negs.append(neg)
    return shapes, negs, [_shape_only_text(template, h) for h in [shapes, *negs]]


def make_batch(
    tok: SceneTokenizer,
    seed: int,
    step: int,
    batch_size: int,
    grid: tuple[int, int],
    shape_only_p: float = 0.0,
) -> dict[str, Any]:
    """Batch ``step`` of the training stream (deterministic in the arguments).

    Args:
        tok: Tokenizer.
        seed: Training seed.
        step: Batch index.
        batch_size: Scenes per batch.
        grid: ``(rows, cols)`` patch grid for the masking augmentation.
        shape_only_p: Probability that a scene gets a shape-only caption (and shape-only
            negatives) instead of its colour-and-shape caption.
    """
    base = 10_000_000 * (seed + 1) + step * batch_size
    samples = generate_batch(range(base, base + batch_size))
    rng = np.random.default_rng([seed, step, 11])
    pos_texts: list[str] = []
    neg_texts: list[str] = []
    # (colour, shape) mentions per caption; empty for shape-only captions.
    pos_pairs: list[Sequence[tuple[str, str]]] = []
    neg_pairs: list[Sequence[tuple[str, str]]] = []
    # Shapes per shape-only caption; empty for colour-and-shape captions.
    pos_shapes: list[list[str]] = []
    neg_shapes: list[list[str]] = []
    for s in samples:
        if shape_only_p > 0 and rng.random() < shape_only_p:
            shapes, negs, texts = _shape_only_captions(s, rng)
            pos_texts.append(texts[0])
            neg_texts += texts[1:]
            pos_pairs.append([])
            neg_pairs += [[], []]
            pos_shapes.append(shapes)
            neg_shapes += negs
            continue
        kinds = rng.choice(len(_NEG_KINDS), 2, replace=False, p=_NEG_PROBS)
        neg_caps = [s.hard_negative(_NEG_KINDS[k], seed=int(rng.integers(2**31))) for k in kinds]
        pos_texts.append(s.text)
        neg_texts += [c.text for c in neg_caps]
        pos_pairs.append(s.caption.mentions)
        neg_pairs += [c.mentions for c in neg_caps]
        pos_shapes.append([])
        neg_shapes += [[], []]
    rows, cols = grid
    drop = np.zeros((batch_size, rows * cols), dtype=bool)
    for i, s in enumerate(samples):
        if rng.random() < _AUG_P:
            named = np.zeros(rows * cols, dtype=bool)
            for j in s.named:
                named |= s.patch_mask(j, grid)
            drop[i] = (~named) & (rng.random(rows * cols) < rng.uniform(0.2, 0.6))
    # Per-patch shape labels for the auxiliary head: 1 + shape index where an object covers at
    # least a fifth of the patch, else 0 (background).
    patch_shape = np.zeros((batch_size, rows * cols), dtype=np.int64)
    for i, s in enumerate(samples):
        for k, o in enumerate(s.objects):
            patch_shape[i, s.patch_coverage(k, grid) >= 0.2] = 1 + SHAPES.index(o.shape)
    return {
        "patch_shape": torch.from_numpy(patch_shape),
        "pixels": np.stack([s.array for s in samples]),
        "pos": tok(pos_texts),
        "neg": tok(neg_texts),
        "img_keys": torch.from_numpy(np.stack([_keys(o.key for o in s.objects) for s in samples])),
        "txt_keys": torch.from_numpy(np.stack([_keys(p) for p in pos_pairs + neg_pairs])),
        "img_shapes": torch.from_numpy(
            np.stack([_shape_keys(o.shape for o in s.objects) for s in samples])
        ),
        "txt_shapes": torch.from_numpy(np.stack([_shape_keys(h) for h in pos_shapes + neg_shapes])),
        "drop": torch.from_numpy(drop),
    }


def _apply_drop(pixels: torch.Tensor, drop: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    rows, cols = grid
    h, w = pixels.shape[2:]
    m = drop.view(-1, rows, cols).repeat_interleave(h // rows, 1).repeat_interleave(w // cols, 2)
    return pixels * (~m).unsqueeze(1).float()


def _loss(
    model: CLIP,
    batch: dict[str, Any],
    grid: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    aux_head: torch.nn.Linear | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    b = len(batch["pos"])
    pixels = _apply_drop(arrays_to_tensor(list(batch["pixels"]), mean, std), batch["drop"], grid)
    model.visual.output_tokens = True
    try:
        pooled, tokens = model.visual(pixels)
    finally:
        model.visual.output_tokens = False
    img = F.normalize(pooled, dim=-1)
    txt = F.normalize(encode_text_trimmed(model, torch.cat([batch["pos"], batch["neg"]])), dim=-1)
    scale = model.logit_scale.exp()
    logits = scale * img @ txt.T  # [B, 3B]
    # A caption describes image i when all its (colour, shape) mentions are among i's objects.
    # (Shape-only captions: when all their shapes are there.)
    describes = (
        (batch["txt_keys"] @ (1.0 - batch["img_keys"]).T == 0)
        & (batch["txt_shapes"] @ (1.0 - batch["img_shapes"]).T == 0)
    ).T  # [B, 3B]
    own = torch.zeros_like(describes)
    own[torch.arange(b), torch.arange(b)] = True
    logits = logits.masked_fill(describes & ~own, float("-inf"))
    target = torch.arange(b)
    loss_i2t = F.cross_entropy(logits, target)
    loss_t2i = F.cross_entropy(logits[:, :b].T, target)
    # Image i's own two negatives sit at columns b + 2i and b + 2i + 1.
    idx = torch.arange(b)
    hard = torch.stack(
        [logits[idx, idx], logits[idx, b + 2 * idx], logits[idx, b + 2 * idx + 1]], 1
    )
    loss_hard = F.cross_entropy(hard, torch.zeros(b, dtype=torch.long))
    total = (loss_i2t + loss_t2i) / 2 + loss_hard
    loss_aux = torch.zeros(())
    if aux_head is not None:
        # Training-only probe: the patch tokens must say which shape covers them.
        # Object patches only: with the background class in, it dominated and the head (and
        # the tower) stayed at chance on shapes.
        keep = ~batch["drop"] & (batch["patch_shape"] > 0)
        loss_aux = F.cross_entropy(aux_head(tokens[keep]), batch["patch_shape"][keep])
        total = total + aux_head.weight_in_loss * loss_aux
    return total, {
        "aux": loss_aux.item(),
        "i2t": loss_i2t.item(),
        "t2i": loss_t2i.item(),
        "hard": loss_hard.item(),
    }


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point; returns the final validation metrics."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for the checkpoint, config, card")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument(
        "--decay-frac",
        type=float,
        default=0.3,
        help="constant lr after warm-up, cosine decay over this final fraction of the steps "
        "(so a run can be extended by resuming from a state saved before the decay)",
    )
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--workers", type=int, default=1, help="data-generation processes")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--state", default=None, help="resumable fp32 state file (default OUT/state.pt)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="",
        default=None,
        help="continue from a state file (default --state); states are also kept per "
        "evaluation as STATE.stepN",
    )
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--vision-width", type=int, default=128)
    p.add_argument("--vision-layers", type=int, default=4)
    p.add_argument("--text-width", type=int, default=128)
    p.add_argument("--text-layers", type=int, default=3)
    p.add_argument("--context-length", type=int, default=32)
    p.add_argument("--mlp-ratio", type=float, default=2.0)
    p.add_argument(
        "--shape-only",
        type=float,
        default=0.3,
        help="fraction of scenes captioned by shapes only (forces shape learning)",
    )
    p.add_argument(
        "--shape-only-from", type=int, default=0, help="first step using --shape-only captions"
    )
    p.add_argument(
        "--aux-weight",
        type=float,
        default=1.0,
        help="weight of a training-only linear head on the image patch tokens that predicts the "
        "shape covering each patch (0 = off); the head is not part of the shipped model",
    )
    p.add_argument("--aux-from", type=int, default=0, help="first step using the auxiliary head")
    args = p.parse_args(argv)

    import open_clip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state_path = Path(args.state) if args.state else out / "state.pt"

    tok = SceneTokenizer(CAPTION_VOCABULARY, context_length=args.context_length)
    cfg = make_config(
        tok.vocab_size,
        context_length=args.context_length,
        image_size=args.image_size,
        patch_size=args.patch_size,
        embed_dim=args.embed_dim,
        vision_width=args.vision_width,
        vision_layers=args.vision_layers,
        text_width=args.text_width,
        text_layers=args.text_layers,
        mlp_ratio=args.mlp_ratio,
    )
    model = open_clip.CLIP(**cfg)
    grid = tuple(model.visual.grid_size)
    mean, std = OPENAI_MEAN, OPENAI_STD  # what open_clip's transforms use for this config
    n_params = sum(p.numel() for p in model.parameters())
    _log(f"config {json.dumps(cfg)}")
    _log(f"{n_params / 1e6:.2f}M parameters, grid {grid}, threads {torch.get_num_threads()}")

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)
    ]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    # Training-only auxiliary head (seeded separately so turning it on later does not change
    # the model's initialisation); saved in the state, never in the shipped checkpoint.
    aux_gen = torch.Generator().manual_seed(args.seed + 1)
    aux_head = torch.nn.Linear(cfg["vision_cfg"]["width"], len(SHAPES) + 1)
    with torch.no_grad():
        aux_head.weight.copy_(torch.randn(aux_head.weight.shape, generator=aux_gen) * 0.02)
        aux_head.bias.zero_()
    aux_head.weight_in_loss = args.aux_weight
    aux_opt = torch.optim.AdamW(aux_head.parameters(), lr=args.lr, weight_decay=0.0)
    start, history, elapsed0 = 0, [], 0.0
    if args.resume is not None:
        resume_path = Path(args.resume) if args.resume else state_path
        st = torch.load(resume_path, map_location="cpu", weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        start, history, elapsed0 = st["step"], st["history"], st.get("elapsed", 0.0)
        if "aux" in st:
            aux_head.load_state_dict(st["aux"])
            aux_opt.load_state_dict(st["aux_opt"])
        _log(f"resumed from {resume_path} at step {start}")

    with torch.no_grad():  # the trimmed text path must equal open_clip's encode_text
        t = tok(["a red circle", "there is a blue star, a green ring, and a pink heart"])
        diff = (encode_text_trimmed(model, t) - model.encode_text(t)).abs().max()
        assert diff < 1e-4, f"trimmed text encoding differs from encode_text by {diff}"

    decay_start = round(args.steps * (1 - args.decay_frac))

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        if step < decay_start:
            return args.lr
        q = (step - decay_start) / max(1, args.steps - decay_start)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, q))))

    data = torch.utils.data.DataLoader(
        _Batches(
            tok,
            args.seed,
            start,
            args.steps,
            args.batch_size,
            grid,
            args.shape_only,
            args.shape_only_from,
        ),
        batch_size=None,
        num_workers=args.workers,
        prefetch_factor=2 if args.workers else None,
        persistent_workers=False,
    )
    model.train()
    t0 = time.time()
    t_last, wait = t0, 0.0
    t_fetch = time.time()
    for step, batch in zip(range(start, args.steps), data, strict=False):
        wait += time.time() - t_fetch
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        use_aux = args.aux_weight > 0 and step >= args.aux_from
        for g in aux_opt.param_groups:
            g["lr"] = lr_at(step)
        loss, parts = _loss(model, batch, grid, mean, std, aux_head if use_aux else None)
        opt.zero_grad(set_to_none=True)
        aux_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if use_aux:
            aux_opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            now = time.time()
            per = (now - t_last) / args.log_every
            _log(
                f"step {done}/{args.steps} loss {float(loss):.4f} i2t {parts['i2t']:.3f} "
                f"t2i {parts['t2i']:.3f} hard {parts['hard']:.3f} aux {parts['aux']:.3f} "
                f"scale {float(model.logit_scale.exp()):.1f} lr {lr_at(step):.2e} "
                f"{per:.2f}s/step (data wait {wait / args.log_every:.2f}s) "
                f"eta {per * (args.steps - done) / 60:.1f} min"
            )
            t_last, wait = now, 0.0
        if done % args.eval_every == 0 or done == args.steps:
            metrics = evaluate(model, tok, VAL_SEED)
            history.append({"step": done, **metrics})
            _log(f"val step {done}: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
            state = {
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "aux": aux_head.state_dict(),
                "aux_opt": aux_opt.state_dict(),
                "step": done,
                "history": history,
                "elapsed": elapsed0 + time.time() - t0,
                "config": cfg,
            }
            torch.save(state, state_path)
            torch.save(state, f"{state_path}.step{done}")
            model.train()
        t_fetch = time.time()

    elapsed = elapsed0 + time.time() - t0
    final = history[-1] if history else evaluate(model, tok, VAL_SEED)
    _write_outputs(
        out,
        model,
        tok,
        cfg,
        args,
        final,
        history,
        elapsed,
        n_params,
        sys.argv[1:] if argv is None else argv,
    )
    return final


def _without_resume(argv: list[str]) -> list[str]:
    """``argv`` without ``--resume [PATH]`` and ``--state PATH``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            if not a.startswith("--"):
                continue
        if a in ("--resume", "--state"):
            skip = True
            continue
        if a.startswith(("--resume=", "--state=")):
            continue
        out.append(a)
    return out


def _write_outputs(
    out: Path,
    model: CLIP,
    tok: SceneTokenizer,
    cfg: dict[str, Any],
    args: argparse.Namespace,
    final: dict[str, float],
    history: list[dict[str, Any]],
    elapsed: float,
    n_params: int,
    argv: list[str],
) -> None:
    from fixlip_captum.models import MODEL_NAME

    sd = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
    torch.save(sd, out / f"{MODEL_NAME}.pt")
    (out / f"{MODEL_NAME}.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tok.save(out / f"{MODEL_NAME}-tokenizer.json")
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "architecture": "open_clip CLIP: ViT image tower (CLS pooling) + causal text tower "
        "pooled at the end-of-text token (pool_type 'eos')",
        "config": cfg,
        "parameters": n_params,
        "checkpoint": f"{MODEL_NAME}.pt (fp16 state dict)",
        "tokenizer": {
            "type": "word-level SceneTokenizer",
            "vocab_size": tok.vocab_size,
            "context_length": tok.context_length,
            "pad_token_id": tok.pad_token_id,
            "unk_token_id": tok.unk_token_id,
            "sot_token_id": tok.sot_token_id,
            "eot_token_id": tok.eot_token_id,
            "words": tok.vocab,
        },
        "preprocessing": "open_clip validation transform at 96 px (OpenAI mean/std)",
        "data": {
            "generator": "fixlip_captum.scenes.generate_sample (2x2 cells, 1-4 objects of "
            f"{len(COLOURS)} colours x {len(SHAPES)} shapes, distinct per scene; captions name "
            "1-4 objects)",
            "train_scene_seeds": "10_000_000 * (seed + 1) + step * batch_size + i, "
            f"seed={args.seed}",
            "train_scenes": args.steps * args.batch_size,
            "hard_negatives": "2 per scene from colour_swap / shape_swap / absent (p 0.4/0.4/0.2)",
            "augmentation": f"{_AUG_P:.0%} of images: random patches not touching named objects "
            "set to the mean colour",
            "validation_seeds": f"{VAL_SEED}..",
            "test_seeds": f"{TEST_SEED}.. (tests/test_default_model.py)",
        },
        "training": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "optimizer": "AdamW betas (0.9, 0.98), eps 1e-6",
            "lr": args.lr,
            "warmup": args.warmup,
            "schedule": f"linear warm-up, constant, cosine to 2% of lr over the last "
            f"{args.decay_frac:.0%} of the steps",
            "weight_decay": args.weight_decay,
            "torch_threads": args.threads,
            "data_workers": args.workers,
            "seed": args.seed,
            "wall_clock_minutes": round(elapsed / 60, 1),
            # The run may have been resumed; the data stream and the lr schedule depend only on
            # these arguments, so the same command without --resume reproduces it.
            "command": "python benchmarks/train_scenes_clip.py " + " ".join(_without_resume(argv)),
            "torch": torch.__version__,
        },
        "metrics_validation": final,
        "metrics_definition": {
            "top1_i2t": "image -> caption top-1 among 64 (a pick is right if the caption "
            "describes the image)",
            "top1_t2i": "caption -> image top-1 among 64",
            "colour_swap / shape_swap / absent": "own caption scores above one hard negative",
            "masking": "single-object captions, 2-4 objects: masking the named object's patches "
            "(normalised 0) lowers the cosine most",
        },
        "history": history,
    }
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    lines = [
        f"# {MODEL_NAME}",
        "",
        "A small open_clip `CLIP` trained from scratch on procedurally generated scenes "
        "(`fixlip_captum.scenes`), shipped so FIxLIP runs offline. It only knows the scene "
        "vocabulary below; it is a test bed with ground truth, not a general image model.",
        "",
        "Load: `model, preprocess, tokenizer = fixlip_captum.models.load_default()`.",
        "",
        f"- Parameters: {n_params:,}; image {cfg['vision_cfg']['image_size']} px, patches "
        f"{cfg['vision_cfg']['patch_size']} px ({model.visual.grid_size[0]}x"
        f"{model.visual.grid_size[1]} = {model.visual.grid_size[0] * model.visual.grid_size[1]} "
        "image players).",
        f"- Tokenizer: word-level, vocab {tok.vocab_size} (pad 0, unk 1, start "
        f"{tok.sot_token_id}, end {tok.eot_token_id} = largest id), context {tok.context_length}; "
        "text pooled at the end-of-text token (`pool_type: eos`).",
        f"- Training: {args.steps} steps x {args.batch_size} scenes, "
        f"{card['training']['wall_clock_minutes']} min on CPU ({args.threads} threads), seed "
        f"{args.seed}; command `{card['training']['command']}`.",
        f"- Data: {card['data']['generator']}; hard negatives: {card['data']['hard_negatives']}.",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(cfg, indent=2),
        "```",
        "",
        f"## Validation metrics (256 scenes from seed {VAL_SEED}; 100 single-object captions)",
        "",
        "| metric | value |",
        "| --- | --- |",
        *[f"| {k} | {v:.3f} |" for k, v in final.items()],
        "",
        "Definitions: "
        + "; ".join(f"{k}: {v}" for k, v in card["metrics_definition"].items())
        + ".",
        "",
    ]
    (out / "model_card.md").write_text("\n".join(lines))
    _log(f"wrote {out}: {MODEL_NAME}.pt, {MODEL_NAME}.json, tokenizer, model card")


if __name__ == "__main__":
    main()
