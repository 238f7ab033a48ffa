"""Coalition samplers. Each returns ``coalitions [m, n] bool`` and ``weights [m] float64``.

Weights are the probability mass each row stands for, so that the weighted least squares
over the rows estimates the population objective ``sum_S mu(S) (v(S) - ...)^2``:

* enumeration: every coalition once, weight ``mu(S)`` (exact);
* i.i.d. sampling from ``mu``: weight ``1 / m`` for every draw.

Mixing the two (enumerating some sizes, sampling the rest) would need the sampled rows to
carry only the remaining mass; we never mix, so that mistake cannot happen.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "all_coalitions",
    "bernoulli_coalitions",
    "make_generator",
    "shapley_kernel_coalitions",
    "shapley_kernel_weights",
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
