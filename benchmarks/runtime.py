"""Runtime of the FIxLIP estimators: seconds per explanation and model forward passes vs budget.

Compares, at equal budget (number of coalition values), on the shipped default model
(``fixlip_captum.models.load_default()``) and one held-out scene:

* ``crossmodal``: :func:`fixlip_captum.approximate_crossmodal` (FWBII, p=0.5) on a
  :class:`~fixlip_captum.games.CrossModalGame` (m_I image masks x m_T text masks);
* ``agnostic``: :func:`fixlip_captum.approximate_interactions` (FWBII, p=0.5) on a
  :class:`~fixlip_captum.games.JointGame`;
* ``fsii``: :func:`fixlip_captum.approximate_interactions` with ``index="FSII"``.

Forward passes are counted as the number of masked images plus masked captions pushed
through the encoders (rows, not batches), by wrapping the adapter's ``encode_image`` /
``encode_text``. Every encoder batch of an explanation is recorded and, right after it, the
very same batches are pushed through the bare encoders again (no estimator around them):
``overhead = explanation seconds / bare forward seconds`` measures everything that is not a
forward pass (masks, unique rows, similarity, the least squares) in one run, on the same
load. Budgets below the number of fitted terms are reported as not identifiable.

Usage::

    python benchmarks/runtime.py                    # 2^10 .. 2^17 on CPU
    python benchmarks/runtime.py --max-log2 14      # smaller sweep
    python benchmarks/runtime.py --quick            # 2^10 .. 2^12, for a smoke test
    python benchmarks/runtime.py --min-log2 17 --max-log2 17 --methods crossmodal --repeats 5
                                                    # the overhead ratio, medians of 5
    python benchmarks/runtime.py --model vitb16-random --pairs crossmodal --methods crossmodal
        --min-log2 12 --max-log2 12                 # a random-init open_clip ViT-B/16

Writes ``runtime.csv``, ``runtime.md`` and ``runtime.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixlip_captum import approximate_crossmodal, approximate_interactions  # noqa: E402
from fixlip_captum.games import CrossModalGame, JointGame  # noqa: E402
from fixlip_captum.solvers import NotIdentifiableError  # noqa: E402

METHODS = ("crossmodal", "agnostic", "fsii")


@dataclass
class RuntimeRow:
    method: str
    log2_budget: int
    budget: int
    seconds: float
    image_forwards: int
    text_forwards: int
    forwards: int
    status: str
    forward_seconds: float = math.nan  # inside the explanation, in the encoders
    bare_seconds: float = math.nan  # the same batches again, bare encoders
    overhead: float = math.nan  # seconds / bare_seconds
    solver: str = ""


class ForwardCounter:
    """Counts rows pushed through an adapter's encoders and records every batch
    (monkeypatched on the instance), so that the batches can be replayed bare."""

    def __init__(self, adapter: Any) -> None:
        self.images = 0
        self.texts = 0
        self.seconds = 0.0
        self.batches: list[tuple[str, Any, Any, Any]] = []
        self._bare = adapter.encode_image, adapter.encode_text
        enc_i, enc_t = self._bare

        def encode_image(pixel_values, coalitions=None, masking="mean"):
            self.images += 1 if coalitions is None else int(coalitions.shape[0])
            self.batches.append(("image", pixel_values, coalitions, masking))
            start = time.perf_counter()
            out = enc_i(pixel_values, coalitions, masking)
            self.seconds += time.perf_counter() - start
            return out

        def encode_text(text, coalitions=None):
            self.texts += 1 if coalitions is None else int(coalitions.shape[0])
            self.batches.append(("text", text, coalitions, None))
            start = time.perf_counter()
            out = enc_t(text, coalitions)
            self.seconds += time.perf_counter() - start
            return out

        adapter.encode_image = encode_image
        adapter.encode_text = encode_text

    def reset(self) -> None:
        self.images = self.texts = 0
        self.seconds = 0.0
        self.batches = []

    def replay_bare(self) -> float:
        """Seconds to push the recorded batches through the bare encoders once more."""
        enc_i, enc_t = self._bare
        start = time.perf_counter()
        with torch.inference_mode():
            for kind, inputs, coalitions, masking in self.batches:
                if kind == "image":
                    enc_i(inputs, coalitions, masking)
                else:
                    enc_t(inputs, coalitions)
        return time.perf_counter() - start


def load_model_and_scene(seed: int) -> tuple[Any, Any, str, str]:
    """The shipped default model's adapter, plus one held-out scene (image, caption).

    The scene is the one with the shortest caption among 20 held-out one-object captions:
    with few text players the cross-modal design is identifiable from small budgets on
    (all pairs need ``1 + n_T + n_T (n_T - 1) / 2`` distinct text masks).
    """
    from benchmarks.faithfulness import held_out_scenes, load_default_adapter

    adapter, name = load_default_adapter()
    scenes = held_out_scenes(20, seed=seed, named=(1,))
    sample = min(scenes, key=lambda s: (len(s.words), s.seed))
    return adapter, sample.image, sample.text, name


def load_random_vitb16() -> tuple[Any, Any, str, str]:
    """A random-init open_clip ViT-B/16 (224 px, 196 patches) and a seeded random image."""
    import open_clip
    from PIL import Image

    from fixlip_captum.adapters import get_adapter

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, (224, 224, 3), dtype=np.uint8))
    return get_adapter(model, tokenizer), image, "a photo of a red cube", "ViT-B-16 (random init)"


def run_one(
    method: str,
    adapter: Any,
    image: Any,
    text: str,
    budget: int,
    seed: int,
    batch_size: int,
    pairs: str = "all",
) -> tuple[float, str, str]:
    if method == "crossmodal":
        game = CrossModalGame(adapter, image, text, batch_size=batch_size)
        start = time.perf_counter()
        iv = approximate_crossmodal(game, game.n_image, game.n_text, budget, seed=seed, pairs=pairs)
    else:
        game = JointGame(adapter, image, text, batch_size=batch_size)
        index = "FSII" if method == "fsii" else "FWBII"
        start = time.perf_counter()
        iv = approximate_interactions(
            game,
            game.n_players,
            budget,
            index=index,
            seed=seed,
            batch_size=max(batch_size, 512),
            pairs=pairs,
            n_image=game.n_image,
        )
    return time.perf_counter() - start, "ok", str(iv.estimation_info.get("solver", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-log2", type=int, default=10)
    parser.add_argument("--max-log2", type=int, default=17)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256, help="masked inputs per forward")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=600.0,
        help="skip a method's larger budgets once one run took more than half of this (s)",
    )
    parser.add_argument("--quick", action="store_true", help="2^10 .. 2^12 only")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--model", choices=("scenes-clip", "vitb16-random"), default="scenes-clip")
    parser.add_argument("--pairs", default="all", help="lookup: all or crossmodal")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="explanation + bare replay pairs per cell, run alternately; medians reported",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.max_log2 = min(args.max_log2, 12)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {METHODS}")
    if args.min_log2 > args.max_log2:
        parser.error("--min-log2 must not exceed --max-log2")

    if args.model == "vitb16-random":
        adapter, image, text, model_name = load_random_vitb16()
    else:
        adapter, image, text, model_name = load_model_and_scene(args.seed)
    counter = ForwardCounter(adapter)
    device = str(adapter.device)
    if adapter.device.type == "cuda":
        device = torch.cuda.get_device_name(adapter.device)
    # Warm-up (first-call overheads are not the estimator's).
    CrossModalGame(adapter, image, text).v_full  # noqa: B018
    rows: list[RuntimeRow] = []
    too_slow: set[str] = set()
    for k in range(args.min_log2, args.max_log2 + 1):
        budget = 2**k
        for method in methods:
            counter.reset()
            if method in too_slow:
                rows.append(RuntimeRow(method, k, budget, math.nan, 0, 0, 0, "skipped (time)"))
                continue
            solver = ""
            runs: list[tuple[float, float, float]] = []
            for _ in range(args.repeats):
                counter.reset()
                try:
                    secs, status, solver = run_one(
                        method, adapter, image, text, budget, args.seed, args.batch_size, args.pairs
                    )
                except NotIdentifiableError:
                    secs, status = math.nan, "not identifiable"
                    break
                runs.append((secs, counter.seconds, counter.replay_bare()))
            if runs:
                # Medians over the (explanation, bare replay) pairs, run alternately.
                columns = zip(*runs, strict=True)
                secs, forward_secs, bare = (float(np.median(col)) for col in columns)
                overhead = float(np.median([r[0] / r[2] for r in runs]))
            else:
                forward_secs = bare = overhead = math.nan
            row = RuntimeRow(
                method,
                k,
                budget,
                secs,
                counter.images,
                counter.texts,
                counter.images + counter.texts,
                status,
                forward_secs,
                bare,
                overhead,
                solver,
            )
            rows.append(row)
            print(
                f"2^{k:<2d} {method:<10s} {status:<16s} {secs:8.2f} s  "
                f"forwards {row.forwards:>8d} (images {row.image_forwards}, texts "
                f"{row.text_forwards})  bare forwards {bare:8.2f} s  overhead "
                f"{row.overhead:.3f}  solver {solver}",
                flush=True,
            )
            if status == "ok" and secs > args.time_limit / 2:
                too_slow.add(method)
    write_outputs(rows, args, model_name, device, text)
    return 0


def _ratio_table(rows: list[RuntimeRow]) -> list[dict[str, Any]]:
    by = {(r.method, r.log2_budget): r for r in rows}
    out = []
    for k in sorted({r.log2_budget for r in rows}):
        c, a = by.get(("crossmodal", k)), by.get(("agnostic", k))
        if c is None or a is None or c.status != "ok" or a.status != "ok":
            continue
        out.append(
            {
                "log2_budget": k,
                "time_ratio": c.seconds / a.seconds,
                "forward_ratio": c.forwards / a.forwards if a.forwards else math.nan,
            }
        )
    return out


def write_outputs(
    rows: list[RuntimeRow], args: argparse.Namespace, model: str, device: str, text: str
) -> None:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if args.quick else ""
    if args.model != "scenes-clip":
        suffix += f"_{args.model}"
    with (out / f"runtime{suffix}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(asdict(rows[0]).keys()))
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
    cmd = "python benchmarks/runtime.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Runtime of the FIxLIP estimators ({'quick' if args.quick else 'full'})",
        "",
        f"- command: `{cmd.strip()}`",
        f"- model: {model}; caption: {text!r}; device: {device} "
        f"(torch threads {torch.get_num_threads()}, {platform.processor() or platform.machine()})",
        "- seconds per explanation (estimator end to end, masks, forwards and solve); "
        "forwards = masked images + masked captions encoded",
        "- in encoders: seconds spent inside the encoders during the explanation; bare: the "
        "same batches pushed through the bare encoders right after, in the same run; "
        f"overhead = seconds / bare; medians over {args.repeats} alternating "
        "(explanation, bare) repeats",
        "",
        "| budget | method | status | solver | seconds | in encoders | bare forwards | "
        "overhead | image forwards | text forwards | forwards |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(x: float, spec: str = ".2f") -> str:
        return "" if math.isnan(x) else format(x, spec)

    for r in rows:
        lines.append(
            f"| 2^{r.log2_budget} | {r.method} | {r.status} | {r.solver} | {fmt(r.seconds)} | "
            f"{fmt(r.forward_seconds)} | {fmt(r.bare_seconds)} | {fmt(r.overhead, '.3f')} | "
            f"{r.image_forwards} | {r.text_forwards} | {r.forwards} |"
        )
    ratios = _ratio_table(rows)
    if ratios:
        lines += [
            "",
            "Cross-modal / model-agnostic at equal budget (paper: ~1/20 forwards, ~1/5 time):",
            "",
            "| budget | time ratio | forward ratio | speed-up | fewer forwards |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in ratios:
            lines.append(
                f"| 2^{r['log2_budget']} | {r['time_ratio']:.3f} | {r['forward_ratio']:.4f} | "
                f"{1 / r['time_ratio']:.1f}x | {1 / r['forward_ratio']:.1f}x |"
            )
    (out / f"runtime{suffix}.md").write_text("\n".join(lines) + "\n")
    _plot(rows, out / f"runtime{suffix}.png", device)


def _plot(rows: list[RuntimeRow], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in METHODS:
        sel = [r for r in rows if r.method == method and r.status == "ok"]
        if not sel:
            continue
        x = np.array([r.budget for r in sel])
        axes[0].plot(x, [r.seconds for r in sel], "o-", label=method)
        axes[1].plot(x, [r.forwards for r in sel], "o-", label=method)
    for ax, ylabel in zip(axes, ("seconds per explanation", "encoder forward passes"), strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("budget (coalition values)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"FIxLIP estimators on {device}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
