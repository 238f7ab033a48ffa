"""Cross-modal solver vs the dense (pairs x interactions) normal equations, on the same samples.

Run:  python benchmarks/solver_speed.py [--configs small,medium,vitb16-crossmodal] [--threads 2]

Each measurement runs in its own subprocess so that peak RSS (``ru_maxrss``) belongs to one
solver. The game is a cheap synthetic cross-modal game (additive + pairwise + a non-linear
part) so that the timings are the solvers', not a model's. Both solvers see the very same
image masks, text masks and values.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import subprocess
import sys
import time

import torch

from fixlip_captum.samplers import bernoulli_coalitions, make_generator
from fixlip_captum.settings import crossmodal_split, split_features
from fixlip_captum.solvers import (
    centred_design,
    centred_to_product,
    crossmodal_normal_equations,
    interaction_terms,
    solve_normal_equations,
    terms_index,
)

CONFIGS = {
    # name: (n_image, n_text, log2 pairs, pairs, run dense)
    "small": (49, 8, 17, "all", True),
    "medium": (100, 12, 19, "all", False),
    "vitb16-crossmodal": (196, 20, 21, "crossmodal", False),
}


def make_problem(n_i: int, n_t: int, log2_budget: int, pairs: str, seed: int = 0):
    terms = interaction_terms(n_i + n_t, 2, pairs, n_image=n_i)
    image_feats, text_feats, fi, gi = split_features(terms, n_i)
    m_i, m_t = crossmodal_split(2**log2_budget, n_i, n_t, len(image_feats), len(text_feats))
    gen = make_generator(seed)
    z_i = bernoulli_coalitions(m_i, n_i, 0.5, gen)
    z_t = bernoulli_coalitions(m_t, n_t, 0.5, gen)
    a = torch.randn(n_i, n_t, generator=gen, dtype=torch.float64) / math.sqrt(n_i * n_t)
    lin_i = torch.randn(n_i, generator=gen, dtype=torch.float64) / n_i
    lin_t = torch.randn(n_t, generator=gen, dtype=torch.float64) / n_t
    xi, xt = z_i.double(), z_t.double()
    values = (xi @ a @ xt.T) + (xi @ lin_i)[:, None] + (xt @ lin_t)[None, :]
    values = values + 0.3 * torch.tanh(values)  # not exactly 2-additive
    return terms, image_feats, text_feats, fi, gi, z_i, z_t, values


def ours(problem) -> torch.Tensor:
    terms, image_feats, text_feats, fi, gi, z_i, z_t, values = problem
    n_i, n_t = z_i.shape[1], z_t.shape[1]
    phi_i = centred_design(z_i, terms_index(image_feats, n_i), 0.5)
    phi_t = centred_design(z_t, terms_index(text_feats, n_t), 0.5)
    w_i = torch.full((z_i.shape[0],), 1.0 / z_i.shape[0], dtype=torch.float64)
    w_t = torch.full((z_t.shape[0],), 1.0 / z_t.shape[0], dtype=torch.float64)
    gram, rhs = crossmodal_normal_equations(phi_i, w_i, phi_t, w_t, values, fi, gi)
    return centred_to_product(solve_normal_equations(gram, rhs), terms, 0.5)


def dense(problem) -> torch.Tensor:
    """What the reference implementation does: one row per pair, product basis, float64."""
    terms, _, _, _, _, z_i, z_t, values = problem
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
    return torch.linalg.solve(gram, rhs)


def child(name: str, solver: str, threads: int) -> None:
    torch.set_num_threads(threads)
    n_i, n_t, log2_budget, pairs, _ = CONFIGS[name]
    problem = make_problem(n_i, n_t, log2_budget, pairs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    coef = ours(problem) if solver == "ours" else dense(problem)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    torch.save(coef, f"/tmp/fixlip_bench_{name}_{solver}.pt")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_gb": peak_kb / 2**20,
                "rss_before_gb": rss_before / 2**20,
                "n_terms": len(problem[0]),
                "m_image": problem[5].shape[0],
                "m_text": problem[6].shape[0],
            }
        )
    )


def run(name: str, solver: str, threads: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", name, solver, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threads)
        return
    cpu = platform.processor() or platform.machine()
    print(f"# solver benchmark  torch {torch.__version__}  {cpu}")
    print(f"# threads={args.threads}  device=cpu")
    for name in args.configs.split(","):
        n_i, n_t, log2_budget, pairs, with_dense = CONFIGS[name]
        ours_stats = run(name, "ours", args.threads)
        print(
            f"\n## {name}: n_I={n_i} n_T={n_t} pairs=2^{log2_budget} lookup={pairs} "
            f"terms={ours_stats['n_terms']} masks={ours_stats['m_image']}x{ours_stats['m_text']}"
        )
        print(
            f"ours : {ours_stats['seconds']:8.2f} s   peak RSS {ours_stats['peak_rss_gb']:.2f} GB"
        )
        dense_gb = ours_stats["m_image"] * ours_stats["m_text"] * ours_stats["n_terms"] * 8 / 2**30
        if not with_dense:
            print(f"dense: skipped (its design matrix alone is {dense_gb:.1f} GB, x2 weighted)")
            continue
        dense_stats = run(name, "dense", args.threads)
        a = torch.load(f"/tmp/fixlip_bench_{name}_ours.pt")
        b = torch.load(f"/tmp/fixlip_bench_{name}_dense.pt")
        print(
            f"dense: {dense_stats['seconds']:8.2f} s   peak RSS {dense_stats['peak_rss_gb']:.2f} GB"
        )
        print(
            f"speed-up {dense_stats['seconds'] / ours_stats['seconds']:.1f}x   "
            f"memory ratio {dense_stats['peak_rss_gb'] / ours_stats['peak_rss_gb']:.1f}x   "
            f"max |difference| {float((a - b).abs().max()):.2e}"
        )


if __name__ == "__main__":
    main()
