"""Throughput of dataset runs (``explain_dataset``): pairs per minute by engine and workers.

Explains the same generated scene pairs (a JSONL manifest of held-out scenes) with the
shipped scenes-clip model at the default budget, once per configuration, in one process
run so the machine's load is shared alike:

* ``local``: the local engine, one process, all torch threads (the baseline);
* ``ray-1``: the Ray engine, one worker with all CPUs;
* ``ray-W``: the Ray engine, ``W`` workers with ``CPUs / W`` each.

Pairs per minute count the whole run (start-up, model loading and Ray start-up included)
and the steady state (between the first and the last finished pair, so start-up is left
out). Also checks that every configuration gives the same values (bit-identical where the
torch thread counts match, else float32 rounding).

Usage::

    python benchmarks/batch_throughput.py --pairs 4 --workers 2

Writes ``--out`` (default ``benchmarks/results``) ``batch_throughput.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixlip_captum.batch import explain_dataset, load_results  # noqa: E402
from fixlip_captum.models import TEST_SEED  # noqa: E402
from fixlip_captum.scenes import generate_sample  # noqa: E402


def make_manifest(folder: Path, n: int) -> Path:
    """``n`` held-out 4-object scenes (k = 1..4 named) as PNGs and a JSONL manifest."""
    lines = []
    for i in range(n):
        sample = generate_sample(TEST_SEED + 3_000_000 + i, n_objects=4, n_named=1 + i % 4)
        sample.image.save(folder / f"scene{i}.png")
        lines.append(
            json.dumps({"id": f"scene-{i}", "image": f"scene{i}.png", "text": sample.text})
        )
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "pairs.jsonl"


def measure(manifest: Path, out: Path, budget: int | None, **engine: Any) -> dict[str, Any]:
    start = time.perf_counter()
    summary = explain_dataset(
        manifest, out, budget=budget, part_size=1, show_progress=False, **engine
    )
    wall = time.perf_counter() - start
    results = load_results(out)
    # Steady state: finished pairs after the first, over the time since the first finished.
    parts = sorted(out.glob("part-*.parquet"))
    stamps = [int(p.name.split("-")[1]) / 1e9 for p in parts]
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) * 60 if len(stamps) > 1 else float("nan")
    return {
        "summary": summary,
        "wall": wall,
        "per_min": 60 * summary.done / wall,
        "steady": steady,
        "values": {k: np.array(results.row(k)["values"]) for k in results},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=4, help="pairs per configuration")
    parser.add_argument("--workers", type=int, default=2, help="workers of the ray-W run")
    parser.add_argument("--budget", type=int, default=None, help="default: FIxLIP's (2^17)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    cpus = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_manifest(Path(tmp), args.pairs)
        configs: list[tuple[str, dict[str, Any]]] = [
            ("local", {}),
            ("ray-1", {"engine": "ray", "workers": 1, "cpus_per_worker": cpus}),
            (
                f"ray-{args.workers}",
                {
                    "engine": "ray",
                    "workers": args.workers,
                    "cpus_per_worker": max(1, cpus // args.workers),
                },
            ),
        ]
        for name, engine in configs:
            print(f"{name} ...", flush=True)
            rows.append((name, engine, measure(manifest, Path(tmp) / name, args.budget, **engine)))
    ref = rows[0][2]["values"]
    shown = sys.argv[1:] if argv is None else argv
    lines = [
        "# Dataset-run throughput (explain_dataset)",
        "",
        f"- command: `python benchmarks/batch_throughput.py {' '.join(shown)}`",
        f"- {args.pairs} held-out 4-object scenes, scenes-clip, budget "
        f"{args.budget or 'default (2^17)'}, pairs='all'; {platform.machine()}, {cpus} CPUs, "
        f"torch {torch.__version__}, no GPU; load average at start {load:.1f} (the machine is "
        "shared with other jobs: absolute times are noisy, compare within this table)",
        "- whole run = pairs / wall time including start-up (interpreter already warm, model "
        "loading, Ray start-up); steady = pairs after the first / time since the first",
        "",
        "| configuration | torch threads per worker | wall (s) | pairs/min (whole run) | "
        "pairs/min (steady) | ratio to local (whole) | max value difference to local |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, engine, m in rows:
        threads = engine.get("cpus_per_worker", torch.get_num_threads())
        diff = max(float(np.max(np.abs(m["values"][k] - ref[k]))) for k in ref)
        lines.append(
            f"| {name} | {threads:g} | {m['wall']:.0f} | {m['per_min']:.2f} | {m['steady']:.2f} | "
            f"{m['per_min'] / rows[0][2]['per_min']:.2f} | {diff:.1e} |"
        )
    two = rows[2][2]
    one = rows[1][2]
    lines += [
        "",
        f"ray-{args.workers} / ray-1: {two['per_min'] / one['per_min']:.2f}x (whole run), "
        f"{two['steady'] / one['steady']:.2f}x (steady).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "batch_throughput.md"
    path.write_text("\n".join(lines) + "\n")
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
