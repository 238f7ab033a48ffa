"""p-faithfulness: how well an explanation's additive surrogate predicts the game.

On fresh coalitions ``S`` (not the ones an estimator was fitted on) the centred game value
``y(S) = v(S) - v(empty)`` is compared with the explanation's surrogate
``s(S) = sum_{T subset S} e_T``. How the intercept ``e_()`` enters (``intercept=``):

* ``"fitted"``: ``s(S) - v(empty)``: the explanation's own prediction of ``v(S)``, centred
  like the game. This is the library's convention: its estimators fit ``v`` with a free
  intercept (FSII pins it to ``v(empty)``), so ``e_()`` is on the game's scale;
* ``"anchored"``: ``s(S) - e_() = sum_{T subset S, T != ()} e_T``: the surrogate anchored
  at the empty coalition like the game, for explanations without an intercept (gradient
  maps have ``e_() = 0``). For a least-squares fit it adds the bias ``v(empty) - e_()`` to
  every prediction, which costs R^2 when ``v(empty)`` is atypical (an all-grey image with
  an empty caption often is);
* ``"auto"`` (default): ``"fitted"`` when the explanation has a non-zero intercept,
  ``"anchored"`` when ``e_() = 0``. For an explanation whose intercept equals ``v(empty)``
  (Shapley values, FSII) both coincide.

Coalitions are drawn with the library's samplers (:mod:`fixlip_captum.samplers`) from

* ``Bernoulli(p)``: every player kept independently with probability ``p``
  (the distribution the weighted Banzhaf index ``FWBII(p)`` is faithful for), or
* ``"shapley"``: the Shapley-kernel distribution, size ``k in 1..n-1`` with probability
  proportional to ``1 / (k (n - k))``, then a uniform subset of that size (empty and full
  coalitions excluded; they have infinite kernel weight).

Because coalitions are drawn from the distribution itself, every score is unweighted (no
kernel weights on top, which would count the distribution twice).

Scores:

* ``spearman``: rank correlation (the published "p-faithfulness correlation"); average
  ranks for ties (values equal to 10 significant digits count as tied);
* ``pearson``: linear correlation;
* ``r2``: ``1 - sum (y - a s)^2 / sum (y - mean y)^2`` after a per-instance least-squares
  scale ``a = <s, y> / <s, s>`` (no offset; with an offset it would equal ``pearson^2``).
  The scale lets methods reported on arbitrary scales (gradient maps, normalised heatmaps)
  be compared; it can only raise R^2, and a value below 0 means worse than predicting the
  mean;
* ``r2_unscaled``: the same with ``a = 1`` (meaningful only for methods on the game's
  scale, such as FIxLIP and Shapley values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.stats import rankdata
from shapiq import InteractionValues

from fixlip_captum._validation import check_p
from fixlip_captum.games.evaluate import JointGameFn, evaluate_game
from fixlip_captum.samplers import bernoulli_coalitions, make_generator, shapley_kernel_coalitions
from fixlip_captum.surrogate import explanation_arrays, surrogate_values

__all__ = [
    "FaithfulnessResult",
    "draw_coalitions",
    "faithfulness_scores",
    "p_faithfulness",
]


Intercept = Literal["auto", "anchored", "fitted"]


def _distribution_name(distribution: float | str) -> str:
    if isinstance(distribution, str):
        if distribution.lower() != "shapley":
            raise ValueError(
                f"distribution must be a keep-probability p in (0, 1) or 'shapley', got "
                f"{distribution!r}."
            )
        return "shapley"
    return f"p={check_p(distribution):g}"


def draw_coalitions(
    n_players: int,
    n_samples: int = 1000,
    distribution: float | str = 0.5,
    *,
    seed: int | torch.Generator = 0,
) -> np.ndarray:
    """Draw evaluation coalitions for :func:`faithfulness_scores`.

    Args:
        n_players: Number of joint players ``n`` (>= 2).
        n_samples: Number of coalitions ``m``.
        distribution: Keep-probability ``p`` in ``(0, 1)`` for i.i.d. Bernoulli masks, or
            ``"shapley"`` for the Shapley-kernel distribution (sizes ``1..n-1``).
        seed: Seed or CPU ``torch.Generator``; same seed, same coalitions.

    Returns:
        ``[m, n]`` bool numpy array, ``True`` = kept.
    """
    if n_players < 2:
        raise ValueError(f"n_players must be >= 2, got {n_players}.")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    name = _distribution_name(distribution)
    gen = seed if isinstance(seed, torch.Generator) else make_generator(int(seed))
    if name == "shapley":
        coal = shapley_kernel_coalitions(n_samples, n_players, gen)
    else:
        coal = bernoulli_coalitions(n_samples, n_players, float(distribution), gen)
    return coal.cpu().numpy()


@dataclass
class FaithfulnessResult:
    """Faithfulness of one explanation on one set of coalitions.

    Attributes:
        distribution: ``"p=0.5"``-style name or ``"shapley"``.
        spearman: Spearman rank correlation of ``y`` and ``s`` (NaN if either is constant).
        pearson: Pearson correlation (NaN if either is constant).
        r2: R^2 after the least-squares scale ``scale``.
        r2_unscaled: R^2 of ``s`` itself.
        scale: The least-squares scale ``a``.
        n_samples: Number of coalitions.
        game_values: ``[m]`` centred game values ``y = v(S) - v(empty)``.
        surrogate: ``[m]`` surrogate values compared with ``game_values``.
        intercept: How the intercept entered (``"fitted"`` or ``"anchored"``).
    """

    distribution: str
    spearman: float
    pearson: float
    r2: float
    r2_unscaled: float
    scale: float
    n_samples: int
    game_values: np.ndarray
    surrogate: np.ndarray
    intercept: str = "fitted"


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a @ a) * (b @ b))
    if denom <= 0.0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip((a @ b) / denom, -1.0, 1.0))


def _rank(x: np.ndarray) -> np.ndarray:
    # Round to 10 significant digits of the largest value first: the game and the surrogate
    # compute equal coalition values along different float paths, and rounding noise must
    # not split ties (duplicated coalitions are common with few players).
    top = float(np.max(np.abs(x))) if x.size else 0.0
    if top > 0.0:
        x = np.round(x / top, 10)
    return rankdata(x)


def faithfulness_scores(
    iv: InteractionValues,
    coalitions: np.ndarray,
    values: np.ndarray,
    v_empty: float,
    *,
    distribution: float | str = "custom",
    intercept: Intercept = "auto",
) -> FaithfulnessResult:
    """Score an explanation against game values that were already computed.

    Use this to score many explanations of one instance on the same coalitions (one game
    evaluation for all methods).

    Args:
        iv: Explanation of order 1 or 2 over ``n`` players.
        coalitions: ``[m, n]`` bool evaluation coalitions.
        values: ``[m]`` game values ``v(S)``.
        v_empty: ``v(empty)``.
        distribution: Label stored in the result (``p`` or ``"shapley"``).
        intercept: ``"auto"``, ``"fitted"`` (surrogate with ``e_()``, minus ``v_empty``) or
            ``"anchored"`` (surrogate without ``e_()``); see the module notes.

    Returns:
        :class:`FaithfulnessResult`.
    """
    arrays = explanation_arrays(iv)
    coal = np.asarray(coalitions, dtype=bool)
    y = np.asarray(values, dtype=float).reshape(-1) - float(v_empty)
    if coal.ndim != 2 or coal.shape[0] != y.shape[0]:
        raise ValueError(
            f"coalitions {tuple(coal.shape)} and values {tuple(y.shape)} do not match; pass "
            "[m, n] coalitions and their [m] game values."
        )
    if intercept == "auto":
        intercept = "fitted" if arrays.intercept != 0.0 else "anchored"
    if intercept == "anchored":
        s = surrogate_values(arrays, coal, include_intercept=False)
    elif intercept == "fitted":
        s = surrogate_values(arrays, coal, include_intercept=True) - float(v_empty)
    else:
        raise ValueError(f"intercept must be 'auto', 'anchored' or 'fitted', got {intercept!r}.")
    sst = float(np.sum((y - y.mean()) ** 2))
    ss = float(s @ s)
    scale = float(s @ y) / ss if ss > 0.0 else 0.0
    if sst > 0.0:
        r2 = 1.0 - float(np.sum((y - scale * s) ** 2)) / sst
        r2_unscaled = 1.0 - float(np.sum((y - s) ** 2)) / sst
    else:
        r2 = r2_unscaled = float("nan")
    label = distribution if isinstance(distribution, str) else _distribution_name(distribution)
    return FaithfulnessResult(
        distribution=label,
        spearman=_pearson(_rank(y), _rank(s)),
        pearson=_pearson(y, s),
        r2=r2,
        r2_unscaled=r2_unscaled,
        scale=scale,
        n_samples=int(y.shape[0]),
        game_values=y,
        surrogate=s,
        intercept=intercept,
    )


def p_faithfulness(
    iv: InteractionValues,
    game: JointGameFn,
    *,
    distribution: float | str = 0.5,
    n_samples: int = 1000,
    seed: int | torch.Generator = 0,
    batch_size: int = 256,
    intercept: Intercept = "auto",
) -> FaithfulnessResult:
    """p-faithfulness of an explanation on fresh coalitions of a joint game.

    Args:
        iv: Explanation of order 1 or 2 over the game's ``n`` players.
        game: Joint game ``game(coalitions [m, n] bool) -> [m]``.
        distribution: Keep-probability ``p`` or ``"shapley"`` (see :func:`draw_coalitions`).
        n_samples: Number of fresh coalitions.
        seed: Seed of the coalitions.
        batch_size: Coalitions per game call.
        intercept: ``"auto"``, ``"fitted"`` or ``"anchored"`` (see the module notes).

    Returns:
        :class:`FaithfulnessResult`.
    """
    n = int(iv.n_players)
    coal = draw_coalitions(n, n_samples, distribution, seed=seed)
    with_empty = np.concatenate([np.zeros((1, n), dtype=bool), coal])
    vals = evaluate_game(game, with_empty, batch_size=batch_size)
    return faithfulness_scores(
        iv,
        coal,
        vals[1:],
        float(vals[0]),
        distribution=_distribution_name(distribution),
        intercept=intercept,
    )
