"""Cross-modal solvers on the same samples: iterative (matrix-free CG), direct (factorised
Gram + Cholesky) and the dense (pairs x interactions) normal equations of the reference code.

Run:  python benchmarks/solver_speed.py [--configs small,medium,...] [--threads 2]
      [--reference vitb16-full=/path/to/coef.pt]

Each measurement runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to one
solver. The game is a cheap synthetic cross-modal game (additive + pairwise + a non-linear
part) so that the timings are the solvers', not a model's. Every solver sees the very same
image masks, text masks and values. ``--reference NAME=PATH`` compares a configuration with
a direct solution saved earlier (centred-basis coefficients, ``torch.save``), for sizes
where the direct solve is too large to repeat.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fixlip_captum.samplers import bernoulli_coalitions, make_generator
from fixlip_captum.settings import crossmodal_split
from fixlip_captum.solvers import (
    centred_to_product,
    interaction_terms,
    solve_crossmodal,
    split_terms,
    terms_index,
)

# name: (n_image, n_text, budget (pairs) or (m_image, m_text), lookup, solvers to run)
CONFIGS: dict[str, tuple[int, int, int | tuple[int, int], str, tuple[str, ...]]] = {
    "small": (49, 8, 2**17, "all", ("iterative", "direct", "dense")),
    "medium": (100, 12, 2**19, "all", ("iterative", "direct")),
    "vitb16-crossmodal": (196, 20, 2**21, "crossmodal", ("iterative", "direct")),
    "vitb16-full": (196, 20, (20480, 212), "all", ("iterative", "direct")),
    "vitl14-full": (256, 20, 2 * 32897 * 211, "all", ("iterative",)),
}
OUT = Path(tempfile.gettempdir())


def make_problem(name: str, seed: int = 0):
    n_i, n_t, budget, pairs, _ = CONFIGS[name]
    terms = interaction_terms(n_i + n_t, 2, pairs, n_image=n_i)
    image_feats, text_feats, _, _ = split_terms(terms, n_i)
    if isinstance(budget, tuple):
        m_i, m_t = budget
    else:
        m_i, m_t = crossmodal_split(budget, n_i, n_t, len(image_feats), len(text_feats))
    gen = make_generator(seed)
    z_i = bernoulli_coalitions(m_i, n_i, 0.5, gen)
    z_t = bernoulli_coalitions(m_t, n_t, 0.5, gen)
    a = torch.randn(n_i, n_t, generator=gen, dtype=torch.float64) / math.sqrt(n_i * n_t)
    lin_i = torch.randn(n_i, generator=gen, dtype=torch.float64) / n_i
    lin_t = torch.randn(n_t, generator=gen, dtype=torch.float64) / n_t
    xi, xt = z_i.double(), z_t.double()
    values = (xi @ a @ xt.T) + (xi @ lin_i)[:, None] + (xt @ lin_t)[None, :]
    values = values + 0.3 * torch.tanh(values)  # not exactly 2-additive
    return terms, z_i, z_t, values


def library(problem, solver: str) -> tuple[torch.Tensor, dict]:
    terms, z_i, z_t, values = problem
    w_i = torch.full((z_i.shape[0],), 1.0 / z_i.shape[0], dtype=torch.float64)
    w_t = torch.full((z_t.shape[0],), 1.0 / z_t.shape[0], dtype=torch.float64)
    return solve_crossmodal(z_i, w_i, z_t, w_t, values, terms, z_i.shape[1], 0.5, solver=solver)


def dense(problem) -> tuple[torch.Tensor, dict]:
    """What the reference implementation does: one row per pair, product basis, float64."""
    terms, z_i, z_t, values = problem
    m_i, m_t = z_i.shape[0], z_t.shape[0]
    joint = torch.cat(
        [z_i[:, None, :].expand(m_i, m_t, -1), z_t[None].expand(m_i, m_t, -1)], dim=2
    ).reshape(m_i * m_t, -1)
    n = joint.shape[1]
    x = joint.double()
    x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    index = terms_index(terms, n)
    design = x[:, index[:, 0]] * x[:, index[:, 1]]  # [pairs, T] float64
    weights = torch.full((design.shape[0],), 1.0 / design.shape[0], dtype=torch.float64)
    weighted = design * weights[:, None]  # the reference keeps a weighted copy
    gram = weighted.T @ design
    rhs = weighted.T @ values.reshape(-1)
    return torch.linalg.solve(gram, rhs), {"solver": "dense"}


def child(name: str, solver: str, threads: int) -> None:
    torch.set_num_threads(threads)
    problem = make_problem(name)
    start = time.perf_counter()
    if solver == "dense":
        values, info = dense(problem)
    else:
        coef, info = library(problem, solver)
        values = centred_to_product(coef, problem[0], 0.5)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save(values, OUT / f"fixlip_bench_{name}_{solver}.pt")
    record = {
        "seconds": seconds,
        "peak_rss_gb": peak_kb / 2**20,
        "n_terms": len(problem[0]),
        "m_image": problem[1].shape[0],
        "m_text": problem[2].shape[0],
        **{k: v for k, v in info.items() if k != "solver"},
    }
    print(json.dumps(record))


def run(name: str, solver: str, threads: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, solver, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _relative(a: torch.Tensor, b: torch.Tensor) -> str:
    return f"{float((a - b).norm() / b.norm()):.2e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", default="small,medium,vitb16-crossmodal,vitb16-full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference", action="append", default=[], help="NAME=PATH")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threads)
        return
    references = dict(item.split("=", 1) for item in args.reference)
    cpu = platform.processor() or platform.machine()
    print(f"# solver benchmark  torch {torch.__version__}  {cpu}")
    print(f"# threads={args.threads}  device=cpu")
    for name in args.configs.split(","):
        n_i, n_t, _, pairs, solvers = CONFIGS[name]
        stats = {solver: run(name, solver, args.threads) for solver in solvers}
        first = stats[solvers[0]]
        print(
            f"\n## {name}: n_I={n_i} n_T={n_t} lookup={pairs} terms={first['n_terms']} "
            f"masks={first['m_image']}x{first['m_text']} "
            f"(pairs {first['m_image'] * first['m_text']:,})"
        )
        for solver, s in stats.items():
            extra = ""
            if solver == "iterative":
                extra = (
                    f"   CG {s['cg_iterations']} it, residual {s['cg_relative_residual']:.1e}, "
                    f"condition ~{s['condition_estimate']:.3g}"
                )
            print(
                f"{solver:<9s}: {s['seconds']:8.2f} s   peak RSS {s['peak_rss_gb']:.2f} GB{extra}"
            )
        solutions = {s: torch.load(OUT / f"fixlip_bench_{name}_{s}.pt") for s in solvers}
        if "direct" in solutions:
            base = stats["direct"]
            for solver in ("iterative", "dense"):
                if solver in solutions:
                    s = stats[solver]
                    print(
                        f"{solver} vs direct: time ratio {s['seconds'] / base['seconds']:.2f}   "
                        f"memory ratio {s['peak_rss_gb'] / base['peak_rss_gb']:.2f}   "
                        f"relative difference {_relative(solutions[solver], solutions['direct'])}"
                    )
        elif name in references:
            ref = centred_to_product(
                torch.load(references[name])["centred"], make_problem(name)[0], 0.5
            )
            print(
                f"iterative vs saved direct solution: relative difference "
                f"{_relative(solutions['iterative'], ref)}"
            )
        else:
            gb = first["m_image"] * 8 * (first["n_terms"] - first["m_text"]) / 2**30
            print(f"direct: not run (its image design alone is ~{gb:.1f} GB, Gram T x T too)")


if __name__ == "__main__":
    main()
