"""Which open_clip configs and transformers dual encoders fixlip-captum explains, verified.

For every ``open_clip.list_models()`` config (one subprocess per config, so memory is
returned after each), at random init (``create_model(name, pretrained=None)``, offline):

1. count the parameters on the meta device; configs over ``--max-params`` are skipped;
2. build the model and its adapter (``get_adapter``);
3. check v_full (the adapter's unmasked value) against the model's own logit
   ``logit_scale.exp() * cos(encode_image, encode_text) (+ logit_bias)``;
4. check masked-id invariance (changing a masked token's id leaves the value unchanged) and
   batching invariance (coalitions encoded together = one by one) for every image masking;
5. run a small FIxLIP explanation on a 2 x 2 ``image_grid`` (exact: every image mask) with
   every caption token as a player.

Tokenizers that need a hub download (SigLIP, the HF text towers) are replaced by token ids
inside the vocabulary, with the end/padding ids the text tower expects. transformers dual
encoders are built from tiny configs and either explained the same way or refused (the
refusal message is recorded).

Results go to ``benchmarks/results/model_coverage.json`` (rewritten after every config, so
an interrupted run keeps what it has; ``--resume`` continues it) and the table to
``docs/model-coverage.md``.

Usage::

    python benchmarks/model_coverage.py                  # every config (slow: hours on 2 cores)
    python benchmarks/model_coverage.py --configs RN50 ViT-S-32
    python benchmarks/model_coverage.py --resume --timeout 600
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "model_coverage.json"
TABLE = ROOT / "docs" / "model-coverage.md"
CAPTION_IDS = 4  # caption tokens (players) per test caption
TOLERANCE = 1e-5  # relative |v_full - logit|


# ---------------------------------------------------------------------------------------
# the check of one model (also used by the tests on tiny models)
# ---------------------------------------------------------------------------------------


def model_logit(model: Any, pixels: torch.Tensor, ids: torch.Tensor) -> float:
    """The model's own logit for one pair, from its ``encode_image`` / ``encode_text``."""
    img = F.normalize(model.encode_image(pixels).float(), dim=-1)
    txt = F.normalize(model.encode_text(ids[None]).float(), dim=-1)
    out = model.logit_scale.exp().float() * (img @ txt.T)
    bias = getattr(model, "logit_bias", None)
    if bias is not None:
        out = out + bias.float()
    return float(out.reshape(()))


def check_adapter(adapter: Any, text: Any, logit: float, seed: int = 0) -> dict[str, Any]:
    """Verify one adapter: v_full vs ``logit``, masked-id and batching invariance, and a
    small explanation.

    Args:
        adapter: A ``DualEncoderAdapter`` (built with ``image_grid=(2, 2)`` for a fast
            exact explanation, or any grid).
        text: Caption or token ids the adapter tokenizes.
        logit: The model's own logit for the adapter's test image (``random_image``).
        seed: Seed of the random image and coalitions.

    Returns:
        ``rel_err`` (relative |v_full - logit|), ``id_err`` (largest change from masked
        ids), ``batch_err`` (largest change from batching), ``maskings``, ``n_image``,
        ``n_text``, ``explained`` (the explanation ran and is finite), ``verified``.
    """
    from fixlip_captum import FIxLIP

    g = torch.Generator().manual_seed(seed)
    pixels = random_image(adapter, seed)
    tokens = adapter.tokenize(text)
    n_i, n_t = adapter.n_image_players, tokens.n_players
    maskings = tuple(getattr(adapter, "image_maskings", ("mean", "drop")))
    with torch.no_grad():
        v_full = float(
            adapter.similarity(adapter.encode_image(pixels), adapter.encode_text(tokens))
        )
        text_masks = torch.rand(3, n_t, generator=g) < 0.5
        text_masks[0] = False
        text_masks[0, 0] = True
        together = adapter.encode_text(tokens, text_masks)
        alone = torch.cat([adapter.encode_text(tokens, c[None]) for c in text_masks])
        batch_err = float((together - alone).abs().max())
        ids = tokens.input_ids.clone()
        masked = tokens.player_positions[~text_masks[0]]
        ids[masked] = int(ids[tokens.player_positions[0]])
        changed = type(tokens)(**{**tokens.__dict__, "input_ids": ids})
        id_err = float((adapter.encode_text(changed, text_masks[:1]) - together[:1]).abs().max())
        image_masks = torch.rand(3, n_i, generator=g) < 0.5
        for masking in maskings:
            together = adapter.encode_image(pixels, image_masks, masking)
            alone = torch.cat([adapter.encode_image(pixels, c[None], masking) for c in image_masks])
            batch_err = max(batch_err, float((together - alone).abs().max()))
    iv = FIxLIP(adapter).attribute_interactions(
        pixels, text, m_image=2**n_i if n_i <= 6 else 64, m_text=2**n_t, seed=seed
    )
    explained = bool(torch.isfinite(torch.as_tensor(iv.values)).all())
    rel_err = abs(v_full - logit) / max(abs(logit), 1e-12)
    return {
        "rel_err": rel_err,
        "id_err": id_err,
        "batch_err": batch_err,
        "maskings": list(maskings),
        "n_image": n_i,
        "n_text": n_t,
        "explained": explained,
        "verified": explained and rel_err <= TOLERANCE and id_err <= 1e-5 and batch_err <= 1e-5,
    }


def random_image(adapter: Any, seed: int) -> torch.Tensor:
    """A normalised random image ``[1, 3, H, W]`` of the adapter's input size."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 3, *adapter.image_size, generator=g)


# ---------------------------------------------------------------------------------------
# open_clip configs
# ---------------------------------------------------------------------------------------


class IdTokenizer:
    """Stand-in for a tokenizer that needs a hub download: caption words become fixed ids
    inside the vocabulary, followed by the end token and padding the text tower expects."""

    def __init__(self, vocab_size: int, bos: int | None, eos: int | None, pad: int, ctx: int):
        self.vocab_size, self.context_length = vocab_size, ctx
        self.sot_token_id, self.eot_token_id, self.pad_token_id = bos, eos, pad

    def __call__(self, texts: Any, context_length: int | None = None) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        n = context_length or self.context_length
        out = torch.full((len(texts), n), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_token_id] if self.sot_token_id is not None else []
            used = {self.sot_token_id, self.eot_token_id, self.pad_token_id}
            words = [10 + 7 * sum(map(ord, w)) % (self.vocab_size - 20) for w in text.split()]
            ids += [w if w not in used else w + 1 for w in words]
            if self.eot_token_id is not None:
                ids.append(self.eot_token_id)
            out[row, : len(ids)] = torch.tensor(ids[:n])
        return out


def describe(model: Any) -> tuple[str, str]:
    """``(family, towers)``: a family label from the tower types, and the types."""
    visual = model.visual
    trunk = getattr(visual, "trunk", None)
    image = type(trunk).__name__ if trunk is not None else type(visual).__name__
    text = type(getattr(model, "text", model)).__name__
    if text == "HFTextEncoder":
        text = f"HF {model.text.config.model_type}"
    elif text in ("CLIP",):
        text = "TextTransformer (flat)"
    kind = type(model).__name__
    return f"{kind}: {image} + {text}", f"{image} / {text}"


def tokenizer_for(name: str, model: Any) -> Any:
    import open_clip

    try:
        return open_clip.get_tokenizer(name)
    except Exception:  # needs a hub download
        pass
    text = getattr(model, "text", model)
    if type(text).__name__ == "HFTextEncoder":
        cfg = text.config
        bos = getattr(cfg, "bos_token_id", None) if cfg.model_type != "mt5" else None
        return IdTokenizer(cfg.vocab_size, bos, cfg.eos_token_id, cfg.pad_token_id, 32)
    eos = getattr(text, "eos_id", None)
    pad = int(getattr(text, "pad_id", 0) or 0)
    eos = 1 if eos is None else int(eos)
    return IdTokenizer(
        int(text.vocab_size), None, eos, pad if pad != 0 else eos, int(text.context_length)
    )


def check_open_clip(name: str, max_params: float) -> dict[str, Any]:
    """Build one config at random init and check it (run in a subprocess)."""
    import open_clip

    from fixlip_captum.adapters import get_adapter

    row: dict[str, Any] = {"config": name}
    try:
        meta = open_clip.create_model(name, pretrained=None, device="meta")
        row["params"] = sum(p.numel() for p in meta.parameters())
        del meta
    except Exception as err:
        row.update(status="does not build offline", note=f"{type(err).__name__}: {str(err)[:160]}")
        return row
    if row["params"] > max_params:
        row.update(status="skipped", note=f"over {max_params / 1e6:.0f}M parameters")
        return row
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).eval()
    row["family"], row["towers"] = describe(model)
    tokenizer = tokenizer_for(name, model)
    try:
        adapter = get_adapter(model, tokenizer)
        adapter = type(adapter)(model, tokenizer, image_grid=(2, 2))
        row["players_default"] = "{} x {}".format(*get_adapter(model, tokenizer).patch_grid)
    except Exception as err:
        row.update(status="refused", note=f"{type(err).__name__}: {str(err)[:200]}")
        return row
    caption = "a photo of a cat"
    with torch.no_grad():
        tokens = adapter.tokenize(caption)
        logit = model_logit(model, random_image(adapter, 0), tokens.input_ids)
    row.update(check_adapter(adapter, caption, logit))
    row["status"] = "explained" if row["verified"] else "FAILED"
    return row


# ---------------------------------------------------------------------------------------
# transformers dual encoders
# ---------------------------------------------------------------------------------------


def transformers_rows() -> list[dict[str, Any]]:
    """Every transformers image-text dual encoder class: supported (checked) or refused."""
    import transformers

    from fixlip_captum.adapters import UnsupportedModelError, get_adapter

    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    classes = {
        "CLIPModel": (
            "CLIPConfig",
            dict(text_config=tiny, vision_config={**tiny, "image_size": 32, "patch_size": 8}),
        ),
        "SiglipModel": (
            "SiglipConfig",
            dict(text_config=tiny, vision_config={**tiny, "image_size": 32, "patch_size": 8}),
        ),
        "Siglip2Model": (
            "Siglip2Config",
            dict(text_config=tiny, vision_config={**tiny, "num_patches": 16, "patch_size": 8}),
        ),
        "MetaClip2Model": (
            "MetaClip2Config",
            dict(text_config=tiny, vision_config={**tiny, "image_size": 32, "patch_size": 8}),
        ),
        "AltCLIPModel": (
            "AltCLIPConfig",
            dict(text_config=tiny, vision_config={**tiny, "image_size": 32, "patch_size": 8}),
        ),
        "ChineseCLIPModel": (
            "ChineseCLIPConfig",
            dict(text_config=tiny, vision_config={**tiny, "image_size": 32, "patch_size": 8}),
        ),
        "AlignModel": ("AlignConfig", {}),
    }
    rows = []
    for cls_name, (cfg_name, kwargs) in classes.items():
        row: dict[str, Any] = {"config": cls_name, "family": f"transformers {cls_name}"}
        cls = getattr(transformers, cls_name, None)
        if cls is None:
            row.update(status="absent", note=f"not in transformers {transformers.__version__}")
            rows.append(row)
            continue
        try:
            torch.manual_seed(0)
            model = cls(getattr(transformers, cfg_name)(**kwargs)).eval()
        except Exception as err:
            row.update(status="not built", note=f"{type(err).__name__}: {str(err)[:160]}")
            rows.append(row)
            continue
        try:
            get_adapter(model, None)
            row.update(status="supported", note="verified in the test suite on a tiny config")
        except UnsupportedModelError as err:
            first = str(err).splitlines()[0]
            row.update(status="refused", note=f"{first} (the message lists the supported models)")
        rows.append(row)
        del model
    return rows


# ---------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------


def write_table(rows: list[dict[str, Any]], command: str) -> None:
    oc = [
        r for r in rows if "towers" in r or r.get("status") in ("does not build offline", "skipped")
    ]
    built = [r for r in oc if r.get("status") not in ("does not build offline", "skipped")]
    explained = [r for r in built if r.get("status") == "explained"]
    families: dict[str, list[dict[str, Any]]] = {}
    for r in built:
        families.setdefault(r["family"], []).append(r)
    lines = [
        "# Model coverage",
        "",
        "Generated by `benchmarks/model_coverage.py` (do not edit by hand):",
        "",
        f"    {command}",
        "",
        "The open_clip configs run so far, built at random init, offline. *verified*: v_full (the",
        "unmasked value) equals the model's own logit to 1e-5 relative, a masked token's id",
        "has no effect, encoding coalitions together equals one by one (every masking), and a",
        "small FIxLIP explanation (2 x 2 `image_grid`, exact) ran. *players*: the default image",
        "grid (patches of a ViT, output-stride cells of a convolutional tower).",
        "",
        f"**{len(explained)} of {len(built)} configs that build offline are explained**"
        f" ({len(oc) - len(built)} others: over the parameter limit, or their text tower needs"
        " a hub download to be built).",
        "",
        "| family | configs explained | example config | players (image) | image masking |"
        " max rel. \\|v_full - logit\\| |",
        "|---|---|---|---|---|---|",
    ]
    for fam, rs in sorted(families.items()):
        ok = [r for r in rs if r.get("status") == "explained"]
        ex = (ok or rs)[0]
        err = max((r.get("rel_err", float("nan")) for r in rs), default=float("nan"))
        lines.append(
            f"| {fam} | {len(ok)} / {len(rs)} | {ex['config']} | {ex.get('players_default', '-')}"
            f" | {', '.join(ex.get('maskings', [])) or '-'} | {err:.1e} |"
        )
    lines += ["", "## Every config", "", "| config | status | params | note |", "|---|---|---|---|"]
    for r in oc:
        params = f"{r['params'] / 1e6:.0f}M" if "params" in r else "-"
        note = r.get("note", r.get("family", "")).replace("|", "/")
        lines.append(f"| {r['config']} | {r['status']} | {params} | {note} |")
    hf = [r for r in rows if r.get("family", "").startswith("transformers")]
    if hf:
        lines += ["", "## transformers", "", "| class | status | note |", "|---|---|---|"]
        for r in hf:
            lines.append(
                f"| {r['config']} | {r['status']} | {r.get('note', '').replace('|', '/')} |"
            )
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    tmp = TABLE.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(TABLE)


def save(rows: list[dict[str, Any]]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(RESULTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help="open_clip configs (default: all)")
    parser.add_argument("--max-params", type=float, default=450e6)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per config")
    parser.add_argument("--resume", action="store_true", help="keep rows already in the results")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("ROW " + json.dumps(check_open_clip(args.one, args.max_params)), flush=True)
        return
    import open_clip
    from tqdm import tqdm

    names = args.configs or open_clip.list_models()
    rows = json.loads(RESULTS.read_text()) if args.resume and RESULTS.exists() else []
    done = {r["config"] for r in rows}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    for name in tqdm([n for n in names if n not in done], desc="open_clip configs"):
        start = time.time()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--one", name, "--max-params", str(args.max_params)],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                env=env,
            )
            found = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROW ")]
            row = (
                json.loads(found[-1][4:])
                if found
                else {
                    "config": name,
                    "status": "error",
                    "note": proc.stderr.strip().splitlines()[-1][:200],
                }
            )
        except subprocess.TimeoutExpired:
            row = {
                "config": name,
                "status": "timeout",
                "note": f"over {args.timeout:.0f} s on this machine",
            }
        row["seconds"] = round(time.time() - start, 1)
        rows = [r for r in rows if r["config"] != row["config"]] + [row]
        save(rows)
        write_table(rows, "python benchmarks/model_coverage.py " + " ".join(sys.argv[1:]))
    rows = [
        r for r in rows if not r.get("family", "").startswith("transformers")
    ] + transformers_rows()
    save(rows)
    write_table(rows, "python benchmarks/model_coverage.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
