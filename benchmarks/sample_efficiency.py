"""Accuracy per forward pass: the cross-modal estimator against the previous one, same run.

Run:  python benchmarks/sample_efficiency.py [--pairs 2] [--seeds 5] [--log2 11,12,13,14,15,16]
          [--full-pairs 1] [--full-log2 12,13,14] [--full-reference 18] [--threads 1]

Small exact games: a scene pair of the shipped scenes-clip model restricted to 12 patches
and 4 tokens (the other players always kept), so exact FWBII(p) is computable from the
4096 x 16 table of all values (every masked image and caption encoded once; the estimators
then read the table, so both see the very same game). MSE of the order-1 and order-2 terms
against exact, averaged over seeds, at p in {0.3, 0.5, 0.7}.

Full pairs (36 patches + all caption tokens, captions of 6-12 tokens): MSE against a
high-budget estimate of the new estimator (``--full-reference``, log2 pairs, its own seed)
on a shared cache of encoded masks. Budgets below a pair's identifiable minimum are
reported as failures of both estimators.

"previous" is the estimator as released in 0.1 (i.i.d. Bernoulli masks per modality, the
0.1 split rule, enumeration only of a whole modality), rebuilt here from the public solver
functions so that the package carries no dead code. "new" is
:func:`fixlip_captum.approximate_crossmodal`. Results: benchmarks/results/sample_efficiency.md
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from fixlip_captum import approximate_crossmodal, exact_interactions
from fixlip_captum.adapters import get_adapter
from fixlip_captum.games import CrossModalGame
from fixlip_captum.models import load_default
from fixlip_captum.samplers import (
    all_coalitions,
    bernoulli_coalitions,
    make_generator,
    weighted_banzhaf_weights,
)
from fixlip_captum.scenes import generate_sample
from fixlip_captum.solvers import (
    NotIdentifiableError,
    centred_design,
    centred_to_product,
    interaction_terms,
    solve_normal_equations,
    split_terms,
    terms_index,
)

PS = (0.3, 0.5, 0.7)


# ------------------------------------------------------------------ the 0.1 estimator


def crossmodal_normal_equations(phi_i, w_i, phi_t, w_t, values, fi, gi):
    """The 0.1 solver: the joint least squares of the terms alone on the product design.

    ``Gram[(f,g), (f',g')] = G_I[f, f'] G_T[g, g']`` and ``rhs[(f,g)] = (Phi_I^T W_I V W_T
    Phi_T)[f, g]``.
    """
    g_i = phi_i.T @ (w_i[:, None] * phi_i)
    g_t = phi_t.T @ (w_t[:, None] * phi_t)
    rhs = (phi_i.T @ ((w_i[:, None] * values) * w_t[None, :]) @ phi_t)[fi, gi]
    return g_i[fi][:, fi] * g_t[gi][:, gi], rhs


def previous_split(budget: int, n_i: int, n_t: int, f_i: int, f_t: int) -> tuple[int, int]:
    """The 0.1 default split (as released)."""
    all_text = 2**n_t if n_t < 62 else budget
    all_image = 2**n_i if n_i < 62 else budget
    need_text = min(all_text, math.ceil(1.25 * f_t))
    need_image = min(all_image, math.ceil(1.25 * f_i))
    m_text = min(all_text, max(4, math.ceil(math.sqrt(budget) * n_t / n_i)))
    m_text = max(m_text, need_text)
    if budget // m_text < need_image:
        m_text = max(min(all_text, f_t), budget // need_image)
    min_image = min(all_image, f_i)
    if all_text > m_text > all_text // 2 and budget // all_text >= min_image:
        m_text = all_text
    return min(all_image, budget // m_text), m_text


def previous_estimator(game, n_i: int, n_t: int, budget: int, p: float, seed: int):
    """0.1 cross-modal estimator: i.i.d. masks (or a whole modality enumerated)."""
    terms = interaction_terms(n_i + n_t, 2, "all", n_image=n_i)
    image_feats, text_feats, fi, gi = split_terms(terms, n_i)
    m_i, m_t = previous_split(budget, n_i, n_t, len(image_feats), len(text_feats))
    gen = make_generator(seed)

    def masks(m: int, n: int):
        if m >= 2**n:
            z = all_coalitions(n)
            return z, weighted_banzhaf_weights(z, p)
        return bernoulli_coalitions(m, n, p, gen), torch.full((m,), 1.0 / m, dtype=torch.float64)

    zi, wi = masks(m_i, n_i)
    zt, wt = masks(m_t, n_t)
    values = torch.as_tensor(game(zi, zt), dtype=torch.float64)
    phi_i = centred_design(zi, terms_index(image_feats, n_i), p)
    phi_t = centred_design(zt, terms_index(text_feats, n_t), p)
    gram, rhs = crossmodal_normal_equations(phi_i, wi, phi_t, wt, values, fi, gi)
    coef = solve_normal_equations(gram, rhs)
    return dict(zip(terms, centred_to_product(coef, terms, p).numpy(), strict=True))


def new_estimator(game, n_i: int, n_t: int, budget: int, p: float, seed: int):
    iv = approximate_crossmodal(game, n_i, n_t, budget, p=p, seed=seed)
    return {t: float(iv.values[k]) for t, k in iv.interaction_lookup.items()}


# ------------------------------------------------------------------ games


class TableGame:
    """Cross-modal game read from a table of all values of a small sub-game."""

    def __init__(self, table: torch.Tensor, n_i: int, n_t: int) -> None:
        self.table, self.n_i, self.n_t = table, n_i, n_t
        self.wi = 2 ** torch.arange(n_i)
        self.wt = 2 ** torch.arange(n_t)

    def __call__(self, zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        a = (zi.long() * self.wi).sum(1)
        b = (zt.long() * self.wt).sum(1)
        return self.table[a][:, b]

    def joint(self, c: torch.Tensor) -> torch.Tensor:
        a = (c[:, : self.n_i].long() * self.wi).sum(1)
        b = (c[:, self.n_i :].long() * self.wt).sum(1)
        return self.table[a, b]


class CachedGame:
    """A full pair's cross-modal game with every encoded mask kept (for the full-pair runs)."""

    def __init__(self, game: CrossModalGame) -> None:
        self.game = game
        self.image: dict[bytes, torch.Tensor] = {}
        self.text: dict[bytes, torch.Tensor] = {}

    def _embed(self, z: torch.Tensor, cache: dict, encode) -> torch.Tensor:
        keys = [bytes(r) for r in z.to(torch.uint8).numpy()]
        todo = [k for k in dict.fromkeys(keys) if k not in cache]
        if todo:
            rows = torch.tensor(np.frombuffer(b"".join(todo), dtype=np.uint8)).view(len(todo), -1)
            for k, e in zip(todo, encode(rows.bool()), strict=True):
                cache[k] = e
        return torch.stack([cache[k] for k in keys])

    def __call__(self, zi: torch.Tensor, zt: torch.Tensor) -> torch.Tensor:
        game = self.game
        ei = self._embed(zi, self.image, game._images)
        et = self._embed(zt, self.text, game._texts)
        return game._similarity(ei, et).double()


def scene_game(adapter, seed: int, batch_size: int = 256) -> CrossModalGame:
    sample = generate_sample(seed)
    return CrossModalGame(adapter, sample.image, sample.caption.text, batch_size=batch_size)


def full_pair_games(adapter, count: int) -> list[CrossModalGame]:
    """The first ``count`` scenes from seed 200 on whose captions have 6-12 tokens, each of
    a different length (36 patches + 6-12 tokens: the issue's full pairs)."""
    games: list[CrossModalGame] = []
    lengths: set[int] = set()
    seed = 200
    while len(games) < count:
        game = scene_game(adapter, seed)
        if 6 <= game.n_text <= 12 and game.n_text not in lengths:
            game.scene_seed = seed  # type: ignore[attr-defined]
            games.append(game)
            lengths.add(game.n_text)
        seed += 1
    return games


def small_table(game: CrossModalGame, n_i: int, n_t: int, seed: int) -> TableGame:
    """All values of the sub-game of ``n_i`` patches and ``n_t`` tokens (others kept)."""
    rng = np.random.default_rng(seed)
    patches = np.sort(rng.choice(game.n_image, n_i, replace=False))
    tokens = np.sort(rng.choice(game.n_text, min(n_t, game.n_text), replace=False))
    zi = torch.ones((2**n_i, game.n_image), dtype=torch.bool)
    zi[:, patches] = all_coalitions(n_i)
    zt = torch.ones((2 ** len(tokens), game.n_text), dtype=torch.bool)
    zt[:, tokens] = all_coalitions(len(tokens))
    return TableGame(game(zi, zt).double(), n_i, len(tokens))


def mse(estimate: dict, reference: dict) -> float:
    keys = [t for t in reference if len(t) in (1, 2)]
    return float(np.mean([(estimate[t] - reference[t]) ** 2 for t in keys]))


def run_grid(game, n_i, n_t, reference, budgets, seeds, label, rows):
    for p in PS:
        for log2 in budgets:
            out = {}
            for name, fn in (("previous", previous_estimator), ("new", new_estimator)):
                errs, fails = [], 0
                for s in range(seeds):
                    try:
                        errs.append(mse(fn(game, n_i, n_t, 2**log2, p, s), reference[p]))
                    except NotIdentifiableError:
                        fails += 1
                out[name] = (float(np.mean(errs)) if errs else float("nan"), fails)
            ratio = out["new"][0] / out["previous"][0]
            rows.append((label, p, log2, *out["previous"], *out["new"], ratio))
            print(
                f"{label:28s} p={p} 2^{log2}: previous {out['previous'][0]:.3e} "
                f"({out['previous'][1]} fail) new {out['new'][0]:.3e} ({out['new'][1]} fail) "
                f"ratio {ratio:.3f}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2, help="scene pairs for small games")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--log2", default="11,12,13,14,15,16")
    parser.add_argument("--full-pairs", type=int, default=1)
    parser.add_argument("--full-log2", default="12,13,14")
    parser.add_argument("--full-reference", type=int, default=18)
    parser.add_argument("--full-seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/sample_efficiency.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    budgets = [int(x) for x in args.log2.split(",")]
    model, _, tokenizer = load_default()
    adapter = get_adapter(model, tokenizer)
    rows: list[tuple] = []
    start = time.perf_counter()
    for pair in range(args.pairs):
        game = scene_game(adapter, seed=100 + pair)
        table = small_table(game, 12, 4, seed=pair)
        n_i, n_t = table.n_i, table.n_t
        reference = {
            p: {
                t: float(iv.values[k])
                for iv in [exact_interactions(table.joint, n_i + n_t, p=p)]
                for t, k in iv.interaction_lookup.items()
            }
            for p in PS
        }
        label = f"scene {100 + pair}: {n_i}+{n_t} exact"
        run_grid(table, n_i, n_t, reference, budgets, args.seeds, label, rows)
    full_budgets = [int(x) for x in args.full_log2.split(",")] if args.full_pairs else []
    for game in full_pair_games(adapter, args.full_pairs):
        cached = CachedGame(game)
        n_i, n_t = game.n_image, game.n_text
        reference = {
            p: new_estimator(cached, n_i, n_t, 2**args.full_reference, p, 12345) for p in PS
        }
        label = f"scene {game.scene_seed}: {n_i}+{n_t} vs 2^{args.full_reference}"
        run_grid(cached, n_i, n_t, reference, full_budgets, args.full_seeds, label, rows)
    seconds = time.perf_counter() - start
    lines = [
        "# Sample efficiency: new cross-modal estimator vs 0.1 (same run)",
        "",
        "Command: `python benchmarks/sample_efficiency.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out",)
        )
        + "`",
        "",
        f"MSE of the order-1 and order-2 terms, mean over seeds; {seconds:.0f} s on "
        f"{args.threads} thread(s). ratio = new / previous (lower is better). `fail` = seeds "
        "that raised NotIdentifiableError.",
        "",
        "| game | p | budget | previous MSE | fail | new MSE | fail | ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, p, log2, pm, pf, nm, nf, ratio in rows:
        lines.append(
            f"| {label} | {p} | 2^{log2} | {pm:.3e} | {pf} | {nm:.3e} | {nf} | {ratio:.2g} |"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
