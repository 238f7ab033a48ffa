"""Coalition samplers. Each returns ``coalitions [m, n] bool`` and ``weights [m] float64``.

Weights are the probability mass each row stands for, so that the weighted least squares
over the rows estimates the population objective ``sum_S mu(S) (v(S) - ...)^2``:

* enumeration: every coalition once, weight ``mu(S)`` (exact);
* i.i.d. sampling from ``mu``: weight ``1 / m`` for every draw.

Mixing the two (enumerating some sizes, sampling the rest) would need the sampled rows to
carry only the remaining mass; we never mix, so that mistake cannot happen.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

__all__ = [
    "all_coalitions",
    "banzhaf_size_masses",
    "bernoulli_coalitions",
    "make_generator",
    "shapley_kernel_coalitions",
    "shapley_kernel_weights",
    "shapley_size_masses",
    "stratified_coalitions",
    "weighted_banzhaf_weights",
]


def make_generator(seed: int | None, device: torch.device | None = None) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (fresh entropy when ``None``).

    Draws happen on the CPU and are then moved, so a seed gives the same coalitions on
    every device.
    """
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def all_coalitions(n: int, device: torch.device | None = None) -> torch.Tensor:
    """Every subset of ``n`` players: ``[2^n, n]`` bool, row ``k`` = binary digits of ``k``."""
    ids = torch.arange(2**n, dtype=torch.int64, device=device)
    bits = torch.arange(n, dtype=torch.int64, device=device)
    return ((ids[:, None] >> bits[None, :]) & 1).bool()


def weighted_banzhaf_weights(coalitions: torch.Tensor, p: float) -> torch.Tensor:
    """``mu_p(S) = p^|S| (1-p)^(n-|S|)`` per row of ``coalitions [m, n]`` -> ``[m]`` float64."""
    n = coalitions.shape[1]
    size = coalitions.sum(dim=1).to(torch.float64)
    return torch.exp(size * math.log(p) + (n - size) * math.log1p(-p))


def bernoulli_coalitions(
    m: int, n: int, p: float, generator: torch.Generator, device: torch.device | None = None
) -> torch.Tensor:
    """``m`` i.i.d. coalitions, each player kept independently with probability ``p``.

    Returns:
        ``[m, n]`` bool on ``device``.
    """
    draws = torch.rand((m, n), generator=generator, dtype=torch.float64)
    return (draws < p).to(device)


def _shapley_size_probabilities(n: int) -> torch.Tensor:
    """Probability of each size 1..n-1 under the Shapley kernel, ``∝ 1 / (s (n - s))``."""
    sizes = torch.arange(1, n, dtype=torch.float64)
    mass = 1.0 / (sizes * (n - sizes))
    return mass / mass.sum()


def shapley_kernel_weights(coalitions: torch.Tensor) -> torch.Tensor:
    """Normalised Shapley-kernel mass of each coalition of size 1..n-1 (0 for empty/full).

    ``mu(S) ∝ (n - 1) / (C(n, |S|) |S| (n - |S|))``, normalised over all proper non-empty
    subsets.
    """
    n = coalitions.shape[1]
    size = coalitions.sum(dim=1)
    probs = _shapley_size_probabilities(n) if n > 1 else torch.zeros(0, dtype=torch.float64)
    out = torch.zeros(coalitions.shape[0], dtype=torch.float64, device=coalitions.device)
    inner = (size > 0) & (size < n)
    s = size[inner].cpu()
    sf = s.to(torch.float64)
    log_binom = (
        torch.lgamma(torch.tensor(n + 1.0, dtype=torch.float64))
        - torch.lgamma(sf + 1.0)
        - torch.lgamma(n - sf + 1.0)
    )
    out[inner] = (probs[s - 1] / torch.exp(log_binom)).to(out.device)
    return out


def shapley_kernel_coalitions(
    m: int, n: int, generator: torch.Generator, device: torch.device | None = None
) -> torch.Tensor:
    """``m`` i.i.d. coalitions from the Shapley kernel over sizes 1..n-1.

    A size ``s`` is drawn with probability ``∝ 1/(s (n-s))``, then a uniform subset of
    that size. Returns ``[m, n]`` bool on ``device``.
    """
    if n < 2:
        raise ValueError("Shapley-kernel sampling needs at least 2 players.")
    probs = _shapley_size_probabilities(n)
    sizes = torch.multinomial(probs, m, replacement=True, generator=generator) + 1
    # A uniform subset of size s: the s smallest of n i.i.d. uniform keys.
    keys = torch.rand((m, n), generator=generator, dtype=torch.float64)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    return (ranks < sizes[:, None]).to(device)


# ---------------------------------------------------------------- size-stratified sampling


def banzhaf_size_masses(n: int, p: float) -> list[float]:
    """``P(|S| = k) = C(n, k) p^k (1-p)^(n-k)`` for ``k = 0..n`` (the sizes under ``mu_p``)."""
    return [
        math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log1p(-p)
        )
        for k in range(n + 1)
    ]


def shapley_size_masses(n: int) -> list[float]:
    """Shapley-kernel mass of each size ``k = 0..n``: ``∝ 1/(k (n-k))`` inside, 0 at 0 and n."""
    inner = [1.0 / (k * (n - k)) for k in range(1, n)]
    total = sum(inner)
    return [0.0, *(x / total for x in inner), 0.0] if n > 1 else [0.0] * (n + 1)


def _rows_of(sets: list[tuple[int, ...]], n: int) -> torch.Tensor:
    rows = torch.zeros((len(sets), n), dtype=torch.bool)
    for r, s in enumerate(sets):
        if s:
            rows[r, list(s)] = True
    return rows


def _stratum(n: int, k: int) -> torch.Tensor:
    """Every coalition of size ``k``: ``[C(n, k), n]`` bool."""
    if n <= 20 and 8 * math.comb(n, k) >= 2**n:
        every = all_coalitions(n)
        return every[every.sum(dim=1) == k]
    return _rows_of(list(itertools.combinations(range(n), k)), n)


def _keys(rows: torch.Tensor) -> list[bytes]:
    return [bytes(r) for r in rows.to(torch.uint8).numpy()]


def _draw_stratum(
    n: int, k: int, count: int, exclude: set[bytes], gen: torch.Generator
) -> torch.Tensor:
    """``count`` distinct uniform coalitions of size ``k``, none in ``exclude``."""
    available = math.comb(n, k) - len(exclude)
    if available <= max(4 * count, 4096) and math.comb(n, k) <= 2**22:
        rows = _stratum(n, k)
        if exclude:
            keep = torch.tensor([key not in exclude for key in _keys(rows)], dtype=torch.bool)
            rows = rows[keep]
        return rows[torch.randperm(rows.shape[0], generator=gen)[:count]]
    # Rejection from a large stratum (at least 3/4 of draws are new).
    seen = set(exclude)
    out: list[torch.Tensor] = []
    while count > 0:
        order = torch.rand((2 * count, n), generator=gen, dtype=torch.float64).argsort(dim=1)
        rows = torch.zeros((2 * count, n), dtype=torch.bool)
        rows.scatter_(1, order[:, :k], True)
        fresh = []
        for r, key in enumerate(_keys(rows)):
            if key not in seen:
                seen.add(key)
                fresh.append(r)
                if len(fresh) == count:
                    break
        out.append(rows[fresh])
        count -= len(fresh)
    return torch.cat(out)


def _paired_rows(n: int, counts: dict[int, int], gen: torch.Generator) -> dict[int, torch.Tensor]:
    """Rows of sampled strata drawn as complementary pairs: stratum ``n - k`` holds the
    complements of stratum ``k``'s draws (plus one independent draw when the counts differ);
    the middle stratum ``n / 2`` holds pairs ``S, N \\ S`` (``S`` among the coalitions that
    keep player 0, one per pair)."""
    out: dict[int, torch.Tensor] = {}
    for k in sorted(counts):
        j = n - k
        if k > j or j not in counts:
            continue
        if k == j:
            half = _draw_stratum(n - 1, k - 1, counts[k] // 2, set(), gen)
            first = torch.cat([torch.ones((half.shape[0], 1), dtype=torch.bool), half], dim=1)
            rows = torch.cat([first, ~first])
            if counts[k] % 2:
                rows = torch.cat([rows, _draw_stratum(n, k, 1, set(_keys(rows)), gen)])
            out[k] = rows
            continue
        low, high = sorted((k, j), key=lambda s: counts[s])
        base = _draw_stratum(n, low, counts[low], set(), gen)
        rows = ~base
        more = counts[high] - counts[low]
        if more:
            rows = torch.cat([rows, _draw_stratum(n, high, more, set(_keys(rows)), gen)])
        out[low], out[high] = base, rows
    return out


def _allocate(extra: int, mass: dict[int, float], room: dict[int, int]) -> dict[int, int]:
    """Split ``extra`` draws over strata in proportion to ``mass``, at most ``room[k]`` each
    (largest remainders; capped strata pass their share on)."""
    alloc = dict.fromkeys(mass, 0)
    open_ = {k for k in mass if room[k] > 0}
    while extra > 0 and open_:
        total = sum(mass[k] for k in open_)
        share = {k: extra * mass[k] / total for k in open_}
        given = {k: min(room[k] - alloc[k], math.floor(share[k])) for k in open_}
        left = extra - sum(given.values())
        for k in sorted(open_, key=lambda k: share[k] - math.floor(share[k]), reverse=True):
            if left == 0:
                break
            if given[k] < room[k] - alloc[k]:
                given[k] += 1
                left -= 1
        for k in open_:
            alloc[k] += given[k]
        extra -= sum(given.values())
        open_ = {k for k in open_ if alloc[k] < room[k]}
    return alloc


def stratified_coalitions(
    m: int,
    n: int,
    size_mass: list[float],
    generator: torch.Generator,
    *,
    anchors: list[tuple[int, ...]] | None = None,
    antithetic: bool = False,
    importance: list[float] | None = None,
    device: torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """``m`` distinct coalitions of ``n`` players and weights that estimate a size-symmetric
    measure ``mu`` (``mu(S) = size_mass[|S|] / C(n, |S|)``) without bias.

    The coalitions are grouped by size ``k`` (stratum ``k``: ``C(n, k)`` coalitions, each of
    mass ``q_k = size_mass[k] / C(n, k)``):

    1. ``anchors`` (if given) are always included, each with weight ``q_k``;
    2. whole strata are enumerated, highest ``q_k`` first (ties: sizes nearer the border),
       while a stratum's remaining coalitions number at most its proportional share of the
       remaining draws (and one draw is left for each later stratum) — each with weight
       ``q_k``;
    3. every other stratum gets ``s_k >= 1`` draws (the rest in proportion to its remaining
       mass ``M_k``), drawn uniformly without replacement among its coalitions that are not
       anchors; each carries weight ``M_k / s_k``.

    A uniform draw without replacement of ``s_k`` of the ``R_k`` remaining coalitions
    includes each with probability ``s_k / R_k``, so ``E[sum_sampled w f] = sum_{S in
    stratum} q_k f(S)`` for every ``f``: the weighted sample is an unbiased estimate of
    ``mu``. Only if fewer draws than strata remain are some strata left out; their mass is
    returned as ``uncovered_mass`` (then the estimate is of ``mu`` without those sizes).

    Args:
        m: Number of coalitions (at most the number of coalitions with positive mass).
        n: Number of players.
        size_mass: ``[n + 1]`` mass of each size (sizes with mass 0 are never drawn).
        generator: CPU generator of the draws.
        anchors: Coalitions (sorted tuples of players) that must be included.
        antithetic: Draw sampled strata ``k`` and ``n - k`` as complementary pairs
            ``S, N \\ S`` (ignored with anchors). Each stratum's draw is still uniform
            without replacement (the procedure is invariant under permutations of the
            players), so the weights stay unbiased; at ``p = 1/2`` (and for the Shapley
            kernel) ``z_i(N \\ S) = -z_i(S)``, which decouples odd and even terms.
        device: Where the returned tensors live.

    Returns:
        ``(coalitions [m, n] bool, weights [m] float64, info)`` with ``info`` holding
        ``enumerated_sizes``, ``sampled_sizes`` and ``uncovered_mass``.
    """
    sizes = [k for k in range(n + 1) if size_mass[k] > 0]
    count = {k: math.comb(n, k) for k in sizes}
    q = {k: size_mass[k] / count[k] for k in sizes}
    lev = {k: 1.0 if importance is None else float(importance[k]) for k in sizes}
    # Draws go where mass x leverage is (q_k h_k per coalition); weights stay mass-based.
    qh = {k: q[k] * lev[k] for k in sizes}
    anchor_sets = sorted({tuple(sorted(a)) for a in anchors or []}, key=lambda a: (len(a), a))
    anchor_sets = [a for a in anchor_sets if len(a) in q]
    by_size: dict[int, list[tuple[int, ...]]] = {k: [] for k in sizes}
    for a in anchor_sets:
        by_size[len(a)].append(a)
    remaining = {k: count[k] - len(by_size[k]) for k in sizes}
    left = m - len(anchor_sets)
    todo = [k for k in sizes if remaining[k] > 0]
    todo.sort(key=lambda k: (-qh[k], min(k, n - k), k))
    enumerated: list[int] = []
    mass_left = sum(remaining[k] * qh[k] for k in todo)
    while todo:
        k = todo[0]
        share = left * remaining[k] * qh[k] / mass_left
        if remaining[k] > share or left - remaining[k] < len(todo) - 1:
            break
        enumerated.append(k)
        left -= remaining[k]
        mass_left -= remaining[k] * qh[k]
        todo.pop(0)
    sampled = sorted(todo, key=lambda k: -remaining[k] * qh[k])[: max(left, 0)]
    uncovered = sum(remaining[k] * q[k] for k in todo if k not in sampled)
    draws = dict.fromkeys(sampled, 1)
    extra = _allocate(
        left - len(sampled),
        {k: remaining[k] * qh[k] for k in sampled},
        {k: remaining[k] - 1 for k in sampled},
    )
    parts: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    counts = {k: draws[k] + extra[k] for k in draws}
    paired = _paired_rows(n, counts, generator) if antithetic and not anchor_sets else {}
    for k in sizes:
        anchor_rows = _rows_of(by_size[k], n)
        exclude = set(_keys(anchor_rows))
        if k in enumerated:
            rows = _draw_stratum(n, k, remaining[k], exclude, generator)
            w = torch.full((rows.shape[0],), q[k], dtype=torch.float64)
        elif k in counts:
            if k in paired:
                rows = paired[k]
            else:
                rows = _draw_stratum(n, k, counts[k], exclude, generator)
            w = torch.full((counts[k],), remaining[k] * q[k] / counts[k], dtype=torch.float64)
        else:
            rows, w = anchor_rows[:0], torch.zeros(0, dtype=torch.float64)
        parts += [anchor_rows, rows]
        weights += [torch.full((anchor_rows.shape[0],), q[k], dtype=torch.float64), w]
    info = {
        "enumerated_sizes": sorted(enumerated),
        "sampled_sizes": sorted(draws),
        "uncovered_mass": float(uncovered),
    }
    return torch.cat(parts).to(device), torch.cat(weights).to(device), info


def size_leverages(n: int, p: float, order_counts: dict[int, int]) -> list[float]:
    """Mean leverage ``h_k = E[sum_T z_T(S)^2 | |S| = k]`` of a coalition of each size ``k``.

    ``z_T`` is the centred basis (:func:`fixlip_captum.solvers.centred_design`): a kept player
    contributes ``z_i^2 = (1 - p) / p``, a dropped one ``p / (1 - p)``. A term of order ``r``
    has ``j`` of its players kept with the hypergeometric probability
    ``C(k, j) C(n - k, r - j) / C(n, r)``.

    Args:
        n: Number of players.
        p: Centring probability.
        order_counts: Number of fitted terms of each order (e.g. ``{0: 1, 1: n, 2: n(n-1)/2}``).

    Returns:
        ``[n + 1]`` floats; under ``mu_p`` their mean (weighted by size mass) is the number of
        terms, and at ``p = 1/2`` every size has that value.
    """
    kept, dropped = (1.0 - p) / p, p / (1.0 - p)
    out = []
    for k in range(n + 1):
        total = 0.0
        for r, count in order_counts.items():
            if count == 0:
                continue
            mean = sum(
                math.comb(k, j) * math.comb(n - k, r - j) * kept**j * dropped ** (r - j)
                for j in range(r + 1)
            ) / math.comb(n, r)
            total += count * mean
        out.append(total)
    return out
