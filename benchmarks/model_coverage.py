"""Which open_clip configs and transformers dual encoders fixlip-captum explains, verified.

For every ``open_clip.list_models()`` config (each in a child process forked from the
driver, which imports torch, open_clip and fixlip_captum once; the child's memory goes back
to the system when it exits), at random init (``create_model(name, pretrained=None)``,
offline), on one CPU thread (``--threads``):

1. count the parameters on the meta device; a config estimated to need more memory than
   ``--max-memory-gb`` (float32 weights plus a margin) is reported as too large, not built;
2. build the model and its adapter (``get_adapter``), with its default players (every
   patch of a ViT, the output-stride grid of a convolutional tower);
3. check v_full (every player kept, through the masked path, for every image masking)
   against the model's own logit ``logit_scale.exp() * cos(encode_image, encode_text)
   (+ logit_bias)``;
4. check masked-id invariance (changing a masked token's id leaves the value unchanged) and
   batching invariance (coalitions encoded together = one by one) for every image masking;
5. run a small FIxLIP explanation on a 1 x 2 ``image_grid`` (exact: every image mask) with
   every caption token ("a red cat": 3 players) as a player; its v_full is checked too.

Tokenizers that need a hub download (SigLIP, the HF text towers) are replaced by token ids
inside the vocabulary, with the end/padding ids the text tower expects. transformers dual
encoders are built from tiny configs and either explained the same way or refused (the
refusal message is recorded).

Results go to ``benchmarks/results/model_coverage.json`` (rewritten after every config, so
an interrupted run keeps what it has; ``--resume`` continues it) and the table to
``docs/model-coverage.md``.

Usage::

    python benchmarks/model_coverage.py                  # every config (about 2 h, 1 core)
    python benchmarks/model_coverage.py --configs RN50 ViT-S-32
    python benchmarks/model_coverage.py --resume --timeout 900
    python benchmarks/model_coverage.py --resume --threads 2 --configs ViT-bigG-14  # faster
    python benchmarks/model_coverage.py --resume --redo --configs RN50   # rerun one
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "model_coverage.json"
TABLE = ROOT / "docs" / "model-coverage.md"
CAPTION = "a red cat"  # the test caption: 3 text players
EXPLAIN_GRID = (1, 2)  # image_grid of the explanation: 2 image players, 4 masked images
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


def check_adapter(
    adapter: Any,
    text: Any,
    logit: float,
    seed: int = 0,
    explain_adapter: Any = None,
) -> dict[str, Any]:
    """Verify one adapter: v_full vs ``logit``, masked-id and batching invariance, and a
    small exact explanation.

    Every check runs on ``adapter``'s own players (its default grid: every patch of a ViT);
    the explanation runs on ``explain_adapter`` (the same model with a coarse
    ``image_grid``, so that it is exact with few masked images), or on ``adapter``.

    * v_full: the value with every player kept, through the masked path (the one the
      explanation uses) for every image masking, and the explanation's own v_full, each
      against ``logit``;
    * masked-id invariance: a caption with one token kept and every masked token's id
      replaced encodes as before;
    * batching invariance: three text coalitions and, for every image masking, three image
      coalitions (everything kept; a random one; as many patches kept elsewhere) encoded
      together equal them one by one.

    Args:
        adapter: A ``DualEncoderAdapter``.
        text: Caption or token ids the adapter tokenizes (at least two players).
        logit: The model's own logit for the adapter's test image (``random_image``).
        seed: Seed of the random image and coalitions.
        explain_adapter: Adapter of the same model to run the explanation on (default:
            ``adapter``); exact when it has at most 6 image players.

    Returns:
        ``rel_err`` (largest relative |v_full - logit|), ``id_err`` (largest change from
        masked ids), ``batch_err`` (largest change from batching), ``maskings``,
        ``n_image``, ``n_text`` (players of ``adapter``), ``n_image_explained`` (image
        players of the explanation), ``explained`` (the explanation ran and is finite),
        ``verified``.
    """
    from fixlip_captum import FIxLIP

    explain_adapter = adapter if explain_adapter is None else explain_adapter
    g = torch.Generator().manual_seed(seed)
    pixels = random_image(adapter, seed)
    tokens = adapter.tokenize(text)
    n_i, n_t = adapter.n_image_players, tokens.n_players
    if n_t < 2:
        raise ValueError(f"the check needs a caption of at least 2 players, got {n_t}")
    maskings = tuple(getattr(adapter, "image_maskings", ("mean", "drop")))
    v_fulls = []
    with torch.no_grad():
        text_masks = torch.rand(3, n_t, generator=g) < 0.5
        text_masks[0] = True  # every token kept: v_full
        text_masks[1] = False
        text_masks[1, 0] = True  # one token kept: the masked ids below
        together = adapter.encode_text(tokens, text_masks)
        alone = torch.cat([adapter.encode_text(tokens, c[None]) for c in text_masks])
        batch_err = float((together - alone).abs().max())
        text_full = alone[:1]
        ids = tokens.input_ids.clone()
        ids[tokens.player_positions[~text_masks[1]]] = int(ids[tokens.player_positions[0]])
        changed = type(tokens)(**{**tokens.__dict__, "input_ids": ids})
        id_err = float((adapter.encode_text(changed, text_masks[1:2]) - alone[1:2]).abs().max())
        # every patch kept (v_full), a random coalition, and the same number of patches
        # kept elsewhere (token drop encodes equal counts in one forward)
        image_masks = torch.ones(3, n_i, dtype=torch.bool)
        image_masks[1] = torch.rand(n_i, generator=g) < 0.5
        image_masks[2] = image_masks[1][torch.randperm(n_i, generator=g)]
        for masking in maskings:
            together = adapter.encode_image(pixels, image_masks, masking)
            alone = torch.cat([adapter.encode_image(pixels, c[None], masking) for c in image_masks])
            batch_err = max(batch_err, float((together - alone).abs().max()))
            v_fulls.append(float(adapter.similarity(alone[:1], text_full).reshape(())))
    n_e = explain_adapter.n_image_players
    iv = FIxLIP(explain_adapter).attribute_interactions(
        pixels, text, m_image=2**n_e if n_e <= 6 else 64, m_text=2**n_t, seed=seed
    )
    v_fulls.append(float(iv.context.v_full))
    explained = bool(torch.isfinite(torch.as_tensor(iv.values)).all())
    rel_err = max(abs(v - logit) for v in v_fulls) / max(abs(logit), 1e-12)
    return {
        "rel_err": rel_err,
        "id_err": id_err,
        "batch_err": batch_err,
        "maskings": list(maskings),
        "n_image": n_i,
        "n_text": n_t,
        "n_image_explained": n_e,
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
    text_cfg = open_clip.get_model_config(name).get("text_cfg", {})
    eos = getattr(text, "eos_id", None)
    eos = text_cfg.get("eos_id", eos)  # e.g. the worldwide (XLM-V) towers: eos_id 2
    pad = int(text_cfg.get("pad_id", getattr(text, "pad_id", 0)) or 0)
    eos = 1 if eos is None else int(eos)
    return IdTokenizer(
        int(text.vocab_size), None, eos, pad if pad != 0 else eos, int(text.context_length)
    )


def memory_needed_gb(params: int) -> float:
    """Estimated peak memory (GB) of building and checking a float32 model of ``params``
    parameters at random init: the weights, a quarter more for initialisation and
    activations, and the interpreter with torch and open_clip loaded."""
    return 4 * params * 1.25 / 1e9 + 1.5


def check_open_clip(
    name: str, max_params: float = float("inf"), max_memory_gb: float = float("inf")
) -> dict[str, Any]:
    """Build one config at random init and check it (run in a child process).

    The checks run on the adapter's default players (every patch of a ViT, the
    output-stride grid of a convolutional tower); the explanation on a 1 x 2
    ``image_grid`` (2 image players, exact), with every caption token a player.
    """
    import open_clip

    from fixlip_captum.adapters import get_adapter

    row: dict[str, Any] = {"config": name}
    try:
        # Every tensor on the meta device, also those created before device= is applied
        # (timm trunks): nothing is allocated, whatever the size.
        with torch.device("meta"):
            meta = open_clip.create_model(name, pretrained=None, device="meta")
        row["params"] = sum(p.numel() for p in meta.parameters())
        del meta
    except Exception as err:
        row.update(status="does not build offline", note=f"{type(err).__name__}: {str(err)[:160]}")
        return row
    if row["params"] > max_params:
        row.update(status="skipped", note=f"over {max_params / 1e6:.0f}M parameters")
        return row
    need = memory_needed_gb(row["params"])
    if need > max_memory_gb:
        row.update(
            status="too large here",
            note=f"needs ~{need:.0f} GB to build in float32, over this run's "
            f"{max_memory_gb:.0f} GB limit (--max-memory-gb); not checked",
        )
        return row
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None).eval()
    row["family"], row["towers"] = describe(model)
    tokenizer = tokenizer_for(name, model)
    try:
        adapter = get_adapter(model, tokenizer)
        coarse = type(adapter)(model, tokenizer, image_grid=EXPLAIN_GRID)
    except Exception as err:
        row.update(status="refused", note=f"{type(err).__name__}: {str(err)[:200]}")
        return row
    row["players_default"] = "{} x {}".format(*adapter.patch_grid)
    with torch.no_grad():
        tokens = adapter.tokenize(CAPTION)
        logit = model_logit(model, random_image(adapter, 0), tokens.input_ids)
    row.update(check_adapter(adapter, CAPTION, logit, explain_adapter=coarse))
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
    import open_clip

    listed = open_clip.list_models()
    oc = [r for r in rows if not r.get("family", "").startswith("transformers")]
    built = [r for r in oc if r.get("status") not in ("does not build offline", "skipped")]
    explained = [r for r in built if r.get("status") == "explained"]
    families: dict[str, list[dict[str, Any]]] = {}
    for r in built:
        if "family" in r:
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
        "small FIxLIP explanation (1 x 2 `image_grid`, exact) ran. *players*: the default image",
        "grid (patches of a ViT, output-stride cells of a convolutional tower).",
        "",
        f"**{len(explained)} of {len(built)} configs that build offline are explained**"
        f" ({len(oc) - len(built)} others do not build offline: their text tower needs a hub"
        f" download to be built, or they are over --max-params). Not yet run:"
        f" {len(listed) - len(oc)} of the {len(listed)} configs of open_clip.list_models();"
        " *too large here*: built and counted, but over this machine's memory limit.",
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


def _child(name: str, max_params: float, max_memory_gb: float, conn: Any) -> None:
    """One config in a forked child: its memory goes back to the system when it exits."""
    threads = torch.get_num_threads()  # the driver's --threads
    import resource

    torch.set_num_threads(threads)
    try:
        row = check_open_clip(name, max_params, max_memory_gb)
    except Exception as err:
        row = {"config": name, "status": "error", "note": f"{type(err).__name__}: {err}"[:240]}
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    conn.send(row)
    conn.close()


def run_one(name: str, max_params: float, max_memory_gb: float, timeout: float) -> dict[str, Any]:
    """Check one config in a child process forked from this one (torch, open_clip and
    fixlip_captum are imported once, in the parent); killed after ``timeout`` seconds."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_child, args=(name, max_params, max_memory_gb, send))
    child.start()
    send.close()
    row: dict[str, Any]
    try:
        if receive.poll(timeout):
            row = receive.recv()
        else:
            child.kill()
            row = {"config": name, "status": "timeout", "note": f"over {timeout:.0f} s here"}
    except EOFError:  # the child died without a row (killed, e.g. out of memory)
        child.join()
        row = {
            "config": name,
            "status": "error",
            "note": f"the check process died (exit code {child.exitcode}; -9: killed, e.g. "
            "out of memory)",
        }
    child.join()
    receive.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", help="open_clip configs (default: all)")
    parser.add_argument("--max-params", type=float, default=float("inf"))
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=14,
        help="configs estimated to need more memory than this are reported, not built",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per config")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per config")
    parser.add_argument("--resume", action="store_true", help="keep rows already in the results")
    parser.add_argument(
        "--redo", action="store_true", help="with --resume: rerun --configs already in there"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import open_clip
    from tqdm import tqdm

    import fixlip_captum  # imported once here, shared by every child
    import fixlip_captum.adapters.open_clip  # noqa: F401

    names = args.configs or open_clip.list_models()
    rows = json.loads(RESULTS.read_text()) if args.resume and RESULTS.exists() else []
    done = set() if args.redo else {r["config"] for r in rows}
    command = "python benchmarks/model_coverage.py " + " ".join(sys.argv[1:])
    for name in tqdm([n for n in names if n not in done], desc="open_clip configs"):
        start = time.time()
        row = run_one(name, args.max_params, args.max_memory_gb, args.timeout)
        row["seconds"] = round(time.time() - start, 1)
        print("ROW " + json.dumps(row), flush=True)
        rows = [r for r in rows if r["config"] != row["config"]] + [row]
        save(rows)
        write_table(rows, command)
    rows = [
        r for r in rows if not r.get("family", "").startswith("transformers")
    ] + transformers_rows()
    save(rows)
    write_table(rows, command)


if __name__ == "__main__":
    main()
