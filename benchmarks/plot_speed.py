"""Time every figure of ``fixlip_captum.plot`` at ViT-B/16 size: 196 patches + 20 tokens.

Run:  python benchmarks/plot_speed.py [--repeats 3] [--threads 1] [--out benchmarks/results]

Target (issue 7): < 3 s per figure, build + PNG at 100 dpi. The explanation is synthetic and
dense (every pair term present: 23,220 pairs) and carries a 224 x 224 display image, so each
figure draws the most it ever draws. Each figure is timed ``--repeats`` times after one
warm-up call (fonts, caches) and the fastest run is kept, because the development machine is
shared. The baseline, measured in the same run for every figure, is a bare matplotlib figure
of the same size showing only the image, saved the same way: ``ratio`` = figure / baseline
is the cost of our drawing relative to what any figure of that size costs on this machine.
The HTML report (``write_report``: joint view + 20-panel conditional grid at 100 dpi +
tables) is timed as a whole.

Writes ``plot_speed.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fixlip_captum.plot as fplot  # noqa: E402
from fixlip_captum.interaction_values import (  # noqa: E402
    ExplanationContext,
    FIxLIPInteractionValues,
    make_interaction_values,
)

TARGET_S = 3.0


def dense_explanation(
    rows: int = 14, cols: int = 14, n_text: int = 20, seed: int = 0
) -> FIxLIPInteractionValues:
    """Order-2 explanation with every term present and random values."""
    rng = np.random.default_rng(seed)
    n = rows * cols + n_text
    terms: list[tuple[int, ...]] = [(), *((i,) for i in range(n))]
    terms += [(i, j) for i in range(n) for j in range(i + 1, n)]
    words = [f"word{j}" for j in range(n_text)]
    ctx = ExplanationContext(
        n_image=rows * cols,
        n_text=n_text,
        grid=(rows, cols),
        token_labels=words,
        v_empty=0.1,
        v_full=3.0,
        caption=" ".join(words),
        image=rng.random((224, 224, 3)),
    )
    return make_interaction_values(
        rng.normal(0, 0.05, len(terms)), terms, n_players=n, index="FWBII", max_order=2,
        p=0.5, context=ctx,
    )  # fmt: skip


def _save_png(fig: Figure, dpi: int) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=dpi)
    plt.close(fig)


def _bare_figure(size: tuple[float, float], image: np.ndarray) -> Figure:
    fig = plt.figure(figsize=size)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(image)
    ax.set_axis_off()
    return fig


def fastest(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Fastest (wall, cpu) seconds of ``repeats`` calls, after one warm-up call."""
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - w0, time.process_time() - c0))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    iv = dense_explanation()
    ctx = iv.context
    assert ctx is not None and ctx.image is not None
    first_order = make_interaction_values(
        iv.first_order(),
        [(i,) for i in range(iv.n_players)],
        n_players=iv.n_players,
        index="GradECLIP",
        max_order=1,
        context=ctx,
    )
    figures: dict[str, Callable[[], Figure]] = {
        "plot_joint (k=15, all edge kinds)": lambda: fplot.plot_joint(iv, k=15, edge_kinds="all"),
        "plot_conditional": lambda: fplot.plot_conditional(iv, "word3"),
        "plot_conditional_grid (20 panels)": lambda: fplot.plot_conditional_grid(iv),
        "plot_si_graph (30 edges)": lambda: fplot.plot_si_graph(iv, n_interactions=30),
        "plot_upset": lambda: fplot.plot_upset(iv),
        "plot_sentence": lambda: fplot.plot_sentence(iv),
        "plot_force": lambda: fplot.plot_force(iv),
        "plot_waterfall": lambda: fplot.plot_waterfall(iv),
        "plot_comparison (3 rows)": lambda: fplot.plot_comparison(
            {"FIxLIP p=0.5": iv, "FIxLIP copy": iv, "Grad-ECLIP": first_order}
        ),
        "plot_cliques (20 players)": lambda: fplot.plot_cliques(iv, 20),
    }
    rows = []
    header = (
        f"{'figure':36s} {'wall s':>7s} {'cpu s':>7s} {'base s':>7s} {'ratio':>6s} {'<3 s':>5s}"
    )
    print(header)
    for name, make in figures.items():
        probe = make()
        size = tuple(probe.get_size_inches())
        plt.close(probe)
        wall, cpu = fastest(lambda make=make: _save_png(make(), 100), args.repeats)
        base, _ = fastest(lambda size=size: _save_png(_bare_figure(size, ctx.image), 100), 1)
        rows.append((name, f"{size[0]:.1f} x {size[1]:.1f}", wall, cpu, base))
        print(
            f"{name:36s} {wall:7.2f} {cpu:7.2f} {base:7.2f} {wall / base:6.1f} "
            f"{'yes' if wall < TARGET_S else 'NO':>5s}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "report.html"
        wall, cpu = fastest(lambda: fplot.write_report(iv, path), args.repeats)
        report_kb = path.stat().st_size / 1024
    rows.append(("write_report (whole HTML page)", f"{report_kb:.0f} KB", wall, cpu, float("nan")))
    print(f"{'write_report':36s} {wall:7.2f} {cpu:7.2f} {'':>7s} {'':>6s} "
          f"{'yes' if wall < TARGET_S else 'NO':>5s}")  # fmt: skip

    args.out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Plot speed at 196 patches + 20 tokens (issue 7 target: < 3 s per figure)",
        "",
        f"Command: `python benchmarks/plot_speed.py --repeats {args.repeats} "
        f"--threads {args.threads}`  ",
        f"Machine: {platform.machine()}, {platform.python_version()}, "
        f"matplotlib {matplotlib.__version__}, Agg backend, CPU only.",
        "",
        "Fastest of the repeats, build + PNG at 100 dpi. `baseline` = a bare figure of the same"
        " size showing only the image, saved the same way (same run); `ratio` = wall / baseline.",
        "",
        "| figure | size (in) / page | wall s | cpu s | baseline s | ratio | < 3 s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, size_s, wall, cpu, base in rows:
        ratio = "" if np.isnan(base) else f"{wall / base:.1f}"
        base_s = "" if np.isnan(base) else f"{base:.2f}"
        ok = "yes" if wall < TARGET_S else "**no**"
        lines.append(f"| {name} | {size_s} | {wall:.2f} | {cpu:.2f} | {base_s} | {ratio} | {ok} |")
    out = args.out / "plot_speed.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0 if all(r[2] < TARGET_S for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
