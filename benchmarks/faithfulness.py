"""Faithfulness benchmark: every registered method, one game, one removal operator.

One command explains a fixed, seeded set of held-out scenes (:mod:`fixlip_captum.scenes`)
with the shipped default model (``fixlip_captum.models.load_default()``) by every method in
``fixlip_captum.methods.METHODS`` and scores each explanation with
:mod:`fixlip_captum.metrics` through the SAME :class:`~fixlip_captum.games.JointGame`
(image patches masked to the mean colour, caption tokens removed from attention, value =
the model's logit):

* insertion / deletion curves over the joint players and AID (51-point grid);
* p-faithfulness (Spearman, Pearson, scaled R^2) on fresh coalitions drawn from
  Bernoulli(p) for p in {0.3, 0.5, 0.7} and from the Shapley kernel; the game is evaluated
  once per scene and distribution and shared by all methods;
* pointing game (PGR) with the scenes' ground truth: every scene has 4 objects in a 2x2
  grid and its caption names k = 1..4 of them (as the published 2x2 ImageNet grids).

Usage::

    python benchmarks/faithfulness.py            # full run
    python benchmarks/faithfulness.py --quick    # small smoke run (< 5 min on 2 CPU cores)
    python benchmarks/faithfulness.py --engine ray --workers 2 --cpus-per-worker 1
    python benchmarks/faithfulness.py --shard 0/2 & python benchmarks/faithfulness.py --shard 1/2

The scenes run on the batch engine of :mod:`fixlip_captum.batch`: each scene's rows are
written to a Parquet part in ``--work-dir`` (default ``OUT/faithfulness[_quick]_parts``) as
soon as the scene is done, so an interrupted run continues where it stopped when started
again, and shards (one process per core, node or SLURM task) fill the same folder; every
run writes the tables of all scenes done so far (marked partial until all are).

Writes into ``--out`` (default ``benchmarks/results``): ``faithfulness[_quick].md``
(tables), ``faithfulness[_quick].csv`` (one row per scene and method), and PNGs
``faithfulness[_quick]_curves.png``, ``faithfulness[_quick]_pgr.png``,
``faithfulness[_quick]_by_p.png``.
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixlip_captum.games.evaluate import evaluate_game  # noqa: E402
from fixlip_captum.metrics import (  # noqa: E402
    draw_coalitions,
    faithfulness_scores,
    insertion_deletion,
    pointing_game,
)
from fixlip_captum.models import TEST_SEED  # noqa: E402

#: Benchmark scenes: inside the held-out test range of the default model
#: (``fixlip_captum.models.TEST_SEED`` = 2e9, never used for training or validation),
#: 1e6 above the seeds that tests/test_default_model.py uses.
HELD_OUT_SEED_OFFSET = TEST_SEED + 1_000_000
DISTRIBUTIONS: tuple[float | str, ...] = (0.3, 0.5, 0.7, "shapley")
#: Normalised insertion/deletion scores divide by v(full) - v(empty); they are averaged only
#: over scenes where the model scores the pair at least this much (logit) above the empty
#: pair. Below it the normaliser is tiny or negative (the sign of a normalised curve flips),
#: so those scenes enter only the raw AID (in logits), which keeps its sign.
MIN_SPAN = 1.0

#: Paper anchor (CLIP ViT-B/32, 2x2 ImageNet grids): PGR for 1/2/3/4 named objects.
PAPER_PGR = {
    "GAME": (0.61, 0.43, 0.33, 0.28),
    "Grad-ECLIP": (0.68, 0.45, 0.33, 0.28),
    "Shapley values": (0.70, 0.56, 0.46, 0.37),
    "exCLIP": (0.73, 0.88, 0.89, 0.92),
    "FIxLIP (FSII)": (0.83, 0.82, 0.84, 0.86),
    "FIxLIP (p=0.7)": (0.83, 0.81, 0.83, 0.85),
}


# --------------------------------------------------------------------------- setup


def load_default_adapter(device: str | None = None) -> tuple[Any, str]:
    """``(adapter, model name)`` of the shipped default model."""
    from fixlip_captum.adapters import get_adapter
    from fixlip_captum.models import MODEL_NAME, load_default

    model, _, tokenizer = load_default(device=device)
    return get_adapter(model, tokenizer), MODEL_NAME


def held_out_scenes(
    n: int, *, seed: int = 0, n_objects: int | None = 4, named: Sequence[int] = (1, 2, 3, 4)
) -> list[Any]:
    """``n`` seeded held-out scenes; scene ``i`` names ``named[i % len(named)]`` objects.

    Args:
        n: Number of scenes.
        seed: Benchmark seed; scene ``i`` uses scene seed
            ``HELD_OUT_SEED_OFFSET + 10_000 * seed + i``.
        n_objects: Objects per scene (4 = full 2x2 grid); ``None`` = the generator's mix.
        named: Cycle of the number of named objects.
    """
    from fixlip_captum.scenes import generate_sample

    scenes = []
    for i in range(n):
        k = named[i % len(named)]
        objs = n_objects if n_objects is not None else None
        scenes.append(
            generate_sample(
                HELD_OUT_SEED_OFFSET + 10_000 * seed + i,
                n_objects=objs,
                n_named=None if objs is None else min(k, objs),
            )
        )
    return scenes


def pointing_ground_truth(sample: Any, labels: Sequence[str], grid: tuple[int, int]):
    """Token indices and patch masks of the named objects' words (colour and shape).

    Args:
        sample: A :class:`fixlip_captum.scenes.Sample`.
        labels: The text players' labels (one per caption word for the scene tokenizer).
        grid: The model's patch grid.

    Returns:
        ``(token_indices [K], patch_masks [K, rows * cols] bool, n_named)``.
    """
    words = sample.words
    if len(labels) != len(words):
        raise RuntimeError(
            f"The caption {sample.text!r} has {len(words)} words but the tokenizer made "
            f"{len(labels)} text players; the pointing game needs one token per word."
        )
    tokens, masks = [], []
    for first, end, obj in sample.word_spans:
        mask = sample.patch_mask(obj, grid)
        for w in range(first, end):
            tokens.append(w)
            masks.append(mask)
    return np.array(tokens, dtype=np.int64), np.stack(masks), len(sample.word_spans)


# --------------------------------------------------------------------------- methods

#: Extra FIxLIP settings run next to the registry's ``fixlip`` (p = 0.5), as in the paper.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "fixlip_p0.3": ("fixlip", {"p": 0.3}),
    "fixlip_p0.7": ("fixlip", {"p": 0.7}),
}

#: --quick: cheaper settings (FIxLIP fits only image-text pairs, far fewer samples).
QUICK_SETTINGS: dict[str, dict[str, Any]] = {
    "fixlip": {"budget": 2**12, "pairs": "crossmodal"},
    "fsii": {"budget": 2**11},
    "shapley_values": {"budget": 2**8},
    "kernel_shap": {"n_samples": 2**8},
    "lime": {"n_samples": 2**8},
    "shapley_value_sampling": {"n_samples": 2},
    "exclip": {"n_steps": 5},
    "integrated_gradients": {"n_steps": 16},
}


@dataclass
class MethodRun:
    """A method of the benchmark: registry name, settings on top of its defaults."""

    label: str
    registry_name: str
    settings: dict[str, Any] = field(default_factory=dict)


def benchmark_methods(only: Sequence[str] | None, quick: bool) -> list[MethodRun]:
    """Every method of ``fixlip_captum.methods.METHODS`` plus :data:`VARIANTS`.

    Args:
        only: Labels to keep (registry names or variant labels); ``None`` = all.
        quick: Apply :data:`QUICK_SETTINGS`.
    """
    from fixlip_captum.methods import METHODS

    runs = [MethodRun(name, name) for name in METHODS]
    runs += [MethodRun(label, base, dict(kw)) for label, (base, kw) in VARIANTS.items()]
    if only:
        labels = [r.label for r in runs]
        unknown = [m for m in only if m not in labels]
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; available: {labels}")
        runs = [r for r in runs if r.label in only]
    if quick:
        for r in runs:
            r.settings = {**QUICK_SETTINGS.get(r.registry_name, {}), **r.settings}
    return runs


class Explainer:
    """A registered method built once (``get_method``) that explains scenes."""

    def __init__(self, run: MethodRun, model: Any, tokenizer: Any) -> None:
        from fixlip_captum.methods import METHODS, get_method

        self.name = run.label
        self.settings = {**METHODS[run.registry_name].defaults, **run.settings}
        self.method = get_method(run.registry_name, model, tokenizer, **run.settings)

    def __call__(self, image: Any, text: str) -> Any:
        return self.method.attribute_interactions(image, text)


# --------------------------------------------------------------------------- benchmark


@dataclass
class Config:
    n_scenes: int
    n_faithfulness: int
    seed: int
    n_grid: int = 51
    batch_size: int = 256
    methods: list[str] | None = None
    quick: bool = False
    out: Path = ROOT / "benchmarks" / "results"


FULL = {"n_scenes": 40, "n_faithfulness": 1000}
QUICK = {"n_scenes": 4, "n_faithfulness": 100}
SCORES = ("span", "aid_raw", "insertion", "deletion", "aid", "seconds", "pgr")


def row_schema() -> Any:
    """Arrow schema of the benchmark's rows (one per scene and method)."""
    import pyarrow as pa

    fields = [
        ("id", pa.string()),
        ("scene", pa.int64()),
        ("scene_seed", pa.int64()),
        ("n_named", pa.int64()),
        ("n_players", pa.int64()),
        ("grid_rows", pa.int64()),
        ("grid_cols", pa.int64()),
        ("method", pa.string()),
        ("error", pa.string()),
        ("order", pa.int64()),
        ("pgr_source", pa.string()),
        *((k, pa.float64()) for k in SCORES),
        *(
            (f"{m}_{_dist_key(d)}", pa.float64())
            for d in DISTRIBUTIONS
            for m in ("spearman", "pearson", "r2")
        ),
        ("curve_insertion", pa.list_(pa.float64())),
        ("curve_deletion", pa.list_(pa.float64())),
    ]
    return pa.schema(fields)


class SceneTask:
    """Explains and scores one scene with every method (a task of the batch engine,
    :mod:`fixlip_captum.batch`: ``setup`` builds the model and the explainers once per
    worker, ``run(i)`` returns the rows of scene ``i``)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.labels = [r.label for r in benchmark_methods(cfg.methods, cfg.quick)]

    def setup(self, device: str) -> None:
        from fixlip_captum.adapters import get_adapter
        from fixlip_captum.models import load_default

        model, _, tokenizer = load_default(device=device)
        self.adapter = get_adapter(model, tokenizer)
        self.grid = tuple(self.adapter.patch_grid)
        runs = benchmark_methods(self.cfg.methods, self.cfg.quick)
        self.explainers = [Explainer(r, model, tokenizer) for r in runs]
        self.scenes = held_out_scenes(self.cfg.n_scenes, seed=self.cfg.seed)

    def _row(self, i: int, method: str, **fields: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"id": str(i), "scene": i, "method": method, "error": None}
        row.update(fields)
        return row

    def failed(self, i: int, message: str) -> list[dict[str, Any]]:
        return [self._row(i, m, error=message) for m in self.labels]

    def run(self, i: int) -> list[dict[str, Any]]:
        from fixlip_captum.games import JointGame

        cfg = self.cfg
        sample = self.scenes[i]
        game = JointGame(self.adapter, sample.image, sample.text, batch_size=cfg.batch_size)
        n = game.n_players
        tokens, masks, n_named = pointing_ground_truth(sample, game.text.labels, self.grid)
        # One set of coalitions and one game evaluation per scene and distribution.
        faith_data = {}
        for j, dist in enumerate(DISTRIBUTIONS):
            coal = draw_coalitions(n, cfg.n_faithfulness, dist, seed=cfg.seed * 1000 + 10 * i + j)
            vals = evaluate_game(game, coal, batch_size=4096)
            faith_data[dist] = (coal, vals)
        v_empty = game.v_empty
        rows = []
        for ex in self.explainers:
            row = self._row(
                i,
                ex.name,
                scene_seed=sample.seed,
                n_named=n_named,
                n_players=n,
                grid_rows=self.grid[0],
                grid_cols=self.grid[1],
            )
            try:
                start = time.perf_counter()
                iv = ex(sample.image, sample.text)
                row["seconds"] = time.perf_counter() - start
                if iv.n_players != n:
                    raise RuntimeError(f"{iv.n_players} players, the game has {n}")
                row["order"] = 2 if any(len(t) == 2 for t in iv.interaction_lookup) else 1
                res = insertion_deletion(iv, game, n_grid=cfg.n_grid, batch_size=4096)
                span = res.v_full - res.v_empty
                row.update(span=span, aid_raw=res.aid_raw)
                if span >= MIN_SPAN:
                    row.update(
                        insertion=res.insertion_area,
                        deletion=res.deletion_area,
                        aid=res.aid,
                        curve_insertion=[float(v) for v in res.insertion],
                        curve_deletion=[float(v) for v in res.deletion],
                    )
                for dist, (coal, vals) in faith_data.items():
                    f = faithfulness_scores(iv, coal, vals, v_empty, distribution=dist)
                    key = _dist_key(dist)
                    row[f"spearman_{key}"] = f.spearman
                    row[f"pearson_{key}"] = f.pearson
                    row[f"r2_{key}"] = f.r2
                pg = pointing_game(iv, tokens, masks)
                row["pgr"] = pg.pgr
                row["pgr_source"] = pg.source
            except Exception as err:
                row["error"] = f"{type(err).__name__}: {err}"
                if cfg.quick:
                    traceback.print_exc()
            rows.append(row)
        return rows


def run(
    cfg: Config,
    work_dir: Path,
    options: Any = None,
    *,
    shard: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Explain and score every scene with every method, on the batch engine.

    Each scene's rows are written to a Parquet part in ``work_dir`` as soon as the scene is
    done, so an interrupted run continues where it stopped, and runs of shards
    (``--shard I/N``, e.g. one per core or node) fill the same folder; the result is read
    back from it.

    Args:
        cfg: The configuration.
        work_dir: The parts folder.
        options: :class:`fixlip_captum.batch.engines.EngineOptions` (default: local).
        shard: ``"I/N"``: only scenes ``i % N == I``.
        overwrite: Start afresh.

    Returns:
        ``{"rows", "curves", "fractions", "model", "grid", "settings", "methods"}`` of the
        scenes done so far in ``work_dir``, and ``"summary"`` (the engine's summary).
    """
    from fixlip_captum.batch.engines import EngineOptions
    from fixlip_captum.batch.parts import PartStore
    from fixlip_captum.batch.runner import run_to_store
    from fixlip_captum.methods import METHODS
    from fixlip_captum.models import MODEL_NAME

    runs = benchmark_methods(cfg.methods, cfg.quick)
    method_settings = {r.label: {**METHODS[r.registry_name].defaults, **r.settings} for r in runs}
    settings = {
        "n_scenes": cfg.n_scenes,
        "n_faithfulness": cfg.n_faithfulness,
        "seed": cfg.seed,
        "n_grid": cfg.n_grid,
        "methods": method_settings,
    }
    summary = run_to_store(
        [str(i) for i in range(cfg.n_scenes)],
        lambda position: position,
        SceneTask(cfg),
        work_dir,
        settings,
        options or EngineOptions(),
        schema=row_schema(),
        shard=shard,
        overwrite=overwrite,
        part_size=1,
        desc="scenes",
    )
    labels = [r.label for r in runs]
    table = PartStore(work_dir).read().to_pylist()
    table.sort(key=lambda r: (r["scene"], labels.index(r["method"])))
    rows = []
    curves: dict[str, dict[str, list[Any]]] = {
        m: {"insertion": [], "deletion": [], "scene": []} for m in labels
    }
    for r in table:
        if r["curve_insertion"] is not None:
            curves[r["method"]]["insertion"].append(np.asarray(r["curve_insertion"]))
            curves[r["method"]]["deletion"].append(np.asarray(r["curve_deletion"]))
            curves[r["method"]]["scene"].append(r["scene"])
        rows.append(
            {
                k: v
                for k, v in r.items()
                if k not in ("id", "curve_insertion", "curve_deletion", "grid_rows", "grid_cols")
                and v is not None
            }
            | {"error": r["error"] or ""}
        )
    grids = {(r["grid_rows"], r["grid_cols"]) for r in table if r["grid_rows"] is not None}
    return {
        "rows": rows,
        "curves": curves,
        "fractions": np.linspace(0, 1, cfg.n_grid),
        "model": MODEL_NAME,
        "grid": grids.pop() if grids else (0, 0),
        "settings": method_settings,
        "methods": labels,
        "summary": summary,
    }


def _dist_key(dist: float | str) -> str:
    return "shapley" if dist == "shapley" else f"p{dist:g}"


def _dist_label(dist: float | str) -> str:
    return "Shapley kernel" if dist == "shapley" else f"p={dist:g}"


# --------------------------------------------------------------------------- outputs


def _mean_sem(values: Sequence[float]) -> tuple[float, float, int]:
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, 0
    sem = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else math.nan
    return float(x.mean()), sem, int(x.size)


def _fmt(mean: float, sem: float) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.3f}" if not np.isfinite(sem) else f"{mean:.3f} ± {sem:.3f}"


def write_outputs(
    result: dict[str, Any],
    cfg: Config,
    argv: Sequence[str],
    wall: float,
    scenes_done: int | None = None,
) -> Path:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    stem = "faithfulness_quick" if cfg.quick else "faithfulness"
    rows = result["rows"]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with (out / f"{stem}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_value(r.get(k)) for k in keys})

    methods = result["methods"]
    by = {m: [r for r in rows if r["method"] == m and not r["error"]] for m in methods}
    order = {m: (by[m][0]["order"] if by[m] else "?") for m in methods}
    dk = [_dist_key(d) for d in DISTRIBUTIONS]
    cmd = "python benchmarks/faithfulness.py " + " ".join(argv)
    partial = scenes_done is not None and scenes_done < cfg.n_scenes
    spans = {r["scene"]: r.get("span") for r in rows if r.get("span") is not None}
    n_done = len({r["scene"] for r in rows})
    n_eligible = sum(1 for v in spans.values() if v >= MIN_SPAN)
    lines = [
        f"# Faithfulness benchmark ({'quick' if cfg.quick else 'full'})",
        "",
        *(
            [f"**Partial: {scenes_done} of {cfg.n_scenes} scenes done so far.**", ""]
            if partial
            else []
        ),
        f"- command: `{cmd.strip()}` ({wall / 60:.1f} min on {platform.machine()}, torch "
        f"threads {torch.get_num_threads()}"
        + (
            f"; {result['summary'].skipped} scenes were done by earlier runs in the work dir"
            if result.get("summary") is not None and result["summary"].skipped
            else ""
        )
        + ")",
        f"- model: `{result['model']}` (patch grid {result['grid'][0]}x{result['grid'][1]}); "
        f"{cfg.n_scenes} held-out scenes (4 objects, k = 1..4 named, seeds from "
        f"{HELD_OUT_SEED_OFFSET + 10_000 * cfg.seed}); "
        f"{cfg.n_faithfulness} fresh coalitions per distribution",
        "- one game for every method: `JointGame` (mean-colour patches, tokens removed from "
        "attention, value = logit); mean ± standard error over scenes",
        f"- AID, insertion, deletion (normalised by v(N) - v(∅)) and the curves use the "
        f"{n_eligible} of {n_done} scenes with v(N) - v(∅) ≥ {MIN_SPAN:g} logit; "
        "AID raw (area between the raw curves, in logits) uses all scenes",
        "",
        "## Headline",
        "",
        "| method | order | AID ↑ | insertion ↑ | deletion ↓ | AID raw (logit) ↑ | "
        "Spearman p=0.5 ↑ | R² p=0.5 ↑ | PGR (mean over k) ↑ | s / explanation |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = by[m]
        cells = [
            _fmt(*_mean_sem([r.get(k) for r in rs])[:2])
            for k in (
                "aid",
                "insertion",
                "deletion",
                "aid_raw",
                "spearman_p0.5",
                "r2_p0.5",
                "pgr",
            )
        ]
        secs = _mean_sem([r.get("seconds") for r in rs])[0]
        lines.append(f"| {m} | {order[m]} | " + " | ".join(cells) + f" | {secs:.2f} |")
    lines += [
        "",
        "## p-faithfulness (Spearman / R² after a least-squares scale)",
        "",
        "| method | "
        + " | ".join(f"Spearman {_dist_label(d)}" for d in DISTRIBUTIONS)
        + " | "
        + " | ".join(f"R² {_dist_label(d)}" for d in DISTRIBUTIONS)
        + " |",
        "|---|" + "---|" * (2 * len(dk)),
    ]
    for m in methods:
        rs = by[m]
        sp = [_fmt(*_mean_sem([r.get(f"spearman_{k}") for r in rs])[:2]) for k in dk]
        r2 = [_fmt(*_mean_sem([r.get(f"r2_{k}") for r in rs])[:2]) for k in dk]
        lines.append(f"| {m} | " + " | ".join(sp + r2) + " |")
    lines += [
        "",
        "## Pointing game (PGR by number of named objects k)",
        "",
        "| method | k=1 | k=2 | k=3 | k=4 |",
        "|---|---|---|---|---|",
    ]
    for m in methods:
        cells = [
            _fmt(*_mean_sem([r.get("pgr") for r in by[m] if r["n_named"] == k])[:2])
            for k in (1, 2, 3, 4)
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paper anchor (CLIP ViT-B/32, 2x2 ImageNet grids, not comparable in absolute terms):",
        "",
        "| method | k=1 | k=2 | k=3 | k=4 |",
        "|---|---|---|---|---|",
    ]
    for m, vals in PAPER_PGR.items():
        lines.append(f"| {m} | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    errors = [r for r in rows if r["error"]]
    if errors:
        lines += ["", "## Failures", ""]
        for r in errors:
            lines.append(f"- scene {r['scene']} / {r['method']}: {r['error']}")
    lines += ["", "## Method settings (registry defaults plus the benchmark's overrides)", ""]
    for m, st in result["settings"].items():
        lines.append(f"- `{m}`: " + ", ".join(f"{k}={v!r}" for k, v in st.items()))
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _plots(result, by, out, stem)
    return out / f"{stem}.md"


def _csv_value(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else v


def _plots(result: dict[str, Any], by: dict[str, list], out: Path, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = result["methods"]
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(methods), 2)))
    x = result["fractions"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, kind in zip(axes, ("insertion", "deletion"), strict=True):
        for c, m in zip(colours, methods, strict=False):
            cs = result["curves"][m][kind]
            if not cs:
                continue
            arr = np.stack(cs)
            mean = arr.mean(0)
            sem = arr.std(0, ddof=1) / np.sqrt(len(arr)) if len(arr) > 1 else np.zeros_like(mean)
            ax.plot(x, mean, color=c, label=m)
            ax.fill_between(x, mean - sem, mean + sem, color=c, alpha=0.2)
        ax.set_title(f"{kind} (mean ± s.e.)")
        ax.set_xlabel("fraction of players " + ("inserted" if kind == "insertion" else "removed"))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("(v(S) - v(∅)) / (v(N) - v(∅))")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7, loc="best")
    else:
        for ax in axes:
            ax.text(0.5, 0.5, f"no scene with v(N) - v(∅) ≥ {MIN_SPAN:g}", ha="center")
    fig.tight_layout()
    fig.savefig(out / f"{stem}_curves.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ks = np.array([1, 2, 3, 4])
    for c, m in zip(colours, methods, strict=False):
        stats = [_mean_sem([r.get("pgr") for r in by[m] if r["n_named"] == k]) for k in ks]
        mean = np.array([s[0] for s in stats])
        sem = np.nan_to_num(np.array([s[1] for s in stats]))
        if np.all(np.isnan(mean)):
            continue
        ax.errorbar(ks, mean, yerr=sem, marker="o", color=c, label=m, capsize=3)
    ax.plot(ks, 1 / ks, "k:", label="1/k")
    ax.set_xticks(ks)
    ax.set_xlabel("named objects k")
    ax.set_ylabel("PGR")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"{stem}_pgr.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    dk = [_dist_key(d) for d in DISTRIBUTIONS]
    xs = np.arange(len(dk))
    for ax, metric in zip(axes, ("spearman", "r2"), strict=True):
        for c, m in zip(colours, methods, strict=False):
            stats = [_mean_sem([r.get(f"{metric}_{k}") for r in by[m]]) for k in dk]
            mean = np.array([s[0] for s in stats])
            if np.all(np.isnan(mean)):
                continue
            sem = np.nan_to_num(np.array([s[1] for s in stats]))
            ax.errorbar(xs, mean, yerr=sem, marker="o", color=c, label=m, capsize=3)
        ax.set_xticks(xs, [_dist_label(d) for d in DISTRIBUTIONS])
        ax.set_ylabel("Spearman" if metric == "spearman" else "R² (least-squares scale)")
        ax.grid(alpha=0.3)
    axes[1].set_ylim(bottom=max(-1.0, axes[1].get_ylim()[0]))
    axes[0].legend(fontsize=7)
    fig.suptitle("p-faithfulness on fresh coalitions")
    fig.tight_layout()
    fig.savefig(out / f"{stem}_by_p.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--n-scenes", type=int, default=None)
    parser.add_argument("--n-faithfulness", type=int, default=None, help="coalitions per p")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", default=None, help="comma-separated subset of METHODS")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="Parquet parts of the scenes done (default OUT/faithfulness[_quick]_parts); a "
        "rerun continues it",
    )
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--workers", type=int, default=1, help="Ray workers")
    parser.add_argument("--cpus-per-worker", type=float, default=None, help="Ray only")
    parser.add_argument("--address", default=None, help="Ray cluster (default: local)")
    parser.add_argument("--shard", default=None, help="I/N: only scenes i %% N == I")
    parser.add_argument("--overwrite", action="store_true", help="discard the work dir first")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from fixlip_captum.batch.engines import EngineOptions

    base = QUICK if args.quick else FULL
    cfg = Config(
        n_scenes=args.n_scenes or base["n_scenes"],
        n_faithfulness=args.n_faithfulness or base["n_faithfulness"],
        seed=args.seed,
        methods=[m.strip() for m in args.methods.split(",")] if args.methods else None,
        quick=args.quick,
        out=args.out,
    )
    stem = "faithfulness_quick" if cfg.quick else "faithfulness"
    work_dir = args.work_dir or cfg.out / f"{stem}_parts"
    options = EngineOptions(
        engine=args.engine,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        address=args.address,
    )
    start = time.perf_counter()
    result = run(cfg, work_dir, options, shard=args.shard, overwrite=args.overwrite)
    scenes_done = len({r["scene"] for r in result["rows"]})
    path = write_outputs(result, cfg, argv, time.perf_counter() - start, scenes_done=scenes_done)
    print(result["summary"].format())
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
