"""Identifiable at every budget >= ``minimum_budget``, for every seed (issue 14's target).

Run:  python benchmarks/identifiability.py [--n-image 12] [--seeds 20] [--max-text 20]

For every caption length ``n_T`` in 1..``--max-text`` and budgets at and above the minimum
(the minimum, +1, +n_T, 1.1x, 1.5x, 2x), ``approximate_crossmodal`` runs with ``--seeds``
seeds (p cycling through 0.3, 0.5, 0.7) on a cheap synthetic cross-modal game (pairwise +
additive + a smooth non-polynomial part); every NotIdentifiableError is reported.
"""

from __future__ import annotations

import argparse
import time

import torch

from fixlip_captum import NotIdentifiableError, approximate_crossmodal
from fixlip_captum.estimators import minimum_budget


def cheap_game(n_i: int, n_t: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n_i, n_t, generator=gen, dtype=torch.float64)
    li = torch.randn(n_i, generator=gen, dtype=torch.float64)
    lt = torch.randn(n_t, generator=gen, dtype=torch.float64)

    def game(zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        xi, xt = zi.double(), zt.double()
        v = xi @ a @ xt.T + (xi @ li)[:, None] + (xt @ lt)[None]
        return v + 0.3 * torch.tanh(v)

    return game


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-image", type=int, default=12)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--max-text", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start, runs, fails = time.perf_counter(), 0, []
    n_i = args.n_image
    for n_t in range(1, args.max_text + 1):
        game = cheap_game(n_i, n_t, n_t)
        m = minimum_budget(n_i, n_t)
        budgets = sorted({m, m + 1, m + n_t, int(1.1 * m), int(1.5 * m), 2 * m})
        for budget in budgets:
            for seed in range(args.seeds):
                p = (0.3, 0.5, 0.7)[seed % 3]
                runs += 1
                try:
                    approximate_crossmodal(game, n_i, n_t, budget, p=p, seed=seed)
                except NotIdentifiableError as err:
                    fails.append((n_t, budget, seed, p, str(err)[:100]))
        print(f"n_T={n_t:2d} minimum {m:6d} budgets {budgets}: failures so far {len(fails)}")
    print(f"{runs} runs, {len(fails)} NotIdentifiableError, {time.perf_counter() - start:.0f} s")
    for fail in fails:
        print(fail)
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
