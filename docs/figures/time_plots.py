"""Time every figure of fixlip_captum.plot at 196 patches + 20 tokens (target: < 3 s each).

Run from the repository root::

    OMP_NUM_THREADS=1 python docs/figures/time_plots.py

Prints wall and CPU seconds per figure (build + PNG at 100 dpi). CPU time is reported
because the shared development machine is often loaded; wall time is what a user waits.
The explanation is synthetic and dense (every pair term present, 23,220 pairs).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import fixlip_captum.plot as fplot
from fixlip_captum.interaction_values import (
    ExplanationContext,
    make_interaction_values,
)


def dense_explanation(rows: int = 14, cols: int = 14, n_text: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = rows * cols + n_text
    terms = [(), *((i,) for i in range(n))]
    terms += [(i, j) for i in range(n) for j in range(i + 1, n)]
    vals = rng.normal(0, 0.05, len(terms))
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
        vals, terms, n_players=n, index="FWBII", max_order=2, p=0.5, context=ctx
    )


def main() -> None:
    iv = dense_explanation()
    fo = make_interaction_values(
        iv.first_order(),
        [(i,) for i in range(iv.n_players)],
        n_players=iv.n_players,
        index="GradECLIP",
        max_order=1,
        context=iv.context,
    )
    figures = {
        "plot_joint": lambda: fplot.plot_joint(iv, k=15, edge_kinds="all"),
        "plot_conditional": lambda: fplot.plot_conditional(iv, "word3"),
        "plot_conditional_grid (20 panels)": lambda: fplot.plot_conditional_grid(iv),
        "plot_si_graph": lambda: fplot.plot_si_graph(iv, n_interactions=30),
        "plot_upset": lambda: fplot.plot_upset(iv),
        "plot_sentence": lambda: fplot.plot_sentence(iv),
        "plot_force": lambda: fplot.plot_force(iv),
        "plot_waterfall": lambda: fplot.plot_waterfall(iv),
        "plot_comparison (3 rows)": lambda: fplot.plot_comparison(
            {"FIxLIP p=0.5": iv, "FIxLIP copy": iv, "Grad-ECLIP": fo}
        ),
        "plot_cliques": lambda: fplot.plot_cliques(iv, 20),
    }
    print(f"{'figure':36s} {'wall s':>8s} {'cpu s':>8s}")
    for name, make in figures.items():
        w0, c0 = time.perf_counter(), time.process_time()
        fig = make()
        fig.savefig(io.BytesIO(), format="png", dpi=100)
        plt.close(fig)
        print(f"{name:36s} {time.perf_counter() - w0:8.2f} {time.process_time() - c0:8.2f}")
    w0, c0 = time.perf_counter(), time.process_time()
    fplot.write_report(iv, Path("/tmp") / "fixlip_time_report.html")
    print(f"{'write_report':36s} {time.perf_counter() - w0:8.2f} {time.process_time() - c0:8.2f}")


if __name__ == "__main__":
    main()
